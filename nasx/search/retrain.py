"""Final runs: the study's best front members and its baselines retrained at full fidelity, with seeds.

Each (model, seed) is one ``nasx train`` run folder under ``runs/<study>/final/``, trained on every
image of the training set (or a seeded split when ``val_size`` is given) and measured once on the
official test set. Its summary is recorded back into the study under a key made of everything that
changes its result (:func:`final_run_key`: the genotype's digest, a digest of the full recipe, the
fidelity, the data's sha256, the validation size and the seed), so runs that differ in any of them
are never averaged together (``setup``: the key without the seed). ``nasx report`` draws the final
front; a run already recorded is not trained again, and an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from nasx import zoo
from nasx.search import record as rec
from nasx.search.config import StudyConfig, StudyError
from nasx.search.queries import trial_rows
from nasx.search.record import FINAL_PREFIX, Role
from nasx.search.trial import held
from nasx.search.workers import study_dir
from nasx.space.genotype import Network
from nasx.train.recipe import Fidelity, Recipe


@dataclass(frozen=True)
class Model:
    """One model to retrain: a front member (``number`` is its trial) or a baseline (``number`` None)."""

    label: str
    role: Role
    net: Network
    number: int | None
    search_acc: float | None


def front_members(study: optuna.Study, cfg: StudyConfig, top: int) -> list[Model]:
    """The ``top`` best candidates by non-dominated sorting (:func:`nasx.results.front_ranks` on the study's
    objectives): the study's front (:func:`nasx.results.front`), most accurate first, then the next front when
    the first has fewer than ``top`` members (a front of one is common with two objectives)."""
    from nasx.results import front_ranks

    by_number = {r.number: r for r in rec.records(study, states=(TrialState.COMPLETE,))}
    costs = [o.value for o in cfg.objectives[1:]]
    out = []
    for number, _ in front_ranks(trial_rows(study), costs)[:top]:
        r = by_number[number]
        out.append(Model(f"trial{number}", Role.CANDIDATE, Network.from_dict(r.genotype or {}), number, r.val_acc))
    return out


def baselines(study: optuna.Study, cfg: StudyConfig, only: tuple[str, ...] | None = None) -> list[Model]:
    """The study's baselines (``only``: those of them), with their search accuracy."""
    if only is not None and set(only) - set(cfg.baselines):
        raise StudyError(
            f"--baseline: {sorted(set(only) - set(cfg.baselines))} not among the study's baselines {list(cfg.baselines)}"
        )
    accs = {r.name: r.val_acc for r in rec.records(study, states=(TrialState.COMPLETE,)) if r.is_baseline and r.values}
    names = [n for n in cfg.baselines if only is None or n in only]
    return [Model(name, Role.BASELINE, zoo.get(name), None, accs.get(name)) for name in names]


def recipe_digest(recipe: Recipe) -> str:
    """sha256 (12 hex) of every setting of the recipe but its name (a YAML that starts from a preset keeps the name)."""
    import hashlib
    import json

    doc = {k: v for k, v in recipe.model_dump(mode="json").items() if k != "name"}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def setup_key(net: Network, recipe: Recipe, fidelity: Fidelity, data_sha256: str, val_size: float) -> str:
    """Everything but the seed that changes a final run's result: runs of one setup are the seeds of one mean."""
    res = f"r{fidelity.resolution}" if fidelity.resolution else "rnet"
    return f"{net.digest}:{recipe_digest(recipe)}:e{fidelity.epochs}f{fidelity.fraction:g}{res}:d{data_sha256[:12]}:v{val_size:g}"


def final_run_key(net: Network, recipe: Recipe, fidelity: Fidelity, data_sha256: str, val_size: float, seed: int) -> str:
    """The study attribute a final run is recorded under: ``final:`` + its :func:`setup_key` + ``:s<seed>``."""
    return f"{FINAL_PREFIX}{setup_key(net, recipe, fidelity, data_sha256, val_size)}:s{seed}"


def final_runs(study: optuna.Study) -> list[dict[str, Any]]:
    """Every recorded final run (the study's ``final:*`` user attributes), in key order."""
    return rec.final_runs(study)


@dataclass(frozen=True)
class Job:
    model: Model
    seed: int
    key: str
    run_dir: Path
    setup: str = ""


