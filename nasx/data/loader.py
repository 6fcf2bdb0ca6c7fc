"""The device-resident loader: a whole split on the training device as uint8, augmented in batches.

Every step is a handful of batched tensor ops on the device, with no per-image Python work, no
worker processes and no host synchronisation:

1. the split is uploaded once, already padded for the random crop (zeros or reflect), as uint8;
2. a batch's random crops are read with one ``index_select`` over an overlapping strided view of
   that store in which every row is one image-row segment, so a crop costs one short copy per
   image row (and channel) rather than one indexed read per pixel;
3. ``(x / 255 - mean) / std`` is one uint8 -> float conversion and a multiply-add with precomputed
   per-channel scale and shift;
4. horizontal flip is a ``lerp`` (weight 0 or 1) between the batch and its mirror, cutout a
   multiplication by a broadcast 0/1 mask built from per-sample centres.

The permutation and every random draw of an epoch come from a ``torch.Generator`` on the device
seeded from ``(seed, epoch)`` alone, so epoch ``e`` is the same whether or not epochs ``0..e-1``
ran first (resume calls :meth:`DeviceLoader.set_epoch`). The same seed gives the same batches on
the same kind of device; CPU and CUDA generators give different streams.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from nasx.data.types import DataError, ImageSet

CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)


def normalization(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` per channel: CIFAR-10's for RGB, 0.5 and 0.25 for any other channel count (LeNet's 1)."""
    if channels == 3:
        return CIFAR10_MEAN, CIFAR10_STD
    return (0.5,) * channels, (0.25,) * channels


PaddingMode = Literal["zeros", "reflect"]

