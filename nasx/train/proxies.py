"""Zero-cost proxies: scores of an *untrained* network from a few minibatches, higher meaning "expected to train better".

- ``params``: the parameter count (DESIGN.md's convention: auxiliary heads excluded), the reference
  every other proxy must beat (Li et al. 2023 note that most earlier proxies do not).
- ``synflow`` (Tanaka et al. 2020; Abdelfattah et al. 2021): in float64, with every weight replaced
  by its absolute value and BN as at initialisation (eval mode: the near-identity that the
  reference codes get by building the network without BN), an all-ones input of one image;
  ``R = sum(logits)``; the score is ``sum |theta * dR/dtheta|`` over conv and linear weights. It
  never reads the data. Recorded as the natural **logarithm** of that sum (the sum overflows
  even float64 for deep networks; ranks are unchanged).
- ``naswot`` (Mellor et al. 2021, v2): the binary codes ``x > 0`` of every activation's input
  (ReLU, and the sign of the input for the other activations; auxiliary heads left out) over one minibatch, concatenated
  per image; ``K[i, j]`` is the number of units on which images i and j agree; the score is
  ``log |det K|`` (train mode, as the reference code). A network whose images fall into more
  distinct linear regions scores higher.
- ``grad_norm`` (Abdelfattah et al. 2021): ``sum over conv/linear layers of ||dL/dW||_2`` for the
  cross-entropy ``L`` of one minibatch (train mode).
- ``snip`` (Lee et al. 2019, as a proxy in Abdelfattah et al. 2021): ``sum |W * dL/dW|``, same loss.
- ``zico`` (Li et al. 2023): the gradients of each conv/linear weight over several minibatches
  (one batch is split in two halves, as the reference code does); per layer
  ``log(sum over weights with std > 0 of mean|g| / std(g))``, summed over layers.

Each proxy is computed on its own fresh copy of the same seeded initialisation, so one proxy's
side effects (BN statistics, float64, absolute weights) never reach another; each is timed alone.
Batches come from the *training* split (:func:`proxy_batches`); the test split is never read.
Torch only (no optuna): the search (``nasx.search.proxies``), the report and the benchmark share it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nasx.data.loader import NO_AUGMENT, DeviceLoader
from nasx.data.types import ImageSet
from nasx.models.network import build_network
from nasx.space.genotype import Network
from nasx.train.loop import split_outputs

Batch = tuple[torch.Tensor, torch.Tensor]

#: Every proxy nasx computes, in the order reports show them; ``params`` is the reference.
PROXY_NAMES: tuple[str, ...] = ("params", "synflow", "naswot", "grad_norm", "snip", "zico")
REFERENCE = "params"

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Hardswish, nn.Tanh, nn.Sigmoid)


def proxy_batches(
    images: ImageSet,
    *,
    batches: int = 2,
    batch_size: int = 64,
    seed: int = 0,
    resolution: int | None = None,
    device: torch.device | str = "cpu",
) -> list[Batch]:
    """``batches`` seeded, unaugmented minibatches of ``images`` (pass the training split) at ``resolution``."""
    size = min(batch_size, len(images))
    loader = DeviceLoader(images, size, device=device, train=True, augment=NO_AUGMENT, seed=seed, resolution=resolution)
    out: list[Batch] = []
    epoch = 0
    while len(out) < batches:
        loader.set_epoch(epoch)
        for xy in loader:
            out.append(xy)
            if len(out) == batches:
                break
        epoch += 1
    return out


def _weighted(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear) and not n.startswith("aux_heads")]


def count_params(model: nn.Module) -> float:
    """Every parameter of ``model`` except those of its auxiliary heads (DESIGN.md's convention)."""
    return float(sum(p.numel() for n, p in model.named_parameters() if not n.startswith("aux_heads")))


def synflow(model: nn.Module, batches: Sequence[Batch]) -> float:
    """log(sum |theta * dR/dtheta|), R the sum of the logits of an all-ones image, float64, |weights|, BN as at init."""
    m = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.abs_()
    x = torch.ones((1, *batches[0][0].shape[1:]), dtype=torch.float64, device=batches[0][0].device)
    m.zero_grad(set_to_none=True)
    split_outputs(m(x))[0].sum().backward()
    total = sum(
        float((mod.weight.detach() * mod.weight.grad).abs().sum()) for _, mod in _weighted(m) if mod.weight.grad is not None
    )
    return math.log(total) if total > 0 else float("-inf")


def naswot(model: nn.Module, batches: Sequence[Batch]) -> float:
    """log|det K| of the Hamming-agreement kernel of the activations' binary codes over the first minibatch."""
    x = batches[0][0]
    n = x.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=x.device)
    seen = [0]

    def hook(_: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:  # before the module: in-place ReLUs overwrite their input
        codes = (inputs[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T).add_((1 - codes) @ (1 - codes).T)
        seen[0] += 1

    m = copy.deepcopy(model).train()
    handles = [
        mod.register_forward_pre_hook(hook)
        for name, mod in m.named_modules()
        if isinstance(mod, _ACTIVATIONS) and not name.startswith("aux_heads")  # the main network's units only
    ]
    try:
        with torch.no_grad():
            m(x)
    finally:
        for h in handles:
            h.remove()
    if not seen[0]:
        return float("nan")
    return float(torch.linalg.slogdet(kernel)[1])


def _loss_grads(model: nn.Module, batch: Batch) -> list[tuple[nn.Module, torch.Tensor]]:
    x, y = batch
    model.zero_grad(set_to_none=True)
    F.cross_entropy(split_outputs(model(x))[0], y).backward()
    return [(mod, mod.weight.grad) for _, mod in _weighted(model) if mod.weight.grad is not None]


def grad_norm(model: nn.Module, batches: Sequence[Batch]) -> float:
    """Sum over conv/linear layers of the L2 norm of the cross-entropy gradient of their weight (first minibatch)."""
    m = copy.deepcopy(model).train()
    return float(sum(float(g.norm()) for _, g in _loss_grads(m, batches[0])))


def snip(model: nn.Module, batches: Sequence[Batch]) -> float:
    """sum |W * dL/dW| over conv/linear weights, L the cross-entropy of the first minibatch."""
    m = copy.deepcopy(model).train()
    return float(sum(float((mod.weight.detach() * g).abs().sum()) for mod, g in _loss_grads(m, batches[0])))


def zico(model: nn.Module, batches: Sequence[Batch]) -> float:
    """Sum over conv/linear layers of log(sum mean|g| / std(g)) over the minibatches' gradients (Li et al. 2023)."""
    parts = list(batches)
    if len(parts) < 2:  # the reference code splits one batch in two
        x, y = parts[0]
        half = x.shape[0] // 2
        parts = [(x[:half], y[:half]), (x[half:], y[half:])]
    m = copy.deepcopy(model).train()
    grads: dict[int, list[torch.Tensor]] = {}
    for batch in parts:
        for i, (_, g) in enumerate(_loss_grads(m, batch)):
            grads.setdefault(i, []).append(g.detach().reshape(-1).double().clone())
    score = 0.0
    for per_batch in grads.values():
        g = torch.stack(per_batch)
        std = g.std(0, unbiased=False)
        nonzero = std > 0
        ratio = float((g.abs().mean(0)[nonzero] / std[nonzero]).sum())
        if ratio > 0:
            score += math.log(ratio)
    return score


#: name -> score(model, batches); ``params`` reads the module only.
PROXIES: dict[str, Callable[[nn.Module, Sequence[Batch]], float]] = {
    "params": lambda model, _batches: count_params(model),
    "synflow": synflow,
    "naswot": naswot,
    "grad_norm": grad_norm,
    "snip": snip,
    "zico": zico,
}


@dataclass(frozen=True)
class ProxyScores:
    """Each proxy's value (None where it is not finite: e.g. a singular NASWOT kernel), its wall seconds and its
    CPU seconds (this process, all threads: on a shared machine the wall time also counts waiting)."""

    values: dict[str, float | None]
    seconds: dict[str, float]
    cpu_seconds: dict[str, float]


def score_network(
    net: Network,
    batches: Sequence[Batch],
    names: Sequence[str] = PROXY_NAMES,
    *,
    seed: int = 0,
) -> ProxyScores:
    """Every proxy in ``names`` of ``net``, initialised from ``seed``, on ``batches`` (from :func:`proxy_batches`).

    Raises ``KeyError`` naming an unknown proxy before any work.
    """
    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise KeyError(f"unknown proxies {unknown}; known: {', '.join(PROXY_NAMES)}")
    torch.manual_seed(seed)
    model = build_network(net).to(batches[0][0].device)
    values: dict[str, float | None] = {}
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for name in names:
        t0, c0 = time.perf_counter(), time.process_time()
        value = PROXIES[name](model, batches)
        seconds[name], cpu[name] = time.perf_counter() - t0, time.process_time() - c0
        values[name] = value if math.isfinite(value) else None
    return ProxyScores(values, seconds, cpu)
