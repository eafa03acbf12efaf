#!/usr/bin/env bash
# nabla vs PyTorch: seconds per training epoch of the same MLP on Fashion-MNIST,
# one CPU thread each, run alternately on this machine. A benchmark, not a test.
#
#   bench/run.sh [ROUNDS=3] [EPOCHS=3]
#
# Environment:
#   BENCH_MLP   the nabla binary (default: build/bench_mlp, else build-bench/bench_mlp)
#   PYTHON      a Python with torch and numpy (default: /work/torchvenv/bin/python if
#               it exists, else python3)
#   OUT         where the raw JSON lines go (default: a temporary file, path printed)
#
# Each round runs nabla for EPOCHS epochs, then PyTorch for EPOCHS epochs, each in a
# fresh process. Both get OMP_NUM_THREADS=1 and OPENBLAS_NUM_THREADS=1 (and set one
# thread themselves). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left as they are and
# only recorded.
set -euo pipefail

ROUNDS=${1:-3}
EPOCHS=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

if [[ -z "${BENCH_MLP:-}" ]]; then
    for c in "$root/build/bench_mlp" "$root/build-bench/bench_mlp"; do
        if [[ -x "$c" ]]; then BENCH_MLP=$c; break; fi
    done
fi
if [[ -z "${BENCH_MLP:-}" || ! -x "$BENCH_MLP" ]]; then
    echo "run.sh: no bench_mlp binary; build it (ninja -C build) or set BENCH_MLP" >&2
    exit 2
fi
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x /work/torchvenv/bin/python ]]; then PYTHON=/work/torchvenv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
    echo "run.sh: $PYTHON cannot import torch and numpy (set PYTHON)" >&2
    exit 2
fi
OUT=${OUT:-$(mktemp /tmp/nabla-bench.XXXXXX.jsonl)}
: >"$OUT"

ncpu=$(nproc) # before the export: GNU nproc honours OMP_NUM_THREADS
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

echo "== machine"
echo "date:        $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "nproc:       $ncpu"
echo "cpu:         $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) (before)"
echo "torch:       $("$PYTHON" -c 'import torch; print(torch.__version__, "mkldnn" if torch.backends.mkldnn.is_available() else "")')"
echo "nabla:       $BENCH_MLP ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "env:         OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-<unset>} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-<unset>}" \
     "OMP_NUM_THREADS=$OMP_NUM_THREADS OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
echo "rounds:      $ROUNDS x (nabla $EPOCHS epochs, pytorch $EPOCHS epochs)"
echo "raw JSON:    $OUT"
echo

for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r/$ROUNDS"
    "$BENCH_MLP" --epochs "$EPOCHS" --threads 1 | sed "s/^{/{\"round\": $r, /" | tee -a "$OUT"
    "$PYTHON" "$here/pytorch_mlp.py" --epochs "$EPOCHS" --threads 1 \
        | sed "s/^{/{\"round\": $r, /" | tee -a "$OUT"
done
echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) (after)"
echo

python3 "$here/summarize.py" "$OUT"
