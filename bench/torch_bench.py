#!/usr/bin/env python3
"""PyTorch (CPU) side of the nabla benchmark suite (a benchmark, not a test;
docs/performance.md). The same workloads, model, optimizer, batches and
JSON lines as the C programs (bench/bench.h):

  python bench/torch_bench.py --workload step_seed_b32 [--threads 1]
      [--warmup N] [--reps N] [--n N] [--quick]
  python bench/torch_bench.py --workload versions

Plain PyTorch: no torch.compile, no DataLoader. Models: Linear/ReLU stacks
784-64-32-10 ("seed") and 784-1024-1024-10 ("wide"), and the Keras MNIST
convnet ("cnn": Unflatten to 1x28x28, Conv2d 32 3x3, ReLU, MaxPool2d 2,
Conv2d 64 3x3, ReLU, MaxPool2d 2, Flatten, Dropout 0.5, Linear 1600-10, in
train() mode), Glorot-uniform weights (xavier_uniform_) and zero biases
(Keras's defaults); Adam(lr 1e-3, betas
(0.9, 0.999), eps 1e-7), default implementation; cross-entropy from the
logits (F.cross_entropy with one-hot targets), which is what nabla and
Keras compute for a softmax output. torch.set_num_threads(n) and
torch.set_num_interop_threads(n). Subnormals are flushed
(torch.set_flush_denormal(True)), as nabla's nb_fit and TensorFlow do.
"""
import sys

import benchlib

a, w = benchlib.parse(__doc__.splitlines()[0], ("MKL_NUM_THREADS",))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

IMPL = "pytorch"


def versions():
    import re
    cfg = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", cfg)
    dnnl = re.search(r"(?:MKL-DNN|oneDNN)[^\n]*?v([\d.]+)", cfg)
    return {"torch": torch.__version__, "numpy": np.__version__,
            "mkl": mkl.group(1) if mkl else None, "onednn": dnnl.group(1) if dnnl else None,
            "mkldnn_enabled": torch.backends.mkldnn.is_available(),
            "python": sys.version.split()[0]}


def make_model(name):
    if name == "cnn":
        model = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 32, 3), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Dropout(0.5), nn.Linear(1600, 10))
    else:
        h1, h2 = benchlib.HIDDEN[name]
        model = nn.Sequential(nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(),
                              nn.Linear(h2, 10))
    for layer in model:
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


def adam(model):
    return torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)


def data():
    return [torch.from_numpy(t) for t in benchlib.load_fashion_mnist(a.data)]


def run_step():
    x_train, y_train, _, _ = data()
    x, y = x_train[:w["batch"]].clone(), y_train[:w["batch"]].clone()
    model = make_model(w["model"])
    opt = adam(model)
    flops = benchlib.step_flops(w["model"], w["batch"])

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    benchlib.timed_reps(IMPL, a, w, step,
                        rep_extra=lambda t: {"gflops": round(flops * w["n"] / t[0] * 1e-9, 4)},
                        model=w["model"], batch=w["batch"], flops_per_step=flops,
                        version=torch.__version__)


def run_chain():
    ops = w["ops"]
    x0 = torch.tensor([0.5], requires_grad=True)
    ca, cb = torch.tensor([1.0001]), torch.tensor([0.0001])
    acc = {"fwd": 0.0, "bwd": 0.0}

    def chain():
        c = benchlib.Clock()
        x0.grad = None
        x = x0
        for k in range(ops):
            m = k % 3
            x = x * ca if m == 0 else (x + cb if m == 1 else torch.tanh(x))
        f = c.since()[0]
        x.backward()
        acc["fwd"] += f
        acc["bwd"] += c.since()[0] - f
        return {"y": x.item(), "dy_dx": x0.grad.item()}

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
                      version=torch.__version__, **info)


def run_epoch():
    x_train, y_train, x_test, y_test = data()
    n, bs = x_train.shape[0], w["batch"]
    model = make_model(w.get("model", "seed"))
    opt = adam(model)
    total = w["warmup"] + w["reps"]
    for e in range(1, total + 1):
        c = benchlib.Clock()
        perm = torch.randperm(n)
        loss_sum = torch.zeros(())
        correct = torch.zeros((), dtype=torch.int64)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            xb, yb = x_train[idx], y_train[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():  # the running loss and accuracy, as Keras and nb_fit keep them
                loss_sum += loss.detach() * xb.shape[0]
                correct += (logits.argmax(1) == yb.argmax(1)).sum()
        loss_v, acc_v = loss_sum.item() / n, correct.item() / n
        t = c.since()
        extra = {"epoch": e, "batch": bs, "loss": round(loss_v, 5), "train_acc": round(acc_v, 5)}
        if e <= w["warmup"]:
            extra["warmup"] = True
        if e == total:
            model.eval()
            with torch.inference_mode():
                pred = torch.cat([model(x_test[i:i + 32]) for i in range(0, x_test.shape[0], 32)])
                extra["test_acc"] = round((pred.argmax(1) == y_test.argmax(1)).double()
                                          .mean().item(), 5)
        benchlib.emit(IMPL, a.workload, a.threads, e - w["warmup"], 1, t, w,
                      version=torch.__version__, **extra)


def run_predict():
    _, _, x_test, _ = data()
    model = make_model("seed").eval()
    bs = w["batch"]

    def predict():
        with torch.inference_mode():
            out = torch.cat([torch.softmax(model(x_test[i:i + bs]), dim=1)
                             for i in range(0, x_test.shape[0], bs)])
        return {"out00": round(out[0, 0].item(), 6)}

    benchlib.timed_reps(IMPL, a, w, predict, batch=bs, images=int(x_test.shape[0]),
                        version=torch.__version__)


def run_adam():
    x_train, y_train, _, _ = data()
    model = make_model(w["model"])
    F.cross_entropy(model(x_train[:32]), y_train[:32]).backward()  # the fixed gradients
    opt = adam(model)
    params = list(model.parameters())
    benchlib.timed_reps(IMPL, a, w, opt.step, model=w["model"],
                        params=sum(p.numel() for p in params), tensors=len(params),
                        version=torch.__version__)


def main():
    if a.workload == "versions":
        import json
        print(json.dumps({"impl": IMPL, "versions": versions()}))
        return 0
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(a.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    {"step": run_step, "chain": run_chain, "epoch": run_epoch, "predict": run_predict,
     "adam": run_adam}[w["kind"]]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
