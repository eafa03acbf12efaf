#!/usr/bin/env python3
"""Summarises the JSON lines of bench/run.sh (nabla vs PyTorch epoch times).

  python3 bench/summarize.py RESULTS.jsonl

Warm-up rule: every run's first epoch is dropped from median/min/max when the
median of first epochs is more than 10% above the median of the later epochs.
"""
import json
import statistics
import sys

STEPS = 1875  # 60000 / 32


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    med = statistics.median
    summary = {}
    print(f"== seconds per training epoch (60000 images, batch 32, {STEPS} steps)")
    print("wall = wall-clock seconds; cpu = process CPU seconds of the same span.")
    print("Warm-up rule: every run's first epoch is dropped from median/min/max when the")
    print("median of first epochs is more than 10% above that of later epochs ('dropped').")
    print()
    hdr = (f"{'impl':<8} {'median':>7} {'min':>7} {'max':>7} {'cpu med':>8} {'all med':>8} "
           f"{'ep1 med':>8} {'us/step':>8} {'warm-up':>8} {'test_acc':>9}")
    print(hdr)
    print("-" * len(hdr))
    for impl in ["nabla", "pytorch"]:
        r = [x for x in rows if x["impl"] == impl]
        if not r:
            continue
        first = [x["seconds"] for x in r if x["epoch"] == 1]
        later = [x for x in r if x["epoch"] > 1]
        drop = bool(later) and med(first) > 1.10 * med([x["seconds"] for x in later])
        used = later if drop else r
        wall = [x["seconds"] for x in used]
        cpu = [x["cpu_seconds"] for x in used]
        last_epoch = max(x["epoch"] for x in r)
        accs = [x["test_acc"] for x in r if x["epoch"] == last_epoch]
        summary[impl] = (med(wall), med(cpu))
        print(f"{impl:<8} {med(wall):7.3f} {min(wall):7.3f} {max(wall):7.3f} {med(cpu):8.3f} "
              f"{med([x['seconds'] for x in r]):8.3f} {med(first):8.3f} "
              f"{1e6 * med(wall) / STEPS:8.0f} {'dropped' if drop else 'kept':>8} "
              f"{med(accs):9.4f}")
        print(f"{'':<8} test_acc after epoch {last_epoch}, per round: "
              + ", ".join(f"{a:.4f}" for a in accs))
        by_epoch = ", ".join(
            f"{e}: {med([x['seconds'] for x in r if x['epoch'] == e]):.2f}"
            f"/{med([x['cpu_seconds'] for x in r if x['epoch'] == e]):.2f}"
            for e in range(1, last_epoch + 1))
        print(f"{'':<8} median by epoch (wall/cpu s): {by_epoch}")
        cores = sorted({x["blas_core"] for x in r if "blas_core" in x})
        if cores:
            print(f"{'':<8} OpenBLAS kernel (openblas_get_corename): {', '.join(cores)}")
    if len(summary) == 2:
        rw = summary["pytorch"][0] / summary["nabla"][0]
        rc = summary["pytorch"][1] / summary["nabla"][1]
        print()
        print(f"ratio pytorch/nabla: median wall seconds {rw:.2f}, median cpu seconds {rc:.2f}"
              "  (> 1: nabla faster, < 1: nabla slower)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
