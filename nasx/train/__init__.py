"""Recipes, fidelities and the training loop that every trial and baseline goes through."""

from nasx.train.loop import CheckpointError, EpochMetrics, TrainingFailed, TrainResult, evaluate, train
from nasx.train.recipe import PRESETS, Augmentation, Fidelity, Recipe, RecipeError, load_recipe, preset
from nasx.train.run import train_run

__all__ = [
    "PRESETS",
    "Augmentation",
    "CheckpointError",
    "EpochMetrics",
    "Fidelity",
    "Recipe",
    "RecipeError",
    "TrainResult",
    "TrainingFailed",
    "evaluate",
    "load_recipe",
    "preset",
    "train",
    "train_run",
]
