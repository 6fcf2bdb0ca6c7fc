"""``build_network(genotype) -> nn.Module``: a pure function of the genotype."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from nasx.models.blocks import CellInputs, build_block
from nasx.models.layers import act_layer, norm_act
from nasx.space.genotype import AuxHead, Head, Network, Shape, drop_path_schedule
from nasx.space.ops import Act, Classifier, PoolOp

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def last(x: State) -> torch.Tensor:
    """The newest feature map of a chain's output (a two-input block leaves a pair behind)."""
    return x[1] if isinstance(x, tuple) else x


class Chain(nn.Sequential):
    """Blocks in order. A two-input block (the micro cell) reads ``(s0, s1)``: the outputs of the
    block before the previous one and of the previous one; after a plain block both are its output.
    A chain that ends with a two-input block returns the pair, so the next stage continues it."""

    def __init__(self, layers: list[nn.Module], two_inputs: list[bool]) -> None:
        super().__init__(*layers)
        self.two_inputs = tuple(two_inputs)

    def forward(self, x: State) -> State:  # type: ignore[override]
        s0, s1 = x if isinstance(x, tuple) else (x, x)
        pair = isinstance(x, tuple)
        for module, two in zip(self, self.two_inputs, strict=True):
            if two:
                s0, s1 = s1, module(s0, s1)
            else:
                s0 = s1 = module(s1)
            pair = two
        return (s0, s1) if pair else s1


def _stack(blocks: tuple, shape: Shape, prev: Shape | None = None) -> tuple[Chain, Shape, Shape | None]:
    """Build ``blocks`` from input ``shape``; ``prev`` is s0's shape when the input is a cell pair."""
    layers, flags = [], []
    for block in blocks:
        if block.two_inputs:
            s0 = prev or shape
            layers.append(build_block(block, CellInputs(s0.c, shape.c, reduce0=s0.h != shape.h)))
        else:
            layers.append(build_block(block, shape.c))
        flags.append(block.two_inputs)
        prev, shape = (shape if block.two_inputs else None), block.out_shape(shape)
    return Chain(layers, flags), shape, prev


def build_head(head: Head, shape: Shape, classes: int) -> nn.Sequential:
    layers: dict[str, nn.Module] = {}
    if head.norm:
        layers["norm"] = norm_act(shape.c, head.act)
    if head.classifier == Classifier.CONV:
        if head.dropout:  # SqueezeNet: dropout in front of the 1x1 conv classifier
            layers["drop"] = nn.Dropout(head.dropout)
        layers["classifier"] = nn.Conv2d(shape.c, classes, 1, bias=head.bias)
        if head.act != Act.NONE:
            layers["act"] = act_layer(head.act)
    if head.pool != PoolOp.NONE:
        pool = nn.AdaptiveMaxPool2d if head.pool == PoolOp.MAX else nn.AdaptiveAvgPool2d
        layers["pool"] = pool(head.pool_size)
    layers["flatten"] = nn.Flatten(1)
    if head.classifier == Classifier.LINEAR:
        width = head.features(shape)
        for i, hidden in enumerate(head.hidden):
            layers[f"fc{i}"] = nn.Linear(width, hidden, bias=head.bias)
            layers[f"act{i}"] = act_layer(head.act)
            if head.dropout:
                layers[f"drop{i}"] = nn.Dropout(head.dropout)
            width = hidden
        if head.dropout and not head.hidden:  # GoogLeNet, MobileNet: dropout in front of the only linear layer
            layers["drop"] = nn.Dropout(head.dropout)
        layers["fc"] = nn.Linear(width, classes, bias=head.bias)
    return nn.Sequential(OrderedDict(layers))


def build_aux_head(aux: AuxHead, shape: Shape, classes: int) -> nn.Sequential:
    """DARTS' AuxiliaryHeadCIFAR, with the second conv covering the pooled map."""
    pooled = aux.pooled(shape)
    return nn.Sequential(
        nn.ReLU(),
        nn.AvgPool2d(aux.pool, aux.pool_stride, count_include_pad=False),
        nn.Conv2d(shape.c, aux.hidden, 1, bias=False),
        nn.BatchNorm2d(aux.hidden),
        nn.ReLU(),
        nn.Conv2d(aux.hidden, aux.width, (pooled.h, pooled.w), bias=False),
        nn.BatchNorm2d(aux.width),
        nn.ReLU(),
        nn.Flatten(1),
        nn.Linear(aux.width, classes),
    )


def _scheduled(stages: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Apply stochastic depth's linear rule to every block's ``drop_path`` (position over all stages)."""
    total = sum(len(blocks) for blocks in stages)
    out, position = [], 0
    for blocks in stages:
        row = []
        for block in blocks:
            position += 1
            rate = getattr(block, "drop_path", 0.0)
            row.append(block.model_copy(update={"drop_path": drop_path_schedule(rate, position, total)}) if rate else block)
        out.append(tuple(row))
    return out


class Net(nn.Module):
    """``head(stages(stem(x)))``; ``stages[i]`` is the i-th stage of the genotype.

    In training mode a network with auxiliary heads returns ``(logits, aux_1, ...)``; otherwise,
    and always in eval mode, the logits alone.
    """

    def __init__(self, genotype: Network) -> None:
        super().__init__()
        self.genotype = genotype
        classes = genotype.input.classes
        shape = genotype.input.shape
        self.stem, shape, prev = _stack(genotype.stem, shape)
        stages, aux = [], {}
        for i, (stage, blocks) in enumerate(zip(genotype.stages, _scheduled([s.expand() for s in genotype.stages]), strict=True)):
            module, shape, prev = _stack(blocks, shape, prev)
            stages.append(module)
            if stage.aux is not None:
                aux[str(i)] = build_aux_head(stage.aux, shape, classes)
        self.stages = nn.Sequential(*stages)
        self.aux_heads = nn.ModuleDict(aux)
        self.head = build_head(genotype.head, shape, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        state: State = self.stem(x)
        aux = []
        for i, stage in enumerate(self.stages):
            state = stage(state)
            if self.training and str(i) in self.aux_heads:
                aux.append(self.aux_heads[str(i)](last(state)))
        logits = self.head(last(state))
        return (logits, *aux) if aux else logits


def init_weights(model: nn.Module) -> nn.Module:
    """He (fan-out) normal init of convolutions, BN to identity, zero biases: the reference CNN codes' init.

    PyTorch's default conv init (uniform, gain 1/sqrt(3)) trains the deep plain and residual
    networks noticeably slower in short runs; torchvision's ResNet/VGG/DenseNet and the CIFAR
    ResNet code all use this one.
    """
    if any(p.is_meta for p in model.parameters()):
        return model  # nothing to initialise (complexity counting builds on ``meta``; init there is slow and moot)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm | nn.LayerNorm) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def zero_init_residual(model: nn.Module) -> int:
    """Zero the last BN scale of every residual branch, so each block starts as the identity.

    Goyal et al. 2017; torchvision's ``zero_init_residual``. Returns how many branches it zeroed.
    """
    from nasx.models.blocks import Residual

    count = 0
    for m in model.modules():
        if isinstance(m, Residual) and isinstance(m.body[-1], nn.BatchNorm2d):
            nn.init.zeros_(m.body[-1].weight)
            count += 1
    return count


def build_network(genotype: Network) -> Net:
    """Build the torch module of ``genotype`` on the current default device, He-initialised."""
    return init_weights(Net(genotype))
