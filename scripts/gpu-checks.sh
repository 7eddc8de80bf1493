#!/usr/bin/env bash
# Every GPU measurement of issue 23, in order, for one short lease of a GPU machine: each
# figure goes to $OUT/<name>.json (stderr beside it), so a run cut short keeps what it measured.
#
#   bash scripts/gpu-checks.sh            # on the GPU machine (writes $OUT, default ./gpu-figures)
#   bash scripts/gpu-checks.sh --smoke    # the same steps at toy sizes on a CPU: tests the script
#
# Needs only the checkout and the installed package: the data is the built-in demo data, made
# here (the device machine has no GTZAN). Each step has its own time limit (LIMIT, seconds).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)  # the tests are found from here, wherever this runs
OUT=${OUT:-gpu-figures}
mkdir -p "$OUT"
DEV=cuda SMOKE=0
if [ "${1:-}" = "--smoke" ]; then DEV=cpu SMOKE=1; fi
export CI=true GENRE_BENCH_CACHE="$OUT/cache" MLFLOW_TRACKING_URI="sqlite:///$(pwd)/$OUT/mlflow.db"
LIMIT=${LIMIT:-900}

step() {  # step NAME COMMAND...: its stdout is the figure
  local name=$1; shift
  echo "== $name: $*"
  local t0=$SECONDS
  timeout "$LIMIT" "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
  echo "   exit $? in $((SECONDS - t0)) s"
}
size() { if [ "$SMOKE" = 1 ]; then echo "$2"; else echo "$1"; fi; }

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
python -c "import torch, mlflow; print(torch.__version__, torch.version.cuda, mlflow.__version__)" > "$OUT/versions.txt"
[ -d "$OUT/demo" ] || benchmark synth --out "$OUT/demo" --tracks-per-genre "$(size 10 3)" --seconds "$(size 30 4)" > /dev/null

# 1. The projection of the default study sweep (3 seeds x random,track, all nets, six GANs), --jobs 1 and 4.
step study benchmark perf study --json --device $DEV --jobs "$(size 4 2)" --seconds "$(size 3 0.05)" \
  --grid "$(size study demo)" --seeds "$(size 3 1)" --splits "$(size random,track track)"
# 2. The WaveGAN at the paper's d 64, batch 64: steps/s in fp32 and bf16 (no host sync per step, fused Adam).
step gan benchmark perf gan --device $DEV --d "$(size 64 4)" --batch-size "$(size 64 4)" --steps "$(size 20 1)" \
  --no-paper-probe
# 4. net5 at batch 32 (launch-bound before), fp32 and bf16; net2 bf16 over fp32.
step train-net5-fp32 benchmark perf train --device $DEV --net net5 --batches "$(size 40 2)"
step train-net5-bf16 benchmark perf train --device $DEV --net net5 --batches "$(size 40 2)" --precision bf16
step precision-net2 benchmark perf precision --device $DEV --net net2 --batches "$(size 20 1)" --image-size "$(size 180 16)"
# 3. Points packed on one GPU: the fast grid with two GAN points, fresh caches, --jobs 1 then 4.
for jobs in 1 "$(size 4 2)"; do
  step "sweep-jobs$jobs" env GENRE_BENCH_CACHE="$OUT/cache-jobs$jobs" benchmark sweep --data-dir "$OUT/demo" \
    --grid "$(size fast demo)" --seeds 2 --splits track --device $DEV --jobs "$jobs" --no-register \
    --experiment "packing-jobs$jobs" --max-epochs "$(size 50 1)"
done
# 5. One real GAN point at study settings for 2,000 steps: its measured rate against the projection.
step gan-2000 benchmark gan --data-dir "$OUT/demo" --device $DEV --steps "$(size 2000 2)" --d "$(size 64 4)" \
  --batch-size "$(size 64 4)" --per-genre "$(size 100 3)" --log-every "$(size 100 1)" --quality-epochs 2 --no-log-model \
  --experiment gan-2000
# The CUDA tests (they skip on a CPU).
step cuda-tests python -m pytest -q -n 0 -p no:cacheprovider -k "cuda" "$ROOT/tests/test_throughput.py" \
  "$ROOT/tests/test_gan.py" "$ROOT/tests/test_sweep_runs.py"
echo "figures in $OUT"
