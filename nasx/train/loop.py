"""The training loop: one function, ``train``, that every search trial and baseline goes through.

No host synchronisation inside the step loop: the loss and accuracy sums stay on the device and
are read once per epoch, when a non-finite loss also turns into a typed failure. Checkpoints are
written atomically after every epoch and a run resumes from its last one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasx.data.loader import Augment, DeviceLoader
from nasx.data.types import ImageSet, Splits
from nasx.errors import NasxError, RuntimeFailure
from nasx.models.layers import DropPath
from nasx.models.network import build_network, zero_init_residual
from nasx.space.genotype import Network
from nasx.train.recipe import Fidelity, Optimizer, Recipe, Schedule
from nasx.yamlfiles import atomic_write  # also imported from here by older callers

FailureReason = Literal["non_finite_loss", "out_of_memory"]
log = logging.getLogger("nasx.train")


class TrainingFailed(RuntimeFailure):
    """A run that cannot go on: ``reason`` is ``non_finite_loss`` or ``out_of_memory`` (a search may retry the latter)."""

    def __init__(self, reason: FailureReason, epoch: int, detail: str) -> None:
        super().__init__(f"training failed in epoch {epoch}: {reason.replace('_', ' ')} ({detail})")
        self.reason, self.epoch, self.detail = reason, epoch, detail


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch's figures; ``val_acc`` is a fraction in [0, 1] measured on the validation split."""

    epoch: int  # 1-based
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    seconds: float  # training time of the epoch (evaluation excluded)
    images_per_s: float


#: Called after every epoch; returning True stops the run early (state ``stopped``).
Callback = Callable[[EpochMetrics], bool | None]


@dataclass
class TrainResult:
    """What a run produced. ``state``: ``complete`` or ``stopped`` (the callback asked)."""

    model: nn.Module
    metrics: list[EpochMetrics]
    state: Literal["complete", "stopped"]
    seconds: float
    device: str
    precision: str
    channels_last: bool
    resumed_from: int = 0  # epochs already done when this call started
    extra: dict[str, Any] = field(default_factory=dict)
    device_name: str = ""  # e.g. "NVIDIA H200", or the CPU's model name
    cuda: str = ""  # the CUDA version torch was built with, on a CUDA device

    @property
    def val_acc(self) -> float:
        return self.metrics[-1].val_acc if self.metrics else float("nan")

    @property
    def epochs(self) -> int:
        return len(self.metrics)


# ---- device settings ---------------------------------------------------------------------------


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def device_name(device: torch.device) -> str:
    """The device's model name: the GPU's (``NVIDIA H200``) or the CPU's (from /proc/cpuinfo where there is one)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one (else what ``platform`` says)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _bf16_ok(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(recipe: Recipe, device: torch.device) -> tuple[str, bool]:
    """``(precision, channels_last)`` after ``auto``: bf16 + channels-last where the device has native bf16."""
    native = _bf16_ok(device)
    precision = ("bf16" if native else "fp32") if recipe.precision == "auto" else recipe.precision
    channels_last = (device.type == "cuda" or native) if recipe.channels_last == "auto" else recipe.channels_last
    return precision, bool(channels_last)


def _autocast(device: torch.device, precision: str) -> Any:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


# ---- schedule ----------------------------------------------------------------------------------


def lr_at(recipe: Recipe, step: int, total: int, steps_per_epoch: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) of ``total``: warm-up, then the schedule."""
    warm = min(int(round(recipe.warmup_epochs * steps_per_epoch)), total - 1)
    if step < warm:
        return recipe.lr * (step + 1) / (warm + 1)
    t = (step - warm) / max(1, total - warm)
    if recipe.schedule == Schedule.COSINE:
        return recipe.lr * 0.5 * (1.0 + math.cos(math.pi * t))
    if recipe.schedule == Schedule.ONECYCLE:
        return recipe.lr * max(0.0, 1.0 - t)
    return recipe.lr


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    # no weight decay on BN and bias parameters (1-d), the usual CIFAR practice
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if recipe.optimizer == Optimizer.ADAMW:
        return torch.optim.AdamW(groups, lr=recipe.lr)
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov and recipe.momentum > 0)


