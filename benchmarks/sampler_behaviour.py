"""What the samplers do with their draws, on dry runs (no training: each trial's accuracy is made up
from its genotype's digest, as in ``run_search(dry_run_s=0)``).

- evolution: the share of trials recorded as duplicates in a regularized-evolution run on nasnet-cifar;
- TPE: the share of infeasible draws in the quickstart's space and constraint (macro-cifar, max_macs),
  over the whole run and its first and second halves.

    python benchmarks/sampler_behaviour.py [--trials 200] [--tpe-trials 60] [--seeds 0 1 2] [--what both]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from nasx.search import StudyConfig, run_search
from nasx.search.config import StudyError, study_file
from nasx.search.runner import status


def evolution(folder: Path, trials: int, seed: int) -> tuple[float, int]:
    cfg = StudyConfig.model_validate(
        {
            "name": f"evo-{seed}",
            "space": "nasnet-cifar",
            "objectives": ["val_acc", "macs"],
            "sampler": {"kind": "evolution", "seed": seed, "population": 20, "sample_size": 5},
            "budget": {"trials": trials},
            "fidelity": {"epochs": 1},
            "early_stopping": {"kind": "none"},
        }
    )
    rows = run_search(cfg, root=folder, dry_run_s=0).rows
    cand = [r for r in rows if r["role"] == "candidate"]
    dup = sum(r["state"] == "duplicate" for r in cand)
    return dup / len(cand), len(cand)


def tpe(folder: Path, trials: int, seed: int) -> tuple[float, float, float, int]:
    quick = StudyConfig.load(study_file("quickstart") or "studies/quickstart.yaml")
    raw = quick.model_dump(mode="json")
    raw.update(
        name=f"tpe-{seed}", baselines=[], sampler={**raw["sampler"], "kind": "tpe", "seed": seed}, budget={"trials": trials}
    )
    cfg = StudyConfig.model_validate(raw)
    try:
        rows = run_search(cfg, root=folder, dry_run_s=0).rows
    except StudyError as exc:  # too many infeasible draws: the search gave up, its record stays
        print(f"tpe seed {seed}: {exc}")
        rows = status(cfg, folder)[1]
    flags = [r["state"] == "infeasible" for r in rows if r["role"] == "candidate"]
    half = len(flags) // 2
    return sum(flags) / len(flags), sum(flags[:half]) / half, sum(flags[half:]) / (len(flags) - half), len(flags)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=200, help="evolution trials (evaluated, duplicates included)")
    ap.add_argument("--tpe-trials", type=int, default=60, help="feasible TPE trials to reach")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--what", choices=["both", "evolution", "tpe"], default="both")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds if args.what != "tpe" else []:
            t0 = time.perf_counter()
            share, n = evolution(Path(tmp), args.trials, seed)
            print(f"evolution seed {seed}: {share:.1%} duplicates of {n} candidates ({time.perf_counter() - t0:.0f}s)")
        for seed in args.seeds if args.what != "evolution" else []:
            t0 = time.perf_counter()
            total, first, second, n = tpe(Path(tmp), args.tpe_trials, seed)
            print(
                f"tpe seed {seed}: {total:.1%} of {n} draws infeasible (first half {first:.1%}, second half {second:.1%})"
                f" ({time.perf_counter() - t0:.0f}s)"
            )


if __name__ == "__main__":
    main()
