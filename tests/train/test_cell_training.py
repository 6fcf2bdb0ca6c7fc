"""Issue 13's training pieces: the auxiliary loss, drop-path rising over training, the proxy network size,
`--set`, and the Ray executor's GPU rules and picklable searcher."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasx import zoo
from nasx.data.types import ImageSet, Splits
from nasx.errors import GenotypeError, NasxError
from nasx.models.complexity import complexity
from nasx.models.layers import DropPath
from nasx.search.config import StudyConfig, StudyError, apply_override
from nasx.space.scale import scaled
from nasx.train.loop import drop_path_rate, train, training_loss
from nasx.train.recipe import Fidelity, Recipe, preset


def test_training_loss_adds_the_weighted_auxiliary_losses() -> None:
    torch.manual_seed(0)
    logits, aux, y = torch.randn(4, 10), torch.randn(4, 10), torch.randint(0, 10, (4,))
    recipe = Recipe(aux_weight=0.4)
    loss, out = training_loss((logits, aux), y, recipe)
    assert out is logits
    assert torch.allclose(loss, F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y))
    plain, _ = training_loss(logits, y, recipe)
    assert torch.allclose(plain, F.cross_entropy(logits, y))


def test_drop_path_rises_linearly_over_the_epochs_and_the_darts_preset_states_the_protocol() -> None:
    darts = preset("darts")
    assert (darts.batch_size, darts.lr, darts.weight_decay, darts.epochs) == (96, 0.025, 3e-4, 600)
    assert (darts.drop_path, darts.aux_weight, darts.grad_clip, darts.augment.cutout) == (0.2, 0.4, 5.0, 16)
    assert [drop_path_rate(darts, e, 4) for e in range(4)] == [0.0, 0.05, 0.1, 0.15000000000000002]
    assert drop_path_rate(Recipe(), 3, 4) is None


def _tiny(n: int, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n), tuple(map(str, range(10))))


def test_a_darts_network_trains_with_drop_path_and_its_rate_is_set_per_epoch() -> None:
    net = scaled(zoo.get("darts_v2_cifar"), 2 / 9, 1 / 6)
    recipe = Recipe(batch_size=4, drop_path=0.3, precision="fp32", channels_last=False, grad_clip=5.0)
    result = train(net, Splits(_tiny(8), _tiny(4, 1), "random", 0), recipe, Fidelity(epochs=2), device="cpu")
    rates = {m.p for m in result.model.modules() if isinstance(m, DropPath)}
    assert rates == {0.15}, "in the last of 2 epochs every drop-path site drops with 0.3 * 1/2"
    assert all(np.isfinite(m.train_loss) for m in result.metrics) and 0 <= result.val_acc <= 1


def test_scaling_reproduces_darts_search_network_and_keeps_the_genotype_the_evaluation_network() -> None:
    full = zoo.get("darts_v2_cifar")
    small = scaled(full, 4 / 9, 1 / 3)
    assert [s.channels for s in small.stages] == [16, 32, 32, 64, 64]
    assert [s.depth for s in small.stages] == [2, 1, 2, 1, 2]  # DARTS' 8-cell search network
    assert small.stem[0].out == 48
    assert scaled(full, 1.0, 1.0) is full
    assert complexity(small).params < complexity(full).params / 5
    fid = Fidelity(width=4 / 9, depth=1 / 3)
    assert fid.proxy and fid.network(full) == small and not Fidelity().proxy


def test_a_scale_that_breaks_a_rule_names_the_fidelity() -> None:
    net = zoo.get("resnext50_32x4d")
    with pytest.raises(GenotypeError, match="fidelity"):
        scaled(net, 0.3, 1.0)


def test_set_overrides_a_study_file(tmp_path) -> None:
    data: dict = {"fidelity": {"epochs": 3}}
    apply_override(data, "fidelity.epochs=1")
    apply_override(data, "executor.gpus_per_trial=null")
    apply_override(data, "recipe={preset: search, batch_size: 16}")
    assert data == {
        "fidelity": {"epochs": 1},
        "executor": {"gpus_per_trial": None},
        "recipe": {"preset": "search", "batch_size": 16},
    }
    for bad in ("fidelity", "=3", "fidelity.epochs.x=1"):
        with pytest.raises(StudyError, match="--set"):
            apply_override(data, bad)
    cfg = StudyConfig.load("studies/cifar10-nasnet.yaml", ["fidelity.epochs=1", "recipe={preset: search, batch_size: 16}"])
    assert cfg.epochs == 1 and cfg.resolved_recipe().batch_size == 16 and cfg.resolved_recipe().name == "search-custom"
    with pytest.raises(StudyError, match="fidelity.epochs"):
        StudyConfig.load("studies/cifar10-nasnet.yaml", ["fidelity.epochs=0"])


def test_ray_gpu_rules() -> None:
    from nasx.search.executors.ray import ray_device, trial_resources

    assert trial_resources(None, None, 8) == 1.0, "GPUs present: one per trial by default, never all on GPU 0"
    assert trial_resources(None, None, 0) == 0.0
    assert trial_resources(None, "cpu", 8) == 0.0
    assert trial_resources(0.25, None, 8) == 0.25
    with pytest.raises(NasxError, match="no GPU"):
        trial_resources(0.5, None, 0)
    with pytest.raises(NasxError, match="one GPU"):
        trial_resources(0, "cuda:1", 8)
    assert ray_device("cuda:3", True) == "cuda", "under Ray a trial sees only its own GPU"
    assert ray_device(None, False) == "cpu" and ray_device("cuda", False) == "cpu"


def test_the_ray_searcher_pickles_with_the_clis_callbacks_attached() -> None:
    from nasx.search.executors.ray import StudySearcher

    lock = threading.RLock()  # what rich's live view holds: Tune pickles the searcher into tuner.pkl

    def on_outcome(outcome: object) -> None:
        with lock:
            pass

    searcher = StudySearcher(ctx=type("Ctx", (), {"lock": lock})(), budget=3, on_outcome=on_outcome)  # type: ignore[arg-type]
    copy = pickle.loads(pickle.dumps(searcher))
    assert copy.budget == 3 and copy.ctx is None and copy.on_outcome is None
    assert searcher.on_outcome is on_outcome, "the live searcher keeps its callbacks"
