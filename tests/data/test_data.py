"""nasx.data sources, cache and splits, on small archives that the tests write themselves."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    FOLDER_CLASSES,
    ROOT,
    assert_matches,
    official_archive,
    py2_dumps,
    run_python,
    tar_folder,
    write_batches,
    write_imagefolder,
)
from PIL import Image

import nasx.data.sources as sources
from nasx.data import (
    CIFAR10_CLASSES,
    MINI_ARCHIVE,
    DataError,
    Dataset,
    ImageSet,
    load,
    load_splits,
    load_test,
    split,
)
from nasx.data.cache import CACHE_FORMAT
from nasx.data.sources import RestrictedUnpickler, restricted_loads
from nasx.data.splits import stratified_quotas

SHARED_ARCHIVE = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
#: The committed bundled set; the README cites this digest. Regenerate with scripts/make_mini_cifar10.py.
MINI_SHA256 = "998eaa4e4dfa6b2cb47abe52453cdc5f59cf6e4910aa3e9864d2366394314b00"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test caches under its own tmp folder, never under the home folder."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NASX_CACHE", str(cache))
    return cache


# ------------------------------------------------------------------ official-format pickle batches


def test_pickle_archive_reads_official_batches(tmp_path: Path) -> None:
    archive, truth = official_archive(tmp_path)
    data = load(archive, progress=False)
    assert_matches(data, truth)  # NHWC, batch order, labels: a CHW/HWC mix-up fails here
    assert data.train.classes == CIFAR10_CLASSES
    assert data.digest == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert data.source == f"cifar-10-python.tar.gz (sha256 {data.digest[:12]})"


def test_pickle_folder_reads_the_same_as_the_archive(tmp_path: Path) -> None:
    archive, truth = official_archive(tmp_path)
    folder = tmp_path / "src" / "cifar-10-batches-py"
    from_folder = load(folder, progress=False)
    assert_matches(from_folder, truth)
    assert_matches(load(folder.parent, progress=False), truth)  # the folder the archive was extracted into
    assert from_folder.digest != load(archive, progress=False).digest


def test_pickle_reader_names_a_missing_batch(tmp_path: Path) -> None:
    write_batches(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3 is missing"):
        load(tmp_path / "cifar-10-batches-py", progress=False)


def test_pickle_reader_rejects_a_batch_of_the_wrong_shape(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    bad = {b"data": np.zeros((4, 1024), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
    (folder / "data_batch_2").write_bytes(py2_dumps(bad))
    with pytest.raises(
        DataError, match=r"data_batch_2: b'data' must be a uint8 array of shape \(N, 3072\), got uint8 \(4, 1024\)"
    ):
        load(folder, progress=False)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_rejects_os_system(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Evil(marker)}, protocol=3)
    with pytest.raises(DataError, match=r"refusing global (posix|os|nt)\.system"):
        restricted_loads(payload, "data_batch_1")
    assert not marker.exists()
    with pytest.raises(DataError, match=r"refusing global builtins\.eval"):
        restricted_loads(b"cbuiltins\neval\n(S'1+1'\ntR.", "x")
    # Through load(): a poisoned batch inside an otherwise official archive runs nothing.
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    (folder / "data_batch_4").write_bytes(payload)
    with pytest.raises(DataError, match="data_batch_4: .*refusing global"):
        load(tar_folder(folder, tmp_path / "evil.tar.gz"), progress=False)
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: a plain unpickler runs it
    assert marker.exists()


def test_restricted_unpickler_reads_arrays_of_either_numpy_spelling() -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert b"numpy.core.multiarray" in py2_dumps(array)  # the official (numpy 1, Python 2) spelling
    assert b"numpy._core.multiarray" in pickle.dumps(array, protocol=3)  # numpy 2's
    for payload in (py2_dumps({b"data": array}), pickle.dumps({b"data": array}, protocol=3)):
        np.testing.assert_array_equal(restricted_loads(payload, "x")[b"data"], array)  # type: ignore[index]
    assert set(RestrictedUnpickler.ALLOWED) == {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }


# -------------------------------------------------------------------------------------- ImageFolder


def expected_imagefolder(pixels: dict[str, np.ndarray], split_name: str) -> tuple[np.ndarray, np.ndarray]:
    classes = sorted(FOLDER_CLASSES)
    names = sorted((classes.index(n.split("/")[1]), n) for n in pixels if n.startswith(split_name + "/"))
    return np.stack([pixels[n] for _, n in names]), np.array([label for label, _ in names], dtype=np.int64)


def test_imagefolder_folder_and_archive(tmp_path: Path) -> None:
    pixels = write_imagefolder(tmp_path / "tree")
    from_folder = load(tmp_path / "tree", progress=False)
    archive = tar_folder(tmp_path / "tree", tmp_path / "tree.tgz", arcname="top")  # under a top folder
    from_archive = load(archive, progress=True)
    for data in (from_folder, from_archive):
        assert data.train.classes == ("ant", "cat", "zebra")
        for split_name, part in (("train", data.train), ("test", data.test)):
            images, labels = expected_imagefolder(pixels, split_name)
            np.testing.assert_array_equal(part.images, images)
            np.testing.assert_array_equal(part.labels, labels)
    assert len(from_archive.train) == 9 and len(from_archive.test) == 6


def test_imagefolder_converts_jpeg_and_grayscale_to_rgb(tmp_path: Path) -> None:
    write_imagefolder(tmp_path / "tree", fmt="JPEG")
    gray = np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1))
    Image.fromarray(gray, mode="L").save(tmp_path / "tree" / "test" / "ant" / "0009.png")
    data = load(tmp_path / "tree", progress=False)
    assert data.train.images.shape == (9, 32, 32, 3)
    last_ant = data.test.images[int(np.flatnonzero(data.test.labels == 0)[-1])]
    np.testing.assert_array_equal(last_ant, np.repeat(gray[:, :, None], 3, axis=2))


def test_imagefolder_rejects_mixed_sizes_and_broken_images(tmp_path: Path) -> None:
    write_imagefolder(tmp_path / "tree")
    Image.new("RGB", (28, 28)).save(tmp_path / "tree" / "test" / "cat" / "0005.png")
    with pytest.raises(DataError, match=r"test/cat/0005\.png: image is 28x28, expected 32x32"):
        load(tmp_path / "tree", progress=False)
    (tmp_path / "tree" / "test" / "cat" / "0005.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"test/cat/0005\.png: cannot decode the image"):
        load(tmp_path / "tree", progress=False)


def test_imagefolder_needs_train_and_test(tmp_path: Path) -> None:
    write_imagefolder(tmp_path / "tree", per_class=(2, 0))
    with pytest.raises(DataError, match=r"no images under test/<class>/"):
        load(tmp_path / "tree", progress=False)
    (tmp_path / "tree" / "test" / "dog").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "tree" / "test" / "dog" / "0.png")
    with pytest.raises(DataError, match="test/ has classes that train/ lacks: dog"):
        load(tmp_path / "tree", progress=False)


# -------------------------------------------------------------------------------------------- cache


def test_second_load_reads_the_cache_and_decodes_nothing(tmp_path: Path, _cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_imagefolder(tmp_path / "tree")
    archive = tar_folder(tmp_path / "tree", tmp_path / "tree.tar.gz")
    first = load(archive, progress=False)
    entry = _cache / "arrays" / first.digest
    assert sorted(p.name for p in entry.iterdir()) == [
        "meta.json",
        "test_images.npy",
        "test_labels.npy",
        "train_images.npy",
        "train_labels.npy",
    ]
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["classes"] == ["ant", "cat", "zebra"] and meta["format"] == CACHE_FORMAT and meta["kind"] == "imagefolder-tar"
    assert [p.name for p in (_cache / "arrays").iterdir()] == [first.digest]  # no temporary folder left behind

    def fail(*args: object, **kw: object) -> None:
        raise AssertionError("decoded although the cache holds this source")

    monkeypatch.setattr(sources, "decode_images", fail)
    monkeypatch.setattr(sources, "read_tar_files", fail)
    again = load(archive, progress=False)
    np.testing.assert_array_equal(again.train.images, first.train.images)
    np.testing.assert_array_equal(again.test.labels, first.test.labels)
    assert again.train.classes == first.train.classes and again.source == first.source


def test_cache_is_keyed_by_the_source_digest(tmp_path: Path, _cache: Path) -> None:
    pixels = write_imagefolder(tmp_path / "tree")
    first = load(tar_folder(tmp_path / "tree", tmp_path / "a.tar.gz"), progress=False)
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(tmp_path / "tree" / "train" / "ant" / "0000.png")
    changed = load(tar_folder(tmp_path / "tree", tmp_path / "a.tar.gz"), progress=False)  # same name, new bytes
    assert changed.digest != first.digest
    assert sorted(p.name for p in (_cache / "arrays").iterdir()) == sorted([first.digest, changed.digest])
    assert not changed.train.images[0].any() and (first.train.images[0] == pixels["train/ant/0000.png"]).all()
    # A folder's digest follows its listing: a new file makes a new entry that includes it.
    before = load(tmp_path / "tree", progress=False)
    Image.new("RGB", (32, 32)).save(tmp_path / "tree" / "train" / "zebra" / "0100.png")
    after = load(tmp_path / "tree", progress=False)
    assert after.digest != before.digest and len(after.train) == len(before.train) + 1


def test_an_entry_of_an_older_format_is_rebuilt(tmp_path: Path, _cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, truth = official_archive(tmp_path)
    first = load(archive, progress=False)
    meta_path = _cache / "arrays" / first.digest / "meta.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "format": CACHE_FORMAT - 1}))
    calls = []
    original = sources.read_cifar_batches
    monkeypatch.setattr(sources, "read_cifar_batches", lambda *a: calls.append(1) or original(*a))
    assert_matches(load(archive, progress=False), truth)
    assert calls == [1]
    assert json.loads(meta_path.read_text())["format"] == CACHE_FORMAT
    assert [p.name for p in (_cache / "arrays").iterdir()] == [first.digest]


def test_cache_dir_argument_wins_over_the_environment(tmp_path: Path, _cache: Path) -> None:
    archive, _ = official_archive(tmp_path)
    data = load(archive, cache_dir=tmp_path / "elsewhere", progress=False)
    assert (tmp_path / "elsewhere" / "arrays" / data.digest / "meta.json").is_file()
    assert not _cache.exists()


# ------------------------------------------------------------------------------------------- splits


def labelled(counts: list[int]) -> ImageSet:
    """Images whose first pixel bytes hold their index, so that splits can be checked for identity."""
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
    np.random.default_rng(1).shuffle(labels)
    images = np.zeros((len(labels), 2, 2, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(len(labels)) % 256
    images[:, 0, 0, 1] = np.arange(len(labels)) // 256
    return ImageSet(images, labels, tuple(f"c{i}" for i in range(len(counts))))


def ids(part: ImageSet) -> np.ndarray:
    return part.images[:, 0, 0, 0].astype(np.int64) + 256 * part.images[:, 0, 0, 1].astype(np.int64)


def test_split_is_stratified_exact_disjoint_and_covering() -> None:
    data = labelled([5000] * 10)
    splits = split(data, 5000, seed=3, source="synthetic")
    assert len(splits.val) == 5000 and len(splits.train) == 45000
    assert np.bincount(splits.val.labels).tolist() == [500] * 10
    train_ids, val_ids = ids(splits.train), ids(splits.val)
    assert not set(train_ids) & set(val_ids)
    assert sorted(np.concatenate([train_ids, val_ids])) == list(range(50000))
    np.testing.assert_array_equal(splits.val.labels, data.labels[val_ids])  # labels travel with their images
    assert (np.diff(train_ids) > 0).all() and (np.diff(val_ids) > 0).all()  # source order kept
    assert splits.source == "synthetic" and splits.seed == 3 and splits.classes == data.classes


def test_split_keeps_unbalanced_proportions_with_exact_totals() -> None:
    data = labelled([100, 50, 30, 20])
    assert np.bincount(split(data, 40).val.labels).tolist() == [20, 10, 6, 4]
    uneven = split(data, 0.15)  # 30 images: shares 15, 7.5, 4.5, 3 -> remainders go to the lower classes
    assert np.bincount(uneven.val.labels).tolist() == [15, 8, 4, 3]
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.integers(0, 60, size=rng.integers(1, 12))
        n_val = int(rng.integers(0, counts.sum() + 1))
        quotas = stratified_quotas(counts, n_val)
        assert quotas.sum() == n_val and (quotas <= counts).all()
        assert (np.abs(quotas - counts * n_val / counts.sum()) < 1).all()


def test_split_is_deterministic_for_a_seed() -> None:
    data = labelled([40, 40, 40])
    a, b, c = split(data, 30, seed=7), split(data, 30, seed=7), split(data, 30, seed=8)
    np.testing.assert_array_equal(ids(a.val), ids(b.val))
    assert set(ids(a.val)) != set(ids(c.val))


def test_split_of_a_dataset_uses_its_training_set_and_source(tmp_path: Path) -> None:
    archive, truth = official_archive(tmp_path, per_batch=10)
    data = load(archive, progress=False)
    splits = split(data, 0.2)
    assert len(splits.val) == 10 and len(splits.train) == 40 and splits.source == data.source
    assert isinstance(load_test(archive, progress=False), ImageSet)
    np.testing.assert_array_equal(load_test(archive, progress=False).images, truth[2])


@pytest.mark.parametrize(
    ("val_size", "message"),
    [
        (0, r"lie in 1\.\.119, got 0"),
        (120, r"lie in 1\.\.119, got 120"),
        (-5, r"got -5"),
        (1.5, r"strictly between 0 and 1 .* got 1\.5"),
        (0.001, r"got 0\.001 \(0 images\)"),
        (True, "int count or a fraction"),
        ("10", "int count or a fraction"),
    ],
)
def test_split_rejects_impossible_sizes(val_size: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        split(labelled([40, 40, 40]), val_size)  # type: ignore[arg-type]


def test_split_rejects_bad_seeds_and_inputs() -> None:
    with pytest.raises(DataError, match="seed: must be a non-negative integer, got -1"):
        split(labelled([4, 4]), 2, seed=-1)
    with pytest.raises(DataError, match="expected a Dataset or an ImageSet, got list"):
        split([1, 2, 3], 1)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- the mini set


@pytest.fixture(scope="module")
def mini_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder per test module and worker, so that mini is decoded once."""
    return tmp_path_factory.mktemp("mini-cache")


