"""Re-choose the ``standard`` recipe on the validation split (the test set is never read).

The ``standard`` preset's settings were chosen in an earlier session on test accuracy (see
nasx/train/recipe.py). This script makes the selection the honest way: each candidate recipe (the
current ``standard``, the classic recipe it was compared with, and a small grid around it) trains
``--net`` for ``--epochs`` epochs with ``--seeds`` seeds on the training part of a seeded split and
is scored on the held-out validation part only. It prints one line per recipe: the mean validation
accuracy with a 95% t-interval over seeds and n (validation images), and names the best by mean,
saying whether its interval separates from the runner-up's. Nothing is written into nasx: edit
``PRESETS["standard"]`` by hand with the winner, and say in its comment that it was chosen on val.

    python benchmarks/choose_recipe.py --data download [--net resnet20_cifar] [--epochs 10] [--seeds 3]
        [--val-size 5000] [--device cuda] [--grid small|none] [--json out.json]

On one GPU the default (9 recipes x 3 seeds x 10 epochs of ResNet-20) takes about an hour; on a CPU
use ``--data mini --epochs 2 --seeds 2 --grid none`` only to check that it runs (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from nasx import data as datasets
from nasx import zoo
from nasx.results.noise import over_seeds, verdict
from nasx.train.loop import train
from nasx.train.recipe import PRESETS, Augmentation, Fidelity, Recipe, Schedule


def candidates(grid: str) -> dict[str, Recipe]:
    """The recipes compared: the current standard, the classic recipe it was compared with, and (``small``) a grid."""
    std = PRESETS["standard"]
    out = {
        "standard (current)": std,
        "classic": std.model_copy(
            update={
                "name": "classic",
                "lr": 0.1,
                "schedule": Schedule.COSINE,
                "warmup_epochs": 0,
                "label_smoothing": 0.0,
                "augment": Augmentation(crop_padding=4),
                "tta_flip": False,
            }
        ),
    }
    if grid == "small":
        for lr in (0.1, 0.4):
            out[f"standard lr {lr:g}"] = std.model_copy(update={"name": f"std-lr{lr:g}", "lr": lr})
        for ls in (0.0, 0.2):
            out[f"standard smoothing {ls:g}"] = std.model_copy(update={"name": f"std-ls{ls:g}", "label_smoothing": ls})
        out["standard crop 4"] = std.model_copy(update={"name": "std-crop4", "augment": Augmentation(crop_padding=4)})
        out["standard cosine"] = std.model_copy(update={"name": "std-cos", "schedule": Schedule.COSINE})
        out["standard no TTA"] = std.model_copy(update={"name": "std-notta", "tta_flip": False})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="download")
    ap.add_argument("--net", default="resnet20_cifar")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--val-size", type=float, default=5000)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--grid", choices=("small", "none"), default="small")
    ap.add_argument("--json", default=None, help="Also write the per-seed results here.")
    args = ap.parse_args()

    val = args.val_size if args.val_size < 1 else int(args.val_size)
    splits = datasets.load_splits(args.data, val_size=val, seed=args.split_seed)  # train + val only: no test set
    net = zoo.get(args.net)
    fidelity = Fidelity(epochs=args.epochs)
    results: dict[str, list[float]] = {}
    for label, recipe in candidates(args.grid).items():
        accs = []
        for seed in range(args.seeds):
            result = train(net, splits, recipe, fidelity, seed=seed, device=args.device)
            accs.append(float(result.val_acc))
        results[label] = accs
        est = over_seeds(accs)
        print(f"{label:<24} val {est.text()}  [n={len(splits.val):,} val images each]", flush=True)
    ranked = sorted(results, key=lambda k: -over_seeds(results[k]).value)
    best, second = ranked[0], ranked[1] if len(ranked) > 1 else None
    line = f"best by mean validation accuracy: {best}"
    if second is not None:
        line += f"; it {verdict(over_seeds(results[best]), over_seeds(results[second]))} {second} (95% t-intervals)"
    print(line)
    if args.json:
        doc: dict[str, Any] = {
            "net": args.net,
            "epochs": args.epochs,
            "data": splits.source,
            "val_images": len(splits.val),
            "results": results,
            "recipes": {k: r.model_dump(mode="json") for k, r in candidates(args.grid).items()},
        }
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=2)


if __name__ == "__main__":
    main()
