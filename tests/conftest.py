"""Fixtures and session set-up only; the helpers that test modules import are in tests/helpers.py."""

from __future__ import annotations

import os

import torch

# Under pytest-xdist every worker is a process of its own: two workers each running torch with
# two threads on two cores oversubscribe them, and OpenMP's spinning then makes some tests 10x
# slower (a DARTS forward pass at batch 2: 0.4 s alone, 7 s oversubscribed). One thread per
# worker, inherited by the `nasx` processes the tests start.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
