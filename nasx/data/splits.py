"""Seeded, class-stratified train / val splits of a training set (the test set never enters)."""

from __future__ import annotations

import numbers
import os

import numpy as np

from nasx.data.sources import load
from nasx.data.types import DataError, Dataset, ImageSet, Splits

#: ``load_splits``' default: 10% of the training set, i.e. CIFAR-10's conventional 45,000 / 5,000
#: and 7,200 / 800 on the bundled mini set.
DEFAULT_VAL_FRACTION = 0.1


def split(dataset_or_train: Dataset | ImageSet, val_size: int | float = 5000, seed: int = 0, *, source: str = "") -> Splits:
    """Hold out ``val_size`` training images (a count, or a fraction in (0, 1)) as a validation set.

    Stratified: each class gives ``val_size * class_count / total`` images, rounded by largest
    remainder so that the validation set has exactly ``val_size`` images (500 per class for 5,000 of
    CIFAR-10's 50,000). The same seed always selects the same images; both parts keep the source order.
    """
    if isinstance(dataset_or_train, Dataset):
        train, source = dataset_or_train.train, source or dataset_or_train.source
    elif isinstance(dataset_or_train, ImageSet):
        train = dataset_or_train
    else:
        raise DataError(f"split: expected a Dataset or an ImageSet, got {type(dataset_or_train).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise DataError(f"seed: must be a non-negative integer, got {seed!r}")
    n_val = val_count(val_size, len(train))
    quotas = stratified_quotas(np.bincount(train.labels, minlength=len(train.classes)), n_val)
    rng = np.random.default_rng(int(seed))
    in_val = np.zeros(len(train), dtype=bool)
    for label, quota in enumerate(quotas):
        members = np.flatnonzero(train.labels == label)
        in_val[rng.permutation(members)[:quota]] = True
    return Splits(
        train=train.subset(np.flatnonzero(~in_val)), val=train.subset(np.flatnonzero(in_val)), source=source, seed=int(seed)
    )


def as_val_size(value: float) -> int | float:
    """A validation size given as one number (a CLI option, a YAML float): a fraction below 1, or a whole count >= 1.

    ``1.5`` is refused rather than read as one image."""
    if value < 1:
        return value
    if float(value).is_integer():
        return int(value)
    raise DataError(f"val_size: a fraction must be below 1 and a count a whole number of images (>= 1), got {value!r}")


def val_count(val_size: int | float, total: int) -> int:
    """The number of validation images ``val_size`` asks for out of ``total``; DataError if impossible."""
    if isinstance(val_size, bool) or not isinstance(val_size, numbers.Real):
        raise DataError(f"val_size: must be an int count or a fraction in (0, 1), got {val_size!r}")
    if isinstance(val_size, numbers.Integral):
        count = int(val_size)
    elif 0 < val_size < 1:
        count = round(float(val_size) * total)
    else:
        raise DataError(f"val_size: a fraction must lie strictly between 0 and 1 (give a count as an int), got {val_size!r}")
    if not 1 <= count <= total - 1:
        raise DataError(
            f"val_size: must leave at least one image on each side of a training set of {total}, "
            f"i.e. lie in 1..{total - 1}, got {val_size!r} ({count} images)"
        )
    return count


def stratified_quotas(counts: np.ndarray, n_val: int) -> np.ndarray:
    """Per-class validation counts proportional to ``counts`` and summing exactly to ``n_val``.

    Largest remainder (Hamilton): floor of each exact share, then one more for the classes with the
    largest remainders, ties to the lower class index. No class gives more images than it has.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if not 0 <= n_val <= total:
        raise DataError(f"val_size: must lie in 0..{total}, got {n_val}")
    shares = counts * n_val
    quotas = shares // total
    remainders = shares % total
    missing = n_val - int(quotas.sum())
    quotas[np.argsort(-remainders, kind="stable")[:missing]] += 1
    return quotas


def load_splits(
    source: str | os.PathLike[str] = "mini",
    val_size: int | float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Splits:
    """``split(load(source), val_size, seed)``: what a search sees. The default holds out 10% of train."""
    return split(load(source, cache_dir=cache_dir, progress=progress), val_size, seed)
