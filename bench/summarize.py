#!/usr/bin/env python3
"""The table of a bench/run.sh run (docs/performance.md explains it).

  python3 bench/summarize.py RESULTS.jsonl [--markdown]

Reads the JSON lines (bench/bench.h) and prints, per workload and thread
count, the median and range (min-max) of every implementation's samples in
the workload's unit, the ratios peer / nabla (> 1: nabla faster, or smaller
for RSS), the 2-thread / 1-thread ratio of every workload for every
implementation, and the sections for the wide MLP (GFLOP/s against raw
sgemm), the Adam step (nabla against a fused C loop) and the chain (forward
and backward per op).

Samples: one per timed repetition; warm-up repetitions ("warmup": true) and
warm-up rounds (round < 1) are left out. A sample whose process CPU time is
below 0.8 of its wall time (the process ran less than 80% of the time on
even one CPU: descheduled, another job on the cores) is counted in the
"flagged" column; it stays in the statistics, so check that column first.
"""
import json
import statistics as st
import sys
from collections import defaultdict

DESCHEDULED = 0.8
PEERS = ["pytorch", "keras"]
ORDER = ["step_seed_b32", "step_seed_b128", "step_seed_b1024", "gemm_seed_b1024",
         "step_wide_b256", "gemm_wide_b256", "chain1000", "epoch_b32", "predict_b32",
         "predict_b10000", "adam_seed", "adam_wide", "step_cnn_b128", "epoch_cnn_b128"]
IMPLS = ["nabla", "pytorch", "keras", "fused_c", "fused_c_undo", "openblas", "onednn"]


def fmt(v):
    if v is None:
        return "-"
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"


def rank(name, order):
    return (order.index(name), name) if name in order else (len(order), name)


class Table:
    def __init__(self, markdown):
        self.md = markdown

    def show(self, head, rows):
        if self.md:
            print("| " + " | ".join(head) + " |")
            print("|" + "|".join("---" for _ in head) + "|")
            for r in rows:
                print("| " + " | ".join(r) + " |")
        else:
            w = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
            line = lambda r: "  ".join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i])
                                       for i, c in enumerate(r))
            print(line(head))
            print("-" * len(line(head)))
            for r in rows:
                print(line(r))
        print()


