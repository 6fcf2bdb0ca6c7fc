"""Helpers shared by the test modules (``from helpers import ...``): the tests' own data, networks and studies.

conftest.py holds fixtures only; everything a test module imports lives here, in sections:
the repository and the zoo, official-format CIFAR files and ImageFolder trees, a tiny training
problem, a tiny search space and study (with worker processes), and a synthetic finished study
for the report tests.
"""

from __future__ import annotations

import functools
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from PIL import Image

from nasx import zoo
from nasx.data import CIFAR10_CLASSES, Dataset
from nasx.data.types import ImageSet, Splits
from nasx.models.complexity import complexity
from nasx.search.config import StudyConfig
from nasx.search.study import open_study, study_dir
from nasx.search.trial import finish, record_genotype
from nasx.space import Network
from nasx.train import Recipe

# ---- the repository and the zoo -------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
ZOO_NAMES = zoo.names()

# complexity() is a pure function of the (hashable) genotype: tests share one result per network
# and worker instead of re-tracing the zoo in every test that needs its figures.
cached_complexity = functools.cache(complexity)


def run_python(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGV...`` in a fresh interpreter from the repository root and capture its output."""
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ---- official-format CIFAR-10 files (the tests write their own) -----------------------------------


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes pickles the way Python 2's cPickle wrote the official batches: byte strings as
    (SHORT_)BINSTRING and numpy's ``numpy.core.multiarray._reconstruct`` (protocol 2)."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        self.save_bytes(obj.encode("latin-1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_dumps(obj: object) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def random_set(rng: np.random.Generator, n: int, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), rng.integers(0, classes, size=n).astype(np.int64)


def write_batches(
    folder: Path, *, per_batch: int = 6, n_test: int = 7, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The seven official files in ``folder`` (like cifar-10-batches-py/); returns the NHWC truth."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    names = [name.encode() for name in CIFAR10_CLASSES]
    meta = {b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_dumps(meta))
    train_images, train_labels = random_set(rng, 5 * per_batch)
    test_images, test_labels = random_set(rng, n_test)

    def batch(images: np.ndarray, labels: np.ndarray, label: str) -> dict[bytes, object]:
        rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # row-major CHW: 1024 R, 1024 G, 1024 B
        return {
            b"batch_label": label.encode(),
            b"labels": [int(x) for x in labels],
            b"data": np.ascontiguousarray(rows),
            b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(images))],
        }

    for b in range(5):
        part = slice(b * per_batch, (b + 1) * per_batch)
        body = batch(train_images[part], train_labels[part], f"training batch {b + 1} of 5")
        (folder / f"data_batch_{b + 1}").write_bytes(py2_dumps(body))
    (folder / "test_batch").write_bytes(py2_dumps(batch(test_images, test_labels, "testing batch 1 of 1")))
    (folder / "readme.html").write_text("<html></html>")
    return train_images, train_labels, test_images, test_labels


def tar_folder(folder: Path, archive: Path, *, arcname: str | None = None) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=arcname if arcname is not None else folder.name)
    return archive


def official_archive(tmp_path: Path, **kw: int) -> tuple[Path, tuple[np.ndarray, ...]]:
    truth = write_batches(tmp_path / "src" / "cifar-10-batches-py", **kw)
    return tar_folder(tmp_path / "src" / "cifar-10-batches-py", tmp_path / "cifar-10-python.tar.gz"), truth


def assert_matches(dataset: Dataset, truth: tuple[np.ndarray, ...]) -> None:
    train_images, train_labels, test_images, test_labels = truth
    np.testing.assert_array_equal(dataset.train.images, train_images)
    np.testing.assert_array_equal(dataset.train.labels, train_labels)
    np.testing.assert_array_equal(dataset.test.images, test_images)
    np.testing.assert_array_equal(dataset.test.labels, test_labels)
    assert dataset.train.labels.dtype == np.int64 and dataset.train.images.dtype == np.uint8


# ---- ImageFolder trees --------------------------------------------------------------------------

FOLDER_CLASSES = ("zebra", "cat", "ant")  # written out of order: labels follow the sorted order


def write_imagefolder(
    root: Path, *, per_class: tuple[int, int] = (3, 2), seed: int = 0, fmt: str = "PNG"
) -> dict[str, np.ndarray]:
    """``root/{train,test}/<class>/NNNN.<ext>`` with random RGB images; returns path -> pixels."""
    rng = np.random.default_rng(seed)
    pixels = {}
    suffix = ".png" if fmt == "PNG" else ".jpg"
    for split_name, count in zip(("train", "test"), per_class, strict=True):
        for cls in FOLDER_CLASSES:
            folder = root / split_name / cls
            folder.mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(image).save(folder / f"{i:04d}{suffix}", format=fmt)
                pixels[f"{split_name}/{cls}/{i:04d}{suffix}"] = image
    (root / "train" / "cat" / "notes.txt").write_text("not an image, ignored")
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0junk")
    return pixels


# ---- a tiny training problem: two classes a small CNN separates in one epoch ----------------------

TINY = Network.from_string("input(resolution=8, classes=2) | stem[conv(out=8)] | 1*residual()@8")
RECIPE = Recipe(batch_size=32, lr=0.05, epochs=3, precision="fp32", channels_last=False, eval_batch_size=64)


def two_class_images(n: int, seed: int) -> ImageSet:
    """Two classes a small CNN separates at once: bright images with a vertical bar, dark ones with a horizontal bar."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = rng.integers(0, 60, (n, 8, 8, 3)).astype(np.uint8)
    x[labels == 1] += 120
    x[labels == 1, :, 3:5] = 255
    x[labels == 0, 3:5, :] = 255
    return ImageSet(x, labels.astype(np.int64), ("a", "b"))


SPLITS = Splits(train=two_class_images(256, 0), val=two_class_images(128, 1), source="synthetic", seed=0)


# ---- a tiny design space and study for search tests ------------------------------------------------


class TinySpace:
    """stem width x residual depth x an optional SE, at 32x32: 3 * 3 * 2 = 18 points."""

    def sample(self, trial: Any) -> Network:
        width = trial.suggest_categorical("stem.out", [4, 8, 16])
        depth = trial.suggest_int("stages.0.depth", 1, 3)
        se = trial.suggest_categorical("stages.0.block.se", [0.0, 0.25])
        return Network.from_string(f"stem[conv(out={width})] | {depth}*residual(se={se})@{width}")

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        return {"tiny": 1}


def tiny_data(folder: Path) -> Path:
    src = folder / "cifar-10-batches-py"
    if not src.exists():
        write_batches(src, per_batch=40, n_test=10)
    return src


def tiny_config(folder: Path, **overrides: Any) -> StudyConfig:
    base: dict[str, Any] = {
        "name": "tiny",
        "space": "tiny",
        "data": {"source": str(tiny_data(folder)), "val_size": 40},
        "objectives": ["val_acc", "macs"],
        "sampler": {"kind": "random", "seed": 0},
        "budget": {"trials": 4},
        "fidelity": {"epochs": 3},
        "recipe": {"batch_size": 32, "eval_batch_size": 64, "precision": "fp32", "channels_last": False, "lr": 0.05},
        "early_stopping": {"kind": "asha", "grace": 1, "reduction": 2},
        "device": "cpu",
    }
    base.update(overrides)
    return StudyConfig.model_validate(base)


WORKER_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from helpers import TinySpace, tiny_config
from nasx.search import run_search

cfg = tiny_config(Path({folder!r}), **{overrides!r})
ready = Path({ready!r})
(ready / {name!r}).touch()
deadline = time.time() + 120
while len(list(ready.iterdir())) < {workers}:  # start together, once all have imported torch and optuna
    if time.time() > deadline:
        sys.exit("the other workers did not start")
    time.sleep(0.05)
run_search(cfg, root=Path({folder!r}) / "runs", space=TinySpace(), dry_run_s={dry_run_s!r})
"""


@contextmanager
def workers(folder: Path, n: int, dry_run_s: float, **overrides: Any) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``n`` search processes on the study ``tiny_config(folder, **overrides)``, released at the same moment;
    any still running when the block ends are killed.

    Trials sleep ``dry_run_s`` instead of training (``run_search(dry_run_s=...)``).
    """
    tiny_data(folder)  # once, before the workers race to write it
    ready = folder / "ready"
    ready.mkdir(parents=True, exist_ok=True)
    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "NASX_CACHE": str(folder / "cache")}
    procs = []
    for i in range(n):
        script = WORKER_SCRIPT.format(
            tests=tests, folder=str(folder), overrides=overrides, ready=str(ready), name=f"w{i}", workers=n, dry_run_s=dry_run_s
        )
        procs.append(subprocess.Popen([sys.executable, "-c", script], env=env))
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def trained_per_digest(rows: list[dict[str, Any]]) -> Counter[str]:
    """How many trials of each genotype were trained to a result (complete or stopped early)."""
    return Counter(r["digest"] for r in rows if r["state"] in ("complete", "stopped"))


