"""Build nasx/data/mini_cifar10.tar.gz, the bundled mini CIFAR-10, from the full ImageFolder archive.

The mini set is the first ``--train-per-class`` training and ``--test-per-class`` test images of every
class (sorted by file name), with their original JPEG bytes copied unchanged (no re-encoding). Member
order, mtimes, owners and the gzip header are fixed, so the output is byte-identical on every run
(with the same zlib). Run from the repository root:

    python scripts/make_mini_cifar10.py [--source ../shared/datasets/cifar10-jpeg.tar.gz]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
import tarfile
import tempfile
from pathlib import Path

from nasx.data.sources import imagefolder_layout, read_tar_files
from nasx.data.types import DataError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
DEFAULT_OUTPUT = ROOT / "nasx" / "data" / "mini_cifar10.tar.gz"
TOP = "mini_cifar10"
MAX_BYTES = 4 * 1024 * 1024
MTIME = 946684800  # 2000-01-01T00:00:00Z, for every member


def select(source: Path, train_per_class: int, test_per_class: int) -> list[tuple[str, bytes]]:
    """``(member name, original bytes)`` of the mini set, in the archive's order: split, class, file name."""
    files = read_tar_files(source)
    layout = imagefolder_layout(list(files), where=str(source))
    chosen: list[tuple[str, bytes]] = []
    for split, pairs, per_class in (("train", layout.train, train_per_class), ("test", layout.test, test_per_class)):
        for label, cls in enumerate(layout.classes):
            names = [name for name, lab in pairs if lab == label]
            if len(names) < per_class:
                raise DataError(f"{source}: {split}/{cls} has {len(names)} images, fewer than the {per_class} asked for")
            for name in names[:per_class]:
                chosen.append((f"{TOP}/{split}/{cls}/{name.rsplit('/', 1)[-1]}", files[name]))
    return chosen


def write_archive(members: list[tuple[str, bytes]], output: Path) -> str:
    """Write ``members`` as a reproducible .tar.gz (atomically); returns its sha256."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    blob = buffer.getvalue()
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return hashlib.sha256(blob).hexdigest()


def make_mini(source: Path, output: Path, train_per_class: int = 800, test_per_class: int = 200) -> str:
    """Build the mini archive at ``output`` from the ImageFolder archive ``source``; returns its sha256."""
    return write_archive(select(source, train_per_class, test_per_class), output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="ImageFolder .tar.gz of full CIFAR-10")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--train-per-class", type=int, default=800)
    parser.add_argument("--test-per-class", type=int, default=200)
    args = parser.parse_args(argv)
    try:
        digest = make_mini(args.source, args.output, args.train_per_class, args.test_per_class)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = args.output.stat().st_size
    print(f"{args.output}: {size:,} bytes, sha256 {digest}")
    if size > MAX_BYTES:
        print(f"error: {args.output} is {size:,} bytes, over the {MAX_BYTES:,}-byte limit for package data", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
