"""Evidence for the samplers: random, TPE, NSGA-II, regularized evolution and proxy-screened TPE, one space, one budget.

Every run is nasx's real search (``run_search``, local executor): the study's sampler from
``nasx.search.samplers.make_sampler``, the constraint, infeasible draws told to the sampler with their
violation, de-duplication, the ``proxies:`` pre-filter and the journal, with one change: a candidate is
scored instead of trained (``run_search(evaluator=...)``, ``nasx.search.trial.Evaluator``). So the
objective is cheap but real, a property of the actual network:

- maximise NASWOT (``nasx.train.proxies.naswot``) of the genotype's network built at full width, fed
  one fixed seeded minibatch of 32 training images of the bundled mini CIFAR-10 at 16x16 (the proxy
  benchmark's resolution), weights initialised from seed 0: a deterministic function of the genotype,
  cached by its digest and shared by every sampler and seed. (16x16 is the scorer's, not the study's
  ``fidelity.resolution``: nasx's check of a network against a fidelity resolution costs about as much
  as the score itself. A network the scorer could not run would be recorded as a failed trial: the
  ``failed`` column.)
- minimise MACs at the genotype's evaluation size (32x32), on macro-cifar under ``max_macs`` 60M (the
  quickstart's space and constraint when this benchmark was made; the quickstart now has its own small
  quickstart-cifar space).

Why macro-cifar at 60M rather than nasnet-cifar: it is nasx's rich macro space (the cifar10-macro
study's), and the constraint makes the handling of infeasible draws part of the comparison (about
90% of uniform draws are over 60M MACs or invalid; they are free in the budget but not in time).
nasnet-cifar has no infeasible draws, but a draw there costs about 0.16 s of complexity counting on
the 20-cell evaluation network and a score at the proxy benchmark's size 0.2-0.35 s: 5 samplers x 5
seeds x 200 trials would not fit in about 40 CPU minutes. Here the whole benchmark took 38 CPU
minutes (2,302 s; 3,385 s wall on a shared machine).

NASWOT stands in for accuracy: nasx's default ``rank_by``, with a real trade-off against MACs on this
space (Kendall tau +0.20 with log MACs in benchmarks/data/proxy_bench.csv). It is not a good predictor
of trained accuracy there (tau -0.38 at that table's low fidelity); this benchmark compares the
samplers on a fixed, real landscape, not on accuracy.

The samplers, with the defaults a study gets (population 20, tournament 5, TPE's 10 random start-up
trials): ``random``, ``tpe``, ``nsga2`` (``ConditionalNSGAIISampler``), ``evolution`` (regularized
evolution) and ``tpe+screen``: TPE with ``proxies: {use: prefilter, rank_by: synflow, draw: 8, keep: 2}``
(8 feasible fresh draws scored, the best 2 evaluated, the others told as pruned and not counted).
It screens by synflow, not by the objective: screening by NASWOT itself would be an oracle.

Hypervolume after 50, 100 and 200 evaluated trials (the budget's count: complete and duplicate
candidates, in trial order; infeasible and screened draws are free), in normalised coordinates
fixed for every sampler: x = log10(MACs) from ``log10(MIN_MACS)`` to the reference ``log10(MAX_MACS)``,
y = NASWOT from the reference ``REF_SCORE`` to ``TOP_SCORE``; 1.0 is the whole box. Per sampler: the
mean over seeds with a 95% t-interval, and the paired difference to random on the same seeds (a
sampler and random with one seed share their seeded random start-up draws) with its t-interval;
"beats random" only when that interval is above 0, "worse than random" when it is below.

    nice -n 10 python benchmarks/sampler_bench.py        # seeds 0-4, 200 trials; writes benchmarks/data/sampler_bench.csv
    nice -n 10 python benchmarks/sampler_bench.py --seeds 3 4 --append   # a part: the other seeds' rows are kept
    python benchmarks/sampler_bench.py --from-csv         # the tables from the committed CSV, nothing run
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nasx.results.pareto import hypervolume  # noqa: E402
from nasx.search.config import StudyConfig, StudyError  # noqa: E402
from nasx.space.genotype import Network  # noqa: E402

CSV_PATH = ROOT / "benchmarks" / "data" / "sampler_bench.csv"
SPACE = "macro-cifar"
MAX_MACS = 60_000_000  # the constraint, and the reference point's cost
#: The rest of the normalisation box, fixed before the benchmark from a pilot of every sampler at seed 99
#: (not a benchmark seed; 1,000 evaluated candidates: MACs 4.2M to 60M, NASWOT 300.9 to 398.5), rounded
#: outward. A point above TOP_SCORE still counts in full (the box only scales the area); one at or below
#: REF_SCORE, or at MAX_MACS, adds nothing.
MIN_MACS = 1_000_000
REF_SCORE = 280.0
TOP_SCORE = 420.0
OBJECTIVE = "naswot"
SCREEN_BY = "synflow"
RESOLUTION = 16
BATCH_SIZE = 32
SAMPLERS = ("random", "tpe", "nsga2", "evolution", "tpe+screen")
CHECKPOINTS = (50, 100, 200)
#: Where the studies' journals go: a memory file system when there is one, so that the wall times are the
#: search's, not the disk's fsync (each draw appends to the journal several times).
SCRATCH = Path("/dev/shm")
COLUMNS = (
    "sampler",
    "seed",
    "trials",
    "hypervolume",
    "draws",
    "infeasible",
    "duplicates",
    "screened",
    "failed",
    "wall_s",
    "cpu_s",
    "score_s",
    "scored",
)


@dataclass
class Scorer:
    """Zero-cost scores of genotypes on one fixed minibatch, cached by (digest, proxy): exact across samplers and seeds.

    ``seconds`` and ``computed`` count the scoring work actually done (cache misses); the CPU seconds of
    each computation are kept in ``cpu`` per proxy, for the per-score cost.
    """

    resolution: int = RESOLUTION
    batch_size: int = BATCH_SIZE
    seed: int = 0
    cache: dict[tuple[str, str], float | None] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    computed: int = 0
    _batches: list[Any] | None = None

    def batches(self) -> list[Any]:
        if self._batches is None:
            from nasx import data as datasets
            from nasx.search.config import DataConfig
            from nasx.train.proxies import proxy_batches

            cfg = DataConfig()
            full = datasets.load("mini", progress=False)
            train = datasets.split(full, cfg.val, cfg.split_seed, source=full.source).train
            self._batches = proxy_batches(
                train, batches=1, batch_size=self.batch_size, seed=self.seed, resolution=self.resolution
            )
        return self._batches

    def score(self, net: Network, name: str) -> float | None:
        key = (net.digest, name)
        if key not in self.cache:
            from nasx.train.proxies import score_network

            t0 = time.perf_counter()
            result = score_network(net, self.batches(), [name], seed=self.seed)
            self.seconds += time.perf_counter() - t0
            self.computed += 1
            self.cpu.setdefault(name, []).append(result.cpu_seconds[name])
            self.cache[key] = result.values[name]
        return self.cache[key]

    def objective(self, net: Network) -> float:
        """The candidate's "accuracy": its NASWOT, or ``REF_SCORE`` where it is undefined (a singular kernel: no area)."""
        value = self.score(net, OBJECTIVE)
        return REF_SCORE if value is None else value

    def proxies(self, net: Network, names: Sequence[str]) -> dict[str, float | None]:
        return {name: self.score(net, name) for name in names}