@pytest.fixture(scope="module")
def mini(mini_cache: Path) -> Dataset:
    return load("mini", cache_dir=mini_cache, progress=False)


def test_mini_is_small_balanced_and_the_documented_file(mini: Dataset) -> None:
    assert MINI_ARCHIVE.stat().st_size <= 4 * 1024 * 1024
    assert hashlib.sha256(MINI_ARCHIVE.read_bytes()).hexdigest() == MINI_SHA256
    assert mini.digest == MINI_SHA256
    assert mini.train.classes == CIFAR10_CLASSES
    assert mini.train.images.shape == (8000, 32, 32, 3) and mini.test.images.shape == (2000, 32, 32, 3)
    assert np.bincount(mini.train.labels).tolist() == [800] * 10
    assert np.bincount(mini.test.labels).tolist() == [200] * 10
    assert 60 < mini.train.images.mean() < 200 and mini.train.images.std() > 30  # real photos, not blanks


def test_load_splits_on_mini_holds_out_ten_percent(mini: Dataset, mini_cache: Path) -> None:
    splits = load_splits("mini", cache_dir=mini_cache, progress=False)
    assert len(splits.train) == 7200 and len(splits.val) == 800
    assert np.bincount(splits.val.labels).tolist() == [80] * 10
    assert splits.source == mini.source and splits.seed == 0


