"""Zero-cost proxies (nasx.train.proxies): each on tiny networks, against a property it must have."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nasx.data.types import ImageSet
from nasx.models import build_network
from nasx.models.complexity import complexity
from nasx.space import Network
from nasx.train import proxies as px

TINY = "stem[conv(out=8)] | 2*residual(shortcut=pad)@8 | 1*residual(shortcut=pad)@16/2"


def images(seed: int, n: int = 32, side: int = 16) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8), rng.integers(0, 10, n), tuple("abcdefghij"))


def batches(seed: int, count: int = 2, size: int = 16) -> list[px.Batch]:
    return px.proxy_batches(images(seed), batches=count, batch_size=size, seed=seed)


def with_aux() -> Network:
    """A micro-cell network with an auxiliary head: its forward returns a tuple in train mode."""
    cell = "sep3@0+skip@1 | max3@0+sep3@2 ; concat 3"
    return Network.from_dict(
        {
            "input": {"channels": 3, "resolution": 16, "classes": 10},
            "stem": [{"kind": "conv", "out": 12, "act": "none"}],
            "stages": [
                {"block": {"kind": "cell", "normal": cell, "reduce": cell}, "depth": 1, "channels": 8},
                {"block": {"kind": "cell", "normal": cell, "reduce": cell}, "depth": 1, "channels": 16, "stride": 2, "aux": {}},
            ],
        }
    )


def test_every_proxy_is_finite_deterministic_and_params_is_the_counted_params() -> None:
    net = Network.from_string(TINY)
    b = batches(0, size=8)
    first = px.score_network(net, b, seed=3)
    again = px.score_network(net, b, seed=3)
    assert first.values == again.values
    assert set(first.values) == set(px.PROXY_NAMES) and all(v is not None and math.isfinite(v) for v in first.values.values())
    assert first.values["params"] == complexity(net).params
    assert all(s >= 0 for s in first.seconds.values())
    other = px.score_network(net, b, ["params", "snip"], seed=4)  # another initialisation: the gradient proxies move
    assert other.values["params"] == first.values["params"] and other.values["snip"] != first.values["snip"]


def test_networks_with_auxiliary_heads_are_scored_from_their_logits_and_params_excludes_the_head() -> None:
    net = with_aux()
    model = net  # the genotype: score_network builds it
    scores = px.score_network(model, batches(0, size=4))
    assert all(v is not None for v in scores.values.values())
    cost = complexity(net)
    assert scores.values["params"] == cost.params  # auxiliary heads excluded, as DESIGN.md counts

    built = build_network(net)
    assert sum(p.numel() for p in built.parameters()) > cost.params  # there is a head to exclude


def test_synflow_never_reads_the_data() -> None:
    net = Network.from_string(TINY)
    model = build_network(net)
    a, b = batches(0), batches(1)
    assert not torch.equal(a[0][0], b[0][0])
    assert px.synflow(model, a) == px.synflow(model, b)
    # but it does depend on the weights
    wider = build_network(Network.from_string(TINY.replace("out=8", "out=16").replace("pad)@8", "pad)@16")))
    assert px.synflow(wider, a) > px.synflow(model, a)


def _mlp(width: int, live: int) -> nn.Module:
    """An MLP whose hidden ReLUs beyond the first ``live`` get a constant input (one activation pattern for every image)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16 * 3, width), nn.ReLU(), nn.Linear(width, 10))
    with torch.no_grad():
        model[1].weight[live:] = 0
        model[1].bias[live:] = 1.0
    return model


def test_naswot_is_higher_for_a_network_with_more_distinct_activation_patterns() -> None:
    b = batches(0, size=16)
    scores = [px.naswot(_mlp(64, live), b) for live in (2, 8, 64)]
    assert scores[0] < scores[1] < scores[2]
    # images that all share one pattern: the kernel is singular
    same = [(b[0][0][:1].repeat(16, 1, 1, 1), b[0][1])]
    assert px.naswot(_mlp(64, 64), same) == -math.inf


def test_snip_weighs_gradients_by_weights_and_grad_norm_does_not() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16 * 3, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        model[3].weight.zero_()  # no gradient reaches the first layer; the last layer's weights are zero
    b = batches(0)
    assert px.snip(model, b) == 0.0
    assert px.grad_norm(model, b) > 0.0
    # grad_norm is the sum of the per-layer gradient norms: doubling the loss's only live layer's input doubles it
    scaled = [(2 * x, y) for x, y in b]
    model[1].bias.data.zero_()
    assert px.grad_norm(model, scaled) == pytest.approx(2 * px.grad_norm(model, b), rel=1e-4)


def test_zico_is_the_log_mean_over_std_of_per_batch_gradients() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16 * 3, 10))
    b = batches(0, count=3)
    grads = []
    for x, y in b:
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        grads.append(model[1].weight.grad.detach().reshape(-1).double().clone())
    g = torch.stack(grads)
    std, mean = g.std(0, unbiased=False), g.abs().mean(0)
    expected = math.log(float((mean[std > 0] / std[std > 0]).sum()))
    assert px.zico(model, b) == pytest.approx(expected, rel=1e-9)
    assert math.isfinite(px.zico(model, b[:1]))  # one batch: split in two halves


def test_proxy_batches_come_from_the_given_images_seeded() -> None:
    data = images(0, n=40)
    a = px.proxy_batches(data, batches=3, batch_size=16, seed=1)
    assert [x.shape for x, _ in a] == [torch.Size([16, 3, 16, 16])] * 3
    assert all(
        torch.equal(x, y) for (x, _), (y, _) in zip(a, px.proxy_batches(data, batches=3, batch_size=16, seed=1), strict=True)
    )
    small = px.proxy_batches(data, batches=1, batch_size=16, seed=1, resolution=8)
    assert small[0][0].shape[-1] == 8
    with pytest.raises(KeyError, match="unknown proxies"):
        px.score_network(Network.from_string(TINY), a, ["params", "jacov"])
