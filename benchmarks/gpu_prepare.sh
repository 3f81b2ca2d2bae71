#!/usr/bin/env bash
# Prepare, on this machine, what a lent GPU machine lacks for benchmarks/gpu_study.sh: it has torch
# (and pytest, matplotlib, seaborn, pandas) but not the learning-rate-free peers of notebook 06, not
# the data, and it cannot download. Both go into folders that git ignores, and travel with the call
# by naming them in its `carry`:
#
#   bash benchmarks/gpu_prepare.sh          # here: .whl/ (the peers' pinned wheels), .gpu-data/ (the data)
#
# then, on the GPU machine (the command this script prints at the end, with this checkout's commit):
#
#   HYPERNB_GIT_COMMIT=<commit> bash benchmarks/gpu_study.sh        carry: .whl .gpu-data
#
# The data are copied (into a folder of their own, so that they never shadow this machine's data root)
# from $HYPERNB_DATA (default: ../shared/data beside this checkout): the CIFAR-10
# subset and the texts, which the GPU-sized grids train on (MNIST's runs are done on a CPU; a call's
# tree may hold 64 MiB). DATASETS="CIFAR10_SUBSET text MNIST" adds MNIST, for PROFILE=smoke checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SRC=${HYPERNB_DATA:-../shared/data}

peers=$($PY -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['peers']))")
rm -rf .whl && mkdir -p .whl
# pure-Python wheels; two of the peers are published as source archives only, so they are built here
$PY -m pip wheel --quiet --no-deps --wheel-dir .whl $peers
ls .whl

rm -rf .gpu-data && mkdir -p .gpu-data
for d in ${DATASETS:-CIFAR10_SUBSET text}; do
  if [ ! -d "$SRC/$d" ]; then
    echo "error: $SRC/$d not found; set HYPERNB_DATA to the folder that holds the datasets (see data/README.md)" >&2
    exit 2
  fi
  cp -r --no-preserve=mode "$SRC/$d" .gpu-data/
done
du -sh .gpu-data .whl

commit=$(git rev-parse HEAD)
[ -n "$(git status --porcelain --untracked-files=no)" ] && echo "warning: uncommitted changes: records will name $commit, not what ran" >&2
echo
echo "on the GPU machine (carry: .whl .gpu-data), in the repository root:"
echo "  HYPERNB_GIT_COMMIT=$commit bash benchmarks/gpu_study.sh"