def test_importing_and_loading_needs_no_torch(mini: Dataset, mini_cache: Path) -> None:
    code = (
        "import sys, json\nfrom nasx.data import load_splits\ns = load_splits('mini', progress=False)\n"
        "print(json.dumps({'n': len(s.train), 'heavy': sorted(m for m in ('torch', 'optuna', 'ray') if m in sys.modules)}))"
    )
    proc = run_python("-c", code, env={"NASX_CACHE": str(mini_cache)})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"n": 7200, "heavy": []}


def _script() -> object:
    spec = importlib.util.spec_from_file_location("make_mini_cifar10", ROOT / "scripts" / "make_mini_cifar10.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mini_script_is_deterministic_and_copies_the_first_files(tmp_path: Path) -> None:
    write_imagefolder(tmp_path / "full", per_class=(4, 3), fmt="JPEG")
    source = tar_folder(tmp_path / "full", tmp_path / "full.tar.gz", arcname="cifar")
    script = _script()
    first = script.make_mini(source, tmp_path / "a" / "mini.tar.gz", 2, 1)  # type: ignore[attr-defined]
    os.utime(source, (time.time() + 5, time.time() + 5))
    second = script.make_mini(source, tmp_path / "b" / "mini.tar.gz", 2, 1)  # type: ignore[attr-defined]
    blob = (tmp_path / "a" / "mini.tar.gz").read_bytes()
    assert blob == (tmp_path / "b" / "mini.tar.gz").read_bytes()
    assert first == second == hashlib.sha256(blob).hexdigest()
    with tarfile.open(tmp_path / "a" / "mini.tar.gz") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == [
            f"mini_cifar10/{s}/{c}/{f}"
            for s, files in (("train", ("0000.jpg", "0001.jpg")), ("test", ("0000.jpg",)))
            for c in ("ant", "cat", "zebra")
            for f in files
        ]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(946684800, 0, 0, "", "")}
        original = (tmp_path / "full" / "train" / "cat" / "0001.jpg").read_bytes()
        assert tar.extractfile("mini_cifar10/train/cat/0001.jpg").read() == original  # type: ignore[union-attr]
    data = load(tmp_path / "a" / "mini.tar.gz", progress=False)
    assert np.bincount(data.train.labels).tolist() == [2, 2, 2]
    with pytest.raises(DataError, match="train/ant has 4 images, fewer than the 5 asked for"):
        script.make_mini(source, tmp_path / "c.tar.gz", 5, 1)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------- errors


