"""nasx's zero-cost proxy benchmark, in the manner of NAS-Bench-Suite-Zero, on nasx's own spaces.

A fixed, seeded random sample of networks (``--per-space`` from each of macro-cifar and
nasnet-cifar), each scored by every proxy of :mod:`nasx.train.proxies` (two minibatches of 64
training images) and trained once at one low fidelity on the shared CIFAR-10, validation accuracy
on a fixed held-out part of the training split (the test split is never read). One CSV row per
network, written as it goes (a rerun resumes), then the correlation table:

    nice -n 10 python benchmarks/proxy_bench.py                    # regenerates benchmarks/data/proxy_bench.csv
    python benchmarks/proxy_bench.py --summary                     # the table only, from the committed CSV

The sample:

- macro-cifar: ``space.random(seed)`` for seeds 0, 1, ..., keeping points of at most 60M MACs at
  32x32 (the quickstart's constraint) until ``--per-space`` are taken.
- nasnet-cifar at proxy size: each sampled pair of cells on DARTS' *search* network instead of
  the evaluation network: 8 cells at C = 16 (stem 48; 2 normal, reduce, 2 normal, reduce,
  2 normal), no auxiliary head: ``nasx.space.scale.scaled(net, 4/9, 1/3)``, aux head removed.

The fidelity (stated in every row): 1 epoch over a seeded 3% of the 45,000-image training part
(1,350 images) at 16x16, the ``search`` recipe with batch 64 and no warm-up, fp32, one CPU
thread; validation accuracy on 500 seeded images of the 5,000 held out. Chosen so that the
100 networks take well under an hour on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nasx.results.correlation import proxy_trust  # noqa: E402
from nasx.train.proxies import PROXY_NAMES  # noqa: E402

#: The shared CIFAR-10 (../shared/datasets/ of a clone; also looked for one folder further up, for worktrees).
DATA = (
    next(
        (p for p in (ROOT.parent / "shared", ROOT.parents[1] / "shared") if (p / "datasets" / "cifar10-jpeg.tar.gz").is_file()),
        ROOT.parent / "shared",
    )
    / "datasets"
    / "cifar10-jpeg.tar.gz"
)
OUT = ROOT / "benchmarks" / "data" / "proxy_bench.csv"
MAX_MACS = 60_000_000
FIDELITY = {"epochs": 1, "fraction": 0.03, "resolution": 16}
VAL = 500


def fidelity_text(fidelity: dict[str, Any], val: int, device: str) -> str:
    images = round(45000 * fidelity["fraction"])
    return (
        f"{fidelity['epochs']} epoch(s), {fidelity['fraction']:.0%} of the 45k training part ({images} images), "
        f"{fidelity['resolution']}x{fidelity['resolution']}, search recipe batch 64 no warm-up, val {val} held-out, {device}"
    )


FIDELITY_TEXT = fidelity_text(FIDELITY, VAL, "cpu")
COLUMNS = [
    "space",
    "seed",
    "digest",
    "string",
    "params",
    "macs",
    "val_acc",
    "train_s",
    *(p for p in PROXY_NAMES if p != "params"),  # the params proxy is the params column
    *(f"{p}_s" for p in PROXY_NAMES),
    "fidelity",
]


def small_nasnet(net: Any) -> Any:
    """The sampled cells on DARTS' search network: ``nasx.space.scale.scaled`` at width 4/9 and depth 1/3 (8 cells
    at C = 16, stem 48), without the auxiliary head."""
    from nasx.space.genotype import Network
    from nasx.space.scale import scaled

    d = scaled(net, 4 / 9, 1 / 3).to_dict()
    for stage in d["stages"]:
        stage.pop("aux", None)
    d.pop("name", None)
    return Network.from_dict(d)


SPACES = ("macro-cifar", "nasnet-cifar")


def sample(per_space: int, spaces: tuple[str, ...] = SPACES) -> list[tuple[str, int, Any]]:
    """The fixed sample: ``(space, seed, network)``, ``per_space`` distinct networks from each space."""
    from nasx.models.complexity import complexity
    from nasx.space import load_space

    out: list[tuple[str, int, Any]] = []
    for name in spaces:
        space, seen, seed = load_space(name), set(), 0
        while sum(1 for s, _, _ in out if s == name) < per_space:
            net = space.random(seed)
            seed += 1
            if name == "nasnet-cifar":
                net = small_nasnet(net)
            elif complexity(net).macs > MAX_MACS:
                continue
            if net.digest in seen:
                continue
            seen.add(net.digest)
            out.append((name, seed - 1, net))
    return out


def run(
    per_space: int,
    out: Path,
    data: Path = DATA,
    spaces: tuple[str, ...] = SPACES,
    shard: tuple[int, int] = (0, 1),
    fidelity_args: dict[str, Any] = FIDELITY,
    val: int = VAL,
    device: str = "cpu",
    reverse: bool = False,
) -> None:
    from nasx import data as datasets
    from nasx.data.types import Splits
    from nasx.models.complexity import complexity
    from nasx.train.loop import train
    from nasx.train.proxies import proxy_batches, score_network
    from nasx.train.recipe import Fidelity, preset

    torch.set_num_threads(1)
    splits = datasets.load_splits(str(data), val_size=5000, seed=0, progress=False)
    val_index = np.sort(np.random.default_rng(0).choice(len(splits.val), val, replace=False))
    splits = Splits(splits.train, splits.val.subset(val_index), splits.source, splits.seed)
    recipe = preset("search").model_copy(
        update={"batch_size": 64, "warmup_epochs": 0, "precision": "fp32", "channels_last": False}
    )
    fidelity = Fidelity(**fidelity_args)
    text = fidelity_text(fidelity_args, val, device)
    batches = proxy_batches(splits.train, batches=2, batch_size=64, seed=0, resolution=fidelity.resolution, device=device)

    done: set[str] = set()
    if out.is_file():
        with out.open() as f:
            done = {row["digest"] for row in csv.DictReader(f)}
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh = not out.is_file()
    k, n = shard
    todo = [s for i, s in enumerate(sample(per_space, spaces)) if i % n == k and s[2].digest not in done]
    if reverse:  # a second process on the same shard from the other end (another --out; merged later)
        todo.reverse()
    with out.open("a", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        if fresh:
            writer.writeheader()
        for i, (space, seed, net) in enumerate(todo):
            scores = score_network(net, batches, seed=0)
            t0 = time.perf_counter()
            result = train(net, splits, recipe, fidelity, seed=0, device=device)
            train_s = time.perf_counter() - t0
            cost = complexity(net)
            row = {
                "space": space,
                "seed": seed,
                "digest": net.digest,
                "string": net.to_string(),
                "params": cost.params,
                "macs": cost.macs,
                "val_acc": round(result.val_acc, 4),
                "train_s": round(train_s, 2),
                **{p: ("" if scores.values[p] is None else f"{scores.values[p]:.6g}") for p in PROXY_NAMES if p != "params"},
                **{f"{p}_s": round(scores.seconds[p], 4) for p in PROXY_NAMES},
                "fidelity": text,
            }
            writer.writerow(row)
            f.flush()
            print(f"[{i + 1}/{len(todo)}] {space} seed {seed}: val {result.val_acc:.3f} in {train_s:.1f}s", flush=True)


TIMING = ROOT / "benchmarks" / "data" / "proxy_cpu_time.csv"


def timing(per_space: int, out: Path = TIMING, data: Path = DATA) -> str:
    """CPU seconds of each proxy per network (one torch thread; process time, so a busy machine does not inflate
    it) on the first ``per_space`` networks of each space's sample, at the benchmark's proxy size: two
    minibatches of 64 training images at 16x16. Written to ``out`` and returned as a Markdown table."""
    from nasx import data as datasets
    from nasx.train.proxies import proxy_batches, score_network

    torch.set_num_threads(1)
    splits = datasets.load_splits(str(data), val_size=5000, seed=0, progress=False)
    batches = proxy_batches(splits.train, batches=2, batch_size=64, seed=0, resolution=FIDELITY["resolution"])
    score_network(sample(1, ("macro-cifar",))[0][2], batches)  # warm-up: first-call costs are not the proxies'
    rows = []
    for space, seed, net in sample(per_space):
        scores = score_network(net, batches)
        rows.append({"space": space, "seed": seed, "digest": net.digest, **scores.cpu_seconds})
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["space", "seed", "digest", *PROXY_NAMES])
        writer.writeheader()
        writer.writerows({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    return timing_table(out)


def timing_table(path: Path = TIMING) -> str:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    spaces = [s for s in SPACES if any(r["space"] == s for r in rows)]
    counts = ", ".join(f"{sum(r['space'] == s for r in rows)} {s}" for s in spaces)
    lines = [
        f"CPU seconds per network, median [max] over {counts} networks (1 thread, 2 x 64 images at 16x16)",
        "",
        "| proxy | " + " | ".join(spaces) + " |",
        "| --- |" + " --- |" * len(spaces),
    ]
    for p in PROXY_NAMES:
        cells = []
        for s in spaces:
            v = [float(r[p]) for r in rows if r["space"] == s]
            cells.append(f"{np.median(v):.3f} [{max(v):.3f}]")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def merge(out: Path, parts: list[Path]) -> None:
    """Rows of ``parts`` and ``out`` into ``out``, one per digest, in sample order (space, then seed)."""
    from nasx.models.complexity import complexity
    from nasx.space.genotype import Network

    rows: dict[str, dict[str, str]] = {}
    for path in [out, *parts]:
        if path.is_file():
            with path.open() as f:
                rows.update({r["digest"]: r for r in csv.DictReader(f)})
    first_text = "1 epoch, 3% of the 45k training part (1350 images), 16x16, search recipe batch 64 no warm-up, val 500 held-out"
    for r in rows.values():  # early shards wrote the params proxy over the params column, rounded: count again
        if not r["params"].isdigit():
            r["params"] = str(complexity(Network.from_string(r["string"])).params)
        if r["fidelity"] == first_text:  # the same fidelity, as the first version of this script wrote it
            r["fidelity"] = FIDELITY_TEXT
    order = sorted(rows.values(), key=lambda r: (SPACES.index(r["space"]), int(r["seed"])))
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(order)


def load_table(path: Path = OUT) -> list[dict[str, Any]]:
    """The committed table as dicts (numbers as floats; a proxy that was not finite as None)."""
    rows = []
    with path.open() as f:
        for row in csv.DictReader(f):
            parsed: dict[str, Any] = dict(row)
            for key in ("params", "macs", "val_acc", "train_s", *PROXY_NAMES, *(f"{p}_s" for p in PROXY_NAMES)):
                parsed[key] = float(row[key]) if row[key] != "" else None
            rows.append(parsed)
    return rows


def summary(path: Path = OUT) -> str:
    """The README's tables: each proxy's rank correlation with trained accuracy per space and overall, and its CPU time."""
    rows = load_table(path)
    lines = [
        f"{len(rows)} networks; fidelity: {rows[0]['fidelity'] if rows else '-'}; 95% CIs by Fisher z",
        "",
        "| space | proxy | n | Kendall tau [95% CI] | Spearman rho [95% CI] | beats params |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for space in ("macro-cifar", "nasnet-cifar", "all"):
        subset = [r for r in rows if space in ("all", r["space"])]
        acc = [r["val_acc"] for r in subset]
        table = proxy_trust({p: [r[p] for r in subset] for p in PROXY_NAMES}, acc)
        for t in table:
            beats = "reference" if t.proxy == "params" else {True: "yes", False: "no", None: "-"}[t.beats_reference]
            lines.append(
                f"| {space} | {t.proxy} | {t.n} | {t.kendall.value:+.2f} [{t.kendall.low:+.2f}, {t.kendall.high:+.2f}] "
                f"| {t.spearman.value:+.2f} [{t.spearman.low:+.2f}, {t.spearman.high:+.2f}] | {beats} |"
            )
    train = [r["train_s"] for r in rows]
    lines.append(f"\ntraining at this fidelity: median {np.median(train):.1f} s wall / network")
    if TIMING.is_file():
        lines += ["", timing_table()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-space", type=int, default=50, help="networks from each space (default 50: 100 in all)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--data", type=Path, default=DATA, help="the CIFAR-10 source (default: the shared JPEG copy)")
    parser.add_argument("--space", choices=SPACES, action="append", help="only this space (repeatable; default both)")
    parser.add_argument("--shard", default="0/1", help="K/N: only every N-th network from the K-th (parallel runs, other --out)")
    parser.add_argument("--reverse", action="store_true", help="work through the shard from its end")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="CSV files of shards to merge into --out first")
    parser.add_argument("--timing", type=int, metavar="N", help="only time the proxies on N networks per space")
    parser.add_argument("--epochs", type=int, default=FIDELITY["epochs"])
    parser.add_argument("--fraction", type=float, default=FIDELITY["fraction"], help="of the 45k training part")
    parser.add_argument("--resolution", type=int, default=FIDELITY["resolution"])
    parser.add_argument("--val", type=int, default=VAL, help="held-out images the accuracy is measured on")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--summary", action="store_true", help="print the tables from --out without training")
    args = parser.parse_args()
    if args.timing:
        print(timing(args.timing, data=args.data))
        return
    if args.merge:
        merge(args.out, args.merge)
    if not args.summary:
        k, n = (int(v) for v in args.shard.split("/"))
        fidelity = {"epochs": args.epochs, "fraction": args.fraction, "resolution": args.resolution}
        run(
            args.per_space,
            args.out,
            args.data,
            tuple(args.space or SPACES),
            (k, n),
            fidelity,
            args.val,
            args.device,
            args.reverse,
        )
    print(summary(args.out))


if __name__ == "__main__":
    main()
