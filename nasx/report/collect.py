"""What a report shows, read from a study (its Optuna storage) or from a training run folder.

A :class:`Source` is one study or one run: its trial table (``nasx.results.rows_to_frame``), the
genotypes of its trials, what was run (config, counts, versions) and the fANOVA importances.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nasx.errors import NasxError
from nasx.results import compute_cost, cost_line, final_summary, rows_to_frame


class ReportError(NasxError):
    """A study or run folder that cannot be reported, or a report that cannot be written."""


@dataclass(frozen=True)
class Source:
    """One study or one training run, as the report needs it."""

    label: str
    kind: str  # "study" or "run"
    frame: pd.DataFrame  # rows_to_frame(...) plus a "source" column
    genotypes: dict[int, dict[str, Any]]  # trial number -> genotype dict
    meta: dict[str, Any] = field(default_factory=dict)  # what was run, ordered for display
    importances: dict[str, float] = field(default_factory=dict)
    importance_note: str = ""
    cost: str = "macs"  # the study's cost objective, for hypervolume
    final: pd.DataFrame | None = None  # nasx.results.final_summary of the study's final runs (nasx retrain)
    val_images: int | None = None  # the validation split's size: the n of every search accuracy
    setup: dict[str, Any] = field(default_factory=dict)  # what makes accuracies comparable: recipe, fidelity, data
    census: pd.DataFrame | None = None  # the rows the design-space statistics use (study.census_set), val_acc at equal fidelity
    census_note: str = ""  # what they were computed over, and how many


def from_study(cfg: Any, root: Path | None = None) -> Source:
    """Read the study of ``cfg`` (a ``StudyConfig``) from its storage; nothing is locked or written."""
    from nasx.search import provenance
    from nasx.search import record as rec
    from nasx.search.queries import census_set, importances, progress, trial_rows
    from nasx.search.retrain import final_runs
    from nasx.search.runner import load_study

    study = load_study(cfg, root)
    rows = trial_rows(study)
    frame = rows_to_frame(rows, [o.value for o in cfg.objectives[1:]])
    frame["source"] = cfg.name
    genotypes = {r.number: r.genotype for r in rec.records(study) if r.genotype is not None}
    p = progress(study)
    stored = provenance.stored_config(study)
    accuracy, census_note = census_set(study, (stored or cfg).sampler.kind.value)
    imp, note = importances(study, accuracy, census_note.split(":")[0]) if accuracy else ({}, census_note)
    census = frame[frame["number"].isin(list(accuracy))].copy()
    census["val_acc"] = census["number"].map(accuracy).astype(float)
    census["error"] = 1.0 - census["val_acc"]
    meta = what_ran(stored or cfg, study, p, from_disk=stored is None)
    runs = final_runs(study)
    final = final_summary(runs)
    final["source"] = cfg.name
    if runs:
        setups = sorted({f"{r['recipe']} e{r['epochs']}" for r in runs})
        meta["final runs"] = f"{len(runs)} runs of {len(final)} models ({', '.join(setups)}), test set of {runs[0]['data']}"
    meta["compute"] = cost_line(compute_cost(rows, runs))
    used = stored or cfg
    cost = next((o.value for o in used.objectives[1:]), "macs")
    val_n = provenance.provenance(study).get("val_images") or (int(used.data.val_size) if used.data.val_size >= 1 else None)
    setup = {
        "recipe": used.resolved_recipe().model_dump(mode="json"),
        "fidelity": used.fidelity.model_dump(mode="json"),
        "data": provenance.provenance(study).get("data_sha256") or used.data.source,
        "validation": val_n,
    }
    return Source(cfg.name, "study", frame, genotypes, meta, imp, note, cost, final, val_n, setup, census, census_note)


def _settings_text(settings: dict[str, Any]) -> str:
    s = settings
    stop = s["early_stopping"]
    stopping = stop["kind"] + (f" (grace {stop['grace']}, reduction {stop['reduction']})" if stop["kind"] != "none" else "")
    limits = ", ".join(f"{k} {v:,}" for k, v in s["constraints"].items() if v is not None) or "none"
    return (
        f"seed {s['seed']}; sampler {s['sampler']['kind']} (seed {s['sampler']['seed']}); early stopping {stopping}; "
        f"baselines {', '.join(s['baselines']) or 'none'}; constraints {limits}; retries {s['failures']['retries']}; "
        f"device {s['device'] or 'auto'}"
    )


def what_ran(cfg: Any, study: Any, p: Any, *, from_disk: bool = False) -> dict[str, Any]:
    """The "What was run" table, read from the study's stored record (its provenance, segments and runs):
    ``cfg`` is the config stored at creation; ``from_disk`` when the study predates that record."""
    from nasx.search import provenance
    from nasx.search import record as rec

    prov = provenance.provenance(study)
    recipe = cfg.resolved_recipe()
    data = cfg.data
    budget = ", ".join(
        part
        for part in (
            f"{cfg.budget.trials} trials" if cfg.budget.trials else "",
            f"{cfg.budget.wall_time:.0f} s wall time" if cfg.budget.wall_time else "",
        )
        if part
    )
    sha = prov.get("data_sha256")
    code = prov.get("code") or {}
    meta: dict[str, Any] = {
        "record": "the YAML on disk (this study predates the stored record)"
        if from_disk
        else f"the config stored in the study when it was created{' (' + prov['created'] + ')' if prov.get('created') else ''}",
        "study": cfg.name,
        "space": f"{cfg.space} (digest {prov['space_digest']})" if prov.get("space_digest") else cfg.space,
        "objectives": ", ".join(o.value for o in cfg.objectives),
        "constraints": ", ".join(f"{k} {v:,}" for k, v in cfg.constraints.model_dump().items() if v is not None) or "none",
        "sampler": f"{cfg.sampler.kind.value}, seed {cfg.sampler.seed}",
        "seed": cfg.seed,
        "fidelity": f"{cfg.epochs} epochs, fraction {cfg.fidelity.fraction:g}"
        + (f", resolution {cfg.fidelity.resolution}" if cfg.fidelity.resolution else "")
        + (
            f"; trained on a proxy network (width x{cfg.fidelity.width:.4g}, depth x{cfg.fidelity.depth:.4g}): "
            "accuracies are the proxy's, params and MACs the evaluation network's"
            if cfg.fidelity.proxy
            else ""
        ),
        "early stopping": cfg.early_stopping.kind
        + (
            f" (grace {cfg.early_stopping.grace}, reduction {cfg.early_stopping.reduction})"
            if cfg.early_stopping.kind != "none"
            else ""
        ),
        "recipe": f"{recipe.name}: batch {recipe.batch_size}, lr {recipe.lr:g}, {recipe.schedule.value} schedule"
        + (", residual branches start at zero" if recipe.zero_init_residual else ""),
        "budget": budget,
        "data": f"{data.source}"
        + (f" (sha256 {sha[:12]})" if sha else "")
        + f", validation {data.val_size:g} held out of the training set (split seed {data.split_seed}); test set not used",
        "executor": cfg.executor.kind + (f", {cfg.executor.workers} worker processes" if cfg.executor.workers > 1 else ""),
        "baselines": ", ".join(cfg.baselines) or "none",
        "code": ", ".join(f"{k} {v}" for k, v in code.items()) or "not recorded",
    }
    segs = provenance.segments(study)
    if len(segs) > 1:
        bounds = [s["from_trial"] for s in segs[1:]] + [None]
        meta["segments"] = " | ".join(
            f"trials {s['from_trial']}{'-' + str(end - 1) if end is not None else ' on'}: {_settings_text(s['settings'])}"
            for s, end in zip(segs, bounds, strict=True)
        )
    meta["trials by state"] = ", ".join(f"{v} {k}" for k, v in sorted(p.by_state.items())) or "none yet"
    meta["search time"] = f"{p.elapsed:.0f} s"
    runs = provenance.runs(study)
    if runs:
        meta["search runs"] = " | ".join(
            f"{r.get('start', '?')} to {r.get('end') or 'unfinished'} on {r.get('host', '?')}: {r.get('cpu', '?')} "
            f"({r.get('cpu_cores', '?')} cores), "
            + (f"{r['gpu_count']} x {r['gpu']}" if r.get("gpu_count") else "no GPU")
            + "; "
            + ", ".join(f"{k} {v}" for k, v in (r.get("versions") or {}).items())
            for r in runs
        )
    else:
        meta["versions"] = ", ".join(f"{k} {v}" for k, v in (rec.study_attr(study, rec.VERSIONS) or {}).items()) or "not recorded"
    return meta


def from_run(folder: Path) -> Source:
    """A ``nasx train`` run folder (``summary.json`` and ``config.yaml``) as a one-row source."""
    from nasx.yamlfiles import load_mapping

    summary_path, config_path = folder / "summary.json", folder / "config.yaml"
    if not summary_path.is_file():
        raise ReportError(f"{folder}: not a finished training run (no summary.json); finish it with `nasx train` first")

    def unreadable(problem: object) -> ReportError:
        return ReportError(f"{folder}: cannot read the run's summary or config: {problem}")

    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError) as exc:
        raise unreadable(exc) from None
    config = load_mapping(config_path, "run config", unreadable) if config_path.is_file() else {}
    from nasx import zoo
    from nasx.space.genotype import Network

    genotype = (config or {}).get("network") or {}
    try:
        net = Network.from_dict(genotype)
        string, family = net.to_string(), zoo.family(net)
    except NasxError:
        string, family = "", ""
    label = folder.name
    row = {
        "number": 0,
        "role": "run",  # report.figures.RUN
        "name": summary.get("name") or label,
        "state": summary.get("state", "complete"),
        "reason": None,
        "family": family,
        "digest": summary.get("digest"),
        "string": string,
        "params": summary.get("params"),
        "macs": summary.get("macs"),
        "val_acc": summary.get("val_acc"),
        "epochs": summary.get("epochs", 0),
        "curve": [],
        "wall_s": summary.get("train_seconds"),
        "device": summary.get("device"),
        "duplicate_of": None,
        "test_acc": summary.get("test_acc"),
        "test_images": summary.get("test_images"),
    }
    frame = rows_to_frame([row])
    frame["source"] = label
    recipe = (config or {}).get("recipe", {})
    meta = {
        "run": label,
        "network": summary.get("name") or "",
        "recipe": f"{recipe.get('name', '?')}, {summary.get('epochs', '?')} epochs, seed {(config or {}).get('seed', '?')}",
        "data": str(summary.get("data", "")),
        "versions": ", ".join(f"{k} {v}" for k, v in (config or {}).get("versions", {}).items()) or "not recorded",
    }
    data = (config or {}).get("data") or {}
    setup = {
        "recipe": {k: v for k, v in recipe.items() if k != "name"} if isinstance(recipe, dict) else recipe,
        "fidelity": (config or {}).get("fidelity"),
        "data": str(summary.get("data", "")),
        "validation": data.get("val"),
    }
    source = Source(label, "run", frame, {0: genotype} if genotype else {}, meta, val_images=data.get("val") or None, setup=setup)
    return source


def resolve(item: str, root: Path) -> Source:
    """A study config (path or name in studies/) or a training run folder."""
    path = Path(item)
    if path.is_dir():
        return from_run(path)
    from nasx.search.config import StudyConfig, study_file

    found = study_file(item)
    if found is None:
        raise ReportError(f"{item!r} is neither a study config (a YAML file, or a name in studies/) nor a run folder")
    return from_study(StudyConfig.load(found), root)


def overlay(item: str, root: Path) -> Source:
    """A finished classics study (a baselines-only study, config path or name in studies/) whose hand-designed
    front a report overlays; :class:`ReportError` when it is a run folder or has no finished baseline."""
    source = resolve(item, root)
    if source.kind != "study":
        raise ReportError(f"overlay {item!r}: give a study (e.g. cifar10-classics), not a run folder")
    frame = source.frame
    if not ((frame["role"] == "baseline") & (frame["state"] == "complete")).any():
        raise ReportError(f"overlay {item!r} has no finished baseline yet: run `nasx search {item}` first")
    return source
