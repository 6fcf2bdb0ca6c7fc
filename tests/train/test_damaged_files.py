"""Files damaged on disk (as by a power cut or a full disk) and hostile files: never silently used.

- A data-cache entry that is cut short, zero-filled, bit-flipped, missing a file or holding a garbled
  ``meta.json`` is detected (sizes, CRC-32s), reported as a warning and rebuilt from the source.
- A ``checkpoint.pt`` that is damaged is moved aside and the run starts afresh, with a warning; one
  that is intact but not resumable (another run's, not a checkpoint, a pickle that would run code)
  is a :class:`CheckpointError` naming the file, and the file is left alone and never executed.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import RECIPE, SPLITS, TINY, assert_matches, official_archive

import nasx.data.sources as sources
from nasx.data import load
from nasx.errors import NasxError
from nasx.train import CheckpointError, Fidelity, train
from nasx.train.loop import CHECKPOINT, DAMAGED_CHECKPOINT


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("NASX_CACHE", str(cache))
    return cache


# ---- the data cache ---------------------------------------------------------------------------------


def _cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zero_the_tail(path: Path) -> None:
    """Same size, last 4 KiB zeroed: what a crash can leave of blocks that never reached the disk."""
    body = bytearray(path.read_bytes())
    body[-4096:] = bytes(4096)
    path.write_bytes(bytes(body))


def _flip_a_byte(path: Path) -> None:
    body = bytearray(path.read_bytes())
    body[-1] ^= 0x01
    path.write_bytes(bytes(body))


def _flip_inside_a_tensor(path: Path) -> None:
    """Flip one bit in the middle of the largest member of the zip file that torch.save writes."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda i: i.compress_size)
    body = bytearray(path.read_bytes())
    name_len, extra_len = (
        int.from_bytes(body[member.header_offset + 26 : member.header_offset + 28], "little"),
        int.from_bytes(body[member.header_offset + 28 : member.header_offset + 30], "little"),
    )
    body[member.header_offset + 30 + name_len + extra_len + member.compress_size // 2] ^= 0x01
    path.write_bytes(bytes(body))


DAMAGE = {
    "train-images-cut-in-half": ("train_images.npy", _cut_in_half),
    "train-images-tail-zeroed": ("train_images.npy", _zero_the_tail),  # loads without error: only the CRC sees it
    "test-labels-one-bit-flipped": ("test_labels.npy", _flip_a_byte),
    "train-labels-deleted": ("train_labels.npy", Path.unlink),
    "meta-json-cut-in-half": ("meta.json", _cut_in_half),
    "meta-json-emptied": ("meta.json", lambda p: p.write_bytes(b"")),
}


@pytest.mark.parametrize(("name", "damage"), DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_cache_entry_is_detected_reported_and_rebuilt(
    tmp_path: Path, _cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, name: str, damage
) -> None:
    archive, truth = official_archive(tmp_path, per_batch=200)
    first = load(archive, progress=False)
    entry = _cache / "arrays" / first.digest
    damage(entry / name)
    decoded = []
    original = sources.read_cifar_batches
    monkeypatch.setattr(sources, "read_cifar_batches", lambda *a: decoded.append(1) or original(*a))
    with caplog.at_level(logging.WARNING, logger="nasx.data"):
        again = load(archive, progress=False)
    assert_matches(again, truth)  # the right pixels, not the damaged ones
    assert decoded == [1], "the entry was not rebuilt from the source"
    assert any(str(entry) in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records), caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nasx.data"):
        assert_matches(load(archive, progress=False), truth)  # the rebuilt entry is sound and used
    assert decoded == [1] and not caplog.records
    assert sorted(p.name for p in (_cache / "arrays").iterdir()) == [first.digest]  # nothing left aside


def test_cache_entries_record_the_crc_of_every_array(tmp_path: Path, _cache: Path) -> None:
    import zlib

    archive, _ = official_archive(tmp_path)
    data = load(archive, progress=False)
    meta = json.loads((_cache / "arrays" / data.digest / "meta.json").read_text())
    assert meta["crc32"]["train_images"] == zlib.crc32(np.ascontiguousarray(data.train.images).tobytes())
    assert sorted(meta["crc32"]) == ["test_images", "test_labels", "train_images", "train_labels"]


# ---- training checkpoints ----------------------------------------------------------------------------


@functools.cache
def _fresh_weights() -> dict[str, torch.Tensor]:
    return train(TINY, SPLITS, RECIPE, device="cpu", seed=1).model.state_dict()


def _interrupted_run(run_dir: Path) -> None:
    """Two of three epochs done and checkpointed."""

    def stop(m):
        if m.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TINY, SPLITS, RECIPE, device="cpu", seed=1, run_dir=run_dir, callback=stop)


@pytest.mark.parametrize(
    "damage",
    [_cut_in_half, _zero_the_tail, _flip_inside_a_tensor, lambda p: p.write_bytes(b"")],
    ids=["cut-in-half", "tail-zeroed", "one-bit-flipped", "emptied"],
)
def test_a_damaged_checkpoint_is_moved_aside_and_the_run_starts_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage
) -> None:
    _interrupted_run(tmp_path)
    checkpoint = tmp_path / CHECKPOINT
    damage(checkpoint)
    damaged = checkpoint.read_bytes()
    with caplog.at_level(logging.WARNING, logger="nasx.train"):
        result = train(TINY, SPLITS, RECIPE, device="cpu", seed=1, run_dir=tmp_path)
    assert result.resumed_from == 0 and result.epochs == 3, "a damaged checkpoint must not be resumed"
    assert (tmp_path / DAMAGED_CHECKPOINT).read_bytes() == damaged  # kept for a look, not deleted
    assert any(str(checkpoint) in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records), caplog.text
    want, got = _fresh_weights(), result.model.state_dict()  # what a run with this seed gives
    assert all(torch.allclose(want[k].float(), got[k].float(), atol=1e-6) for k in want)
    assert train(TINY, SPLITS, RECIPE, device="cpu", seed=1, run_dir=tmp_path).resumed_from == 3  # the new one is sound


