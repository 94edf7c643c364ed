#!/usr/bin/env bash
# Trains the shipped DLIR model from scratch with the project's own code on its own simulated sequences,
# and installs it in Resources/Models/echoreg-dlir-sim (weights, config, training history).
#   usage: scripts/train_shipped_model.sh [WORK_DIR]     (default runs/shipped; CPU or CUDA, seeded)
# Seeds 0-299 train, 5000-5007 validate; benchmark seeds (10000+) are never used.
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
mkdir -p Resources/Models/echoreg-dlir-sim
cp "$WORK/dlir/model.safetensors" "$WORK/dlir/model.json" Resources/Models/echoreg-dlir-sim/
echo "installed Resources/Models/echoreg-dlir-sim"
