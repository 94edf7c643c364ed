#!/usr/bin/env bash
# The GPU checks for a lent device machine, as one short script (README, "GPU checks"):
#   1. the tests of Testing/test_spatial.py and Testing/test_dlir.py, where device "auto" is the GPU
#      (and the CUDA-only test runs);
#   2. the network on the GPU against the CPU (benchmarks/check_cuda_agreement.py): per-pair time in a
#      sequence of 20 and 100 frames (32 pairs per batch), float32 and mixed precision, and how far the fields
#      are from the CPU's (mm);
#   3. register_sequence on the GPU beside OpenCV DIS on 2 CPU threads (benchmarks/speed_register_sequence.py).
# Each part's output is also written to OUT_DIR (default: the device tool's $OUT, else runs/device).
# The device machine's python3 has torch, numpy, OpenCV, tqdm and pytest but not SimpleITK: carry its wheel
# in .whl (README, "GPU checks"); it is installed to /tmp/site first. DEVICE=cpu: a dry run on a machine
# without one (parts 2 and 3 on the CPU).
#   usage (repository root): scripts/device_check.sh [OUT_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-runs/device}}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} || exit 1
fi
status=0
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi") 2>&1 | tee "$OUT_DIR/gpu.txt"
$PYTHON -m pytest -q -p no:cacheprovider Testing/test_spatial.py Testing/test_dlir.py 2>&1 | tee "$OUT_DIR/tests.txt" || status=1
$PYTHON benchmarks/check_cuda_agreement.py --device "$DEVICE" --frames 20 100 2>&1 | tee "$OUT_DIR/agreement.md" || status=1
$PYTHON benchmarks/speed_register_sequence.py --device "$DEVICE" --threads 2 --shape 512 422 \
  --methods fields:echoreg-dlir-camus dlir dlir-refine deformable-to-reference --repeats 3 2>&1 | tee "$OUT_DIR/speed.md" || status=1
exit $status
