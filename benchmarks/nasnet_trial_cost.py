"""Per-trial cost of studies/cifar10-nasnet.yaml: random candidates of nasnet-cifar trained at the study's proxy size.

Samples N seeded random candidates, builds each at the study's fidelity (width/depth) and times
training steps of the study's recipe at its batch size on random 32x32 images, on this machine's
default device. Prints, per candidate, the evaluation network's params and GMACs, the proxy's,
and the measured training throughput; then the mean and the implied cost of one epoch on 45,000
images and of one trial at the study's epochs (no early stopping: an upper bound).

    .venv/bin/python benchmarks/nasnet_trial_cost.py [--n 8] [--steps 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import optuna
import torch

from nasx.models.complexity import complexity
from nasx.models.network import build_network
from nasx.search.config import StudyConfig
from nasx.space.design import load_space
from nasx.train.loop import _autocast, resolve_precision, training_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="random candidates")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per candidate (after one warm-up step)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--study", default="studies/cifar10-nasnet.yaml")
    args = ap.parse_args()
    cfg = StudyConfig.load(args.study)
    space, recipe, fid = load_space(cfg.space), cfg.resolved_recipe(), cfg.fidelity
    device = torch.device(args.device)
    precision, channels_last = resolve_precision(recipe, device)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rates, eval_macs = [], []
    print(f"{cfg.name}: width {fid.width:.4f}, depth {fid.depth:.4f}, batch {recipe.batch_size}, {device} {precision}")
    print(f"{'#':>2} {'eval params':>12} {'eval GMACs':>10} {'proxy params':>12} {'proxy GMACs':>11} {'img/s':>8}")
    for i in range(args.n):
        net = space.sample(study.ask())
        big, small_net = complexity(net), fid.network(net)
        small = complexity(small_net)
        model = build_network(small_net).to(device).train()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(recipe.batch_size, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (recipe.batch_size,), device=device)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)

        def step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
            with _autocast(device, precision):
                loss, _ = training_loss(model(x), y, recipe)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step(model, opt, x, y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step(model, opt, x, y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rate = args.steps * recipe.batch_size / (time.perf_counter() - t0)
        rates.append(rate)
        eval_macs.append(big.macs / 1e9)
        print(f"{i:>2} {big.params:>12,} {big.macs / 1e9:>10.3f} {small.params:>12,} {small.macs / 1e9:>11.4f} {rate:>8.1f}")
    mean, sd = statistics.mean(rates), statistics.stdev(rates) if len(rates) > 1 else 0.0
    epoch_s = 45_000 / mean
    print(
        f"mean eval GMACs {statistics.mean(eval_macs):.3f}; proxy throughput {mean:.1f} img/s (sd {sd:.1f}, n={len(rates)}); "
        f"one 45,000-image epoch ~{epoch_s / 60:.1f} min; one {cfg.epochs}-epoch trial ~{cfg.epochs * epoch_s / 3600:.2f} h "
        "(training steps only, no early stopping)"
    )


if __name__ == "__main__":
    main()
