"""What ran, frozen in the study: the setup at creation, one segment per change of setting, one entry per run.

- ``provenance`` (written once, when the study is created): the full config, the space's digest,
  the sha256 of the data, the code version (nasx's version and, from a git checkout, its commit).
- ``segments``: the settings that change results but may change on resume (seeds, sampler, early
  stopping, baselines, constraints, failure policy, device). The first segment is the creation's;
  a resume with other settings appends a new one (``from_trial``: the first trial it asks), which
  the report shows. Settings that must never change (space, objectives, fidelity, recipe, data
  source and split, and the data's sha256) are the study's identity: a resume that changes them is
  refused (:func:`nasx.search.study.open_study`, :func:`check_data`).
- ``runs``: one entry per search process on the study: versions, host, CPU model and cores, GPU
  name and count, start and end, the segment it ran in.

Search cost is then summed from the trials (wall seconds x cores, or x GPUs) and the final runs:
:func:`nasx.results.compute_cost`.
"""

from __future__ import annotations

import os
import re
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna

from nasx.search import record as rec
from nasx.search.config import StudyConfig, StudyError


def code_version() -> dict[str, str]:
    """nasx's version and, when it runs from a git checkout, the commit it is at.

    The commit is read from the checkout's files (``HEAD``, the ref it names, ``packed-refs``), not by
    running git: a repository's own configuration can make git run commands (``core.fsmonitor``).
    Uncommitted changes are therefore not detected.
    """
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    try:
        out["nasx"] = version("nasx")
    except PackageNotFoundError:
        out["nasx"] = "unknown"
    commit = _git_commit(Path(__file__).resolve().parents[2] / ".git")
    if commit:
        out["commit"] = commit[:12]
    return out


def _git_commit(dot_git: Path) -> str | None:
    """The commit ``HEAD`` of a checkout's ``.git`` (a folder, or a worktree's ``gitdir:`` file) points at, if readable."""
    try:
        if dot_git.is_file():
            line = dot_git.read_text().strip()
            if not line.startswith("gitdir:"):
                return None
            dot_git = (dot_git.parent / line.split(":", 1)[1].strip()).resolve()
        head = (dot_git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head if re.fullmatch(r"[0-9a-f]{40}", head) else None
        ref = head.split(":", 1)[1].strip()
        common = dot_git  # a worktree keeps its refs in the main repository's folder
        if (dot_git / "commondir").is_file():
            common = (dot_git / (dot_git / "commondir").read_text().strip()).resolve()
        for base in (dot_git, common):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split(" ", 1)[0]
    except OSError:
        return None
    return None


def gpus() -> tuple[str | None, int]:
    """The name of the first visible CUDA GPU and how many there are (torch only if already imported)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None, 0
    n = torch.cuda.device_count()
    return (torch.cuda.get_device_name(0) if n else None), n


def machine() -> dict[str, Any]:
    from nasx.train.loop import cpu_model
    from nasx.train.run import versions

    gpu, count = gpus()
    return {
        "versions": versions(),
        "code": code_version(),
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count() or 1,
        "gpu": gpu,
        "gpu_count": count,
    }


def segment_settings(cfg: StudyConfig) -> dict[str, Any]:
    """The settings that change results and may change between runs of a study (each change is a segment)."""
    dump = cfg.model_dump(mode="json")
    return {k: dump[k] for k in ("seed", "sampler", "early_stopping", "baselines", "constraints", "failures", "device", "census")}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_data(study: optuna.Study, data_sha256: str | None) -> None:
    """Refuse a resume whose data differs (same path, other bytes) from the data the study was created on."""
    prov = rec.study_attr(study, rec.PROVENANCE) or {}
    old = prov.get("data_sha256")
    if old and data_sha256 and old != data_sha256:
        raise StudyError(
            f"data: the study was created on data with sha256 {old[:12]}, this run reads {data_sha256[:12]} "
            "(same source, other bytes); give the changed study a new name, or restore the data"
        )


def begin_run(
    study: optuna.Study,
    cfg: StudyConfig,
    space_digest: str,
    data_sha256: str | None,
    worker_id: str,
    val_images: int | None = None,
) -> int:
    """Record this search run: the study's provenance (first run only), a new segment when settings changed, and the
    run entry. Call it under the worker's ``ask.lock``. Returns the run's index in ``runs``."""
    check_data(study, data_sha256)
    if rec.study_attr(study, rec.PROVENANCE) is None:
        rec.set_study_attr(
            study,
            rec.PROVENANCE,
            {
                "created": _now(),
                "config": cfg.model_dump(mode="json"),
                "space_digest": space_digest,
                "data_source": cfg.data.source,
                "data_sha256": data_sha256,
                "val_images": val_images,
                "code": code_version(),
            },
        )
    elif data_sha256 and not (rec.study_attr(study, rec.PROVENANCE) or {}).get("data_sha256"):
        prov = dict(rec.study_attr(study, rec.PROVENANCE))
        rec.set_study_attr(study, rec.PROVENANCE, {**prov, "data_sha256": data_sha256})  # created by a dry run
    segments = list(rec.study_attr(study, rec.SEGMENTS) or [])
    settings = segment_settings(cfg)
    if not segments or segments[-1]["settings"] != settings:
        first = len(study.get_trials(deepcopy=False))
        segments.append({"from_trial": first, "started": _now(), "settings": settings})
        rec.set_study_attr(study, rec.SEGMENTS, segments)
    runs = list(rec.study_attr(study, rec.RUNS) or [])
    runs.append(
        {
            "worker": worker_id,
            "segment": len(segments) - 1,
            "start": _now(),
            "end": None,
            "started_s": time.time(),
            **machine(),
        }
    )
    rec.set_study_attr(study, rec.RUNS, runs)
    return len(runs) - 1


def end_run(study: optuna.Study, index: int) -> None:
    """Stamp the end of run ``index`` (the runs list is re-read: other workers may have appended meanwhile)."""
    runs = list(rec.study_attr(study, rec.RUNS) or [])
    if 0 <= index < len(runs):
        runs[index] = {**runs[index], "end": _now(), "seconds": time.time() - float(runs[index].get("started_s", time.time()))}
        rec.set_study_attr(study, rec.RUNS, runs)


def stored_config(study: optuna.Study) -> StudyConfig | None:
    """The config the study was created with (its provenance, or the older ``config`` attribute); None if absent."""
    prov = rec.study_attr(study, rec.PROVENANCE) or {}
    doc = prov.get("config") or rec.study_attr(study, rec.CONFIG)
    if not doc:
        return None
    try:
        return StudyConfig.model_validate(doc)
    except ValueError:
        return None


def segments(study: optuna.Study) -> list[dict[str, Any]]:
    return list(rec.study_attr(study, rec.SEGMENTS) or [])


def runs(study: optuna.Study) -> list[dict[str, Any]]:
    return list(rec.study_attr(study, rec.RUNS) or [])


def provenance(study: optuna.Study) -> dict[str, Any]:
    return dict(rec.study_attr(study, rec.PROVENANCE) or {})
