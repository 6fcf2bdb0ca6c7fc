"""DeviceLoader: layout, normalization, order, determinism, and each augmentation checked against its definition."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasx.data.loader import CIFAR10_MEAN, CIFAR10_STD, Augment, DeviceLoader, stratified_fraction
from nasx.data.types import DataError, ImageSet

MEAN = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)


def images(n: int = 40, side: int = 16, seed: int = 0) -> ImageSet:
    """Random images whose label is their index, so every output sample names its source."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)
    return ImageSet(pixels, np.arange(n, dtype=np.int64), tuple(str(i) for i in range(n)))


def labelled(n: int, classes: int = 10) -> ImageSet:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    return ImageSet(pixels, np.arange(n, dtype=np.int64) % classes, tuple(str(i) for i in range(classes)))


def nchw(data: ImageSet) -> torch.Tensor:
    return torch.from_numpy(np.array(data.images)).permute(0, 3, 1, 2)


def normalize(u8: torch.Tensor) -> torch.Tensor:
    return (u8.float() / 255 - MEAN) / STD


def to_u8(x: torch.Tensor) -> torch.Tensor:
    """Invert the normalization exactly (every value came from a uint8)."""
    return torch.round((x * STD + MEAN) * 255).to(torch.uint8)


def one_epoch(loader: DeviceLoader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_shapes_dtypes_device_and_length() -> None:
    loader = DeviceLoader(images(40), 16, drop_last=False)
    batches = list(loader)
    assert len(loader) == len(batches) == 3 and loader.num_samples == 40
    assert [len(y) for _, y in batches] == [16, 16, 8]
    x, y = batches[0]
    assert x.shape == (16, 3, 16, 16) and x.dtype == torch.float32 and x.is_contiguous()
    assert y.dtype == torch.int64 and x.device == y.device == torch.device("cpu")
    dropping = DeviceLoader(images(40), 16)
    assert len(dropping) == len(list(dropping)) == 2


def test_eval_is_stored_order_unaugmented_and_normalized_by_the_formula() -> None:
    data = images(37)
    loader = DeviceLoader(data, 8, train=False, augment=Augment(crop_padding=4, flip=True, cutout=8))
    assert len(loader) == 5
    x, y = one_epoch(loader)
    assert torch.equal(y, torch.arange(37))
    torch.testing.assert_close(x, normalize(nchw(data)), rtol=0, atol=1e-5)
    again, _ = one_epoch(loader)
    assert torch.equal(x, again)


def test_custom_mean_std() -> None:
    data = images(4)
    x, _ = next(iter(DeviceLoader(data, 4, train=False, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))))
    want = (nchw(data).float() / 255 - 0.5) / torch.tensor([0.25, 0.5, 1.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, want, rtol=0, atol=1e-5)


def test_training_epoch_is_a_permutation() -> None:
    data = labelled(103)
    _, y = one_epoch(DeviceLoader(data, 16, drop_last=False, seed=3))
    assert torch.equal(torch.bincount(y, minlength=10), torch.from_numpy(np.bincount(data.labels, minlength=10)))
    ids = torch.cat([y for _, y in DeviceLoader(images(50), 16, seed=3)])
    assert len(ids) == 48 and len(set(ids.tolist())) == 48
    assert not torch.equal(ids, torch.arange(48))


def test_same_seed_and_epoch_same_batches_other_epoch_other_order() -> None:
    def run(seed: int, epoch: int | None = None, skip: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
        loader = DeviceLoader(images(40), 8, seed=seed, augment=Augment(cutout=6))
        for _ in range(skip):  # epochs that ran before: the next one is epoch `skip`
            list(loader)
        if epoch is not None:
            loader.set_epoch(epoch)
        return list(loader)

    def same(a: list, b: list) -> bool:
        return all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b, strict=True))

    assert same(run(7, epoch=2), run(7, epoch=2))
    assert same(run(7, epoch=2), run(7, skip=2))  # resume at epoch 2 == running epochs 0, 1 first
    assert same(run(7, epoch=2), run(7, epoch=2, skip=5))
    order = torch.cat([y for _, y in run(7, epoch=2)])
    assert not torch.equal(order, torch.cat([y for _, y in run(7, epoch=3)]))
    assert not torch.equal(order, torch.cat([y for _, y in run(8, epoch=2)]))


def test_epoch_advances_and_set_epoch_rejects_bad_values() -> None:
    loader = DeviceLoader(images(16), 8)
    assert loader.epoch == 0
    iter(loader)
    assert loader.epoch == 1
    loader.set_epoch(10)
    assert loader.epoch == 10
    with pytest.raises(DataError, match="epoch"):
        loader.set_epoch(-1)


def _offsets(out: torch.Tensor, padded: torch.Tensor, side: int) -> list[tuple[int, int]]:
    span = padded.shape[-1] - side + 1
    return [(dy, dx) for dy in range(span) for dx in range(span) if torch.equal(padded[:, dy : dy + side, dx : dx + side], out)]


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_random_crop_is_a_window_of_the_padded_image(mode: str, channels_last: bool) -> None:
    data = images(24)
    source = nchw(data)
    padded = F.pad(source.float(), (4, 4, 4, 4), mode="constant" if mode == "zeros" else "reflect").to(torch.uint8)
    aug = Augment(crop_padding=4, flip=False, padding_mode=mode)  # type: ignore[arg-type]
    x, y = one_epoch(DeviceLoader(data, 8, augment=aug, seed=1, channels_last=channels_last))
    found = set()
    for out, i in zip(to_u8(x), y.tolist(), strict=True):
        hits = _offsets(out, padded[i], 16)
        assert hits, f"sample {i} is no 16x16 window of its padded source"
        found.update(hits)
    assert len(found) > 5  # the offsets really vary


