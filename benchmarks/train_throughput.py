"""Training throughput: nasx's device-resident loader and loop against the usual PyTorch pipeline.

Both train the same network with the same batch size and recipe (SGD + Nesterov, label
smoothing, crop + flip) on the same decoded uint8 images:

(a) nasx: ``nasx.train.train`` (the whole split on the device, batched augmentation, the CPU or
    GPU defaults the recipe's ``auto`` settings choose: channels-last and bf16 where native);
(b) usual: a ``torch.utils.data.DataLoader`` over the images with per-sample random crop and flip
    in ``__getitem__``, worker processes, fp32, the default memory format, ``loss.item()`` logged
    every step, as most training scripts do.

Prints images/s of each and the ratio nasx/usual, per network, measured in this one run.

    python benchmarks/train_throughput.py [--nets resnet20_cifar resnet18_cifar] [--steps 40] [--data mini]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from loader_only import NaiveCifar  # the same hand-written dataset as the loader benchmark
from torch.utils.data import DataLoader

from nasx import data as datasets
from nasx import zoo
from nasx.data.types import ImageSet, Splits
from nasx.models import build_network
from nasx.train import Fidelity, Recipe, train
from nasx.train.loop import default_device, resolve_precision


def UsualCifar(images: np.ndarray, labels: np.ndarray) -> NaiveCifar:  # noqa: N802
    """What a user writes without torchvision: per-sample pad + random crop + flip + normalise (no cutout)."""
    return NaiveCifar(images, labels, cutout=0)


def usual(net_name: str, train_set: ImageSet, recipe: Recipe, steps: int, warmup: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = build_network(zoo.get(net_name)).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay)
    loader = DataLoader(
        UsualCifar(train_set.images, train_set.labels),
        batch_size=recipe.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=2,
        pin_memory=device.type == "cuda",
        persistent_workers=True,
    )
    done, t0 = 0, 0.0
    while done < steps + warmup:
        for x, y in loader:
            if done == warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()  # the usual per-step logging
            done += 1
            if done == steps + warmup:
                break
    return steps * recipe.batch_size / (time.perf_counter() - t0)


def nasx_loop(net_name: str, train_set: ImageSet, recipe: Recipe, steps: int, warmup: int, device: torch.device) -> float:
    # epoch 1 warms up (allocator, kernels); epoch 2 is measured, training time only
    n = (steps + 0) * recipe.batch_size
    sub = train_set.subset(np.arange(min(n, len(train_set))))
    splits = Splits(train=sub, val=sub.subset(np.arange(recipe.batch_size)), source="bench", seed=0)
    result = train(zoo.get(net_name), splits, recipe, Fidelity(epochs=2), device=device)
    return result.metrics[-1].images_per_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=["resnet20_cifar", "resnet18_cifar"])
    ap.add_argument("--steps", type=int, default=40, help="measured optimiser steps per pipeline and network")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--data", default="mini", help="data source (nasx.data.load)")
    args = ap.parse_args()
    device = default_device()
    train_set = datasets.load(args.data).train
    recipe = Recipe(batch_size=args.batch, lr=0.1, label_smoothing=0.1, eval_batch_size=args.batch)
    precision, channels_last = resolve_precision(recipe, device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device {name}; nasx defaults: {precision}, channels_last={channels_last}; batch {args.batch}, {args.steps} steps")
    print(f"{'network':<16} {'nasx img/s':>11} {'usual img/s':>12} {'ratio':>6}")
    for net in args.nets:
        steps = args.steps if "18" not in net or device.type == "cuda" else max(8, args.steps // 4)
        a = nasx_loop(net, train_set, recipe, steps, args.warmup, device)
        b = usual(net, train_set, recipe, steps, args.warmup, device)
        print(f"{net:<16} {a:>11,.0f} {b:>12,.0f} {a / b:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
