"""The ``nasx`` command line (also ``python -m nasx``): a Typer app whose commands each parse their options,
call one library function and render what it returns.

- :mod:`nasx.cli.common`: the app, the consoles, error reporting, the progress bar, the study options, reports
- :mod:`nasx.cli.networks`: ``zoo``, ``describe``, ``space``
- :mod:`nasx.cli.training`: ``train``
- :mod:`nasx.cli.studies`: ``search``, ``status``, ``retrain``
- :mod:`nasx.cli.outputs`: ``export``, ``report``, ``compare``

The console script is ``nasx.cli:main``; ``from nasx.cli import app`` gives the app with every command.
"""

from __future__ import annotations

from nasx.cli.common import app

# importing a command module registers its commands, in the order ``nasx --help`` lists them
# isort: off
from nasx.cli import networks  # noqa: F401
from nasx.cli import training  # noqa: F401
from nasx.cli import studies  # noqa: F401
from nasx.cli import outputs  # noqa: F401

# isort: on

__all__ = ["app", "main"]


def main() -> None:
    app()