def test_a_flipped_weight_is_what_torch_load_alone_would_have_resumed(tmp_path: Path) -> None:
    """Why the CRC check: torch.load(weights_only=True) reads a bit-flipped checkpoint without complaint."""
    _interrupted_run(tmp_path)
    checkpoint = tmp_path / CHECKPOINT
    before = torch.load(checkpoint, weights_only=True)
    _flip_inside_a_tensor(checkpoint)
    after = torch.load(checkpoint, weights_only=True)  # no error...
    assert after["key"] == before["key"]  # ...it still claims to be this run's...
    changed = [a for a, b in zip(_tensors(before), _tensors(after), strict=True) if not torch.equal(a, b)]
    assert len(changed) == 1  # ...with one number silently different


def _tensors(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for k in sorted(value, key=str) for t in _tensors(value[k])]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []


class _WritesAMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_a_malicious_pickle_checkpoint_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    checkpoint = run_dir / CHECKPOINT
    torch.save({"key": "x", "model": _WritesAMarker(marker)}, checkpoint)  # a sound zip file: not "damaged"
    body = checkpoint.read_bytes()
    with pytest.raises(CheckpointError) as info:
        train(TINY, SPLITS, RECIPE, Fidelity(epochs=1), device="cpu", run_dir=run_dir)
    message = str(info.value)
    assert isinstance(info.value, NasxError) and message.startswith(f"{checkpoint}: refused to load")
    assert "weights_only=True" in message and "system" in message, message
    assert not marker.exists(), "the pickle ran"
    assert checkpoint.read_bytes() == body and not (run_dir / DAMAGED_CHECKPOINT).exists()  # left for the user to look at
    torch.load(checkpoint, weights_only=False)  # the payload is live: an unsafe load runs it
    assert marker.exists()


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ([1, 2, 3], "expected the keys key, model, optimizer, metrics, rng, got list"),
        ({"model": {}}, "expected the keys key, model, optimizer, metrics, rng, got ['model']"),
        ({"key": "x", "model": {}, "optimizer": {}, "metrics": [], "rng": torch.zeros(1)}, "belongs to another run"),
    ],
    ids=["a-list", "missing-keys", "another-run"],
)
def test_an_intact_file_that_is_not_this_runs_checkpoint_is_a_clear_error(tmp_path: Path, content, phrase: str) -> None:
    torch.save(content, tmp_path / CHECKPOINT)
    with pytest.raises(CheckpointError) as info:
        train(TINY, SPLITS, RECIPE, Fidelity(epochs=1), device="cpu", run_dir=tmp_path)
    assert str(info.value).startswith(f"{tmp_path / CHECKPOINT}: ") and phrase in str(info.value)
    assert (tmp_path / CHECKPOINT).is_file()
