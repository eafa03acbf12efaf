#!/usr/bin/env bash
# Two builds of nabla side by side: the seed model's seconds per epoch with
# each build's epoch program, alternately in fresh processes (the order flips
# every round), pinned to one CPU, one thread. A benchmark, not a test; the
# suite against PyTorch and Keras is bench/run.sh (docs/performance.md).
#
#   bench/ab.sh ROUNDS EPOCHS OLD_BENCH NEW_BENCH [OUT]
#
# OLD_BENCH and NEW_BENCH are build/bench/bench_epoch, or the bench_mlp of a
# build before it (both take --epochs E --threads 1). Wall seconds are nb_fit's
# own history->seconds (bench_mlp's "seconds", bench_epoch's "fit_seconds"),
# CPU seconds the whole nb_fit call ("cpu_seconds", "cpu").
#
# Prints the medians of wall and CPU seconds per epoch for each build and
# the ratio new/old, overall and as the median of the per-round ratios.
set -euo pipefail
R=$1 E=$2 OLD=$3 NEW=$4 OUT=${5:-$(mktemp /tmp/nabla-ab.XXXXXX.jsonl)}
: >"$OUT"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
cpu=$(( $(nproc) - 1 ))
for r in $(seq 1 "$R"); do
    if (( r % 2 )); then order="old new"; else order="new old"; fi
    for w in $order; do
        bin=$OLD
        [[ $w == new ]] && bin=$NEW
        taskset -c "$cpu" "$bin" --epochs "$E" --threads 1 | sed "s/^{/{\"build\": \"$w\", \"round\": $r, /" >>"$OUT"
    done
done
echo "raw JSON: $OUT"
/usr/bin/python3 - "$OUT" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in rows if not r.get("warmup")]
for r in rows:  # bench_mlp's keys; bench_epoch's for the same spans
    r.setdefault("seconds", r.get("fit_seconds"))
    r.setdefault("cpu_seconds", r.get("cpu"))
med = lambda b, k: st.median([r[k] for r in rows if r["build"] == b])
for b in ("old", "new"):
    print(f"{b}: {sum(r['build'] == b for r in rows)} epochs, median {med(b, 'seconds'):.4f} s "
          f"wall, {med(b, 'cpu_seconds'):.4f} s cpu, last test_acc "
          f"{[r for r in rows if r['build'] == b][-1]['test_acc']:.4f}")
per = []
for r in sorted({x["round"] for x in rows}):
    m = {b: st.median([x["seconds"] for x in rows if x["round"] == r and x["build"] == b])
         for b in ("old", "new")}
    per.append(m["new"] / m["old"])
print(f"ratio new/old: wall {med('new', 'seconds') / med('old', 'seconds'):.3f}, cpu "
      f"{med('new', 'cpu_seconds') / med('old', 'cpu_seconds'):.3f}; median of the per-round "
      f"ratios {st.median(per):.3f}")
PY