# ---- checkpoints -------------------------------------------------------------------------------


CHECKPOINT = "checkpoint.pt"


def _save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    atomic_write(run_dir / CHECKPOINT, lambda p: torch.save(state, p))


class CheckpointError(RuntimeFailure):
    """A run folder's ``checkpoint.pt`` that is intact but cannot be resumed: another run's, or not a nasx
    checkpoint (a file that ``torch.load(weights_only=True)`` refuses, e.g. a pickle of arbitrary objects).
    Final: the file is left as it is for the user to look at."""


#: Where a damaged checkpoint is moved before the run starts afresh.
DAMAGED_CHECKPOINT = "checkpoint.pt.damaged"
_CHECKPOINT_KEYS = ("key", "model", "optimizer", "metrics", "rng")


def _load_checkpoint(run_dir: Path, key: str) -> dict[str, Any] | None:
    """The state to resume from, or None to start from epoch 0.

    Two kinds of bad checkpoint, two answers:

    - **Damaged** (cut short, zero-filled or bit-flipped on disk; detected by the CRC-32 of every
      member of the zip file that ``torch.save`` writes, which ``torch.load`` itself does not check:
      it would load flipped weights without a word): the bytes cannot be trusted and nothing in them
      can be recovered or even told apart from another run's. Training is deterministic from the run's
      seed, so starting the run afresh reproduces exactly what resuming would have; only time is lost.
      The file is moved aside to ``checkpoint.pt.damaged`` (never silently deleted) and a warning on
      the ``nasx.train`` logger names it. Raising instead would only make the user delete the file by
      hand to get the same outcome.
    - **Intact but not resumable**: a checkpoint of another run, or a file that is not a nasx
      checkpoint. It is read with ``weights_only=True`` only, so a pickle that would run code (an
      ``os.system`` in ``__reduce__``) is refused unread. These raise :class:`CheckpointError`
      naming the file and leave it untouched: it may be someone's work, or something to look at.
    """
    path = run_dir / CHECKPOINT
    if not path.is_file():
        return None
    damage = _zip_damage(path)
    if damage is not None:
        aside = run_dir / DAMAGED_CHECKPOINT
        os.replace(path, aside)
        log.warning("%s: the checkpoint is damaged (%s); moved it to %s and starting this run afresh", path, damage, aside.name)
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        why = next((line for line in lines if "global" in line.lower() or "unpickler" in line.lower()), type(exc).__name__)
        raise CheckpointError(
            f"{path}: refused to load: it is not a nasx checkpoint and holds more than tensors and plain values "
            f"(torch.load with weights_only=True: {why}); delete it or use another run folder"
        ) from None
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, AttributeError, TypeError) as exc:
        detail = f"{type(exc).__name__}: {exc}"
        raise CheckpointError(f"{path}: not a nasx checkpoint ({detail}); delete it or use another run folder") from None
    if not isinstance(state, dict) or any(k not in state for k in _CHECKPOINT_KEYS):
        got = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: not a nasx checkpoint (expected the keys {', '.join(_CHECKPOINT_KEYS)}, got {got})")
    if state.get("key") != key:
        raise CheckpointError(
            f"{path}: the checkpoint belongs to another run (network, recipe, fidelity, data or seed differ); "
            "use another run folder or delete it"
        )
    return state


