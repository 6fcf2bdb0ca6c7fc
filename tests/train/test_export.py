"""Model folders: export a trained run, load it back, check ONNX against torch, refuse weights that do not fit."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml
from helpers import run_python, two_class_images
from safetensors.torch import load_file, save_file
from torch import nn

import nasx
from nasx import zoo
from nasx.data.types import Splits
from nasx.export import (
    CHECK_BATCH,
    EXPORT_FILES,
    ONNX_OPSET,
    ONNX_RTOL,
    ExportError,
    LoadError,
    check_onnx,
    export_model,
    export_run,
)
from nasx.models import build_network
from nasx.models.complexity import complexity
from nasx.space import Network
from nasx.train import Fidelity, Recipe, train_run

# Two stages, so that a wider second stage changes shapes in the middle of the state dict.
TINY = Network.from_string("input(resolution=8, classes=2) | stem[conv(out=8)] | 1*residual()@8 | 1*residual()@16/2")
WIDER = Network.from_string("input(resolution=8, classes=2) | stem[conv(out=8)] | 1*residual()@8 | 1*residual()@24/2")
RECIPE = Recipe(batch_size=32, lr=0.05, epochs=3, precision="fp32", channels_last=False, eval_batch_size=64)


SPLITS = Splits(
    train=two_class_images(256, 0), val=two_class_images(128, 1), source="synthetic", seed=0
)  # two classes, separable in one epoch
FILES = [
    "README.md",
    "complexity.json",
    "genotype.txt",
    "genotype.yaml",
    "metrics.json",
    "model.onnx",
    "recipe.yaml",
    "weights.safetensors",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module, dict]:
    run = tmp_path_factory.mktemp("run")
    result, summary = train_run(TINY, SPLITS, RECIPE, Fidelity(epochs=1), run, seed=0, device="cpu")
    return run, result.model.eval(), summary


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("models") / "tiny"
    return export_run(trained[0], out, name="tiny-found")


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "copy"))


def _calibrated(net: Network, seed: int = 0) -> nn.Module:
    """Random weights with BN statistics of one random batch, so that logits have a trained network's scale."""
    torch.manual_seed(seed)
    model = build_network(net)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average: after one batch, the batch's statistics
    with torch.no_grad():
        model.train()(torch.randn(8, *net.input.shape))
    return model.eval()


def _images(n: int, side: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


def test_export_round_trips_to_the_trained_models_logits(trained, exported) -> None:
    run, model, _ = trained
    x = _images(7)
    with torch.no_grad():
        want = model(x)
        loaded = nasx.load(exported.folder)
        from_run = nasx.load(run)  # a `nasx train` run folder loads directly too
        assert not loaded.training and not from_run.training
        assert torch.equal(loaded(x), want) and torch.equal(from_run(x), want)
    assert loaded.genotype == TINY and loaded.genotype.name == "tiny-found"


def test_onnx_model_matches_torch_within_the_tolerance(trained, exported) -> None:
    _, model, _ = trained
    path = exported.folder / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, outp.name) == ("images", "logits")
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [3, 8, 8]  # the batch axis is symbolic
    assert onnx.load(str(path)).opset_import[0].version == ONNX_OPSET
    for n in (1, 5, 64):  # batch sizes other than the export's example
        x = _images(n, seed=n)
        got = session.run(["logits"], {"images": x.numpy()})[0]
        with torch.no_grad():
            want = model(x).numpy()
        assert got.shape == (n, 2)
        assert np.abs(got - want).max() <= ONNX_RTOL * max(1.0, np.abs(want).max())
    assert 0 <= exported.onnx_max_abs_diff <= exported.onnx_tolerance and exported.onnx_tolerance >= ONNX_RTOL


def test_every_file_is_there_and_parses(trained, exported) -> None:
    run, _, summary = trained
    folder = exported.folder
    assert sorted(p.name for p in folder.iterdir()) == FILES == sorted(exported.files)
    assert not list(folder.parent.glob(".*")), "no staging or temporary files are left beside the folder"
    net = Network.from_yaml((folder / "genotype.yaml").read_text())
    assert net == TINY and net.name == "tiny-found"
    assert Network.from_string((folder / "genotype.txt").read_text().strip()) == TINY
    assert (folder / "weights.safetensors").read_bytes() == (run / "weights.safetensors").read_bytes()
    cost, want = json.loads((folder / "complexity.json").read_text()), complexity(TINY)
    assert (cost["params"], cost["macs"], cost["flops"]) == (want.params, want.macs, 2 * want.macs)
    assert cost["input_shape"] == [3, 8, 8] and cost["digest"] == TINY.digest == exported.digest
    assert cost["onnx"]["opset"] == ONNX_OPSET and cost["onnx"]["max_abs_diff"] == exported.onnx_max_abs_diff
    assert json.loads((folder / "metrics.json").read_text()) == summary
    recipe = yaml.safe_load((folder / "recipe.yaml").read_text())
    assert Recipe.model_validate(recipe["recipe"]) == RECIPE and Fidelity.model_validate(recipe["fidelity"]) == Fidelity(epochs=1)
    assert recipe["seed"] == 0 and recipe["data"]["source"] == "synthetic" and len(recipe["preprocessing"]["mean"]) == 3
    onnx.checker.check_model(str(folder / "model.onnx"))
    readme = (folder / "README.md").read_text()
    assert readme.startswith("# tiny-found\n") and TINY.digest in readme and "nasx.load(" in readme
    assert "onnxruntime" in readme and f"{100 * summary['val_acc']:.2f}%" in readme


