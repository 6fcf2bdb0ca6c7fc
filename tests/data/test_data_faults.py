"""Damaged and malformed data sources: each is a DataError naming the file and what is wrong, never bad pixels.

Covered elsewhere: a missing path or an unknown word (test_data.py, unknown_and_missing_sources), a
wrong md5 when downloading (test_download.py), mixed sizes and undecodable images in an ImageFolder
folder, test classes that train/ lacks, a missing or malformed pickle batch (test_data.py).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from helpers import official_archive, tar_folder, write_imagefolder
from PIL import Image

from nasx.data import DataError, load
from nasx.data.sources import CIFAR10_ARCHIVE


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("NASX_CACHE", str(cache))
    return cache


def _no_cache_entry(cache: Path) -> bool:
    return not (cache / "arrays").exists() or not any((cache / "arrays").iterdir())


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_an_official_archive_cut_short_is_a_data_error(tmp_path: Path, _cache: Path, fraction: float) -> None:
    archive, _ = official_archive(tmp_path)
    body = archive.read_bytes()
    archive.write_bytes(body[: int(len(body) * fraction)])
    with pytest.raises(
        DataError, match=r"cifar-10-python\.tar\.gz: not a readable tar archive, or a damaged one \(Compressed file"
    ):
        load(archive, progress=False)
    assert _no_cache_entry(_cache)


def test_an_imagefolder_archive_cut_in_half_is_a_data_error(tmp_path: Path, _cache: Path) -> None:
    write_imagefolder(tmp_path / "tree")
    archive = tar_folder(tmp_path / "tree", tmp_path / "tree.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match=r"tree\.tar\.gz: not a readable tar archive, or a damaged one"):
        load(archive, progress=False)
    assert _no_cache_entry(_cache)


def test_an_uncompressed_tar_cut_in_half_is_a_data_error(tmp_path: Path) -> None:
    archive, _ = official_archive(tmp_path)
    plain = tmp_path / "cifar.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    plain.write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cifar\.tar: not a readable tar archive, or a damaged one \(unexpected end of data\)"):
        load(plain, progress=False)


def test_one_flipped_byte_in_a_gzip_archive_is_caught_by_its_crc(tmp_path: Path, _cache: Path) -> None:
    """Random pixels compress to stored deflate blocks: a flipped byte there decodes without complaint,
    and tarfile stops reading before gzip's trailer, so only reading the stream to its end catches it."""
    archive, truth = official_archive(tmp_path)
    body = bytearray(archive.read_bytes())
    body[len(body) // 2] ^= 0x10
    archive.write_bytes(bytes(body))
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: .*damaged one \(CRC check failed"):
        load(archive, progress=False)
    assert _no_cache_entry(_cache)


def test_a_downloaded_archive_damaged_on_disk_says_to_fetch_it_again(tmp_path: Path, _cache: Path) -> None:
    archive, _ = official_archive(tmp_path)
    downloaded = _cache / "downloads" / CIFAR10_ARCHIVE  # where download() keeps the archive it verified
    downloaded.parent.mkdir(parents=True)
    downloaded.write_bytes(archive.read_bytes()[:-5000])  # cut short after the check, as by a full disk
    with pytest.raises(DataError, match=rf"damaged: delete {downloaded} and load 'download' again"):
        load("download", progress=False)


@pytest.mark.parametrize(
    ("misplaced", "shown"),
    [("train/0.png", "train/0.png"), ("train/cat/extra/0.png", "train/cat/extra/0.png")],
    ids=["images-directly-under-train", "images-one-folder-too-deep"],
)
def test_a_folder_with_the_wrong_class_layout_names_an_image_it_found(tmp_path: Path, misplaced: str, shown: str) -> None:
    root = tmp_path / "tree"
    for name in (misplaced, misplaced.replace("train/", "test/")):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32)).save(root / name)
    with pytest.raises(DataError) as info:
        load(root, progress=False)
    assert f"no images under train/<class>/ (found {shown}, which is not train/<class>/<image>)" in str(info.value)


def test_an_imagefolder_archive_with_mixed_sizes_names_the_odd_image(tmp_path: Path, _cache: Path) -> None:
    write_imagefolder(tmp_path / "tree")
    Image.new("RGB", (32, 24)).save(tmp_path / "tree" / "train" / "zebra" / "0001.png")
    archive = tar_folder(tmp_path / "tree", tmp_path / "tree.tgz")
    with pytest.raises(
        DataError, match=r"tree/train/zebra/0001\.png: image is 32x24, expected 32x32 like tree/train/ant/0000\.png"
    ):
        load(archive, progress=False)
    assert _no_cache_entry(_cache)