def study_config(sampler: str, seed: int, trials: int) -> StudyConfig:
    """The study each run searches: the same space, constraint, objectives and budget for every sampler."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler: must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    kind = "tpe" if sampler == "tpe+screen" else sampler
    raw: dict[str, Any] = {
        "name": f"{kind}{'-screen' if sampler == 'tpe+screen' else ''}-s{seed}",
        "space": SPACE,
        "objectives": ["val_acc", "macs"],
        "constraints": {"max_macs": MAX_MACS},
        "sampler": {"kind": kind, "seed": seed},
        "budget": {"trials": trials},
        "fidelity": {"epochs": 1},
        "early_stopping": {"kind": "none"},
        "executor": {"kind": "local"},
    }
    if sampler == "tpe+screen":
        raw["proxies"] = {"use": "prefilter", "compute": [SCREEN_BY], "rank_by": SCREEN_BY, "draw": 8, "keep": 2}
    return StudyConfig.model_validate(raw)


@dataclass(frozen=True)
class Run:
    """One sampler and seed: every candidate in trial order (state, the objective values when evaluated)."""

    sampler: str
    seed: int
    states: tuple[str, ...]
    reasons: tuple[str | None, ...]  # nasx's recorded reason (why infeasible, duplicate, screened)
    points: tuple[tuple[float, float] | None, ...]  # (score, MACs) of an evaluated candidate, else None
    wall_s: float
    cpu_s: float  # this process's CPU seconds (the machine may be shared: wall_s also counts waiting)
    score_s: float  # of wall_s, the scoring this run computed (cache misses)
    scored: int  # networks scored for this run (cache misses)
    stopped: str | None = None  # why the search stopped before its budget (too many infeasible draws), else None


EVALUATED = ("complete", "duplicate")


def run_one(sampler: str, seed: int, trials: int, scorer: Scorer, root: Path) -> Run:
    """Search ``trials`` evaluated candidates with ``sampler`` (seeded ``seed``), each scored by ``scorer``."""
    from nasx.search import run_search
    from nasx.search.runner import status
    from nasx.search.trial import Evaluator

    cfg = study_config(sampler, seed, trials)
    before_s, before_n = scorer.seconds, scorer.computed
    stopped = None
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        rows = run_search(cfg, root=root, evaluator=Evaluator(scorer.objective, scorer.proxies)).rows
    except StudyError as exc:  # the infeasible-draw cap: the search gave up, its trials stay recorded
        stopped, rows = str(exc), status(cfg, root)[1]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cands = sorted((r for r in rows if r["role"] == "candidate"), key=lambda r: r["number"])
    points = tuple(
        (float(r["val_acc"]), float(r["macs"])) if r["state"] in EVALUATED and r["val_acc"] is not None else None for r in cands
    )
    return Run(
        sampler,
        seed,
        tuple(r["state"] for r in cands),
        tuple(r["reason"] for r in cands),
        points,
        wall,
        cpu,
        scorer.seconds - before_s,
        scorer.computed - before_n,
        stopped,
    )


def normalised_hypervolume(points: Iterable[tuple[float, float]]) -> float:
    """Hypervolume of (score max, MACs min) points in the fixed box (log10 MACs; 1.0 is the whole box)."""
    pts = list(points)
    if not pts:
        return 0.0
    score = np.array([p[0] for p in pts], dtype=float)
    cost = np.log10(np.array([p[1] for p in pts], dtype=float))
    area = hypervolume(score, cost, REF_SCORE, math.log10(MAX_MACS))
    return area / ((TOP_SCORE - REF_SCORE) * (math.log10(MAX_MACS) - math.log10(MIN_MACS)))


def checkpoint_rows(run: Run, checkpoints: Sequence[int]) -> list[dict[str, Any]]:
    """One CSV row per checkpoint the run reached: the hypervolume of its first ``trials`` evaluated candidates,
    and the draws (candidates of any state) it took to get there, by state."""
    where = [i for i, p in enumerate(run.points) if p is not None]
    out = []
    for n in checkpoints:
        if len(where) < n:
            continue
        upto = where[n - 1] + 1
        states = run.states[:upto]
        out.append(
            {
                "sampler": run.sampler,
                "seed": run.seed,
                "trials": n,
                "hypervolume": round(normalised_hypervolume(p for p in run.points[:upto] if p is not None), 6),
                "draws": upto,
                "infeasible": states.count("infeasible"),
                "duplicates": states.count("duplicate"),
                "screened": states.count("screened"),
                "failed": states.count("failed"),
                "wall_s": round(run.wall_s, 1),
                "cpu_s": round(run.cpu_s, 1),
                "score_s": round(run.score_s, 1),
                "scored": run.scored,
            }
        )
    return out


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in COLUMNS})


def read_csv(path: Path) -> list[dict[str, Any]]:
    ints = {"seed", "trials", "draws", "infeasible", "duplicates", "screened", "failed", "scored"}
    with path.open(newline="") as f:
        return [
            {k: (r[k] if k == "sampler" else int(r[k]) if k in ints else float(r[k])) for k in COLUMNS} for r in csv.DictReader(f)
        ]


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean and two-sided t-interval over ``values`` (nan bounds below 2 values)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return Interval(float(x.mean()) if x.size else math.nan, math.nan, math.nan, int(x.size))
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Interval(float(x.mean()), float(x.mean()) - half, float(x.mean()) + half, int(x.size))


def paired_difference(rows: Sequence[Mapping[str, Any]], sampler: str, trials: int, baseline: str = "random") -> Interval:
    """``sampler`` minus ``baseline`` hypervolume at ``trials``, seed by seed (only seeds both have), as a t-interval."""
    mine = {r["seed"]: r["hypervolume"] for r in rows if r["sampler"] == sampler and r["trials"] == trials}
    base = {r["seed"]: r["hypervolume"] for r in rows if r["sampler"] == baseline and r["trials"] == trials}
    return t_interval([mine[s] - base[s] for s in sorted(mine.keys() & base.keys())])


def verdict(diff: Interval) -> str:
    if diff.n < 2:
        return "too few seeds"
    if diff.low > 0:
        return "beats random"
    if diff.high < 0:
        return "worse than random"
    return "no difference shown"


def _ci(i: Interval, sign: bool = False) -> str:
    f = "{:+.3f}" if sign else "{:.3f}"
    if math.isnan(i.low):
        return f.format(i.mean)
    return f"{f.format(i.mean)} [{f.format(i.low)}, {f.format(i.high)}]"


def ordered(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    present = {r["sampler"] for r in rows}
    return [s for s in SAMPLERS if s in present] + sorted(present - set(SAMPLERS))


def hypervolume_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Per sampler and checkpoint: the mean hypervolume with its 95% t-interval, the paired difference to random, a verdict."""
    lines = [
        "| sampler | trials | seeds | hypervolume, mean [95% CI] | minus random, paired [95% CI] | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in ordered(rows):
        for n in sorted({r["trials"] for r in rows if r["sampler"] == s}):
            hv = t_interval([r["hypervolume"] for r in rows if r["sampler"] == s and r["trials"] == n])
            if s == "random":
                diff_text, say = "reference", "reference"
            else:
                diff = paired_difference(rows, s, n)
                diff_text, say = (_ci(diff, sign=True), verdict(diff)) if diff.n else ("no random run", "")
            lines.append(f"| {s} | {n} | {hv.n} | {_ci(hv)} | {diff_text} | {say} |")
    return "\n".join(lines)


def cost_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Per sampler, at its largest checkpoint, means per run: draws, infeasible draws, duplicates, screened draws,
    wall seconds (of them, scoring) and CPU seconds."""
    lines = [
        "| sampler | trials | draws | infeasible | duplicates | screened | wall s [scoring] | CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in ordered(rows):
        n = max(r["trials"] for r in rows if r["sampler"] == s)
        sel = [r for r in rows if r["sampler"] == s and r["trials"] == n]

        def mean(key: str, rows_: list[Mapping[str, Any]] = sel) -> float:
            return float(np.mean([r[key] for r in rows_]))

        lines.append(
            f"| {s} | {n} | {mean('draws'):.0f} | {mean('infeasible'):.0f} ({mean('infeasible') / mean('draws'):.0%}) "
            f"| {mean('duplicates'):.1f} | {mean('screened'):.0f} "
            f"| {mean('wall_s'):.0f} [{mean('score_s'):.0f}] | {mean('cpu_s'):.0f} |"
        )
    return "\n".join(lines)


def tables(rows: Sequence[Mapping[str, Any]]) -> str:
    return f"{hypervolume_table(rows)}\n\n{cost_table(rows)}"


def run_all(
    samplers: Sequence[str], seeds: Sequence[int], trials: int, checkpoints: Sequence[int], scorer: Scorer, root: Path, log: bool
) -> tuple[list[dict[str, Any]], list[Run]]:
    """Every sampler on every seed (seed by seed, so the score cache warms evenly); the CSV rows and the runs."""
    rows: list[dict[str, Any]] = []
    runs: list[Run] = []
    for seed in seeds:
        for s in samplers:
            run = run_one(s, seed, trials, scorer, root)
            runs.append(run)
            rows.extend(checkpoint_rows(run, checkpoints))
            if log:
                done = sum(p is not None for p in run.points)
                note = f"; stopped: {run.stopped}" if run.stopped else ""
                print(
                    f"{s} seed {seed}: {done} evaluated of {len(run.points)} draws in {run.wall_s:.0f} s "
                    f"({run.scored} scored, {run.score_s:.0f} s){note}",
                    flush=True,
                )
    return rows, runs


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from-csv", action="store_true", help="print the tables from --csv; run nothing")
    ap.add_argument(
        "--csv", type=Path, default=CSV_PATH, help="the per-seed, per-sampler, per-checkpoint table (default: %(default)s)"
    )
    ap.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS, help="default: all")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="sampler seeds (default: 0-4)")
    ap.add_argument("--trials", type=int, default=max(CHECKPOINTS), help="evaluated candidates per run (default: %(default)s)")
    ap.add_argument("--checkpoints", type=int, nargs="+", default=list(CHECKPOINTS), help="hypervolume after these many trials")
    ap.add_argument(
        "--append", action="store_true", help="keep --csv's rows of the other (sampler, seed) pairs: run the benchmark in parts"
    )
    args = ap.parse_args(argv)
    if args.from_csv:
        print(tables(read_csv(args.csv)))
        return
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scorer = Scorer()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=SCRATCH if SCRATCH.is_dir() else None) as tmp:
        rows, _ = run_all(args.samplers, args.seeds, args.trials, sorted(args.checkpoints), scorer, Path(tmp), log=True)
    total, cpu = time.perf_counter() - t0, time.process_time()
    if args.append and args.csv.is_file():
        ran = {(r["sampler"], r["seed"]) for r in rows}
        rows = [r for r in read_csv(args.csv) if (r["sampler"], r["seed"]) not in ran] + rows
    write_csv(rows, args.csv)
    print(f"\nwrote {args.csv}: {len(rows)} rows; this run {total:.0f} s wall, {cpu:.0f} CPU s")
    for name, cpu in scorer.cpu.items():
        print(f"{name}: {len(cpu)} networks scored, CPU s per network median {np.median(cpu):.3f}, mean {np.mean(cpu):.3f}")
    print()
    print(tables(read_csv(args.csv)))  # what --from-csv prints


if __name__ == "__main__":
    main()
