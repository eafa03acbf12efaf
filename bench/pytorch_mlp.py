#!/usr/bin/env python3
"""PyTorch side of the nabla speed benchmark (a benchmark, not a test).

Trains the seed model of examples/fashion_mnist.c on Fashion-MNIST with
PyTorch on one CPU thread and prints one JSON line per epoch:

  {"impl": "pytorch", "epoch": k, "seconds": ..., "loss": ..., "test_acc": ...}

"seconds" is the wall time of the epoch's training loop only (shuffle,
batching, forward, backward, optimizer step, running loss/accuracy), the
same span nabla's nb_fit reports in history->seconds; the test-set
evaluation after each epoch is not timed. "cpu_seconds" is the process CPU
time of the same span (robust when other jobs share the cores).

Model, as Keras builds it: Dense(64, relu) -> Dense(32, relu) -> Dense(10),
Glorot-uniform weights and zero biases, Adam(lr 1e-3, betas (0.9, 0.999),
eps 1e-7), softmax cross-entropy computed from the logits, batch 32,
reshuffled every epoch.

  OMP_NUM_THREADS=1 python3 bench/pytorch_mlp.py [--epochs 3] [--threads 1]
"""
import argparse
import gzip
import json
import os
import sys
import time

# Must be set before torch is imported for the OpenMP runtime to take it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402


def read_idx(path, header):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def load_fashion_mnist(root):
    def images(name):
        a = read_idx(os.path.join(root, name), 16).reshape(-1, 784)
        return torch.from_numpy(a.astype(np.float32) / 255.0)

    def one_hot(name):
        labels = read_idx(os.path.join(root, name), 8).astype(np.int64)
        y = np.zeros((labels.size, 10), dtype=np.float32)
        y[np.arange(labels.size), labels] = 1.0
        return torch.from_numpy(y)

    return (images("train-images-idx3-ubyte.gz"), one_hot("train-labels-idx1-ubyte.gz"),
            images("t10k-images-idx3-ubyte.gz"), one_hot("t10k-labels-idx1-ubyte.gz"))


def make_model():
    model = nn.Sequential(
        nn.Linear(784, 64), nn.ReLU(),
        nn.Linear(64, 32), nn.ReLU(),
        nn.Linear(32, 10))
    for layer in model:
        if isinstance(layer, nn.Linear):  # Keras defaults: glorot_uniform, zeros
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


@torch.no_grad()
def test_accuracy(model, x, y, batch_size=32):
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        logits = model(x[i:i + batch_size])
        correct += (logits.argmax(1) == y[i:i + batch_size].argmax(1)).sum().item()
    model.train()
    return correct / x.shape[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x_train, y_train, x_test, y_test = load_fashion_mnist(a.data)
    n = x_train.shape[0]

    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)

    for epoch in range(1, a.epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(n)
        loss_sum = torch.zeros(())
        correct = torch.zeros((), dtype=torch.int64)
        for i in range(0, n, a.batch_size):
            idx = perm[i:i + a.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)  # one-hot targets as class probabilities
            opt.zero_grad()
            loss.backward()
            opt.step()
            # Running loss and accuracy, as Keras (and nb_fit) keep them.
            with torch.no_grad():
                loss_sum += loss.detach() * xb.shape[0]
                correct += (logits.argmax(1) == yb.argmax(1)).sum()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        acc = test_accuracy(model, x_test, y_test)
        print(json.dumps({"impl": "pytorch", "epoch": epoch, "seconds": round(seconds, 4),
                          "cpu_seconds": round(cpu, 4),
                          "loss": round(loss_sum.item() / n, 5),
                          "train_acc": round(correct.item() / n, 5),
                          "test_acc": round(acc, 5)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
