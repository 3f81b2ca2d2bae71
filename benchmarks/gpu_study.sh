#!/usr/bin/env bash
# The one prepared GPU session: CUDA tests, the GPU benchmarks, and the study's GPU-sized full-profile
# grids (02 ResNet-20, 03 char-LSTM, 06's char-LSTM and ResNet-20 tasks), each notebook's grid trained
# as batched groups. Records land in evidence/<profile>/ as on any machine; everything that should come
# back (timings, benchmark JSON, the new records as a tarball) is written to $OUT.
#
#   bash benchmarks/gpu_study.sh                      # on a CUDA machine (OUT=/tmp/hypernb-gpu)
#   PROFILE=smoke bash benchmarks/gpu_study.sh        # the same steps at smoke size: checks the script on a CPU
#   STEPS=study bash benchmarks/gpu_study.sh          # only the study (STEPS: any of tests,bench,study)
#
# Each step has its own time limit, so one slow step cannot eat the session; a notebook that stops early
# leaves its finished runs (and a group checkpoint) behind, and rerunning resumes there.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/hypernb-gpu}
PROFILE=${PROFILE:-full}
STEPS=${STEPS:-tests,bench,study}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
has_cuda=$($PY -c "import torch; print(int(torch.cuda.is_available()))")
{ date -u +"%Y-%m-%dT%H:%M:%SZ"
  git rev-parse HEAD 2>/dev/null || true
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PY -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'python', sys.version.split()[0])"
} 2>&1 | tee "$OUT/env.txt"

step() { [[ ",$STEPS," == *",$1,"* ]]; }

if step tests && [ "$has_cuda" = 1 ]; then
  echo "== CUDA tests"; date
  timeout 180 $PY -m pytest -q -m cuda tests -p no:cacheprovider 2>&1 | tail -30 | tee "$OUT/cuda_tests.txt"
fi

if step bench; then
  echo "== benchmarks"; date
  if [ "$has_cuda" = 1 ]; then
    timeout 240 $PY benchmarks/throughput.py --device cuda --mlp-k 60 --resnet-k 9 --lstm-k 6 \
      --json "$OUT/throughput_cuda.json" 2>&1 | tee "$OUT/throughput_cuda.md"
    timeout 150 $PY benchmarks/step_overhead.py --device cuda --reps 3 --steps 100 --warmup 20 \
      --json "$OUT/step_overhead_cuda.json" 2>&1 | grep -v "^\[" | tee "$OUT/step_overhead_cuda.md"
  else
    timeout 240 $PY benchmarks/throughput.py --quick --json "$OUT/throughput_quick.json" 2>&1 | tail -8
  fi
fi

if step study; then
  echo "== the study's GPU-sized grids, profile $PROFILE"; date
  timings="$OUT/study_timing.tsv"
  printf "notebook\tseconds\texit\n" > "$timings"
  for nb in 02 03 06; do
    t0=$(date +%s)
    timeout "${NB_TIMEOUT:-600}" $PY -m hypernb notebooks --profile "$PROFILE" --only "$nb" --no-progress \
      2>&1 | tail -5
    rc=${PIPESTATUS[0]}
    printf "%s\t%s\t%s\n" "$nb" "$(( $(date +%s) - t0 ))" "$rc" | tee -a "$timings"
  done
  records=evidence/$PROFILE
  [ "$PROFILE" = smoke ] && records=outputs/smoke
  tar czf "$OUT/records_$PROFILE.tgz" $(ls -d "$records"/0[236]_* 2>/dev/null) 2>/dev/null \
    && echo "records: $OUT/records_$PROFILE.tgz (unpack at the repository root)"
fi
date
