"""What the peer benchmarks share (bench/torch_bench.py, bench/keras_bench.py).

No framework is imported here: the command line, the workload table, the
data, the clocks and the JSON lines, the same as the C programs print
(bench/bench.h):

  {"impl": "pytorch", "workload": "step_seed_b32", "threads": 1, "rep": 3,
   "n": 200, "wall": 0.0213, "cpu": 0.0212, "unit": "us/step",
   "per_unit": 106.5, ...}

A benchmark, not a test: see docs/performance.md.
"""
import argparse
import gzip
import json
import os
import sys
import time

DATA = "/usr/share/datasets/fashion-mnist"

# Every workload: what it is and its default counts (warm-up units, timed
# repetitions, units per repetition), the same as the C programs' defaults.
# bench/run.sh passes its own counts to every side alike.
WORKLOADS = {
    "step_seed_b32": dict(kind="step", model="seed", batch=32, warmup=50, reps=10, n=200),
    "step_seed_b128": dict(kind="step", model="seed", batch=128, warmup=50, reps=10, n=50),
    "step_seed_b1024": dict(kind="step", model="seed", batch=1024, warmup=50, reps=10, n=6),
    "step_wide_b256": dict(kind="step", model="wide", batch=256, warmup=5, reps=10, n=5),
    "chain1000": dict(kind="chain", ops=1000, warmup=5, reps=10, n=20),
    "epoch_b32": dict(kind="epoch", batch=32, warmup=1, reps=2, n=1),
    "predict_b32": dict(kind="predict", batch=32, warmup=2, reps=10, n=1),
    "predict_b10000": dict(kind="predict", batch=10000, warmup=2, reps=10, n=1),
    "adam_seed": dict(kind="adam", model="seed", warmup=50, reps=10, n=400),
    "adam_wide": dict(kind="adam", model="wide", warmup=3, reps=10, n=5),
    "step_cnn_b128": dict(kind="step", model="cnn", batch=128, warmup=5, reps=10, n=3),
    "epoch_cnn_b128": dict(kind="epoch", model="cnn", batch=128, warmup=1, reps=2, n=1),
}

HIDDEN = {"seed": (64, 32), "wide": (1024, 1024)}
UNITS = {"step": ("us/step", 1e6), "chain": ("us/op", 1e6), "epoch": ("s/epoch", 1.0),
         "predict": ("ms/pass", 1e3), "adam": ("us/step", 1e6)}


def step_flops(model, batch):
    """2*m*n*k of every matmul of a step: forward, kernel gradient, input
    gradient per layer, no input gradient for the first (bench/step.c); the
    convnet's convolutions as im2col products."""
    if model == "cnn":
        return 2.0 * batch * (26 * 26 * 32 * 9 * 2 + 11 * 11 * 64 * 288 * 3 + 1600 * 10 * 3)
    dims = (784,) + HIDDEN[model] + (10,)
    return sum(2.0 * batch * dims[i] * dims[i + 1] * (2 if i == 0 else 3) for i in range(3))


def parse(description, threads_env):
    """The command line: --workload NAME and the counts; the thread count is
    exported to threads_env (and OMP_NUM_THREADS) before any framework is
    imported, since their runtimes read it at start."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--workload", required=True, help=", ".join(WORKLOADS) + ", versions")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int)
    p.add_argument("--reps", type=int)
    p.add_argument("--n", type=int)
    p.add_argument("--quick", action="store_true", help="a short run that shows it works")
    p.add_argument("--data", default=DATA)
    a = p.parse_args()
    if a.workload != "versions" and a.workload not in WORKLOADS:
        p.error(f"unknown workload {a.workload!r}")
    w = dict(WORKLOADS.get(a.workload, {}))
    if a.quick and w:
        w["reps"] = 2
        w["n"] = max(1, w["n"] // 10)
        w["warmup"] = max(1, w["warmup"] // 10) if w["warmup"] else 0
        if w["kind"] == "epoch":
            w["reps"] = 1
    for k in ("warmup", "reps", "n"):
        if getattr(a, k) is not None:
            w[k] = getattr(a, k)
    for var in ("OMP_NUM_THREADS",) + tuple(threads_env):
        os.environ[var] = str(a.threads)
    return a, w


def load_fashion_mnist(root):
    """x (N, 784) float32 in [0, 1] and one-hot y (N, 10) float32, as numpy
    arrays: train and test."""
    import numpy as np

    def idx(name, header):
        with gzip.open(os.path.join(root, name), "rb") as f:
            return np.frombuffer(f.read(), dtype=np.uint8, offset=header)

    def images(name):
        return idx(name, 16).reshape(-1, 784).astype(np.float32) / np.float32(255.0)

    def one_hot(name):
        labels = idx(name, 8).astype(np.int64)
        y = np.zeros((labels.size, 10), dtype=np.float32)
        y[np.arange(labels.size), labels] = 1.0
        return y

    return (images("train-images-idx3-ubyte.gz"), one_hot("train-labels-idx1-ubyte.gz"),
            images("t10k-images-idx3-ubyte.gz"), one_hot("t10k-labels-idx1-ubyte.gz"))


class Clock:
    """Wall (perf_counter) and process CPU (process_time) seconds."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def since(self):
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def emit(impl, workload, threads, rep, n, t, w, **extra):
    """One JSON line: t = (wall, cpu) seconds of the repetition of n units."""
    unit, scale = UNITS[w["kind"]]
    line = {"impl": impl, "workload": workload, "threads": threads, "rep": rep, "n": n,
            "wall": round(t[0], 9), "cpu": round(t[1], 9), "unit": unit,
            "per_unit": round(t[0] / n * scale, 6)}
    line.update(extra)
    print(json.dumps(line), flush=True)


def timed_reps(impl, a, w, unit_fn, rep_extra=None, **extra):
    """Runs unit_fn() warmup times, then reps repetitions of n calls each,
    printing a line per repetition; rep_extra(t) (fields computed from the
    repetition's (wall, cpu) time) and unit_fn's last return value (a dict
    or None) join the line."""
    for _ in range(w["warmup"]):
        unit_fn()
    for r in range(1, w["reps"] + 1):
        c = Clock()
        info = None
        for _ in range(w["n"]):
            info = unit_fn()
        t = c.since()
        emit(impl, a.workload, a.threads, r, w["n"], t, w, warmup_units=w["warmup"],
             **extra, **(rep_extra(t) if rep_extra else {}), **(info or {}))


def fail(msg):
    print(msg, file=sys.stderr)
    return 1
