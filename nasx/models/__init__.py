"""Torch modules built from genotypes; imports no optuna or ray."""

from nasx.models.blocks import build_block, register
from nasx.models.network import Net, build_network

__all__ = ["Net", "build_block", "build_network", "register"]
