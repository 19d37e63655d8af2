#!/usr/bin/env python3
"""PyTorch reference numbers for ruse's speed benchmark (CPU).

Usage: .venv/bin/python bench/pytorch_ref.py [--threads 2] [--batch 128] [--seconds 3] [--repeats 3]

Model (MNIST-sized, 1x28x28 input):
  Conv2d(1,32,3,p=1) -> ReLU -> MaxPool2d(2) -> Conv2d(32,64,3,p=1) -> ReLU -> MaxPool2d(2)
  -> Flatten -> Linear(3136,128) -> ReLU -> Linear(128,10)

Measures images/second (median of --repeats timed runs of ~--seconds each, after warm-up):
  forward        model(x) under torch.no_grad()
  pgd_step       x.requires_grad; CE loss; backward to the input;
                 x = clamp(x + 0.01*sign(grad), 0, 1)
  train_step     forward + CE + backward + SGD(momentum 0.9) step + zero_grad
Prints one JSON line.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_model():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def measure(step, batch, seconds, repeats, warmup=3):
    for _ in range(warmup):
        step()
    # Calibrate the iteration count for ~`seconds` per timed run.
    t0 = time.perf_counter()
    step()
    one = max(time.perf_counter() - t0, 1e-6)
    iters = max(1, int(seconds / one))
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        dt = time.perf_counter() - t0
        rates.append(iters * batch / dt)
    return statistics.median(rates)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = make_model()
    x0 = torch.rand(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))

    # forward (inference)
    model.eval()

    def fwd():
        with torch.no_grad():
            model(x0)

    forward_ips = measure(fwd, args.batch, args.seconds, args.repeats)

    # one PGD (L_inf, sign-gradient) step on the input; parameters frozen
    for p in model.parameters():
        p.requires_grad_(False)
    state = {"x": x0.clone()}

    def pgd():
        x = state["x"].detach().requires_grad_(True)
        loss = F.cross_entropy(model(x), y)
        (g,) = torch.autograd.grad(loss, x)
        state["x"] = torch.clamp(x.detach() + 0.01 * g.sign(), 0.0, 1.0)

    pgd_ips = measure(pgd, args.batch, args.seconds, args.repeats)
    for p in model.parameters():
        p.requires_grad_(True)

    # training step
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train():
        loss = F.cross_entropy(model(x0), y)
        loss.backward()
        opt.step()
        opt.zero_grad()

    train_ips = measure(train, args.batch, args.seconds, args.repeats)

    print(json.dumps({
        "impl": "pytorch",
        "torch": torch.__version__,
        "threads": args.threads,
        "batch": args.batch,
        "forward_ips": round(forward_ips, 1),
        "pgd_step_ips": round(pgd_ips, 1),
        "train_step_ips": round(train_ips, 1),
    }))


if __name__ == "__main__":
    main()
