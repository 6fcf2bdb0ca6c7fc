"""``build_network(genotype) -> nn.Module``: a pure function of the genotype."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nasx.models.blocks import build_block
from nasx.models.layers import act_layer, norm_act
from nasx.space.genotype import Head, Network, Shape
from nasx.space.ops import Act, Classifier, PoolOp


def _stack(blocks: tuple, shape: Shape) -> tuple[nn.Sequential, Shape]:
    layers = []
    for block in blocks:
        layers.append(build_block(block, shape.c))
        shape = block.out_shape(shape)
    return nn.Sequential(*layers), shape


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


class Net(nn.Module):
    """``head(stages(stem(x)))``; ``stages[i]`` is the i-th stage of the genotype."""

    def __init__(self, genotype: Network) -> None:
        super().__init__()
        self.genotype = genotype
        shape = genotype.input.shape
        self.stem, shape = _stack(genotype.stem, shape)
        stages = []
        for stage in genotype.stages:
            module, shape = _stack(stage.expand(), shape)
            stages.append(module)
        self.stages = nn.Sequential(*stages)
        self.head = build_head(genotype.head, shape, genotype.input.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def build_network(genotype: Network) -> Net:
    """Build the torch module of ``genotype`` on the current default device."""
    return Net(genotype)