def test_weights_of_another_genotype_are_refused_naming_the_tensor(exported, tmp_path) -> None:
    folder = _copy(exported.folder, tmp_path)
    save_file(build_network(WIDER).state_dict(), str(folder / "weights.safetensors"))
    with pytest.raises(LoadError) as err:
        nasx.load(folder)
    first = str(err.value).splitlines()[1].strip()
    assert first == "stages.1.0.body.0.weight: the genotype needs shape (16, 8, 3, 3), the weights file has (24, 8, 3, 3)"
    assert str(err.value).endswith("... and 8 more")  # 16 tensors differ; the message lists the first 8


def test_missing_and_unexpected_tensors_are_named(exported, tmp_path) -> None:
    folder = _copy(exported.folder, tmp_path)
    weights = load_file(str(folder / "weights.safetensors"))
    weights["head.extra.weight"] = weights.pop("stem.0.conv.weight")
    save_file(weights, str(folder / "weights.safetensors"))
    with pytest.raises(LoadError) as err:
        nasx.load(folder)
    lines = [line.strip() for line in str(err.value).splitlines()[1:]]
    assert lines == [
        "stem.0.conv.weight: the genotype needs a tensor of shape (8, 3, 3, 3), the weights file lacks it",
        "head.extra.weight: the weights file has a tensor of shape (8, 3, 3, 3) the genotype does not (unexpected)",
    ]


