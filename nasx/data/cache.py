"""The on-disk cache: source digests and decoded uint8 arrays, written atomically.

Layout under the cache root (``cache_dir`` argument, else ``$NASX_CACHE``, else ``~/.cache/nasx``)::

    arrays/<sha256 of the source>/train_images.npy  train_labels.npy  test_images.npy  test_labels.npy  meta.json
    downloads/cifar-10-python.tar.gz

An entry folder appears under its final name only once every file in it is written and synced, so a
folder that exists was complete. Arrays are read back with ``allow_pickle=False`` and checked against
the CRC-32 of their bytes recorded in ``meta.json``; an entry that is damaged on disk since (a file cut
short or zero-filled by a power cut or a full disk, a lost file, a garbled ``meta.json``) is never
used: it is reported as a warning on the ``nasx.data`` logger and rebuilt from the source, which is
always at hand when an entry is looked up (the cache holds derived data only).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from nasx.data.types import DataError, Dataset, ImageSet
from nasx.yamlfiles import atomic_write, fsync_dir

#: Bumped when the decoded content of an entry changes meaning; older entries are rebuilt.
CACHE_FORMAT = 1
_CHUNK = 1 << 20
_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")
log = logging.getLogger("nasx.data")


def array_crc32(array: np.ndarray) -> int:
    """CRC-32 of an array's bytes in C order (about 40 ms for CIFAR-10's 150 MB of training images)."""
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``cache_dir`` if given, else ``$NASX_CACHE``, else ``~/.cache/nasx``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("NASX_CACHE", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nasx"


def file_digest(path: Path) -> str:
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file to compute its sha256 ({exc.strerror or exc})") from exc
    return h.hexdigest()


def folder_digest(root: Path) -> str:
    """sha256 over the sorted relative paths, sizes and modification times of every file under ``root``.

    Cheap (no file is read) and changes whenever a file is added, removed, resized or touched.
    """
    h = hashlib.sha256(b"nasx-folder-digest-1\0")
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            full = Path(dirpath, name)
            st = full.stat()
            entries.append((full.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    for rel, size, mtime in sorted(entries):
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class ArrayCache:
    """The decoded-array part of the cache, one folder per source digest."""

    root: Path

    @property
    def arrays(self) -> Path:
        return self.root / "arrays"

    def entry(self, digest: str) -> Path:
        return self.arrays / digest

    def load(self, digest: str, source: str) -> Dataset | None:
        """The cached dataset for ``digest``; None when there is no sound current-format entry (load rebuilds it).

        A damaged entry is logged as a warning, naming the folder and what is wrong, and left for
        :meth:`store` to replace.
        """
        folder = self.entry(digest)
        if not folder.exists():
            return None
        try:
            return self._read(folder, digest, source)
        except _Stale:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, DataError) as exc:
            log.warning("%s: cache entry is damaged (%s); rebuilding it from the source", folder, exc)
            return None

    def _read(self, folder: Path, digest: str, source: str) -> Dataset:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError(f"meta.json holds a {type(meta).__name__}, not a mapping")
        if meta.get("format") != CACHE_FORMAT:
            raise _Stale
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in _ARRAYS}
        for name, expected in (meta.get("crc32") or {}).items():  # entries written before the CRCs have none
            got = array_crc32(arrays[name])
            if got != expected:
                raise ValueError(f"{name}.npy has CRC-32 {got:08x}, {expected:08x} was written")
        classes = tuple(str(c) for c in meta["classes"])
        train = ImageSet(arrays["train_images"], arrays["train_labels"], classes)
        test = ImageSet(arrays["test_images"], arrays["test_labels"], classes)
        if (len(train), len(test)) != (meta.get("train", len(train)), meta.get("test", len(test))):
            raise ValueError(f"holds {len(train)} + {len(test)} images, {meta.get('train')} + {meta.get('test')} were written")
        return Dataset(train=train, test=test, source=source, digest=digest)

    def store(self, dataset: Dataset, kind: str) -> Path:
        """Write ``dataset`` under its digest: into a temporary folder, synced, then renamed into place."""
        self.arrays.mkdir(parents=True, exist_ok=True)
        final = self.entry(dataset.digest)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dataset.digest[:12]}-", dir=self.arrays))
        try:
            arrays = {
                "train_images": dataset.train.images,
                "train_labels": dataset.train.labels,
                "test_images": dataset.test.images,
                "test_labels": dataset.test.labels,
            }
            for name, array in arrays.items():
                _write_synced(tmp / f"{name}.npy", lambda f, a=array: np.save(f, np.ascontiguousarray(a), allow_pickle=False))
            meta = {
                "format": CACHE_FORMAT,
                "classes": list(dataset.train.classes),
                "source": dataset.source,
                "kind": kind,
                "train": len(dataset.train),
                "test": len(dataset.test),
                "crc32": {name: array_crc32(array) for name, array in arrays.items()},
            }
            text = json.dumps(meta, indent=2) + "\n"
            _write_synced(tmp / "meta.json", lambda f: f.write(text.encode()))
            fsync_dir(tmp)
            _replace_folder(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        fsync_dir(self.arrays)
        return final


class _Stale(Exception):
    """An entry of another cache format: rebuilt without a warning."""


def _write_synced(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create ``path`` with what ``write`` writes into its open file, through :func:`nasx.yamlfiles.atomic_write`."""

    def fill(tmp: Path) -> None:
        with tmp.open("wb") as f:
            write(f)

    atomic_write(path, fill)


def _replace_folder(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final``; an older entry at ``final`` (a stale format) is moved aside and deleted."""
    if final.exists():
        old = final.with_name(f".old-{final.name[:12]}-{os.getpid()}-{tmp.name}")
        try:
            final.rename(old)
        except OSError:
            # Another process replaced it first: its entry is as good as ours.
            return
        shutil.rmtree(old, ignore_errors=True)
    try:
        tmp.rename(final)
    except OSError:
        if not final.exists():
            raise
        # Another process wrote the same entry between our check and our rename: keep theirs.