_UPLOAD_CHUNK = 8192  # images per host -> device copy: bounds host memory for memory-mapped caches
_EPOCH_STREAM, _FRACTION_STREAM = 0, 1


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True)
class Augment:
    """Training augmentation, in pixels of the stored images.

    ``crop_padding``: random crop of the stored size from the image padded by this many pixels on
    every side (0 = no crop); ``padding_mode``: ``"zeros"`` (black border, the classic CIFAR
    recipe, torchvision ``RandomCrop(32, padding=4)``) or ``"reflect"``. ``flip``: mirror each
    image left-right with probability 1/2. ``cutout``: side of a square set to the dataset mean
    (0 after normalization) whose centre is uniform over the image and which is clipped at the
    borders (DeVries & Taylor 2017), 0 = off. Order: crop, flip, normalize, cutout.
    """

    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0
    padding_mode: PaddingMode = "zeros"

    def __post_init__(self) -> None:
        for name in ("crop_padding", "cutout"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise DataError(f"augment.{name}: must be an integer >= 0, got {value!r}")
        if not isinstance(self.flip, bool):
            raise DataError(f"augment.flip: must be a bool, got {self.flip!r}")
        if self.padding_mode not in ("zeros", "reflect"):
            raise DataError(f"augment.padding_mode: must be 'zeros' or 'reflect', got {self.padding_mode!r}")


#: No augmentation at all (what eval mode uses).
NO_AUGMENT = Augment(crop_padding=0, flip=False, cutout=0)


def _seed(seed: int, *stream: int) -> int:
    """A well-mixed 63-bit generator seed for one stream of ``seed`` (e.g. one epoch)."""
    hi, lo = np.random.SeedSequence(seed, spawn_key=stream).generate_state(2, np.uint32)
    return ((int(hi) << 32) | int(lo)) & (2**63 - 1)


def stratified_fraction(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a seeded, class-stratified ``fraction`` of ``labels``.

    Each class present keeps ``round(fraction * count)`` of its images, at least one.
    """
    rng = np.random.default_rng(_seed(seed, _FRACTION_STREAM))
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, round(fraction * len(members)))
        keep.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(keep))


@dataclass(frozen=True)
class _Plan:
    """One epoch's draws, indexed by position in the epoch."""

    order: torch.Tensor  # (n,) image indices
    offsets: torch.Tensor | None  # (n, 2) crop offsets (row, col) in [0, 2 * padding]
    flips: torch.Tensor | None  # (n,) float32: 1.0 = mirror, 0.0 = keep
    centres: torch.Tensor | None  # (n, 2) cutout centres (row, col)


class DeviceLoader:
    """Batches ``(x, y)`` of an :class:`ImageSet` held on ``device``: x normalized NCHW, y int64.

    ``train``: reshuffle and augment every epoch (``augment`` defaults to ``Augment()``, crop 4 +
    flip) and drop the last partial batch unless ``drop_last=False``. Eval (``train=False``): the
    images in stored order, unaugmented, every one exactly once (``augment``, ``drop_last`` unused).

    ``resolution``: resize every batch to this side (bilinear, antialiased) after augmentation, for
    low-fidelity training. ``fraction``: keep a seeded class-stratified fraction of the images
    (chosen once, from ``seed``; see :func:`stratified_fraction`). ``channels_last``: x in
    channels-last memory format (the store is then NHWC, so this costs nothing). ``dtype``: x is
    computed in float32 and cast once. Memory on the device: ``N * C * (H + 2p) * (W + 2p)`` bytes.
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        train: bool = True,
        augment: Augment | None = None,
        seed: int = 0,
        drop_last: bool | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
        resolution: int | None = None,
        fraction: float = 1.0,
    ) -> None:
        if not _is_int(batch_size) or batch_size <= 0:
            raise DataError(f"batch_size: must be an integer > 0, got {batch_size!r}")
        if not _is_int(seed) or seed < 0:
            raise DataError(f"seed: must be an integer >= 0, got {seed!r}")
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
            raise DataError(f"fraction: must lie in (0, 1], got {fraction!r}")
        if resolution is not None and (not _is_int(resolution) or resolution <= 0):
            raise DataError(f"resolution: must be an integer > 0, got {resolution!r}")
        if not dtype.is_floating_point:
            raise DataError(f"dtype: must be a floating-point dtype, got {dtype}")
        if augment is not None and not isinstance(augment, Augment):
            raise DataError(f"augment: must be an Augment, got {augment!r}")
        if len(data) == 0:
            raise DataError("data: is empty")
        _, height, width, channels = data.images.shape
        mean = normalization(channels)[0] if mean is None else mean
        std = normalization(channels)[1] if std is None else std
        for name, values in (("mean", mean), ("std", std)):
            if len(values) != channels:
                raise DataError(f"{name}: must have one value per channel ({channels}), got {tuple(values)}")
        if min(std) <= 0:
            raise DataError(f"std: every value must be > 0, got {tuple(std)}")

        self.train = bool(train)
        self.augment = (augment or Augment()) if self.train else NO_AUGMENT
        pad = self.augment.crop_padding
        if self.augment.padding_mode == "reflect" and pad >= min(height, width):
            raise DataError(f"augment.crop_padding: must be < the image side ({min(height, width)}) to reflect, got {pad}")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.drop_last = self.train and (drop_last is None or bool(drop_last))
        self.device = torch.device(device)
        self.dtype = dtype
        self.channels_last = bool(channels_last)
        self.resolution = None if resolution is None or resolution == height == width else int(resolution)
        self._shape = (channels, height, width)
        self._epoch = 0

        if fraction < 1:
            data = data.subset(stratified_fraction(data.labels, float(fraction), self.seed))
        if self.drop_last and len(data) < self.batch_size:
            raise DataError(f"batch_size: must be <= the {len(data)} images when dropping the last batch, got {batch_size}")
        self._labels = torch.from_numpy(np.array(data.labels, dtype=np.int64)).to(self.device)
        self._store = self._upload(data.images, pad, self.augment.padding_mode)

        # x = u8 * scale + shift  ==  (u8 / 255 - mean) / std
        std_t = torch.tensor(std, dtype=torch.float64)
        scale = (1 / (255 * std_t)).view(1, channels, 1, 1)
        shift = (-torch.tensor(mean, dtype=torch.float64) / std_t).view(1, channels, 1, 1)
        self._scale, self._shift = scale.to(self.device, torch.float32), shift.to(self.device, torch.float32)

        # The store as overlapping segments: row k is the `seg` bytes starting at flat offset k, so
        # the crop rows of a batch are one index_select of their start offsets.
        store, (_, hp, wp) = self._store, self._padded_shape
        if self.channels_last:  # store (N, Hp, Wp, C): a crop row is W * C contiguous bytes
            seg, row_base = width * channels, torch.arange(height) * wp * channels
            self._img_stride, self._oy_stride, self._ox_stride = hp * wp * channels, wp * channels, channels
        else:  # store (N, C, Hp, Wp): a crop row of one channel is W contiguous bytes
            seg = width
            row_base = ((torch.arange(channels)[:, None] * hp + torch.arange(height)) * wp).reshape(-1)
            self._img_stride, self._oy_stride, self._ox_stride = channels * hp * wp, wp, 1
        self._row_base = row_base.to(self.device)
        self._segments = store.view(-1).as_strided((store.numel() - seg + 1, seg), (1, 1))

    @property
    def _padded_shape(self) -> tuple[int, int, int]:
        c, h, w = self._shape
        p = self.augment.crop_padding
        return c, h + 2 * p, w + 2 * p

    def _upload(self, images: np.ndarray, pad: int, mode: PaddingMode) -> torch.Tensor:
        """Copy the images to the device once, padded, in the store's layout (NCHW or NHWC)."""
        c, hp, wp = self._padded_shape
        n = len(images)
        if self.channels_last:
            store = torch.empty((n, hp, wp, c), dtype=torch.uint8, device=self.device)
            nchw = store.permute(0, 3, 1, 2)
        else:
            store = nchw = torch.empty((n, c, hp, wp), dtype=torch.uint8, device=self.device)
        for start in range(0, n, _UPLOAD_CHUNK):
            chunk = np.array(images[start : start + _UPLOAD_CHUNK])  # a writable copy (caches may be read-only)
            block = torch.from_numpy(chunk).to(self.device).permute(0, 3, 1, 2)
            if pad:
                block = F.pad(block, (pad, pad, pad, pad), mode="constant" if mode == "zeros" else "reflect")
            nchw[start : start + len(chunk)] = block
        return store

    @property
    def num_samples(self) -> int:
        """How many images one epoch covers (before dropping a last partial batch)."""
        return len(self._labels)

    @property
    def epoch(self) -> int:
        """The epoch the next iteration will run."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration run epoch ``epoch`` (its order and augmentation depend on it alone)."""
        if not _is_int(epoch) or epoch < 0:
            raise DataError(f"epoch: must be an integer >= 0, got {epoch!r}")
        self._epoch = int(epoch)

    def __len__(self) -> int:
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of batches. In training mode this claims the current epoch and advances it."""
        if not self.train:
            return self._eval_batches()
        plan = self._draw(self._epoch)
        self._epoch += 1
        return self._train_batches(plan)

    def _draw(self, epoch: int) -> _Plan:
        """Every random number of one epoch, drawn up front from a generator seeded by (seed, epoch)."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(_seed(self.seed, _EPOCH_STREAM, epoch))
        n, dev, aug = self.num_samples, self.device, self.augment
        _, h, w = self._shape
        order = torch.randperm(n, generator=gen, device=dev)
        offsets = torch.randint(0, 2 * aug.crop_padding + 1, (n, 2), generator=gen, device=dev) if aug.crop_padding else None
        flips = torch.randint(0, 2, (n,), generator=gen, device=dev).float() if aug.flip else None
        centres = None
        if aug.cutout:
            centres = torch.stack(
                [torch.randint(0, h, (n,), generator=gen, device=dev), torch.randint(0, w, (n,), generator=gen, device=dev)], 1
            )
        return _Plan(order, offsets, flips, centres)

    def _train_batches(self, plan: _Plan) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        c, h, w = self._shape
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            ids = plan.order[start : start + self.batch_size]
            b = len(ids)
            first = ids * self._img_stride
            if plan.offsets is not None:
                off = plan.offsets[start : start + b]
                first = first + off[:, 0] * self._oy_stride + off[:, 1] * self._ox_stride
            rows = self._segments.index_select(0, (first[:, None] + self._row_base).view(-1))
            u8 = rows.view(b, h, w, c).permute(0, 3, 1, 2) if self.channels_last else rows.view(b, c, h, w)
            x = self._normalize(u8)
            if plan.flips is not None:  # lerp with weight 0 or 1 is exact, and faster than where on CPU
                x = torch.lerp(x, x.flip(3), plan.flips[start : start + b].view(b, 1, 1, 1))
            if plan.centres is not None:
                x = x.mul_(self._cutout_keep(plan.centres[start : start + b]))
            yield self._finish(x), self._labels[ids]

    def _cutout_keep(self, centres: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W): 0 on the square of side ``cutout`` around each centre (clipped to the image), else 1."""
        _, h, w = self._shape
        side = self.augment.cutout
        lo = centres - side // 2
        rows = torch.arange(h, device=self.device) - lo[:, :1]  # (B, H): row - top
        cols = torch.arange(w, device=self.device) - lo[:, 1:]
        in_rows = ((rows >= 0) & (rows < side)).float()
        in_cols = ((cols >= 0) & (cols < side)).float()
        return 1 - in_rows[:, None, :, None] * in_cols[:, None, None, :]

    def _eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        nchw = self._store.permute(0, 3, 1, 2) if self.channels_last else self._store
        for start in range(0, self.num_samples, self.batch_size):
            u8 = nchw[start : start + self.batch_size]
            yield self._finish(self._normalize(u8)), self._labels[start : start + self.batch_size]

    def _normalize(self, u8: torch.Tensor) -> torch.Tensor:
        """``(u8 / 255 - mean) / std``: one conversion, then an in-place multiply-add per channel.

        (Faster on CPU than one ``addcmul``, whose broadcasting kernel is slow there.)
        """
        return u8.float().mul_(self._scale).add_(self._shift)

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        """Resize if asked, then the requested dtype and memory format."""
        if self.resolution is not None:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", antialias=True, align_corners=False)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.to(self.dtype).contiguous(memory_format=fmt)

    def __repr__(self) -> str:
        mode = "train" if self.train else "eval"
        return (
            f"DeviceLoader({mode}, {self.num_samples} images, batch {self.batch_size}, {len(self)} batches, "
            f"device={self.device}, augment={self.augment})"
        )