def plan(
    study: optuna.Study,
    cfg: StudyConfig,
    root: Path | None,
    top: int,
    recipe: Recipe,
    seeds: int,
    fidelity: Fidelity,
    data_sha256: str,
    val_size: float = 0,
    only_baselines: tuple[str, ...] | None = None,
) -> list[Job]:
    """The (model, seed) runs still to do: front members first, then the baselines."""
    if top < 0 or seeds < 1:
        raise StudyError(f"--top must be >= 0 and --seeds >= 1, got {top} and {seeds}")
    models = front_members(study, cfg, top) + baselines(study, cfg, only_baselines)
    if not models:
        raise StudyError(f"study {cfg.name!r} has no complete front member and no baseline to retrain")
    from nasx.train.run import safe_part

    folder = study_dir(cfg, root) / "final"
    jobs = []
    for m in models:
        setup = setup_key(m.net, recipe, fidelity, data_sha256, val_size)
        for seed in range(seeds):
            key = final_run_key(m.net, recipe, fidelity, data_sha256, val_size, seed)
            if not rec.has_final(study, key):
                name = f"{m.label}-{recipe.name}-{recipe_digest(recipe)[:6]}-e{fidelity.epochs}-d{data_sha256[:6]}-s{seed}"
                jobs.append(Job(m, seed, key, folder / safe_part(name), setup))
    return jobs


def record(
    study: optuna.Study,
    job: Job,
    summary: dict[str, Any],
    recipe: Recipe,
    fidelity: Fidelity,
    data_sha256: str,
    val_size: float,
    test_images: int | None = None,
) -> dict[str, Any]:
    entry = {
        "setup": job.setup,
        "label": job.model.label,
        "role": job.model.role.value,
        "number": job.model.number,
        "name": job.model.net.name or job.model.label,
        "digest": job.model.net.digest,
        "string": job.model.net.to_string(),
        "seed": job.seed,
        "recipe": recipe.name,
        "recipe_digest": recipe_digest(recipe),
        "fidelity": fidelity.model_dump(mode="json"),
        "data_sha256": data_sha256,
        "val_size": val_size,
        "epochs": summary["epochs"],
        "params": summary["params"],
        "macs": summary["macs"],
        "test_acc": summary["test_acc"],
        "test_images": test_images,
        "val_acc": summary.get("val_acc"),
        "search_acc": job.model.search_acc,
        "train_seconds": summary["train_seconds"],
        "device": summary["device"],
        **held(str(summary["device"])),
        "data": summary["data"],
        "run_dir": str(job.run_dir),
    }
    rec.write_final(study, job.key, entry)
    return entry


def retrain(
    cfg: StudyConfig,
    *,
    root: Path | None = None,
    top: int = 3,
    recipe: Recipe,
    seeds: int = 3,
    epochs: int | None = None,
    data: str | None = None,
    val_size: float = 0,
    executor: str = "local",
    only_baselines: tuple[str, ...] | None = None,
    on_start: Callable[[list[Job]], None] | None = None,
    on_run: Callable[[Job, dict[str, Any]], None] | None = None,
    callback: Callable[[Any], Any] | None = None,
) -> list[dict[str, Any]]:
    """Retrain the ``top`` best front members and the baselines with ``seeds`` seeds; return every final run recorded.

    ``data`` overrides the study's source (e.g. search on the mini set, retrain on the full
    CIFAR-10); ``val_size`` 0 trains on every training image (no per-epoch validation).
    ``executor`` ``ray`` runs the runs as parallel Ray tasks with the study's per-trial resources.
    ``only_baselines``: retrain these of the study's baselines (default: all).
    """
    if executor not in ("local", "ray"):
        raise StudyError(f"executor: must be local or ray, got {executor!r}")
    from nasx import data as datasets
    from nasx.search.runner import load_study

    study = load_study(cfg, root)
    n_epochs = Fidelity(epochs=epochs).epochs_for(recipe)
    fidelity = Fidelity(epochs=n_epochs)
    if top < 0 or seeds < 1:
        raise StudyError(f"--top must be >= 0 and --seeds >= 1, got {top} and {seeds}")
    source = data or cfg.data.source
    full = datasets.load(source)  # its sha256 is part of every run's key (cached after the first load)
    jobs = plan(study, cfg, root, top, recipe, seeds, fidelity, full.digest, val_size, only_baselines)
    if on_start is not None:
        on_start(jobs)
    if jobs:
        if val_size:
            splits = datasets.split(full, datasets.as_val_size(val_size), cfg.data.split_seed, source=full.source)
        else:
            splits = datasets.Splits(
                train=full.train, val=full.train.subset(np.zeros(0, dtype=np.int64)), source=full.source, seed=cfg.data.split_seed
            )
        if executor == "ray":
            finished: Iterator[tuple[Job, dict[str, Any]]] = _on_ray(cfg, jobs, splits, full.test, recipe, fidelity)
        else:
            finished = ((job, _train(job, splits, full.test, recipe, fidelity, cfg.device, callback)) for job in jobs)
        for job, summary in finished:
            entry = record(study, job, summary, recipe, fidelity, full.digest, val_size, len(full.test))
            if on_run is not None:
                on_run(job, entry)
    return final_runs(study)


