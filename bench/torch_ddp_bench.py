#!/usr/bin/env python3
"""PyTorch DistributedDataParallel side of bench/dist.sh (a benchmark, not a
test; docs/performance.md, "Data-parallel"): the step of bench/dist.c on
RANKS processes with the gloo backend on this host, DDP's defaults (25 MB
buckets, the first 1 MB; gradients allreduced as backward finishes them):

  python bench/torch_ddp_bench.py --model seed|wide --batch B --ranks N
      [--warmup N] [--reps N] [--n N]

Each rank takes its shard of a fixed global batch of B rows (random
images and one-hot labels: the values do not change the time), forward,
cross-entropy from the logits, backward, Adam(lr 1e-3, eps 1e-7); one
thread per rank (torch.set_num_threads(1)). With --ranks 1 the same step
without DDP. Rank 0 prints bench.h's JSON lines, workload
"ddp_<model>_b<B>_r<N>", unit us/step.
"""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

HIDDEN = {"seed": (64, 32), "wide": (1024, 1024)}


def run(rank, a):
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    if a.ranks > 1:
        dist.init_process_group("gloo", rank=rank, world_size=a.ranks)
    torch.manual_seed(0)
    h1, h2 = HIDDEN[a.model]
    model = nn.Sequential(nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(),
                          nn.Linear(h2, 10))
    net = nn.parallel.DistributedDataParallel(model) if a.ranks > 1 else model
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    q, r = divmod(a.batch, a.ranks)
    count = q + (rank < r)
    x = torch.rand(count, 784)
    y = F.one_hot(torch.randint(0, 10, (count,)), 10).float()

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    for rep in range(1, a.reps + 1):
        if a.ranks > 1:
            dist.barrier()
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.n):
            loss = step()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if rank == 0:
            print(json.dumps({"impl": "pytorch", "workload": f"ddp_{a.model}_b{a.batch}_r{a.ranks}",
                              "threads": 1, "rep": rep, "n": a.n, "wall": wall, "cpu": cpu,
                              "unit": "us/step", "per_unit": 1e6 * wall / a.n, "model": a.model,
                              "batch": a.batch, "ranks": a.ranks, "loss": loss,
                              "torch": torch.__version__}), flush=True)
    if a.ranks > 1:
        dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="seed", choices=HIDDEN)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--n", type=int, default=100)
    a = p.parse_args()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    if a.ranks == 1:
        run(0, a)
    else:
        mp.spawn(run, args=(a,), nprocs=a.ranks)


if __name__ == "__main__":
    main()
