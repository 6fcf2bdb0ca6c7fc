"""The data types every part of nasx.data hands around: images as one uint8 array, never files."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasx.errors import NasxError, RuntimeFailure

#: CIFAR-10's classes in label order.
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


class DataError(NasxError):
    """A data source that cannot be read, a checksum that does not match, a split that cannot be made."""


class DamagedData(DataError, RuntimeFailure):
    """A download or archive damaged in transit or on disk (a checksum that does not match): exit code 1."""


@dataclass(frozen=True, eq=False)
class ImageSet:
    """``images``: uint8 (N, H, W, C); ``labels``: int64 (N,) in ``0 .. len(classes) - 1``."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DataError(f"images: must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise DataError(f"labels: must have shape ({len(self.images)},), got {self.labels.shape}")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DataError(f"labels: must lie in 0..{len(self.classes) - 1}, got {self.labels.min()}..{self.labels.max()}")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.classes)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A whole labelled dataset as read from one source: the official train and test sets."""

    train: ImageSet
    test: ImageSet
    source: str  # what was read, for reports: e.g. "cifar10-jpeg.tar.gz (sha256 45b041e867f5)"
    digest: str  # sha256 of the source (file bytes, or a listing for a folder), the cache key


@dataclass(frozen=True, eq=False)
class Splits:
    """What a search may see: a seeded, class-stratified train / val split of the training set.

    The test set is deliberately not here: search code receives a ``Splits`` and cannot read it.
    """

    train: ImageSet
    val: ImageSet
    source: str
    seed: int

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes
