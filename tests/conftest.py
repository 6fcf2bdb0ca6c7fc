"""Shared helpers for the test suite (imported by the test modules as ``conftest``)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import torch

from nasx import zoo
from nasx.models.complexity import complexity

# Under pytest-xdist every worker is a process of its own: two workers each running torch with
# two threads on two cores oversubscribe them, and OpenMP's spinning then makes some tests 10x
# slower (a DARTS forward pass at batch 2: 0.4 s alone, 7 s oversubscribed). One thread per
# worker, inherited by the `nasx` processes the tests start.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)

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
