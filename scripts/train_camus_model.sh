#!/usr/bin/env bash
# Trains the shipped echoreg-dlir-camus: the DLIR model INIT fine-tuned on
#  - the 250 CAMUS train ED/ES pairs (similarity + Dice on the expert masks),
#  - warped templates: the 500 annotated CAMUS train frames, each moved by known random smooth motion
#    (EchoRegistrationLib.dlir.templates: real texture with true motion, motion + Dice terms),
#  - simulated sequences (seeds 0-31, three times over, with true motion),
# mask VAEs trained on CAMUS and simulated masks, PatchGAN texture, every pair's appearance redrawn at
# random in 80 % of cases (--randomise); 64 then 128 rows. CC BY-NC-SA 4.0 (CAMUS's terms). CAMUS valid
# and benchmark seeds are never used. Stage 2 continues from stage 1 as a velocity network (--diffeomorphic:
# each pass's field is integrated by scaling and squaring, so it cannot fold) on the same data, the warped
# templates moving by the current template motion (smooth random diffeomorphisms up to the mitral annulus's
# ED->ES range, EchoRegistrationLib.dlir.templates). Stage 3 trains it as a recurrent cascade of two passes
# end to end (--passes 2: every term on the composed field, so the network learns to correct its own
# residual); stage 4 continues that cascade for 1000 steps at half the step size, reversed template pairs
# taking their exact inverse motion as truth; stage 5 continues it as a cascade of three passes (as it is
# applied) for 1000 steps at step size 3e-4. Stages 1-5 take about 66 + 48 + 42 + 60 + 49 min on one CPU
# thread. Then its passes are chosen on validation data
# (benchmarks/validate_passes.py: simulator seeds 5000+, new motions of CAMUS train frames, folding on CAMUS
# train pairs), its fine-grid correction stage is trained behind the frozen network, which then runs twice per
# pair (echoreg train correction: 192 rows, two new motions of each annotated CAMUS train frame and simulated sequences 0-95
# with their true motion, CAMUS train pairs for the Dice term; 3000 steps, about 30 min on one CPU thread;
# EchoRegistrationLib.dlir.correction), its anatomy network is trained behind the frozen model (echoreg train
# anatomy: LV, myocardium and LA of the 500 annotated CAMUS train frames on a 160-row grid, appearance redrawn
# in 80 % of cases; 10000 steps of 4 pairs, about 70 min on two CPU threads; EchoRegistrationLib.dlir.anatomy:
# its maps guide the refinement) and the model is
# installed in Resources/Models/echoreg-dlir-camus (weights and config; the model card is kept).
# Last, echoreg-dlir-camus-cv (the candidate default; its model card): a cost-volume network
# (--network cost_volume) trained on the same pairs, templates and simulated sequences without shape and texture
# terms, 2000 steps, then 2500, 3000 and 4000 more as a velocity network (about 2 h 20 min on two CPU threads),
# put in front of echoreg-dlir-camus's correction stage and anatomy network (scripts/attach_network.py).
#   usage: scripts/train_camus_model.sh [WORK_DIR] [INIT]
#          (defaults runs/shipped and Resources/Models/echoreg-dlir-sim; the CAMUS pairs are read from
#          $CAMUS, default ../shared/data/camus_ed_es/train; resumable: run it again to continue)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-runs/shipped}
INIT=${2:-Resources/Models/echoreg-dlir-sim}
CAMUS=${CAMUS:-../shared/data/camus_ed_es/train}
if [ ! -d "$CAMUS" ]; then
  echo "no CAMUS pairs at $CAMUS: echoreg-dlir-camus not trained"
  exit 0
fi
ECHOREG=".venv/bin/python -m EchoRegistrationLib.cli"
MIXED="sim:0-32:$WORK/cache"
mkdir -p "$WORK"
for structure in lv myocardium; do
  $ECHOREG train vae --data "$CAMUS" --data "sim:0-12:$WORK/cache" --structure "$structure" \
    --iterations 400 --iterations-per-epoch 100 -o "$WORK/vae_camus_$structure"
done
$ECHOREG train dlir --data "$CAMUS" --data "warped:$CAMUS" --data "$MIXED" --data "$MIXED" --data "$MIXED" \
  --vae "$WORK/vae_camus_lv" --vae "$WORK/vae_camus_myocardium" --weight motion=1 --weight dice=1 \
  --randomise 0.8 --encoder 32 64 64 64 --decoder 64 64 32 32 --init "$INIT" \
  --scales 64 128 --iterations 600 2500 --iterations-per-epoch 100 -o "$WORK/dlir_camus"
$ECHOREG train dlir --data "$CAMUS" --data "warped:$CAMUS" --data "$MIXED" --data "$MIXED" --data "$MIXED" \
  --vae "$WORK/vae_camus_lv" --vae "$WORK/vae_camus_myocardium" --weight motion=1 --weight dice=1 \
  --randomise 0.8 --encoder 32 64 64 64 --decoder 64 64 32 32 --diffeomorphic --init "$WORK/dlir_camus" \
  --scales 64 128 --iterations 400 1600 --iterations-per-epoch 100 -o "$WORK/dlir_camus_velocity"
