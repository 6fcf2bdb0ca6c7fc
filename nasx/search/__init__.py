"""Searches: study configs, persistent Optuna studies, executors, multi-objective early stopping.

The only package of nasx that imports optuna (and, in the ray executor, ray).
"""

from nasx.search.config import StudyConfig, StudyError
from nasx.search.runner import run_search, status

__all__ = ["StudyConfig", "StudyError", "run_search", "status"]
