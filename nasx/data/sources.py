"""Data sources: the official CIFAR-10 pickle batches, ImageFolder trees, the bundled mini set, the download.

Every source is decoded once into uint8 arrays and cached under its sha256 (see ``nasx.data.cache``);
later loads of the same bytes read the cache and decode nothing.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import pickle
import tarfile
import types
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np

from nasx.data.cache import ArrayCache, cache_root, file_digest, folder_digest
from nasx.data.types import DamagedData, DataError, Dataset, ImageSet
from nasx.yamlfiles import atomic_write

#: The official archive (python pickle batches) and its published md5.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
#: The bundled mini CIFAR-10: an ImageFolder .tar.gz of original JPEGs (see scripts/make_mini_cifar10.py).
MINI_ARCHIVE = Path(__file__).with_name("mini_cifar10.tar.gz")

EXPECTED = (
    "expected 'mini', 'download', or a path to cifar-10-python.tar.gz, a cifar-10-batches-py folder, "
    "or an ImageFolder (train/<class>/<image> and test/<class>/<image>) as a folder or a .tar.gz/.tgz"
)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".gif", ".webp", ".tif", ".tiff"})
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")
BATCHES_META = "batches.meta"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
_SPLITS = ("train", "test")
_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------- load


def load(
    source: str | os.PathLike[str] = "mini", *, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True
) -> Dataset:
    """Read a CIFAR-10-like dataset, decoding it only if its bytes are not in the cache yet.

    ``source``: ``"mini"`` (the bundled subset), ``"download"`` (the official archive, fetched once into
    the cache), or a path to ``cifar-10-python.tar.gz``, a ``cifar-10-batches-py`` folder, or an
    ImageFolder (``train/`` and ``test/`` with one folder per class) as a folder or ``.tar.gz``/``.tgz``.
    The words win over paths: write ``./mini`` for a folder called ``mini``.
    """
    root = cache_root(cache_dir)
    path, label = _locate(source, root, progress)
    is_folder = path.is_dir()
    digest = folder_digest(path) if is_folder else file_digest(path)
    description = f"{label} (sha256 {digest[:12]})"
    cache = ArrayCache(root)
    cached = cache.load(digest, description)
    if cached is not None:
        return cached
    try:
        kind, train, test = _read_folder(path, progress) if is_folder else _read_archive(path, progress)
    except DataError as exc:
        if isinstance(source, str) and source == "download":  # verified when fetched, damaged since (a cut copy, a bad disk)
            raise DamagedData(f"{exc}; the downloaded archive is damaged: delete {path} and load 'download' again") from exc
        raise
    dataset = Dataset(train=train, test=test, source=description, digest=digest)
    cache.store(dataset, kind)
    return dataset


def load_test(
    source: str | os.PathLike[str] = "mini", *, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True
) -> ImageSet:
    """The official test set of ``source``: for the final report of chosen models, never for search."""
    return load(source, cache_dir=cache_dir, progress=progress).test


def _locate(source: str | os.PathLike[str], root: Path, progress: bool) -> tuple[Path, str]:
    """The file or folder behind ``source`` and a short label for reports."""
    if isinstance(source, str) and source == "mini":
        if not MINI_ARCHIVE.is_file():
            raise DataError(f"source 'mini': the bundled archive {MINI_ARCHIVE} is missing; reinstall nasx")
        return MINI_ARCHIVE, "mini CIFAR-10 (bundled)"
    if isinstance(source, str) and source == "download":
        return download(cache_dir=root, progress=progress), CIFAR10_ARCHIVE
    if not isinstance(source, str | os.PathLike):
        raise DataError(f"source: must be a string or a path, got {type(source).__name__}; {EXPECTED}")
    path = Path(source).expanduser()
    if not str(source) or not path.exists():
        raise DataError(f"source: {str(source)!r} is neither 'mini', 'download' nor an existing file or folder; {EXPECTED}")
    if path.is_file() and not path.name.lower().endswith(TAR_SUFFIXES):
        raise DataError(f"source: {path} is not a .tar.gz/.tgz/.tar archive; {EXPECTED}")
    return path, path.name


def _read_archive(path: Path, progress: bool) -> tuple[str, ImageSet, ImageSet]:
    """Decode a tar archive holding either the official pickle batches or an ImageFolder tree."""
    files = read_tar_files(path)
    names = list(files)
    if _looks_like_pickle_batches(names):
        train, test = read_cifar_batches(_pickle_batch_paths(names, str(path)), files.__getitem__)
        return "cifar-pickle-tar", train, test
    layout = imagefolder_layout(names, where=str(path))
    train, test = decode_imagefolder(layout, files.__getitem__, progress=progress)
    return "imagefolder-tar", train, test


def _read_folder(path: Path, progress: bool) -> tuple[str, ImageSet, ImageSet]:
    """Decode a folder holding either the official pickle batches or an ImageFolder tree."""
    names = _folder_files(path)
    if _looks_like_pickle_batches(names):
        train, test = read_cifar_batches(_pickle_batch_paths(names, str(path)), lambda rel: _read_bytes(path / rel))
        return "cifar-pickle-folder", train, test
    layout = imagefolder_layout(names, where=str(path))
    train, test = decode_imagefolder(layout, lambda rel: _read_bytes(path / rel), progress=progress)
    return "imagefolder-folder", train, test


def read_tar_files(path: Path) -> dict[str, bytes]:
    """Every regular file of a tar archive (any compression) by its normalized relative name.

    Nothing is extracted to disk, so member names cannot escape anywhere. The compressed stream is
    read to its end, so that its own check (gzip's CRC-32 and length, xz's and bz2's CRCs) runs:
    tarfile stops at the end-of-archive marker, before gzip's trailer, and a flipped byte in a
    stored (incompressible) block would otherwise come back as silently different pixels.
    """
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = _normalize(member.name)
                if name is None:
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    files[name] = handle.read()
            while tar.fileobj is not None and tar.fileobj.read(_CHUNK):
                pass  # the rest of the stream: end-of-archive blocks, then the compressor's trailer and its check
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise DataError(f"{path}: not a readable tar archive, or a damaged one ({exc}); {EXPECTED}") from exc
    return files


def _folder_files(root: Path) -> list[str]:
    """Relative posix paths of the files under ``root`` (hidden files and folders skipped), sorted."""
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if _visible(d))
        rel = Path(dirpath).relative_to(root)
        names.extend((rel / f).as_posix() for f in filenames if _visible(f))
    return sorted(names)


def _normalize(name: str) -> str | None:
    """A tar member name as a clean relative path, or None for hidden, absolute or parent-relative names."""
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if not parts or name.startswith("/") or any(p == ".." or not _visible(p) for p in parts):
        return None
    return "/".join(parts)


def _visible(part: str) -> bool:
    return not part.startswith(".") and part != "__MACOSX"


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc


# --------------------------------------------------------------------------- official pickle batches


def _reconstruct_function() -> Callable[..., np.ndarray]:
    """numpy's array-unpickling helper, whatever module this numpy version keeps it in."""
    return np.empty(0).__reduce__()[0]  # type: ignore[return-value]


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles the official CIFAR-10 batches and nothing else: only numpy's array globals resolve.

    The batches hold dicts, lists, ints, bytes and one numpy array; an array needs exactly
    ``numpy.core.multiarray._reconstruct`` (``numpy._core`` in numpy 2), ``numpy.ndarray`` and
    ``numpy.dtype``. Any other global (``os.system``, ``builtins.eval``, ...) raises DataError.
    """

    ALLOWED: types.MappingProxyType[tuple[str, str], object] = types.MappingProxyType(
        {
            ("numpy.core.multiarray", "_reconstruct"): _reconstruct_function(),
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct_function(),
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
        }
    )

    def find_class(self, module: str, name: str) -> object:
        found = self.ALLOWED.get((module, name))
        if found is None:
            allowed = ", ".join(f"{m}.{n}" for m, n in self.ALLOWED)
            raise DataError(f"pickle: refusing global {module}.{name}; a CIFAR-10 batch may only reference {allowed}")
        return found

    def persistent_load(self, pid: object) -> object:
        raise DataError(f"pickle: refusing persistent id {pid!r}; a CIFAR-10 batch has none")


def restricted_loads(data: bytes, what: str) -> object:
    """Unpickle ``data`` (an official CIFAR-10 batch file named ``what``) with RestrictedUnpickler."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise DataError(f"{what}: not a CIFAR-10 pickle batch ({type(exc).__name__}: {exc})") from exc


def _looks_like_pickle_batches(names: Sequence[str]) -> bool:
    return any(PurePosixPath(n).name in (BATCHES_META, TRAIN_BATCHES[0]) for n in names)


def _pickle_batch_paths(names: Sequence[str], where: str) -> dict[str, str]:
    """``basename -> path`` for the seven official batch files; DataError names any missing or doubled."""
    found: dict[str, list[str]] = {}
    for name in names:
        found.setdefault(PurePosixPath(name).name, []).append(name)
    paths = {}
    for base in (BATCHES_META, *TRAIN_BATCHES, TEST_BATCH):
        hits = found.get(base, [])
        if len(hits) != 1:
            problem = "is missing" if not hits else f"appears {len(hits)} times ({', '.join(hits)})"
            raise DataError(
                f"{where}: CIFAR-10 batch file {base} {problem}; expected cifar-10-batches-py/ with "
                f"{BATCHES_META}, {', '.join(TRAIN_BATCHES)} and {TEST_BATCH}"
            )
        paths[base] = hits[0]
    return paths


def read_cifar_batches(paths: dict[str, str], read: Callable[[str], bytes]) -> tuple[ImageSet, ImageSet]:
    """The train and test sets from the official batch files (``read(path) -> bytes``)."""
    meta = restricted_loads(read(paths[BATCHES_META]), paths[BATCHES_META])
    classes = _label_names(meta, paths[BATCHES_META])
    parts = [_batch_arrays(restricted_loads(read(paths[b]), paths[b]), paths[b]) for b in TRAIN_BATCHES]
    train_images = np.concatenate([images for images, _ in parts])
    train_labels = np.concatenate([labels for _, labels in parts])
    test_images, test_labels = _batch_arrays(restricted_loads(read(paths[TEST_BATCH]), paths[TEST_BATCH]), paths[TEST_BATCH])
    return (
        _image_set(train_images, train_labels, classes, paths[TRAIN_BATCHES[0]]),
        _image_set(np.ascontiguousarray(test_images), test_labels, classes, paths[TEST_BATCH]),
    )


def _label_names(meta: object, what: str) -> tuple[str, ...]:
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, bytes) for n in names):
        raise DataError(f"{what}: expected a dict with b'label_names' (a list of byte strings), got {_describe(meta)}")
    return tuple(n.decode("utf-8", errors="replace") for n in names)


