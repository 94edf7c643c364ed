#!/usr/bin/env bash
# Trains the shipped DLIR models from scratch with the project's own code on its own simulated
# sequences, and installs them in Resources/Models (weights, config, training history):
#   echoreg-dlir-sim (BSD-3-Clause): multi-scale 32 -> 64 -> 128 rows on any frame pairs, all loss terms,
#     then a long second 128-row stage started from that (20000 steps, two CPU threads);
#   echoreg-dlir-sim-sequential: a 256-row stage started from the multi-scale model (before the long
#     stage), on near-neighbour pairs for sequential tracking (texture and shape off: no gain in the
#     ablation, a fifth of the step time).
#   then echoreg-dlir-camus, the default DLIR model (scripts/train_camus_model.sh, from the long stage; only
#     when the CAMUS pairs are there, ../shared/data/camus_ed_es/train or $CAMUS): CC BY-NC-SA 4.0 (CAMUS's terms).
#   usage: scripts/train_shipped_model.sh [WORK_DIR]     (default runs/shipped; CPU or CUDA, seeded)
# Seeds 0-299 train, 5000-5007 validate; benchmark seeds (10000+) are never used; CAMUS valid is never used.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-runs/shipped}
ECHOREG=".venv/bin/python -m EchoRegistrationLib.cli"
DATA="sim:0-300:$WORK/cache"
VALIDATION="sim:5000-5008:$WORK/cache"
mkdir -p "$WORK"
$ECHOREG train simulate --seeds 0-300 -o "$WORK/cache" --frames 20 --size 256 --workers 2
$ECHOREG train simulate --seeds 5000-5008 -o "$WORK/cache" --frames 20 --size 256 --workers 2
for structure in lv myocardium; do
  $ECHOREG train vae --data "$DATA" --structure "$structure" --iterations 400 \
    --iterations-per-epoch 500 -o "$WORK/vae_$structure"
done
$ECHOREG train dlir --data "$DATA" --validation "$VALIDATION" \
  --vae "$WORK/vae_lv" --vae "$WORK/vae_myocardium" --weight motion=1 \
  --encoder 32 64 64 64 --decoder 64 64 32 32 \
  --scales 32 64 128 --iterations 500 2500 3000 --iterations-per-epoch 500 -o "$WORK/dlir"
$ECHOREG train dlir --data "$DATA" --validation "$VALIDATION" --init "$WORK/dlir" \
  --vae "$WORK/vae_lv" --vae "$WORK/vae_myocardium" --weight motion=1 \
  --encoder 32 64 64 64 --decoder 64 64 32 32 \
  --scales 128 --iterations 20000 --iterations-per-epoch 1000 -o "$WORK/dlir_long"
$ECHOREG train dlir --data "$DATA" --validation "$VALIDATION" --init "$WORK/dlir" \
  --mode sequential --max-frame-gap 3 --weight motion=1 --no-texture \
  --encoder 32 64 64 64 --decoder 64 64 32 32 \
  --scales 256 --iterations 4000 --iterations-per-epoch 250 -o "$WORK/dlir_sequential"
mkdir -p Resources/Models/echoreg-dlir-sim Resources/Models/echoreg-dlir-sim-sequential
cp "$WORK/dlir_long/model.safetensors" "$WORK/dlir_long/model.json" Resources/Models/echoreg-dlir-sim/
cp "$WORK/dlir_sequential/model.safetensors" "$WORK/dlir_sequential/model.json" Resources/Models/echoreg-dlir-sim-sequential/
echo "installed Resources/Models/echoreg-dlir-sim and echoreg-dlir-sim-sequential"
scripts/train_camus_model.sh "$WORK" "$WORK/dlir_long"
