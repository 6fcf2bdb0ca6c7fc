"""The training loop on synthetic data: learning, callbacks, resume, typed failures, the run folder."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from helpers import RECIPE, SPLITS, TINY, two_class_images

from nasx.data.types import Splits
from nasx.errors import NasxError
from nasx.models import build_network
from nasx.space import Network
from nasx.train import Fidelity, Recipe, RecipeError, TrainingFailed, load_recipe, preset, train, train_run
from nasx.train.loop import lr_at, resolve_precision
from nasx.train.run import load_weights


def test_learns_a_separable_problem_and_reports_every_epoch() -> None:
    seen = []
    result = train(TINY, SPLITS, RECIPE, device="cpu", callback=seen.append)
    assert [m.epoch for m in seen] == [1, 2, 3] and result.metrics == seen
    assert result.state == "complete" and result.val_acc >= 0.95
    assert seen[-1].train_loss < seen[0].train_loss
    assert all(m.images_per_s > 0 and m.seconds > 0 for m in seen)


def test_callback_returning_true_stops_the_run() -> None:
    result = train(TINY, SPLITS, RECIPE, device="cpu", callback=lambda m: m.epoch == 2)
    assert result.state == "stopped" and result.epochs == 2


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    a = train(TINY, SPLITS, RECIPE, Fidelity(epochs=1), device="cpu", seed=3).model.state_dict()
    b = train(TINY, SPLITS, RECIPE, Fidelity(epochs=1), device="cpu", seed=3).model.state_dict()
    c = train(TINY, SPLITS, RECIPE, Fidelity(epochs=1), device="cpu", seed=4).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path) -> None:
    full = train(TINY, SPLITS, RECIPE, device="cpu", seed=1)

    def interrupt(m):
        if m.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TINY, SPLITS, RECIPE, device="cpu", seed=1, run_dir=tmp_path, callback=interrupt)
    resumed = train(TINY, SPLITS, RECIPE, device="cpu", seed=1, run_dir=tmp_path)
    assert resumed.resumed_from == 2 and resumed.epochs == 3
    assert [m.val_acc for m in resumed.metrics[:2]] == [m.val_acc for m in full.metrics[:2]]
    want, got = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.allclose(want[k].float(), got[k].float(), atol=1e-6) for k in want)
    assert not list(tmp_path.glob(".*tmp*")), "no temporary files are left behind"


def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path) -> None:
    train(TINY, SPLITS, RECIPE, Fidelity(epochs=1), device="cpu", run_dir=tmp_path)
    with pytest.raises(NasxError, match="belongs to another run"):
        train(TINY, SPLITS, RECIPE.model_copy(update={"lr": 0.1}), Fidelity(epochs=1), device="cpu", run_dir=tmp_path)


def test_non_finite_loss_is_a_typed_failure() -> None:
    wild = RECIPE.model_copy(update={"lr": 1e30, "weight_decay": 0.0})
    with pytest.raises(TrainingFailed) as info:
        train(TINY, SPLITS, wild, Fidelity(epochs=3), device="cpu")
    assert info.value.reason == "non_finite_loss" and info.value.epoch in (1, 2, 3)


def test_out_of_memory_is_a_typed_failure(monkeypatch) -> None:
    def boom(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(type(build_network(TINY)), "forward", boom)
    with pytest.raises(TrainingFailed) as info:
        train(TINY, SPLITS, RECIPE, device="cpu")
    assert info.value.reason == "out_of_memory" and info.value.epoch == 1 and "20.00 GiB" in str(info.value)


def test_fraction_trains_on_fewer_images() -> None:
    full = train(TINY, SPLITS, RECIPE, Fidelity(epochs=1), device="cpu")
    part = train(TINY, SPLITS, RECIPE, Fidelity(epochs=1, fraction=0.5), device="cpu")
    ratio = (part.metrics[0].images_per_s * part.metrics[0].seconds) / (full.metrics[0].images_per_s * full.metrics[0].seconds)
    assert ratio == pytest.approx(0.5, abs=0.13)


def test_a_split_smaller_than_one_batch_is_a_clear_error() -> None:
    small = Splits(train=two_class_images(10, 0), val=two_class_images(10, 1), source="synthetic", seed=0)
    with pytest.raises(NasxError, match="the training split holds 10 images, fewer than one batch of 32"):
        train(TINY, small, RECIPE, device="cpu")


def test_run_folder_holds_config_metrics_weights_and_summary(tmp_path) -> None:
    result, summary = train_run(TINY, SPLITS, RECIPE, Fidelity(epochs=2), tmp_path, device="cpu", test=two_class_images(64, 2))
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2] and lines[-1]["val_acc"] == summary["val_acc"]
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert Network.from_dict(config["network"]) == TINY and config["recipe"]["lr"] == RECIPE.lr
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == summary and 0.0 <= summary["test_acc"] <= 1.0 and summary["digest"] == TINY.digest
    model = build_network(TINY).eval()
    load_weights(model, tmp_path / "weights.safetensors")
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), result.model.eval()(x), atol=1e-5)


# ---- recipes -----------------------------------------------------------------------------------


def test_presets_and_yaml_recipes(tmp_path) -> None:
    assert set(load_recipe(n).name for n in ("search", "standard", "fast")) == {"search", "standard", "fast"}
    assert preset("fast").tta_flip and preset("fast").label_smoothing > 0 and preset("standard").nesterov
    f = tmp_path / "r.yaml"
    f.write_text("preset: standard\nlr: 0.05\naugment: {cutout: 8}\n")
    r = load_recipe(f)
    assert r.lr == 0.05 and r.augment.cutout == 8 and r.batch_size == preset("standard").batch_size


@pytest.mark.parametrize(
    "text, needle",
    [
        ("lr: -1\n", "lr: Input should be greater than 0"),
        ("augment: {cutot: 8}\n", "augment.cutot: Extra inputs are not permitted"),
        ("preset: slow\n", "unknown recipe preset 'slow'"),
        ("- 1\n", "a recipe file is a mapping"),
    ],
)
def test_invalid_recipes_name_the_field(tmp_path, text, needle) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(RecipeError, match=needle):
        load_recipe(f)


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(RecipeError, match="presets: search, standard, fast"):
        load_recipe("quick")


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "constant"])
def test_learning_rate_schedule(schedule) -> None:
    r = Recipe(lr=0.4, schedule=schedule, warmup_epochs=2)
    steps, total = 10, 100
    lrs = [lr_at(r, s, total, steps) for s in range(total)]
    assert all(0 < lrs[i] < lrs[i + 1] for i in range(19)), "warm-up rises"
    assert max(lrs) == pytest.approx(0.4)
    if schedule == "constant":
        assert lrs[-1] == pytest.approx(0.4)
    else:
        assert lrs[-1] < 0.02 and all(lrs[i] >= lrs[i + 1] for i in range(20, total - 1))
    assert all(math.isfinite(x) for x in lrs)


def test_auto_precision_is_fp32_where_bf16_is_not_native(monkeypatch) -> None:
    monkeypatch.setattr("nasx.train.loop._bf16_ok", lambda device: False)
    assert resolve_precision(Recipe(), torch.device("cpu")) == ("fp32", False)
    monkeypatch.setattr("nasx.train.loop._bf16_ok", lambda device: True)
    assert resolve_precision(Recipe(), torch.device("cpu")) == ("bf16", True)
    assert resolve_precision(Recipe(precision="fp32", channels_last=False), torch.device("cpu")) == ("fp32", False)
