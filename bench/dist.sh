#!/usr/bin/env bash
# Data-parallel scaling: nabla (mpirun bench_dist) and PyTorch DDP (gloo)
# on 1 and 2 ranks, one thread each, the same fixed global batches,
# interleaved round by round. A benchmark, not a test (docs/performance.md,
# "Data-parallel"); run it with nothing else running.
#
#   bench/dist.sh [--rounds N] [--build DIR] [--out FILE]
#
# TORCH_PYTHON: a Python with torch (default: bench/run.sh's venv).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
ROUNDS=3 BUILD=$root/build-rel OUT=$(mktemp /tmp/nabla-dist-XXXX.jsonl)
while (($#)); do
    case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --build) BUILD=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) echo "bench/dist.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
py=${TORCH_PYTHON:-${NABLA_BENCH_VENVS:-$HOME/.cache/nabla-bench}/torch/bin/python}
[ -x "$py" ] || { echo "bench/dist.sh: no $py (bench/run.sh makes the venv)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
    OMPI_MCA_oob_tcp_if_include=lo OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
# model batch warmup reps n
configs=("seed 32 50 10 200" "seed 128 20 10 100" "wide 256 3 5 10")
: >"$OUT"
for ((r = 1; r <= ROUNDS; r++)); do
    for c in "${configs[@]}"; do
        read -r model batch warm reps n <<<"$c"
        for ranks in 1 2; do
            mpirun -np "$ranks" "$BUILD/bench/bench_dist" --model "$model" --batch "$batch" \
                --warmup "$warm" --reps "$reps" --n "$n" | sed "s/}$/, \"round\": $r}/" >>"$OUT"
            # A fresh port each time: gloo's last one may still be in TIME_WAIT.
            MASTER_PORT=$((20000 + RANDOM % 20000)) "$py" "$here/torch_ddp_bench.py" --model "$model" --batch "$batch" --ranks "$ranks" \
                --warmup "$warm" --reps "$reps" --n "$n" | sed "s/}$/, \"round\": $r}/" >>"$OUT"
        done
    done
done
echo "raw lines: $OUT"
/usr/bin/python3 - "$OUT" <<'PY'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda xs: st.median(xs) if xs else float("nan")
def get(impl, model, batch, ranks, key="per_unit"):
    return med([r[key] for r in rows if r["impl"] == impl and r["model"] == model
                and r["batch"] == batch and r["ranks"] == ranks])
print("| model, global batch | impl | 1 rank us/step | 2 ranks us/step | speed-up | efficiency "
      "| cpu/wall (2 ranks) | allreduce us/step | exposed us/step | overlap |")
print("|---|---|---|---|---|---|---|---|---|---|")
for model, batch in sorted({(r["model"], r["batch"]) for r in rows}, key=lambda t: (t[0] != "seed", t[1])):
    for impl in ("nabla", "pytorch"):
        t1, t2 = get(impl, model, batch, 1), get(impl, model, batch, 2)
        cw = med([r["cpu"] / r["wall"] for r in rows if r["impl"] == impl and r["model"] == model
                  and r["batch"] == batch and r["ranks"] == 2])
        extra = "| - | - | - |"
        if impl == "nabla":
            extra = "| %.0f | %.0f | %.2f |" % (get(impl, model, batch, 2, "comm_us"),
                                                get(impl, model, batch, 2, "exposed_us"),
                                                get(impl, model, batch, 2, "overlap"))
        print("| %s b%d | %s | %.0f | %.0f | %.2fx | %.2f | %.2f %s" % (
            model, batch, impl, t1, t2, t1 / t2, t1 / t2 / 2, cw, extra))
for model, batch in sorted({(r["model"], r["batch"]) for r in rows}):
    for ranks in (1, 2):
        print("%s b%d, %d rank%s: PyTorch / nabla %.2f" % (model, batch, ranks, "s" * (ranks > 1),
              get("pytorch", model, batch, ranks) / get("nabla", model, batch, ranks)))
PY