$ECHOREG train dlir --data "$CAMUS" --data "warped:$CAMUS" --data "$MIXED" --data "$MIXED" --data "$MIXED" \
  --vae "$WORK/vae_camus_lv" --vae "$WORK/vae_camus_myocardium" --weight motion=1 --weight dice=1 \
  --randomise 0.8 --encoder 32 64 64 64 --decoder 64 64 32 32 --diffeomorphic --passes 2 \
  --init "$WORK/dlir_camus_velocity" --scales 128 --iterations 800 --iterations-per-epoch 100 -o "$WORK/dlir_camus_recurrent"
$ECHOREG train dlir --data "$CAMUS" --data "warped:$CAMUS" --data "$MIXED" --data "$MIXED" --data "$MIXED" \
  --vae "$WORK/vae_camus_lv" --vae "$WORK/vae_camus_myocardium" --weight motion=1 --weight dice=1 \
  --randomise 0.8 --encoder 32 64 64 64 --decoder 64 64 32 32 --diffeomorphic --passes 2 \
  --init "$WORK/dlir_camus_recurrent" --scales 128 --iterations 1000 --learning-rate 5e-4 --iterations-per-epoch 100 \
  -o "$WORK/dlir_camus_cascade"
$ECHOREG train dlir --data "$CAMUS" --data "warped:$CAMUS" --data "$MIXED" --data "$MIXED" --data "$MIXED" \
  --vae "$WORK/vae_camus_lv" --vae "$WORK/vae_camus_myocardium" --weight motion=1 --weight dice=1 \
  --randomise 0.8 --encoder 32 64 64 64 --decoder 64 64 32 32 --diffeomorphic --passes 3 \
  --init "$WORK/dlir_camus_cascade" --scales 128 --iterations 1000 --learning-rate 3e-4 --iterations-per-epoch 100 \
  -o "$WORK/dlir_camus_cascade3"
.venv/bin/python benchmarks/validate_passes.py --models "$WORK/dlir_camus_cascade3" --passes 2 3 4 \
  --templates 16 --threads 1 --write "$WORK/echoreg-dlir-camus"
$ECHOREG train simulate --seeds 5000-5008 -o "$WORK/cache" --frames 20 --size 256 --workers 2
SIM96="sim:0-96:$WORK/cache"
OMP_NUM_THREADS=1 $ECHOREG train correction --data "warped:$CAMUS:2" --data "$SIM96" --data "$SIM96" --data "$SIM96" \
  --data "$CAMUS" --dice 1 --validation "sim:5000-5008:$WORK/cache" --base "$WORK/echoreg-dlir-camus" --passes 2 \
  --size 192 --crop 128 --iterations 3000 --iterations-per-epoch 250 -o "$WORK/echoreg-dlir-camus-corrected"
$ECHOREG train anatomy --data "$CAMUS" --base "$WORK/echoreg-dlir-camus-corrected" --iterations 10000 \
  --batch-size 4 --iterations-per-epoch 250 -o "$WORK/echoreg-dlir-camus-anatomy"
mkdir -p Resources/Models/echoreg-dlir-camus
cp "$WORK/echoreg-dlir-camus-anatomy/model.safetensors" "$WORK/echoreg-dlir-camus-anatomy/model.json" \
  Resources/Models/echoreg-dlir-camus/
echo "installed Resources/Models/echoreg-dlir-camus (CC BY-NC-SA 4.0)"
COST_VOLUME=(--data "$CAMUS" --data "warped:$CAMUS" --data "$MIXED" --data "$MIXED" --data "$MIXED" --scales 128
  --batch-size 8 --weight motion=1 --weight dice=1 --weight shape=0 --weight texture=0 --no-texture --randomise 0.8
  --network cost_volume)
$ECHOREG train dlir "${COST_VOLUME[@]}" --iterations 2000 -o "$WORK/cost_volume"
$ECHOREG train dlir "${COST_VOLUME[@]}" --diffeomorphic --init "$WORK/cost_volume" --iterations 2500 --seed 1 \
  -o "$WORK/cost_volume_velocity"
$ECHOREG train dlir "${COST_VOLUME[@]}" --diffeomorphic --init "$WORK/cost_volume_velocity" --iterations 3000 \
  --seed 2 -o "$WORK/cost_volume_velocity2"
$ECHOREG train dlir "${COST_VOLUME[@]}" --diffeomorphic --init "$WORK/cost_volume_velocity2" --iterations 4000 \
  --seed 3 -o "$WORK/cost_volume_velocity3"
.venv/bin/python scripts/attach_network.py --model Resources/Models/echoreg-dlir-camus \
  --network "$WORK/cost_volume_velocity3" -o Resources/Models/echoreg-dlir-camus-cv --overwrite
echo "installed Resources/Models/echoreg-dlir-camus-cv (CC BY-NC-SA 4.0)"
