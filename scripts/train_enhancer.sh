#!/usr/bin/env bash
# Trains the shipped enhancement CycleGAN (echoreg-enhancer-sim) with the project's own code on its own
# simulated sequences only (BSD-3-Clause): the low-quality domain is simulated sequences degraded by
# EchoRegistrationLib.simulation.degradation (seeds 40000-40099), the high-quality domain other clean simulated
# sequences (seeds 40100-40199; unpaired), validation on degraded seeds 41000-41003 against their clean frames.
# Benchmark seeds (10000+ below 40000) and CAMUS are never used. Then installs the weights, config and
# history in Resources/Models/echoreg-enhancer-sim.
#   usage: scripts/train_enhancer.sh [WORK_DIR] [STEPS]   (default runs/enhancer 7000; CPU or CUDA, seeded,
#          resumable: run it again with the same WORK_DIR to continue)
# About 0.6 s per step on one CPU thread (OMP_NUM_THREADS=1), 70 min for 7000 steps.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-runs/enhancer}
STEPS=${2:-7000}
.venv/bin/python -m EchoRegistrationLib.cli train enhancer \
  --low degraded:40000-40100 --high sim:40100-40200 --validation degraded:41000-41004 \
  --crop 96 --width 16 --blocks 6 --iterations "$STEPS" --iterations-per-epoch 250 -o "$WORK"
mkdir -p Resources/Models/echoreg-enhancer-sim
cp "$WORK/model.safetensors" "$WORK/model.json" Resources/Models/echoreg-enhancer-sim/
echo "installed Resources/Models/echoreg-enhancer-sim"