def main(path, markdown=False):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    meta = [x for x in rows if "kind" in x or "versions" in x]
    errors = [x for x in rows if "error" in x]
    samples = [x for x in rows if "per_unit" in x and "error" not in x and not x.get("warmup")
               and x.get("round", 1) >= 1]
    tab = Table(markdown)
    for m in meta:
        if m.get("kind") == "machine":
            print(f"machine: {m['cpu']}, {m['nproc']} CPUs, kernel {m['kernel']}, load before "
                  f"{m['load_before']}; OpenBLAS {m['blas_core']} "
                  f"(OPENBLAS_CORETYPE={m['OPENBLAS_CORETYPE']}), nabla GEMM {m['gemm_backend']}, "
                  f"nabla {m['nabla_commit']} {m['buildtype']}; rounds {m['rounds']} after "
                  f"{m['warmup_rounds']} warm-up{' (QUICK: not a measurement)' if m['quick'] else ''}")
        elif "versions" in m:
            print(f"{m['impl']}: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
        elif m.get("kind") == "machine_after":
            print(f"load after: {m['load_after']}")
    print()

    g = defaultdict(list)
    for x in samples:
        g[(x["workload"], x["impl"], x["threads"])].append(x)
    med = lambda k: st.median(x["per_unit"] for x in g[k]) if g.get(k) else None
    cpu_per = lambda x: x["cpu"] / x["n"] * (x["per_unit"] / (x["wall"] / x["n"])) \
        if x["wall"] else 0.0
    cmed = lambda k: st.median(cpu_per(x) for x in g[k]) if g.get(k) else None
    workloads = sorted({k[0] for k in g if k[0] != "gemm_shape"}, key=lambda w: rank(w, ORDER))
    threads = sorted({k[2] for k in g})
    impls = sorted({k[1] for k in g}, key=lambda i: rank(i, IMPLS))

    print("== medians [min-max] per workload; ratio = peer / nabla (> 1: nabla faster, or "
          "smaller for RSS), on wall time (cpu time in brackets)")
    main_impls = [i for i in impls if i in ["nabla"] + PEERS]
    head = ["workload", "thr", "unit"] + main_impls + \
        [f"{p}/nabla" for p in PEERS if p in impls] + ["flagged"]
    out = []
    for w in workloads:
        for t in threads:
            ks = [(w, i, t) for i in main_impls]
            if not any(g.get(k) for k in ks):
                continue
            unit = next(g[k][0]["unit"] for k in ks if g.get(k))
            cells = []
            for k in ks:
                v = [x["per_unit"] for x in g.get(k, [])]
                cells.append(f"{fmt(st.median(v))} [{fmt(min(v))}-{fmt(max(v))}]" if v else "-")
            ratios = []
            for p in PEERS:
                if p not in impls:
                    continue
                n, q = med((w, "nabla", t)), med((w, p, t))
                if n and q:
                    c = "" if unit == "MiB" else f" ({cmed((w, p, t)) / cmed((w, 'nabla', t)):.2f})"
                    ratios.append(f"{q / n:.2f}{c}")
                else:
                    ratios.append("-")
            flagged = [f"{i}:{sum(x['cpu'] < DESCHEDULED * x['wall'] for x in g[k])}/{len(g[k])}"
                       for i, k in zip(main_impls, ks) if g.get(k)
                       and any(x["cpu"] < DESCHEDULED * x["wall"] for x in g[k])]
            out.append([w, str(t), unit] + cells + ratios + [" ".join(flagged) or "0"])
    tab.show(head, out)

    if len(threads) > 1:
        t1, t2 = threads[0], threads[-1]
        print(f"== {t2}-thread / {t1}-thread ratio of the medians (< 1: faster with {t2} threads)")
        out = []
        for w in workloads:
            r = []
            for i in impls:
                a, b = med((w, i, t1)), med((w, i, t2))
                r.append(f"{b / a:.2f}" if a and b else "-")
            if any(c != "-" for c in r):
                out.append([w] + r)
        tab.show(["workload"] + impls, out)

    gf = lambda k: st.median(x["gflops"] for x in g[k]) if g.get(k) else None
    out = []
    for t in threads:
        step = {i: gf(("step_wide_b256", i, t)) for i in ("nabla", "pytorch", "keras")}
        gemm = {i: gf(("gemm_wide_b256", i, t)) for i in ("openblas", "onednn")}
        if not any(step.values()) and not any(gemm.values()):
            continue
        frac = step["nabla"] / gemm["openblas"] if step["nabla"] and gemm["openblas"] else None
        out.append([str(t)] + [fmt(v) for v in list(step.values()) + list(gemm.values())] +
                   [f"{frac:.2f}" if frac else "-"])
    if out:
        print("== wide MLP 784-1024-1024-10, batch 256: GFLOP/s (2*m*n*k of the 8 matmuls of a "
              "step, 2.448 GFLOP, over the whole step's time) and raw sgemm on the same shapes")
        tab.show(["thr", "nabla step", "pytorch step", "keras step", "openblas sgemm",
                  "onednn sgemm", "nabla/openblas"], out)
        out = []
        shapes = defaultdict(list)
        for x in samples:
            if x["workload"] == "gemm_shape":
                shapes[(x["shape"], x["impl"], x["threads"])].append(x["gflops"])
        for s in dict.fromkeys(k[0] for k in shapes):
            for t in threads:
                r = [fmt(st.median(shapes[(s, i, t)])) if shapes.get((s, i, t)) else "-"
                     for i in ("openblas", "onednn")]
                out.append([s, str(t)] + r)
        if out:
            print("== raw sgemm per product (row-major, M x N x K), GFLOP/s")
            tab.show(["product", "thr", "openblas", "onednn"], out)

    out = []
    for t in threads:
        step = med(("step_seed_b1024", "nabla", t))
        sets = {i: med(("gemm_seed_b1024", i, t)) for i in ("openblas", "onednn")}
        if step and any(sets.values()):
            best = min(v for v in sets.values() if v) * 1e3  # ms/set -> us
            out.append([str(t), fmt(step)] + [fmt(v * 1e3) if v else "-" for v in sets.values()] +
                       [f"{best / step:.2f}"] +
                       [f"{med(('step_seed_b1024', p, t)) / best:.2f}"
                        if med(("step_seed_b1024", p, t)) else "-" for p in PEERS])
    if out:
        print("== seed model at batch 1024: the step against raw sgemm of its 8 products "
              "(us); a peer's step over the raw products bounds its ratio to nabla")
        tab.show(["thr", "nabla step", "openblas set", "onednn set", "set/step",
                  "pytorch/set", "keras/set"], out)

    out = []
    for w in ("adam_seed", "adam_wide"):
        for t in threads:
            k = (w, "nabla", t)
            if not g.get(k):
                continue
            ratio = st.median(x["ratio_vs_fused"] for x in g[k])
            undo = [x["ratio_vs_undo"] for x in g[k] if "ratio_vs_undo" in x]
            out.append([w, str(t), str(g[k][0].get("params", "?"))] +
                       [fmt(med((w, i, t))) if g.get((w, i, t)) else "-"
                        for i in ("nabla", "fused_c", "fused_c_undo", "pytorch", "keras")] +
                       [f"{ratio:.2f}", f"{st.median(undo):.2f}" if undo else "-"])
    if out:
        print("== the Adam step alone, us/step: nabla's nb_optimizer_step, a fused C loop over "
              "the same buffers, and that loop keeping what nabla keeps to undo a non-finite "
              "step, in the same process (ratios: medians of the per-repetition ratios)")
        tab.show(["workload", "thr", "params", "nabla", "fused C", "fused C+undo", "pytorch",
                  "keras", "nabla/fused", "nabla/undo"], out)

    out = []
    for t in threads:
        for i in impls:
            k = ("chain1000", i, t)
            if g.get(k):
                out.append([i, str(t), fmt(med(k)), fmt(st.median(x["fwd_us_per_op"] for x in g[k])),
                            fmt(st.median(x["bwd_us_per_op"] for x in g[k]))])
    if out:
        print("== chain of 1000 ops (mul, add, tanh, ... on a 1-element tensor): us per op")
        tab.show(["impl", "thr", "fwd+bwd", "fwd", "bwd"], out)

    acc = defaultdict(list)
    for x in samples:
        if "test_acc" in x and x["workload"].startswith("epoch"):
            acc[(x["impl"], x["threads"])].append(x["test_acc"])
    if acc:
        print("test accuracy after the epoch runs (a check that each side trains): " +
              "; ".join(f"{i} t={t}: " + ", ".join(f"{a:.4f}" for a in v)
                        for (i, t), v in sorted(acc.items())))
    for x in errors:
        print(f"FAILED: {x.get('workload')} {x.get('impl')} threads {x.get('threads')} round "
              f"{x.get('round')}: {x['error']}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], "--markdown" in sys.argv[2:]))