def _zip_damage(path: Path) -> str | None:
    """Why the zip file at ``path`` is damaged (structure, or a member whose CRC-32 differs), or None if it is sound."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
        return f"not a readable zip file: {exc}"
    return f"member {bad} fails its CRC-32 check" if bad is not None else None


def checkpoint_key(genotype: Network, recipe: Recipe, fidelity: Fidelity, data: Splits, seed: int) -> str:
    """What a checkpoint must match to be resumed: everything that changes the result."""
    import hashlib

    blob = json.dumps(
        [genotype.digest, recipe.model_dump(mode="json"), fidelity.model_dump(mode="json"), data.source, data.seed, seed],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---- checks before anything is created ---------------------------------------------------------


class SetupError(NasxError):
    """A device, data set or fidelity that cannot train the network: refused before data is loaded or folders are made."""


def check_device(device: torch.device | str | None, where: str = "device") -> torch.device:
    """``device`` as a torch device that exists on this machine (default: cuda when available, else cpu)."""
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise SetupError(f"{where}: not a torch device ({str(exc).splitlines()[0]}), got {str(device)!r}") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise SetupError(f"{where}: no CUDA device on this machine, got {str(device)!r}; use cpu")
        if dev.index is not None and dev.index >= n:
            raise SetupError(f"{where}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1}), got {str(device)!r}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise SetupError(f"{where}: no MPS device on this machine, got {str(device)!r}")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise SetupError(f"{where}: must be cpu, cuda, cuda:N or mps, got {str(device)!r}")
    return dev


def images_used(labels: np.ndarray, fraction: float, seed: int = 0) -> int:
    """How many of the training ``labels`` a run at ``fraction`` trains on (the loader's seeded, class-stratified
    subset, :func:`nasx.data.loader.stratified_fraction`); an epoch is that many // ``batch_size`` batches."""
    from nasx.data.loader import stratified_fraction

    return len(labels) if fraction >= 1 else len(stratified_fraction(np.asarray(labels), fraction, seed))


def check_data(
    data: Splits, recipe: Recipe, fidelity: Fidelity | None = None, *, classes: int | None = None, where: str = "data"
) -> None:
    """Refuse a training split that cannot train a classifier; warn when it lacks some of the network's classes.

    Fewer images than one batch (the loader drops the last partial batch, so nothing would train),
    or a single class (every prediction is right: ``val 100%`` would mean nothing), is refused.
    ``classes``: the network's; labels beyond it are refused, and a split holding fewer of them is
    trained with a warning (a subset of CIFAR-10 is a legitimate proxy).
    """
    fidelity = fidelity or Fidelity()
    labels = np.asarray(data.train.labels)
    n = images_used(labels, fidelity.fraction)
    if n < recipe.batch_size:
        used = f" ({fidelity.fraction:g} of {len(labels):,})" if fidelity.fraction < 1 else ""
        raise SetupError(
            f"{where}: the training split holds {n:,} images{used}, fewer than one batch of {recipe.batch_size} "
            f"({len(data.val):,} more are held out for validation); use more images, or a recipe with a smaller batch_size"
        )
    present = np.unique(labels)
    if len(present) < 2:
        name = data.train.classes[int(present[0])] if len(present) and int(present[0]) < len(data.train.classes) else "?"
        raise SetupError(
            f"{where}: the training split holds images of one class only ({name!r}); a classifier needs at least 2 "
            "(its accuracy would be 100% and mean nothing)"
        )
    if classes is not None:
        if int(present.max()) >= classes:
            raise SetupError(f"{where}: labels go up to {int(present.max())}, but the network has {classes} classes")
        if len(present) < classes:
            log.warning(
                "%s: the training split holds images of %d of the network's %d classes; accuracy is measured over those only",
                where,
                len(present),
                classes,
            )


def check_resolution(genotype: Network, fidelity: Fidelity | None, where: str = "resolution") -> None:
    """Refuse a training resolution at which the network's strided stages have nothing left to reduce."""
    from nasx.models.complexity import min_resolution, resolution_problem

    if fidelity is None or fidelity.resolution is None:
        return
    problem = resolution_problem(genotype, fidelity.resolution)
    if problem is not None:
        raise SetupError(
            f"{where}: {fidelity.resolution} is too small for {genotype.name or 'this network'} ({problem}); "
            f"the smallest it trains at is {min_resolution(genotype)}"
        )


