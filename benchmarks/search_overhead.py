"""Per-trial overhead of the search loop: the same study of trivial trials, local and Ray.

Each trial sleeps ``--sleep`` seconds instead of training (``run_search(dry_run_s=...)``); sampling,
complexity counting, de-duplication and recording in the journal all run as in a real search.
A first run of ``--warmup`` trials pays the one-off costs (imports, Ray's start) and is not counted.
The local study then grows to each of ``--checkpoints`` trials in turn (resumed, as a user resumes
one), and each segment's wall seconds per trial, minus the sleep, is printed: flat overhead means
the loop does not slow down as the study grows. The sampler's own time (Optuna's ``sample_*``,
``infer_relative_search_space`` and ``before/after_trial`` calls, timed around the sampler's methods)
is printed beside it, and nasx's loop is the rest: TPE's time grows with the study by design (each
ask fits its Parzen estimators to every trial, per parameter group), the loop's should not. Ray runs
``--ray-trials`` more trials, one at a time, on a study of its own, and what it adds per trial over
local at the same study size is printed.

    python benchmarks/search_overhead.py [--checkpoints 100 500 1000] [--ray-trials 100] [--sleep 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from nasx.search import StudyConfig, run_search
from nasx.search import samplers as nasx_samplers

SAMPLER_SECONDS = [0.0]
_TIMED = ("infer_relative_search_space", "sample_relative", "sample_independent", "before_trial", "after_trial")


_DEPTH = [0]  # timed calls in progress: a sampler's method calling another timed one (super(), TPE's inner
# random sampler) is counted once, by the outermost


def _timed(f: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        _DEPTH[0] += 1
        try:
            return f(*a, **k)
        finally:
            _DEPTH[0] -= 1
            if _DEPTH[0] == 0:
                SAMPLER_SECONDS[0] += time.perf_counter() - t0

    return timed


def time_samplers() -> None:
    """Count the wall seconds spent inside every sampler kind's methods into ``SAMPLER_SECONDS``."""
    classes = {optuna.samplers.RandomSampler, optuna.samplers.TPESampler, optuna.samplers.NSGAIISampler}
    classes |= {c for c in vars(nasx_samplers).values() if isinstance(c, type) and issubclass(c, optuna.samplers.BaseSampler)}
    for cls in classes:
        for name in _TIMED:
            if name in vars(cls):
                setattr(cls, name, _timed(vars(cls)[name]))


def config(kind: str, name: str, trials: int, space: str, sampler: str) -> StudyConfig:
    return StudyConfig.model_validate(
        {
            "name": name,
            "space": space,
            "objectives": ["val_acc", "macs"],
            "sampler": {"kind": sampler, "seed": 0},
            "budget": {"trials": trials},
            "fidelity": {"epochs": 1},
            "early_stopping": {"kind": "none"},
            "executor": {"kind": kind, "cpus_per_trial": 1, "max_concurrent": 1},
        }
    )


def grow(
    kind: str, folder: Path, name: str, sizes: list[int], sleep: float, space: str, sampler: str
) -> list[tuple[float, float]]:
    """Seconds per trial of each segment as the study grows to each of ``sizes``, minus the sleep, and of those
    the sampler's seconds per trial (in this process: the local executor's)."""
    out, done = [], 0
    for n in sizes:
        t0, s0 = time.perf_counter(), SAMPLER_SECONDS[0]
        run_search(config(kind, name, n, space, sampler), root=folder, dry_run_s=sleep)
        out.append(((time.perf_counter() - t0) / (n - done) - sleep, (SAMPLER_SECONDS[0] - s0) / (n - done)))
        done = n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=int, nargs="+", default=[100, 500, 1000], help="study sizes, local executor")
    ap.add_argument("--ray-trials", type=int, default=100, help="0: no Ray")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--sleep", type=float, default=0.0, help="seconds each trivial trial takes")
    ap.add_argument("--space", default="macro-cifar")
    ap.add_argument("--sampler", default="random")
    args = ap.parse_args()
    w, sizes = args.warmup, sorted(args.checkpoints)
    time_samplers()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        grow("local", folder, "local", [w], args.sleep, args.space, args.sampler)
        print(f"warm-up: {w} trials in {time.perf_counter() - t0:.1f}s (imports included, not counted)")
        local = grow("local", folder, "local", [w + n for n in sizes], args.sleep, args.space, args.sampler)
        print(f"local executor, space {args.space}, sampler {args.sampler}, trials of {args.sleep}s (seconds per trial):")
        print(f"{'study size':>12} {'overhead':>9} {'sampler':>8} {'nasx loop':>10}")
        prev = 0
        for n, (per, samp) in zip(sizes, local, strict=True):
            print(f"{f'{prev}-{n}':>12} {per:>9.3f} {samp:>8.3f} {per - samp:>10.3f}")
            prev = n
        if args.ray_trials:
            import ray

            t0 = time.perf_counter()
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
            grow("ray", folder, "ray", [w], args.sleep, args.space, args.sampler)
            print(f"ray.init and {w} warm-up trials took {time.perf_counter() - t0:.1f}s (not counted)")
            n = args.ray_trials
            ((ray_per, _),) = grow("ray", folder, "ray", [w + n], args.sleep, args.space, args.sampler)
            local_per = grow("local", folder, "local-again", [w, w + n], args.sleep, args.space, args.sampler)[1][0]
            ray.shutdown()
            print(f"ray, 1 at a time, {n} trials: {ray_per:.3f} s/trial overhead; local at the same size {local_per:.3f}")
            print(f"Ray adds {ray_per - local_per:+.3f} s per trial over local")


if __name__ == "__main__":
    main()
