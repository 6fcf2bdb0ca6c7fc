"""Loader alone: nasx's DeviceLoader against a torch DataLoader with per-sample transforms.

Both deliver one epoch of normalized float NCHW batches of the same synthetic uint8 images
(45,000 x 32 x 32 x 3 by default, the size of the CIFAR-10 train split after a 5,000 val split)
with random crop (zero padding 4), horizontal flip and, unless ``--cutout 0``, cutout 16:

(a) nasx: ``DeviceLoader`` on the CPU (or ``--device``), batched tensor ops, no workers;
(b) naive: ``torch.utils.data.DataLoader`` over a Dataset whose ``__getitem__`` pads, crops,
    flips, normalizes and cuts out one image in numpy, ``num_workers=2``, persistent workers.

Each is warmed up with one epoch, then ``--epochs`` epochs are timed. Prints images/s of each and the
ratio nasx/naive, measured in this one run.

    python benchmarks/loader_only.py [--n 45000] [--batch 256] [--cutout 16] [--device cpu] [--epochs 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from nasx.data.loader import CIFAR10_MEAN, CIFAR10_STD, Augment, DeviceLoader
from nasx.data.types import ImageSet

MEAN = np.array(CIFAR10_MEAN, dtype=np.float32)
STD = np.array(CIFAR10_STD, dtype=np.float32)


class NaiveCifar(Dataset):
    """Per-sample pad + random crop + flip + normalize + cutout, as a script without torchvision does it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, cutout: int) -> None:
        self.images, self.labels, self.cutout = images, labels, cutout

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = np.pad(self.images[i], ((4, 4), (4, 4), (0, 0)))
        y0, x0 = np.random.randint(0, 9, 2)
        img = img[y0 : y0 + 32, x0 : x0 + 32]
        if np.random.rand() < 0.5:
            img = img[:, ::-1]
        x = (img.astype(np.float32) / 255.0 - MEAN) / STD
        if self.cutout:
            cy, cx = np.random.randint(0, 32, 2)
            h = self.cutout // 2
            x[max(0, cy - h) : cy - h + self.cutout, max(0, cx - h) : cx - h + self.cutout] = 0
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))), int(self.labels[i])


def epoch_rate(loader: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device, epochs: int) -> float:
    """Images per second over ``epochs`` epochs, after one warm-up epoch."""
    for _ in loader:
        pass
    if device.type == "cuda":
        torch.cuda.synchronize()
    seen, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _ in loader:
            seen += len(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=45_000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--cutout", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per loader, after one warm-up epoch")
    args = ap.parse_args()
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    data = ImageSet(rng.integers(0, 256, (args.n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, args.n), tuple("0123456789"))

    fast = DeviceLoader(data, args.batch, device=device, augment=Augment(crop_padding=4, flip=True, cutout=args.cutout))
    naive = DataLoader(
        NaiveCifar(data.images, data.labels, args.cutout),
        batch_size=args.batch,
        shuffle=True,
        drop_last=True,
        num_workers=2,
        persistent_workers=True,
    )
    a, b = epoch_rate(fast, device, args.epochs), epoch_rate(naive, torch.device("cpu"), args.epochs)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"{args.n} images 32x32, batch {args.batch}, crop 4 + flip + cutout {args.cutout}; DeviceLoader on {where}")
    print(f"DeviceLoader             {a:>10,.0f} images/s")
    print(f"DataLoader (2 workers)   {b:>10,.0f} images/s")
    print(f"ratio                    {a / b:>10.1f}x")


if __name__ == "__main__":
    main()