def _train(
    job: Job, splits: Any, test: Any, recipe: Recipe, fidelity: Fidelity, device: str | None, callback: Any = None
) -> dict[str, Any]:
    """One final run: ``nasx train`` into the job's folder, tested once; its summary."""
    from nasx.train.run import train_run

    _, summary = train_run(
        job.model.net,
        splits,
        recipe,
        fidelity,
        job.run_dir,
        seed=job.seed,
        device=device,
        callback=callback,
        test=test,
        test_source=splits.source,
    )
    return summary


def _on_ray(
    cfg: StudyConfig, jobs: list[Job], splits: Any, test: Any, recipe: Recipe, fidelity: Fidelity
) -> Iterator[tuple[Job, dict[str, Any]]]:
    """Run the jobs as Ray tasks with the study's per-trial resources; yield each as it finishes.

    The data goes to the object store once; each task writes its own run folder (a path every
    node sees: a shared file system on a cluster) and returns its summary to be recorded here.
    """
    import ray

    ex = cfg.executor
    started = not ray.is_initialized()
    if started:
        ray.init(address=ex.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        from nasx.search.executors.ray import ray_device, trial_resources

        gpus = trial_resources(ex.gpus_per_trial, cfg.device, float(ray.cluster_resources().get("GPU", 0)))
        device = ray_device(cfg.device, gpus > 0)
        task = ray.remote(num_cpus=ex.cpus_per_trial, num_gpus=gpus, max_retries=0)(_train)
        data_ref, test_ref = ray.put(splits), ray.put(test)
        pending = {task.remote(job, data_ref, test_ref, recipe, fidelity, device): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            yield job, ray.get(ready[0])
    finally:
        if started:
            ray.shutdown()


def export_folders(
    cfg: StudyConfig, root: Path | None = None, *, trial: int | None = None, top: int | None = None, seed: int = 0
) -> list[tuple[str, Path]]:
    """What ``nasx export`` writes from a study: ``(model folder name, final run folder)`` of each of
    :func:`export_targets`' runs, the folder named ``STUDY-LABEL`` (one safe path component)."""
    from nasx.search.runner import load_study
    from nasx.train.run import safe_part

    runs = export_targets(load_study(cfg, root), trial=trial, top=top, seed=seed)
    return [(safe_part(f"{cfg.name}-{r['label']}"), Path(r["run_dir"])) for r in runs]


def export_targets(
    study: optuna.Study, *, trial: int | None = None, top: int | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """The final runs to export: trial ``trial``'s, or the ``top`` retrained front members' (by search accuracy), of ``seed``.

    Weights exist only for final runs (search trials keep none), so a model must be retrained first.
    """
    if (trial is None) == (top is None):
        raise StudyError("give either --trial N or --top K")
    runs = [r for r in final_runs(study) if r["role"] == Role.CANDIDATE]
    if trial is not None:
        picked = [r for r in runs if r["number"] == trial]
        base = next((r for r in rec.records(study) if r.number == trial and r.is_baseline), None)
        if base is not None:  # a baseline's trial: its final runs are recorded by name
            picked = [{**r, "number": trial} for r in final_runs(study) if r["role"] == Role.BASELINE and r["name"] == base.name]
        if not picked:
            raise StudyError(
                f"trial {trial} has no final run to export: run `nasx retrain` on the study first (it retrains the front)"
            )
    else:
        order = sorted({r["number"]: r.get("search_acc") or 0.0 for r in runs}.items(), key=lambda kv: -kv[1])
        wanted = [n for n, _ in order[: top or 0]]
        picked = [r for r in runs if r["number"] in wanted]
        if not picked:
            raise StudyError("the study has no retrained front member to export: run `nasx retrain` first")
    chosen = [r for r in picked if r["seed"] == seed]
    if not chosen:
        seeds = sorted({r["seed"] for r in picked})
        raise StudyError(f"--seed {seed}: no final run with that seed; the retrained seeds are {seeds}")
    by_number = {r["number"]: r for r in chosen}  # one per model: of several recipes, the last by key
    return sorted(by_number.values(), key=lambda r: -(r.get("search_acc") or 0.0))