# ---- a synthetic finished study for the report tests (written through nasx's own trial recording) --

HOSTILE = "<script>alert(1)</script>"


def synthetic_accuracy(width: int, depth: int, se: float) -> float:
    """Made-up but deterministic: wider, deeper and SE are better."""
    return 0.30 + 0.01 * width + 0.03 * depth + 0.1 * se


def make_study(
    folder: Path, name: str = "synthetic", trials: int = 12, seed: int = 0, baselines: tuple[str, ...] = (), **overrides: Any
) -> StudyConfig:
    """A finished study of ``trials`` candidates over the tiny space (some stopped, one failed), one baseline named
    ``HOSTILE`` and one infeasible draw, recorded exactly as a search records them."""
    cfg = tiny_config(folder, name=name, baselines=list(baselines), **overrides)
    study = open_study(cfg, study_dir(cfg, folder / "runs"), "synthetic")
    sampler_rng = optuna.samplers.RandomSampler(seed=seed)
    study.sampler = sampler_rng
    for i in range(trials):
        trial = study.ask()
        width = trial.suggest_categorical("stem.out", [4, 8, 16])
        depth = trial.suggest_int("stages.0.depth", 1, 3)
        se = trial.suggest_categorical("stages.0.block.se", [0.0, 0.25])
        net = Network.from_string(f"stem[conv(out={width})] | {depth}*residual(se={se})@{width}")
        params, macs = record_genotype(trial, net, "candidate")
        acc = synthetic_accuracy(width, depth, se)
        if i % 5 == 3:  # stopped early at epoch 1, with a tempting accuracy that must not join the front
            trial.set_user_attr("curve", [0.99])
            finish(study, trial, "stopped", None, "stopped early at epoch 1")
        elif i == trials - 1:
            trial.set_user_attr("curve", [0.2])
            finish(study, trial, "failed", None, "non_finite_loss in epoch 2: loss is nan")
        else:
            trial.set_user_attr("curve", [acc - 0.1, acc - 0.05, acc])
            finish(study, trial, "complete", (acc, float(macs)), None)
    trial = study.ask()
    net = Network.from_string("stem[conv(out=8)] | 2*residual()@8")
    _, macs = record_genotype(trial, net, "baseline", HOSTILE)
    trial.set_user_attr("curve", [0.40, 0.45, 0.5])
    finish(study, trial, "complete", (0.5, float(macs)), None)
    trial = study.ask()
    trial.suggest_categorical("stem.out", [4, 8, 16])
    trial.set_user_attr("role", "candidate")
    finish(study, trial, "infeasible", None, "MACs 99 > max_macs 1")
    return cfg


def config_file_text(cfg: StudyConfig) -> str:
    """The study as a config file the CLI loads: the tiny space is given in code, so the file names a real one
    (report, status and retrain read the record and never sample the space)."""
    return json.dumps({**cfg.model_dump(mode="json"), "space": "macro-cifar"})  # JSON is YAML
