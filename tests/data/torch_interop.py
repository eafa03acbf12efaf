"""Weights from nabla to PyTorch and back (docs/data.md), with examples/torch_interop.c.

    python tests/data/torch_interop.py BUILD_DIR [data-dir]

needs a Python with torch and safetensors (bench/run.sh makes one:
~/.cache/nabla-bench/torch/bin/python); neither the build nor the test suite
uses it. Steps, for the classic model and a small conv net:
  1. nabla trains it on Fashion-MNIST and saves it in the PyTorch layout
     (BUILD_DIR/torch_interop save);
  2. the equivalent torch.nn.Sequential loads it with load_state_dict(strict=True)
     and its outputs for the same 1000 test images match nabla's to 1e-6 in
     float64 (the float32 weights, both sides computing in float64) and to 1e-5 in
     float32 (where the two libraries' sums of 784 products in other orders differ
     by about 1e-6 whatever the layout);
  3. torch trains it one SGD step further and saves its state_dict as safetensors;
  4. nabla loads that (nb_load_weights(.layout = NB_LAYOUT_PYTORCH)) and its outputs
     match torch's to the same tolerances (BUILD_DIR/torch_interop check).
Exits non-zero if any comparison fails.
"""
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

TOL64, TOL32 = 1e-6, 1e-5


def models():
    nn = torch.nn
    return {
        "mlp": nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                             nn.Linear(32, 10), nn.Softmax(dim=1)),
        "cnn": nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(8 * 13 * 13, 10), nn.Softmax(dim=1)),
    }


def torch_input(net, x):
    # nabla's images are channels-last (N, H, W, C), torch's channels-first
    return x.permute(0, 3, 1, 2).contiguous() if net == "cnn" else x


def main():
    build = sys.argv[1]
    exe = os.path.join(build, "torch_interop")
    data = sys.argv[2:3]
    torch.manual_seed(0)
    ok = True
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([exe, "save", d] + data, check=True)
        for net, model in models().items():
            state = load_file(os.path.join(d, net + "_torch.safetensors"))
            model.load_state_dict(state, strict=True)
            saved = load_file(os.path.join(d, net + "_pred.safetensors"))
            x = torch_input(net, saved["x"])
            with torch.no_grad():
                d32 = (model(x) - saved["pred"]).abs().max().item()
                d64 = (model.double()(x.double()) - saved["pred64"]).abs().max().item()
                model.float()
            print(f"{net}: PyTorch, loading nabla's weights, against nabla: "
                  f"max |difference| {d64:.3g} in float64, {d32:.3g} in float32")
            ok &= d64 <= TOL64 and d32 <= TOL32
            # one training step in torch, then its state_dict back to nabla
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            loss = -torch.log(model(x)[torch.arange(len(x)), saved["pred"].argmax(1)]).mean()
            loss.backward()
            opt.step()
            save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                      os.path.join(d, net + "_back.safetensors"))
            with torch.no_grad():
                pred = model(x).contiguous()
                pred64 = model.double()(x.double()).contiguous()
                model.float()
                save_file({"pred": pred, "pred64": pred64},
                          os.path.join(d, net + "_back_pred.safetensors"))
            moved = max((model.state_dict()[k] - state[k]).abs().max().item() for k in state)
            print(f"{net}: one SGD step in PyTorch moved the weights by up to {moved:.3g}")
            ok &= moved > 0
        ok &= subprocess.run([exe, "check", d]).returncode == 0
    print("torch_interop:", "all within tolerance" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
