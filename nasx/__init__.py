"""nasx: neural-architecture search and design-space exploration for image classifiers.

``import nasx`` is light (no torch): ``nasx.load`` imports :mod:`nasx.export` on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load"]


def __getattr__(name: str) -> Any:
    if name == "load":
        from nasx.export import load

        return load
    raise AttributeError(f"module 'nasx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