def _batch_arrays(batch: object, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32, 3) uint8 images (from the row-major CHW rows of b'data') and int64 labels."""
    if not isinstance(batch, dict):
        raise DataError(f"{what}: expected a dict with b'data' and b'labels', got {_describe(batch)}")
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else _describe(data)
        raise DataError(f"{what}: b'data' must be a uint8 array of shape (N, 3072), got {got}")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(x) is int for x in labels):
        raise DataError(f"{what}: b'labels' must be a list of {len(data)} ints, got {_describe(labels)}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(labels, dtype=np.int64)


def _describe(value: object) -> str:
    if isinstance(value, list | dict):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def _image_set(images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], what: str) -> ImageSet:
    try:
        return ImageSet(images, labels, classes)
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from exc


# ---------------------------------------------------------------------------------------- ImageFolder


@dataclass(frozen=True)
class ImageFolderLayout:
    """Where the images of an ImageFolder tree are: sorted ``(path, label)`` pairs per split."""

    classes: tuple[str, ...]
    train: tuple[tuple[str, int], ...]
    test: tuple[tuple[str, int], ...]


def imagefolder_layout(names: Sequence[str], *, where: str) -> ImageFolderLayout:
    """Find ``[top/]train/<class>/<image>`` and ``[top/]test/<class>/<image>`` among relative paths.

    Classes are the sorted folder names under ``train/``; images are sorted by path within a class.
    Files that are not images (by suffix) are ignored, as torchvision's ImageFolder does.
    """
    by_split: dict[str, dict[str, list[str]]] = {s: {} for s in _SPLITS}
    tops: set[str] = set()
    stray: dict[str, str] = {}  # split -> an image inside it at the wrong depth, to show in the error
    for name in names:
        parts = name.split("/")
        if PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if len(parts) < 3 or parts[-3] not in _SPLITS:
            for split in _SPLITS:
                if split in parts[:-1]:
                    stray.setdefault(split, name)
            continue
        tops.add("/".join(parts[:-3]))
        by_split[parts[-3]].setdefault(parts[-2], []).append(name)
    if len(tops) > 1:
        listed = ", ".join(repr(t or ".") for t in sorted(tops))
        raise DataError(f"{where}: train/ and test/ image folders found under several top folders ({listed}); expected one")
    for split in _SPLITS:
        if not by_split[split]:
            found = f" (found {stray[split]}, which is not {split}/<class>/<image>)" if split in stray else ""
            raise DataError(f"{where}: no images under {split}/<class>/{found}; {EXPECTED}")
    classes = tuple(sorted(by_split["train"]))
    unknown = sorted(set(by_split["test"]) - set(classes))
    if unknown:
        raise DataError(f"{where}: test/ has classes that train/ lacks: {', '.join(unknown)}")
    index = {c: i for i, c in enumerate(classes)}

    def pairs(split: str) -> tuple[tuple[str, int], ...]:
        return tuple((n, index[c]) for c in sorted(by_split[split]) for n in sorted(by_split[split][c]))

    return ImageFolderLayout(classes=classes, train=pairs("train"), test=pairs("test"))


def decode_imagefolder(layout: ImageFolderLayout, read: Callable[[str], bytes], *, progress: bool) -> tuple[ImageSet, ImageSet]:
    """Decode every image of ``layout`` to RGB uint8; all images must share the first one's size."""
    names = [n for n, _ in layout.train] + [n for n, _ in layout.test]
    images = decode_images(names, read, progress=progress)
    n_train = len(layout.train)
    train_labels = np.array([label for _, label in layout.train], dtype=np.int64)
    test_labels = np.array([label for _, label in layout.test], dtype=np.int64)
    return (
        ImageSet(images[:n_train], train_labels, layout.classes),
        ImageSet(images[n_train:], test_labels, layout.classes),
    )


