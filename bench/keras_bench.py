#!/usr/bin/env python3
"""TensorFlow-Keras (CPU) side of the nabla benchmark suite (a benchmark,
not a test; docs/performance.md). The same workloads, model, optimizer,
batches and JSON lines as the C programs (bench/bench.h):

  python bench/keras_bench.py --workload step_seed_b32 [--threads 1]
      [--warmup N] [--reps N] [--n N] [--quick]
  python bench/keras_bench.py --workload versions

Idiomatic Keras 3 on the TensorFlow backend: Sequential Dense layers
784-64-32-10 ("seed") or 784-1024-1024-10 ("wide"), relu, relu, softmax,
or the MNIST convnet of keras.io ("cnn", after a Reshape to 28x28x1), with
the default Glorot-uniform kernels and zero biases;
Adam(1e-3, 0.9, 0.999, 1e-7) (Keras's defaults); categorical_crossentropy.
Steps are model.train_on_batch (compiled without metrics), the epoch is
model.fit(epochs=1, batch_size=B, verbose=0) with metrics=["accuracy"],
predict is model.predict(batch_size=B, verbose=0). compile's jit_compile
is left at "auto" (which Keras turns off on a CPU-only machine; the lines
record it). The chain runs eagerly under tf.GradientTape. Threads:
tf.config.threading intra- and inter-op n, and OMP_NUM_THREADS,
TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS = n before TensorFlow
starts.
"""
import os
import sys

import benchlib

a, w = benchlib.parse(__doc__.splitlines()[0], ("TF_NUM_INTRAOP_THREADS",
                                                 "TF_NUM_INTEROP_THREADS"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(a.threads)
tf.config.threading.set_inter_op_parallelism_threads(a.threads)

import keras  # noqa: E402

IMPL = "keras"
VERSION = f"tf {tf.__version__} keras {keras.__version__}"


def versions():
    mkl = None
    try:  # an internal module: whether this build uses oneDNN (formerly MKL-DNN)
        from tensorflow.python.util import _pywrap_util_port
        mkl = bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # noqa: BLE001 - only a record
        pass
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "onednn_build": mkl,
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "<unset: on>"),
            "backend": keras.backend.backend(), "python": sys.version.split()[0]}


def make_model(name, metrics=None):
    L = keras.layers
    if name == "cnn":
        model = keras.Sequential([
            keras.Input((784,)), L.Reshape((28, 28, 1)),
            L.Conv2D(32, kernel_size=(3, 3), activation="relu"), L.MaxPooling2D(pool_size=(2, 2)),
            L.Conv2D(64, kernel_size=(3, 3), activation="relu"), L.MaxPooling2D(pool_size=(2, 2)),
            L.Flatten(), L.Dropout(0.5), L.Dense(10, activation="softmax")])
    else:
        h1, h2 = benchlib.HIDDEN[name]
        model = keras.Sequential([
            keras.Input((784,)),
            L.Dense(h1, activation="relu"),
            L.Dense(h2, activation="relu"),
            L.Dense(10, activation="softmax")])
    opt = keras.optimizers.Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    model.compile(optimizer=opt, loss="categorical_crossentropy", metrics=metrics)
    return model


def data():
    return benchlib.load_fashion_mnist(a.data)


def run_step():
    x_train, y_train, _, _ = data()
    x, y = x_train[:w["batch"]].copy(), y_train[:w["batch"]].copy()
    model = make_model(w["model"])
    flops = benchlib.step_flops(w["model"], w["batch"])

    def step():
        return {"loss": float(model.train_on_batch(x, y))}

    benchlib.timed_reps(IMPL, a, w, step,
                        rep_extra=lambda t: {"gflops": round(flops * w["n"] / t[0] * 1e-9, 4)},
                        model=w["model"], batch=w["batch"], flops_per_step=flops,
                        jit_compile=bool(model.jit_compile), version=VERSION)


def run_chain():
    ops = w["ops"]
    x0 = tf.Variable([0.5], dtype=tf.float32)
    ca, cb = tf.constant([1.0001]), tf.constant([0.0001])
    acc = {"fwd": 0.0, "bwd": 0.0}

    def chain():
        c = benchlib.Clock()
        with tf.GradientTape() as tape:
            x = x0
            for k in range(ops):
                m = k % 3
                x = tf.multiply(x, ca) if m == 0 else (tf.add(x, cb) if m == 1 else tf.tanh(x))
        f = c.since()[0]
        g = tape.gradient(x, x0)
        acc["fwd"] += f
        acc["bwd"] += c.since()[0] - f
        return {"y": float(x.numpy()[0]), "dy_dx": float(g.numpy()[0])}

    for _ in range(w["warmup"]):
        chain()
    for r in range(1, w["reps"] + 1):
        acc["fwd"] = acc["bwd"] = 0.0
        c = benchlib.Clock()
        for _ in range(w["n"]):
            info = chain()
        t = c.since()
        per = 1e6 / (w["n"] * ops)
        benchlib.emit(IMPL, a.workload, a.threads, r, w["n"] * ops, t, w, ops=ops,
                      fwd_us_per_op=round(acc["fwd"] * per, 4),
                      bwd_us_per_op=round(acc["bwd"] * per, 4), warmup_units=w["warmup"],
                      version=VERSION, **info)


def run_epoch():
    x_train, y_train, x_test, y_test = data()
    model = make_model(w.get("model", "seed"), metrics=["accuracy"])
    total = w["warmup"] + w["reps"]
    for e in range(1, total + 1):
        c = benchlib.Clock()
        h = model.fit(x_train, y_train, epochs=1, batch_size=w["batch"], shuffle=True, verbose=0)
        t = c.since()
        extra = {"epoch": e, "batch": w["batch"], "loss": round(h.history["loss"][0], 5),
                 "train_acc": round(h.history["accuracy"][0], 5)}
        if e <= w["warmup"]:
            extra["warmup"] = True
        if e == total:
            extra["test_acc"] = round(float(model.evaluate(x_test, y_test, batch_size=32,
                                                           verbose=0)[1]), 5)
        benchlib.emit(IMPL, a.workload, a.threads, e - w["warmup"], 1, t, w,
                      jit_compile=bool(model.jit_compile), version=VERSION, **extra)


def run_predict():
    _, _, x_test, _ = data()
    model = make_model("seed")
    bs = w["batch"]

    def predict():
        out = model.predict(x_test, batch_size=bs, verbose=0)
        return {"out00": round(float(out[0, 0]), 6)}

    benchlib.timed_reps(IMPL, a, w, predict, batch=bs, images=int(x_test.shape[0]),
                        version=VERSION)


def run_adam():
    x_train, y_train, _, _ = data()
    model = make_model(w["model"])
    variables = model.trainable_variables
    with tf.GradientTape() as tape:  # the fixed gradients
        loss = keras.losses.CategoricalCrossentropy()(y_train[:32], model(x_train[:32]))
    grads = tape.gradient(loss, variables)
    opt = model.optimizer
    opt.build(variables)

    @tf.function  # as train_on_batch and fit run the update: inside a graph
    def apply():
        opt.apply(grads, variables)

    benchlib.timed_reps(IMPL, a, w, apply, model=w["model"],
                        params=int(sum(np.prod(v.shape) for v in variables)),
                        tensors=len(variables), version=VERSION)


def main():
    if a.workload == "versions":
        import json
        print(json.dumps({"impl": IMPL, "versions": versions()}))
        return 0
    keras.utils.set_random_seed(0)
    {"step": run_step, "chain": run_chain, "epoch": run_epoch, "predict": run_predict,
     "adam": run_adam}[w["kind"]]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