def test_flip_gives_the_image_or_its_mirror_and_both_occur() -> None:
    data = images(32)
    source = nchw(data)
    x, y = one_epoch(DeviceLoader(data, 8, augment=Augment(crop_padding=0, flip=True), seed=2))
    mirrored = 0
    for out, i in zip(to_u8(x), y.tolist(), strict=True):
        if torch.equal(out, source[i].flip(2)):
            mirrored += 1
        else:
            assert torch.equal(out, source[i])
    assert 0 < mirrored < 32


def test_crop_and_flip_together() -> None:
    data = images(24)
    padded = F.pad(nchw(data), (4, 4, 4, 4))
    x, y = one_epoch(DeviceLoader(data, 8, augment=Augment(crop_padding=4, flip=True), seed=5))
    kinds = set()
    for out, i in zip(to_u8(x), y.tolist(), strict=True):
        plain, mirror = _offsets(out, padded[i], 16), _offsets(out.flip(2), padded[i], 16)
        assert plain or mirror
        kinds.add(bool(mirror))
    assert kinds == {False, True}


@pytest.mark.parametrize("side", [6, 7])
def test_cutout_zeroes_a_square_centred_in_the_image_and_clipped(side: int) -> None:
    data = images(64)
    want = normalize(nchw(data))
    x, y = one_epoch(DeviceLoader(data, 16, augment=Augment(crop_padding=0, flip=False, cutout=side), seed=4))
    # every patch that some centre in the image can produce: [c - side // 2, c - side // 2 + side) clipped
    allowed = {(max(0, c - side // 2), min(16, c - side // 2 + side)) for c in range(16)}
    clipped = full = 0
    for out, i in zip(x, y.tolist(), strict=True):
        zero = (out == 0).all(0)
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        r, c = (int(rows[0]), int(rows[-1]) + 1), (int(cols[0]), int(cols[-1]) + 1)
        assert r in allowed and c in allowed
        assert zero[r[0] : r[1], c[0] : c[1]].all() and int(zero.sum()) == (r[1] - r[0]) * (c[1] - c[0])
        keep = ~zero
        torch.testing.assert_close(out[:, keep], want[i][:, keep], rtol=0, atol=1e-5)
        if (r[1] - r[0], c[1] - c[0]) == (side, side):
            full += 1
        else:
            clipped += 1
    assert full and clipped


def test_channels_last_same_values_other_layout() -> None:
    data = images(40)
    aug = Augment(crop_padding=4, flip=True, cutout=5)
    plain = list(DeviceLoader(data, 16, augment=aug, seed=9))
    last = list(DeviceLoader(data, 16, augment=aug, seed=9, channels_last=True))
    for (xa, ya), (xb, yb) in zip(plain, last, strict=True):
        assert xb.is_contiguous(memory_format=torch.channels_last) and not xb.is_contiguous()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    x, _ = next(iter(DeviceLoader(data, 16, train=False, channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("train", [False, True])
def test_resolution_resizes_the_augmented_batch(train: bool) -> None:
    data = images(16)
    full = next(iter(DeviceLoader(data, 8, train=train, seed=3)))[0]
    small = next(iter(DeviceLoader(data, 8, train=train, seed=3, resolution=8)))[0]
    assert small.shape == (8, 3, 8, 8)
    torch.testing.assert_close(small, F.interpolate(full, size=(8, 8), mode="bilinear", antialias=True))
    half = next(iter(DeviceLoader(data, 8, train=train, seed=3, resolution=8, dtype=torch.bfloat16)))[0]
    assert half.dtype == torch.bfloat16 and torch.equal(half, small.to(torch.bfloat16))


def test_fraction_is_a_seeded_stratified_subset() -> None:
    data = labelled(200)  # 20 per class
    loader = DeviceLoader(data, 16, train=False, fraction=0.25, seed=1)
    assert loader.num_samples == 50
    _, y = one_epoch(loader)
    assert torch.equal(torch.bincount(y, minlength=10), torch.full((10,), 5))
    pick = stratified_fraction(data.labels, 0.25, 1)
    assert np.array_equal(pick, stratified_fraction(data.labels, 0.25, 1))
    assert not np.array_equal(pick, stratified_fraction(data.labels, 0.25, 2))
    x, _ = one_epoch(loader)
    torch.testing.assert_close(x, normalize(nchw(data.subset(pick))), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -4}, "batch_size"),
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"seed": -1}, "seed"),
        ({"resolution": 0}, "resolution"),
        ({"dtype": torch.int64}, "dtype"),
        ({"mean": (0.5, 0.5)}, "mean"),
        ({"std": (0.2, 0.0, 0.2)}, "std"),
        ({"batch_size": 100}, "batch_size"),  # drop_last with fewer images than one batch
        ({"augment": Augment(crop_padding=16, padding_mode="reflect")}, "crop_padding"),
    ],
)
def test_invalid_arguments_name_the_field(kwargs: dict, field: str) -> None:
    args = {"batch_size": 8, **kwargs}
    with pytest.raises(DataError, match=field):
        DeviceLoader(images(40), **args)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"cutout": -1}, "cutout"), ({"crop_padding": -2}, "crop_padding"), ({"padding_mode": "edge"}, "padding_mode")],
)
def test_invalid_augment_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(DataError, match=rf"augment\.{field}: .*got"):
        Augment(**kwargs)


def test_read_only_arrays_upload_without_warnings() -> None:
    data = images(20)
    data.images.setflags(write=False)  # what a memory-mapped cache hands over
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, _ = one_epoch(DeviceLoader(data, 8, train=False))
    torch.testing.assert_close(x, normalize(nchw(data)), rtol=0, atol=1e-5)
