"""Every zoo network takes a real optimiser step through nasx's training loop (issue: auxiliary heads broke training).

CIFAR-sized networks at batch 2, ImageNet-sized ones at batch 1, on random images of their own input
size: the loss (auxiliary heads included) is finite and the step moves the weights, the auxiliary
heads' among them. Evaluation afterwards sees the logits only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nasx import zoo
from nasx.data.types import ImageSet, Splits
from nasx.models.network import build_network
from nasx.train.loop import evaluate, train
from nasx.train.recipe import Fidelity, Recipe


def _images(net, n: int, seed: int) -> ImageSet:
    rng = np.random.default_rng(seed)
    c, r, k = net.input.channels, net.input.resolution, net.input.classes
    labels = (np.arange(n) % k).astype(np.int64)  # distinct classes: a one-class set is refused
    return ImageSet(rng.integers(0, 256, (n, r, r, c), dtype=np.uint8), labels, tuple(map(str, range(k))))


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_network_takes_an_optimizer_step(name: str) -> None:
    net = zoo.get(name)
    batch = 2 if net.input.resolution <= 64 else 1
    data = Splits(_images(net, 2, 0), _images(net, 0, 1), source="random", seed=0)  # ImageNet-sized: 2 steps of 1
    recipe = Recipe(batch_size=batch, lr=0.01, precision="fp32", channels_last=False, augment={"crop_padding": 0, "flip": False})
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in build_network(net).state_dict().items() if v.is_floating_point()}
    result = train(net, data, recipe, Fidelity(epochs=1), seed=0, device="cpu")
    assert math.isfinite(result.metrics[0].train_loss)
    after = result.model.state_dict()
    params = {k for k, _ in result.model.named_parameters()}
    moved = {k for k in params if not torch.equal(before[k], after[k])}
    # most weights move (FractalNet's local drop-path legitimately skips whole columns in one step)
    assert len(moved) >= 0.6 * len(params), sorted(params - moved)[:10]
    head = {k for k in params if k.startswith("head.")}
    assert head and head <= moved
    aux = {k for k in params if k.startswith("aux_heads.")}
    assert aux <= moved, f"auxiliary head weights did not move: {sorted(aux - moved)[:5]}"
    if aux:  # evaluation uses the logits alone
        _, acc = evaluate(result.model, data.train, batch_size=batch)
        assert 0.0 <= acc <= 1.0