def decode_images(names: Sequence[str], read: Callable[[str], bytes], *, progress: bool) -> np.ndarray:
    """(N, H, W, 3) uint8 from encoded image files, with a transient progress bar on stderr."""
    from PIL import Image  # only a cache miss of an ImageFolder source needs Pillow

    out: np.ndarray | None = None
    with _progress_bar(progress, "decoding images", total=len(names)) as advance:
        for i, name in enumerate(names):
            try:
                with Image.open(io.BytesIO(read(name))) as im:
                    pixels = np.asarray(im.convert("RGB"))
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                raise DataError(f"{name}: cannot decode the image ({exc})") from exc
            if out is None:
                out = np.empty((len(names), *pixels.shape), dtype=np.uint8)
            elif pixels.shape != out.shape[1:]:
                raise DataError(
                    f"{name}: image is {pixels.shape[1]}x{pixels.shape[0]}, expected {out.shape[2]}x{out.shape[1]} "
                    f"like {names[0]}; all images of a source must share one size"
                )
            out[i] = pixels
            if i % 512 == 511:
                advance(512)
        advance(len(names) % 512)
    return out if out is not None else np.empty((0, 32, 32, 3), dtype=np.uint8)


@contextmanager
def _progress_bar(
    enabled: bool, description: str, total: int | None, *, transfer: bool = False
) -> Iterator[Callable[[int], None]]:
    """A transient rich progress bar on stderr; yields ``advance(n)``. Nothing when disabled or not a terminal."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:  # logs and CI get no bar (rich would still print a stray newline)
        yield lambda n: None
        return
    counter = (DownloadColumn(), TransferSpeedColumn()) if transfer else (MofNCompleteColumn(),)
    columns = (TextColumn("{task.description}"), BarColumn(), *counter, TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


# ------------------------------------------------------------------------------------------- download


def download(
    url: str = CIFAR10_URL,
    md5: str = CIFAR10_MD5,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """The official archive in the cache (``<cache>/downloads/cifar-10-python.tar.gz``), fetched if absent.

    The md5 is computed while streaming into a temporary file next to the target; only a file whose
    md5 matches is renamed into place, so a file at the target name has been verified (delete it to
    fetch again). A mismatch or a failed transfer leaves nothing behind.
    """
    target = cache_root(cache_dir) / "downloads" / CIFAR10_ARCHIVE
    if target.is_file():
        return target
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DataError(f"download: url must be http:// or https://, got {url!r}")
    target.parent.mkdir(parents=True, exist_ok=True)

    def fetch_checked(tmp: Path) -> None:
        with open(tmp, "wb") as out:
            got = _fetch(url, out, timeout=timeout, progress=progress)
        if got != md5.lower():
            raise DamagedData(f"download: md5 of {url} is {got}, expected {md5.lower()}; the file was not kept")

    atomic_write(target, fetch_checked)
    return target


def _fetch(url: str, out: BinaryIO, *, timeout: float, progress: bool) -> str:
    """Stream ``url`` into ``out``; returns the md5 (hex) of the bytes written."""
    h = hashlib.md5(usedforsecurity=False)
    hint = f"fetch {CIFAR10_URL} elsewhere and pass its path to nasx.data.load()"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with _progress_bar(progress, f"downloading {CIFAR10_ARCHIVE}", total=total, transfer=True) as advance:
                while chunk := response.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    advance(len(chunk))
    except urllib.error.HTTPError as exc:
        raise DataError(f"download: {url} answered HTTP {exc.code} {exc.reason}; {hint}") from exc
    except urllib.error.URLError as exc:
        raise DataError(f"download: cannot reach {url} ({exc.reason}); {hint}") from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"download: transfer from {url} failed ({exc}); {hint}") from exc
    return h.hexdigest()