# ---- loss and regularisation -------------------------------------------------------------------


def split_outputs(out: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``(logits, auxiliary logits)`` of a forward pass: a network with auxiliary heads returns a tuple in training mode."""
    if isinstance(out, tuple):
        return out[0], tuple(out[1:])
    return out, ()


def training_loss(
    out: torch.Tensor | tuple[torch.Tensor, ...], y: torch.Tensor, recipe: Recipe
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, logits)``: cross-entropy of the logits plus ``recipe.aux_weight`` times that of each auxiliary head."""
    logits, aux = split_outputs(out)
    loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
    for extra in aux:
        loss = loss + recipe.aux_weight * F.cross_entropy(extra.float(), y, label_smoothing=recipe.label_smoothing)
    return loss, logits


def set_drop_path(model: nn.Module, rate: float) -> int:
    """Set every drop-path site of ``model`` to ``rate``; returns how many there are."""
    sites = [m for m in model.modules() if isinstance(m, DropPath)]
    for m in sites:
        m.p = rate
    return len(sites)


def drop_path_rate(recipe: Recipe, epoch: int, epochs: int) -> float | None:
    """The recipe's drop-path rate in ``epoch`` (0-based): ``drop_path * epoch / epochs`` (DARTS), or None if unset."""
    if recipe.drop_path is None:
        return None
    return recipe.drop_path * epoch / max(1, epochs)


# ---- evaluation --------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ImageSet,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 1000,
    tta_flip: bool = False,
    precision: str = "fp32",
    channels_last: bool = False,
    resolution: int | None = None,
) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of ``model`` on ``data``; ``tta_flip`` averages the logits of each image and its mirror."""
    device = torch.device(device)
    loader = DeviceLoader(data, batch_size, device=device, train=False, channels_last=channels_last, resolution=resolution)
    model.eval()
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    with _autocast(device, precision):
        for x, y in loader:
            logits = model(x).float()
            if tta_flip:
                logits = 0.5 * (logits + model(x.flip(3)).float())
            loss += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
    n = max(1, loader.num_samples)
    return loss.item() / n, correct.item() / n


# ---- the loop ----------------------------------------------------------------------------------


@contextmanager
def _failures(epoch: Callable[[], int]) -> Iterator[None]:
    """Out-of-memory (CUDA or host) becomes a typed, final :class:`TrainingFailed`."""
    try:
        yield
    except torch.OutOfMemoryError as exc:
        raise TrainingFailed("out_of_memory", epoch(), str(exc).splitlines()[0]) from None
    except MemoryError as exc:
        raise TrainingFailed("out_of_memory", epoch(), f"host memory: {exc}") from None
    except RuntimeError as exc:
        if "can't allocate memory" in str(exc) or "out of memory" in str(exc):
            raise TrainingFailed("out_of_memory", epoch(), str(exc).splitlines()[0]) from None
        raise


def train(
    genotype: Network,
    data: Splits,
    recipe: Recipe,
    fidelity: Fidelity | None = None,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    run_dir: Path | None = None,
    callback: Callback | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train ``genotype`` on ``data.train``, measuring ``data.val`` after every epoch (NaN when it is empty).

    With ``run_dir`` a checkpoint is written atomically after each epoch and a later call with the
    same arguments resumes from it (a different run in the same folder is an error). ``on_step``
    is called as ``on_step(epoch, batch)`` after each optimiser step (for progress bars; it must
    not synchronise). Raises :class:`TrainingFailed` on a non-finite loss or out-of-memory.
    """
    fidelity = fidelity or Fidelity()
    device = check_device(device)
    check_resolution(genotype, fidelity)
    check_data(data, recipe, fidelity, classes=genotype.input.classes)
    from nasx.models.complexity import memory_problem

    too_big = memory_problem(genotype, device, copies=4)  # weights, gradients, momentum, a spare: before building
    if too_big is not None:
        raise TrainingFailed("out_of_memory", 1, too_big)
    precision, channels_last = resolve_precision(recipe, device)
    epochs = fidelity.epochs_for(recipe)
    torch.manual_seed(seed)
    model = build_network(fidelity.network(genotype)).to(device)
    if recipe.zero_init_residual:
        zero_init_residual(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    aug = recipe.augment
    loader = DeviceLoader(
        data.train,
        recipe.batch_size,
        device=device,
        train=True,
        augment=Augment(crop_padding=aug.crop_padding, flip=aug.flip, cutout=aug.cutout),
        seed=seed,
        channels_last=channels_last,
        resolution=fidelity.resolution,
        fraction=fidelity.fraction,
    )
    opt = _optimizer(model, recipe)
    step_fn = torch.compile(model) if recipe.compile else model
    steps_per_epoch, total = len(loader), len(loader) * epochs

    metrics: list[EpochMetrics] = []
    start_epoch = 0
    key = checkpoint_key(genotype, recipe, fidelity, data, seed)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        state = _load_checkpoint(run_dir, key)
        if state is not None:
            try:
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
                metrics = [EpochMetrics(**m) for m in state["metrics"]]
                torch.set_rng_state(state["rng"])
            except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:  # its key matched: someone edited it
                raise CheckpointError(f"{run_dir / CHECKPOINT}: cannot be resumed ({type(exc).__name__}: {exc})") from None
            start_epoch = len(metrics)
    resumed_from = start_epoch
    t_start = time.perf_counter()
    current = start_epoch
    stopped = False
    with _failures(lambda: current + 1):
        for epoch in range(start_epoch, epochs):
            current = epoch
            model.train()
            rate = drop_path_rate(recipe, epoch, epochs)
            if rate is not None:
                set_drop_path(model, rate)
            loader.set_epoch(epoch)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            t0 = time.perf_counter()
            step = epoch * steps_per_epoch
            lr = recipe.lr
            for b, (x, y) in enumerate(loader):
                lr = lr_at(recipe, step, total, steps_per_epoch)
                for group in opt.param_groups:
                    group["lr"] = lr
                with _autocast(device, precision):
                    loss, logits = training_loss(step_fn(x), y, recipe)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if recipe.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                opt.step()
                loss_sum += loss.detach() * y.shape[0]
                correct += (logits.detach().argmax(1) == y).sum()
                step += 1
                if on_step is not None:
                    on_step(epoch + 1, b + 1)
            n = steps_per_epoch * recipe.batch_size
            train_loss = loss_sum.item() / n  # the one synchronisation of the epoch
            seconds = time.perf_counter() - t0
            if not math.isfinite(train_loss):
                raise TrainingFailed("non_finite_loss", epoch + 1, f"mean training loss {train_loss}")
            val_loss, val_acc = math.nan, math.nan  # no validation split: final runs train on every training image
            if len(data.val):
                val_loss, val_acc = evaluate(
                    model,
                    data.val,
                    device=device,
                    batch_size=recipe.eval_batch_size,
                    tta_flip=recipe.tta_flip,
                    precision=precision,
                    channels_last=channels_last,
                    resolution=fidelity.resolution,
                )
            m = EpochMetrics(epoch + 1, train_loss, correct.item() / n, val_loss, val_acc, lr, seconds, n / seconds)
            metrics.append(m)
            if run_dir is not None:
                _save_checkpoint(
                    run_dir,
                    {
                        "key": key,
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "metrics": [asdict(x) for x in metrics],
                        "rng": torch.get_rng_state(),
                    },
                )
            if callback is not None and callback(m):
                stopped = True
                break
    return TrainResult(
        model=model,
        metrics=metrics,
        state="stopped" if stopped else "complete",
        seconds=time.perf_counter() - t_start,
        device=str(device),
        precision=precision,
        channels_last=channels_last,
        resumed_from=resumed_from,
        device_name=device_name(device),
        cuda=(torch.version.cuda or "") if device.type == "cuda" else "",
    )