def test_a_tampered_shape_is_refused(exported, tmp_path) -> None:
    folder = _copy(exported.folder, tmp_path)
    weights = load_file(str(folder / "weights.safetensors"))
    weights["head.fc.bias"] = torch.zeros(3)
    save_file(weights, str(folder / "weights.safetensors"))
    with pytest.raises(LoadError, match=r"head\.fc\.bias: the genotype needs shape \(2,\), the weights file has \(3,\)$"):
        nasx.load(folder)
    with pytest.raises(ExportError, match=r"head\.fc\.bias: the genotype needs shape"):
        export_model(TINY, folder / "weights.safetensors", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_edited_genotype_is_refused(exported, tmp_path) -> None:
    folder = _copy(exported.folder, tmp_path)
    (folder / "genotype.yaml").write_text(WIDER.to_yaml())
    with pytest.raises(LoadError, match=f"digest is {WIDER.digest}, but complexity.json records {TINY.digest}"):
        nasx.load(folder)


def test_a_missing_weights_file_is_refused(exported, tmp_path) -> None:
    folder = _copy(exported.folder, tmp_path)
    (folder / "weights.safetensors").unlink()
    with pytest.raises(LoadError, match="weights.safetensors: the weights file is missing"):
        nasx.load(folder)
    with pytest.raises(LoadError, match="neither genotype.yaml"):
        nasx.load(tmp_path)


class _Trap:
    """Unpickling this creates ``path``: proof that a file was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickle_in_place_of_safetensors_is_never_unpickled(exported, tmp_path, writer) -> None:
    folder = _copy(exported.folder, tmp_path)
    marker = tmp_path / "unpickled"
    payload = {"stem.0.conv.weight": torch.zeros(8, 3, 3, 3), "trap": _Trap(marker)}
    if writer == "pickle":
        (folder / "weights.safetensors").write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, folder / "weights.safetensors")
    pickle.loads(pickle.dumps(_Trap(tmp_path / "trap-works")))  # the trap does fire when unpickled
    assert (tmp_path / "trap-works").exists()
    with pytest.raises(LoadError, match="not a safetensors file"):
        nasx.load(folder)
    with pytest.raises(ExportError, match="not a safetensors file"):
        export_model(TINY, folder / "weights.safetensors", tmp_path / "out")
    assert not marker.exists()


def test_export_refuses_unfinished_runs_and_occupied_folders(trained, exported, tmp_path) -> None:
    run = trained[0]
    with pytest.raises(ExportError, match="not a nasx training run"):
        export_run(tmp_path, tmp_path / "out")
    unfinished = Path(shutil.copytree(run, tmp_path / "unfinished"))
    (unfinished / "summary.json").unlink()
    with pytest.raises(ExportError, match="not a finished training run: summary.json missing"):
        export_run(unfinished, tmp_path / "out")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="exists and is not empty"):
        export_run(run, occupied)
    with pytest.raises(ExportError, match=r"holds files an export does not write \(notes.txt\)"):
        export_run(run, occupied, overwrite=True)
    assert (occupied / "notes.txt").read_text() == "mine"
    with pytest.raises(ExportError, match="exists and is not empty"):
        export_run(run, exported.folder)


def test_overwrite_replaces_a_previous_export(trained, exported, tmp_path) -> None:
    folder = _copy(exported.folder, tmp_path)
    (folder / "README.md").write_text("stale")
    result = export_run(trained[0], folder, overwrite=True)
    assert result.name == f"nasx-{TINY.digest}"  # the genotype has no name and none was given
    assert (folder / "README.md").read_text().startswith(f"# {result.name}\n")
    assert sorted(p.name for p in folder.iterdir()) == FILES and set(FILES) <= EXPORT_FILES
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_run_trained_at_a_lower_resolution_exports_at_that_resolution(tmp_path) -> None:
    result, _ = train_run(TINY, SPLITS, RECIPE, Fidelity(epochs=1, resolution=6), tmp_path / "run", device="cpu")
    exported = export_run(tmp_path / "run", tmp_path / "out")
    assert exported.input_shape == (3, 6, 6)  # what the run was trained and evaluated at
    cost = json.loads((tmp_path / "out" / "complexity.json").read_text())
    assert cost["onnx_input_shape"] == [3, 6, 6] and cost["input_shape"] == [3, 8, 8]  # MACs stay at the genotype's side
    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [3, 6, 6]
    assert "shape (N, 3, 6, 6)" in (tmp_path / "out" / "README.md").read_text()


def test_an_onnx_model_that_disagrees_with_torch_is_refused(exported) -> None:
    other = _calibrated(TINY, seed=1)  # same genotype, other weights
    with pytest.raises(ExportError, match=r"onnxruntime's logits differ from torch's by up to [0-9.e+-]+ on a random batch of 3"):
        check_onnx(exported.folder / "model.onnx", other, (3, 8, 8))
    assert CHECK_BATCH == 3


def test_weights_past_the_protobuf_limit_go_to_external_data(monkeypatch, tmp_path) -> None:
    import nasx.export.onnx_check

    monkeypatch.setattr(nasx.export.onnx_check, "_PROTOBUF_LIMIT", 0)  # as if the weights passed 2 GB
    model = _calibrated(TINY)
    result = export_model(TINY, model, tmp_path / "big")
    assert "model.onnx.data" in result.files
    graph = onnx.load(str(tmp_path / "big" / "model.onnx"), load_external_data=False).graph
    outside = [t for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert outside and {e.value for t in outside for e in t.external_data if e.key == "location"} == {"model.onnx.data"}
    session = ort.InferenceSession(str(tmp_path / "big" / "model.onnx"), providers=["CPUExecutionProvider"])
    x = _images(2)
    with torch.no_grad():
        assert np.abs(session.run(["logits"], {"images": x.numpy()})[0] - model(x).numpy()).max() <= result.onnx_tolerance
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet20_cifar", "darts_v2_cifar"])
def test_zoo_network_exports_and_its_onnx_matches(name, tmp_path) -> None:
    net = zoo.get(name)
    model = _calibrated(net)
    result = export_model(net, model, tmp_path / name)
    assert result.onnx_max_abs_diff <= result.onnx_tolerance
    assert sorted(result.files) == [
        "README.md",
        "complexity.json",
        "genotype.txt",
        "genotype.yaml",
        "model.onnx",
        "weights.safetensors",
    ]
    x = torch.randn(2, *net.input.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = model(x)
        assert torch.equal(nasx.load(tmp_path / name)(x), want)
    session = ort.InferenceSession(str(tmp_path / name / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": x.numpy()})
    assert len(got) == 1 and got[0].shape == (2, 10)  # logits only: DARTS' auxiliary head is a training-time output
    assert np.abs(got[0] - want.numpy()).max() <= result.onnx_tolerance
    assert result.onnx_tolerance <= 10 * ONNX_RTOL * max(1.0, want.abs().max().item())  # widened for fp32, still tight


def test_import_nasx_stays_light_and_load_is_lazy() -> None:
    code = (
        "import sys, nasx; light = 'torch' not in sys.modules; f = nasx.load; print(light, f.__module__, 'torch' in sys.modules)"
    )
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "nasx.export", "True"]
