#!/usr/bin/env bash
# The one prepared GPU session: the CUDA tests, the GPU benchmarks, and the study's GPU-sized
# full-profile grids (02 ResNet-20, 03 char-LSTM, 06's char-LSTM and ResNet-20 tasks), each notebook's
# grid trained as batched groups by `python -m hypernb records` (no Jupyter needed there). Records land
# in evidence/<profile>/ as on any machine; what should come back (a log, the benchmarks' JSON, the
# study's timings and the new records as a tarball: 5 files) is written to $OUT.
#
#   bash benchmarks/gpu_prepare.sh                    # first, here: the peers' wheels and the data
#   HYPERNB_GIT_COMMIT=<commit> bash benchmarks/gpu_study.sh     # there (carry: .whl .gpu-data), as printed
#   PROFILE=smoke bash benchmarks/gpu_study.sh        # the same steps at smoke size: checks the script on a CPU
#   STEPS=study bash benchmarks/gpu_study.sh          # only some steps (any of tests,bench,study)
#
# Everything runs within BUDGET seconds (default 540, inside one 600-second call), in the order
# tests → benchmarks → study, each step capped by what is left (a step with too little left is skipped),
# and the records are packed after every notebook. The study takes all the time that is left, 03 first (its
# claims can be decided; 02 on the CIFAR-10 subset stays indicative until full CIFAR-10 is supplied):
# a notebook stopped by the budget keeps its finished runs, and its unfinished group keeps a checkpoint
# on that machine (not packed: too large), so `STEPS=study` run again there, while it is still lent,
# resumes it. What comes back are finished runs; an unfinished group starts afresh on another machine.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/hypernb-gpu}
PROFILE=${PROFILE:-full}
STEPS=${STEPS:-tests,bench,study}
BUDGET=${BUDGET:-540}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
LOG="$OUT/gpu_study.log"

# seconds a step may take: at most $1, and never past the budget (keeping 15 s to pack the results)
cap() { local left=$(( BUDGET - 15 - ($(date +%s) - START) )); (( left < $1 )) && echo $(( left > 0 ? left : 0 )) || echo "$1"; }
# run "$@" for at most $1 seconds (killed 10 s after it was asked to stop), or skip it when under 20 s are left
within() { local t; t=$(cap "$1"); shift; if (( t < 20 )); then echo "skipped (budget spent): $*" | tee -a "$LOG"; return 124; fi
  timeout -k 10 "$t" "$@"; }
step() { [[ ",$STEPS," == *",$1,"* ]]; }
say() { echo "== $* ($(( $(date +%s) - START )) s)" | tee -a "$LOG"; }

# the peers of notebook 06 and the data, as prepared by gpu_prepare.sh (a GPU machine cannot download them)
[ -z "${HYPERNB_DATA:-}" ] && [ -d .gpu-data ] && export HYPERNB_DATA="$PWD/.gpu-data"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/hypernb-site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/hypernb-site"
fi
{ date -u +"%Y-%m-%dT%H:%M:%SZ"
  echo "commit ${HYPERNB_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo "unknown: set HYPERNB_GIT_COMMIT, or the records name no commit")}, budget $BUDGET s, profile $PROFILE"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PY -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'python', sys.version.split()[0])"
  $PY -c "from hypernb import data; r = data.data_root(); print('data root', r, {d: data.available(d, r) for d in ('mnist', 'cifar10subset')})"
} 2>&1 | tee -a "$LOG"
has_cuda=$($PY -c "import torch; print(int(torch.cuda.is_available()))")

if step tests && [ "$has_cuda" = 1 ]; then
  say "CUDA tests"
  within 120 $PY -m pytest -q tests/test_cuda.py -p no:cacheprovider 2>&1 | tail -30 | tee -a "$LOG"
fi

if step bench; then
  say "throughput benchmark"
  if [ "$has_cuda" = 1 ]; then
    within 150 $PY benchmarks/throughput.py --device cuda --mlp-k 60 --resnet-k 9 --lstm-k 6 --reps 3 \
      --json "$OUT/throughput_cuda.json" 2>&1 | tee -a "$LOG"
    say "step benchmark"
    within 90 $PY benchmarks/step_overhead.py --device cuda --reps 3 --steps 100 --warmup 20 \
      --json "$OUT/step_overhead_cuda.json" 2>&1 | grep -v "^\[" | tee -a "$LOG"
  else
    within 240 $PY benchmarks/throughput.py --quick --json "$OUT/throughput_quick.json" 2>&1 | tail -8 | tee -a "$LOG"
  fi
fi

records=evidence/$PROFILE
[ "$PROFILE" = smoke ] && records=${HYPERNB_OUT:-outputs/smoke}
pack() {  # the run records of 02, 03 and 06 (not group checkpoints or resume notes, which stay here to resume
          # from; not parameters.json, which would record this script's QUIET override over the committed one)
  tar czf "$OUT/records_$PROFILE.tgz" --exclude='*.pt' --exclude='.groups' --exclude='parameters.json' \
    $(ls -d "$records"/0[236]_* 2>/dev/null) 2>/dev/null \
    && echo "records: $OUT/records_$PROFILE.tgz (tar xzf it in the repository root)" | tee -a "$LOG"
}
if step study; then
  say "the study's GPU-sized grids, profile $PROFILE"
  timings="$OUT/study_timing.tsv"
  printf "notebook\tseconds\texit\n" > "$timings"
  for nb in 03 02 06; do
    t0=$(date +%s)
    within 100000 $PY -m hypernb records --profile "$PROFILE" --only "$nb" -p QUIET False 2>&1 | tee -a "$LOG" | tail -5
    rc=${PIPESTATUS[0]}
    printf "%s\t%s\t%s\n" "$nb" "$(( $(date +%s) - t0 ))" "$rc" | tee -a "$timings"
    pack
  done
fi

say "done"