def test_unknown_and_missing_sources_say_what_was_expected(tmp_path: Path) -> None:
    for source in ("cifar100", tmp_path / "missing.tar.gz", ""):
        with pytest.raises(DataError, match=r"neither 'mini', 'download' nor an existing file or folder; expected .*ImageFolder"):
            load(source, progress=False)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt is not a \.tar\.gz/\.tgz/\.tar archive; expected 'mini'"):
        load(tmp_path / "notes.txt", progress=False)
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match=r"broken\.tar\.gz: not a readable tar archive"):
        load(tmp_path / "broken.tar.gz", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no images under train/<class>/; expected"):
        load(tmp_path / "empty", progress=False)
    with pytest.raises(DataError, match="must be a string or a path, got int"):
        load(3, progress=False)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ the real archive


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason=f"{SHARED_ARCHIVE} is not on this machine")
def test_shared_cifar10_archive_decodes_once_and_contains_the_mini_set(mini: Dataset) -> None:
    data = load(SHARED_ARCHIVE, progress=False)
    assert data.train.images.shape == (50000, 32, 32, 3) and data.test.images.shape == (10000, 32, 32, 3)
    assert data.train.classes == CIFAR10_CLASSES
    assert np.bincount(data.train.labels).tolist() == [5000] * 10
    assert np.bincount(data.test.labels).tolist() == [1000] * 10
    seconds = []
    for _ in range(3):  # the best of three: the other xdist worker may be busy
        start = time.perf_counter()
        again = load(SHARED_ARCHIVE, progress=False)
        seconds.append(time.perf_counter() - start)
    assert min(seconds) < 3.0, seconds  # decoding takes tens of seconds; a cached load reads and CRC-checks 184 MB
    np.testing.assert_array_equal(again.train.images, data.train.images)
    for label in range(10):  # mini = the first 800 train / 200 test images of each class, same JPEG bytes
        full_train = data.train.images[data.train.labels == label][:800]
        full_test = data.test.images[data.test.labels == label][:200]
        np.testing.assert_array_equal(mini.train.images[mini.train.labels == label], full_train)
        np.testing.assert_array_equal(mini.test.images[mini.test.labels == label], full_test)
