"""Per-trial overhead of the executors: the same study of trivial trials, local and Ray, in one run.

Each trial sleeps ``--sleep`` seconds instead of training (``run_search(dry_run_s=...)``); sampling,
complexity counting, de-duplication and recording in the journal all run as in a real search.
Prints wall seconds per trial and the overhead (per trial, minus the sleep) of each executor, and
what Ray adds over local.

    python benchmarks/search_overhead.py [--trials 30] [--sleep 0.2] [--space macro-cifar]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from nasx.search import StudyConfig, run_search


def one(kind: str, folder: Path, trials: int, sleep: float, space: str, concurrent: int) -> float:
    cfg = StudyConfig.model_validate(
        {
            "name": f"bench-{kind}-{concurrent}",
            "space": space,
            "objectives": ["val_acc", "macs"],
            "sampler": {"kind": "random", "seed": 0},
            "budget": {"trials": trials},
            "fidelity": {"epochs": 1},
            "early_stopping": {"kind": "none"},
            "executor": {"kind": kind, "cpus_per_trial": 1, "max_concurrent": concurrent},
        }
    )
    t0 = time.perf_counter()
    run_search(cfg, root=folder, dry_run_s=sleep)
    return (time.perf_counter() - t0) / trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--sleep", type=float, default=0.2, help="seconds each trivial trial takes")
    ap.add_argument("--space", default="macro-cifar")
    args = ap.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        local = one("local", folder, args.trials, args.sleep, args.space, 1)
        t0 = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        startup = time.perf_counter() - t0
        ray1 = one("ray", folder, args.trials, args.sleep, args.space, 1)
        ray2 = one("ray", folder, args.trials, args.sleep, args.space, 2)
        ray.shutdown()
    print(f"{args.trials} trials of {args.sleep}s each, space {args.space}; ray.init took {startup:.1f}s (not in the figures)")
    print(f"{'executor':<22} {'s/trial':>8} {'overhead s/trial':>17}")
    for name, per in [("local", local), ("ray, 1 at a time", ray1), ("ray, 2 concurrent", ray2)]:
        print(f"{name:<22} {per:>8.3f} {per - args.sleep:>17.3f}")
    print(f"Ray adds {ray1 - local:+.3f} s per trial over local (1 at a time)")


if __name__ == "__main__":
    main()
