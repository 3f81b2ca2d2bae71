#!/usr/bin/env bash
# The one prepared GPU session: CUDA tests, the step-overhead benchmark on the GPU, and the paper's
# MNIST pairs in the full profile. Writes everything to $OUT (the device tool brings it back).
#   OUT=/tmp/gpu bash benchmarks/gpu_run.sh              (GPU_MNIST=0: skip the MNIST sweep)
set -uo pipefail
OUT=${OUT:-/tmp/hypernb-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
if ls .whl/*.whl >/dev/null 2>&1; then   # gdtuo (the oracle) travels as a wheel
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
fi
export HYPERNB_DATA=${HYPERNB_DATA:-$PWD/.gpu_data}
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'python', sys.version.split()[0])"
} 2>&1 | tee "$OUT/gpu.txt"
echo "== CUDA tests"; date
timeout 120 python3 -m pytest -q tests/test_cuda.py -p no:cacheprovider -o addopts="" 2>&1 | tail -30 | tee "$OUT/cuda_tests.txt"
echo "== benchmark"; date
timeout 270 python3 benchmarks/step_overhead.py --device cuda --reps 3 --steps 100 --warmup 20 \
  --json "$OUT/bench_cuda.json" 2>&1 | grep -v "^\[" | tee "$OUT/bench_cuda.md"
if [ "${GPU_MNIST:-1}" = 0 ]; then date; exit 0; fi   # GPU_MNIST=0: tests and benchmark only
echo "== MNIST, full profile"; date
if [ -d .gpu_prev/mnist_pairs ]; then cp -r .gpu_prev/mnist_pairs /tmp/; fi   # resume an earlier session's sweep
timeout 170 python3 -m hypernb sweep benchmarks/gpu_mnist_pairs.yaml --out /tmp/mnist_pairs 2>&1 | tail -5
python3 -m hypernb collect /tmp/mnist_pairs --out "$OUT/mnist_pairs.csv" 2>&1 | tail -2
tar czf "$OUT/mnist_pairs_metrics.tgz" -C /tmp mnist_pairs/points 2>/dev/null
date
