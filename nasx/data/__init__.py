"""CIFAR-10 readers, the uint8 cache, seeded splits and the device-resident loader.

``load(source)`` reads the bundled mini set, the downloaded official archive, the official pickle
batches or an ImageFolder, decoding once into a cache keyed by the source's sha256.
``load_splits`` gives search its seeded train / val split; ``load_test`` is the only way to the test set.
"""

from nasx.data.cache import cache_root
from nasx.data.sources import CIFAR10_MD5, CIFAR10_URL, MINI_ARCHIVE, download, load, load_test
from nasx.data.splits import DEFAULT_VAL_FRACTION, as_val_size, load_splits, split
from nasx.data.types import CIFAR10_CLASSES, DataError, Dataset, ImageSet, Splits

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "DEFAULT_VAL_FRACTION",
    "as_val_size",
    "MINI_ARCHIVE",
    "DataError",
    "Dataset",
    "ImageSet",
    "Splits",
    "cache_root",
    "download",
    "load",
    "load_splits",
    "load_test",
    "split",
]
