"""Lightning plug-ins for a run directory: safetensors checkpoints, validation image grids, timing, the CSV log, NaN
guard (latent snapshots: :mod:`aelens.training.snapshotting`)."""

from __future__ import annotations

import csv
import io
import signal
import threading
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from ..errors import TrainingDiverged
from ..layout import RunDir, val_image_name
from ..maps.figures import save_recon_grid
from ..storage import load_tree, remove_file, save_tree, write_text


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning checkpoints as safetensors: tensors in the file, the rest of the state as JSON in its header.

    Writes are atomic (temp file, fsync, rename), and loading never unpickles anything.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        save_tree(path, checkpoint)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        tree = load_tree(path)
        if map_location is not None:
            tree = _map_tensors(tree, lambda t: t.to(map_location))
        return tree

    def remove_checkpoint(self, path) -> None:
        remove_file(path)


def _map_tensors(tree: Any, fn) -> Any:
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: _map_tensors(v, fn) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_map_tensors(v, fn) for v in tree]
    if isinstance(tree, tuple):
        return tuple(_map_tensors(v, fn) for v in tree)
    return tree


class RunCheckpoints(L.Callback):
    """``checkpoints/last`` after every epoch, ``epochNNN`` every ``every`` epochs, ``best`` on the lowest
    validation loss; on Ctrl-C (or any crash) the current state goes to ``last`` before the process exits."""

    def __init__(self, folder: str | Path, every: int, monitor: str = "val_loss"):
        self.folder = Path(folder)
        self.every = every
        self.monitor = monitor
        self.best_score = float("inf")
        self.best_epoch = -1
        self.saved_on_exception: Path | None = None

    def path(self, name: str) -> Path:
        return self.folder / f"{name}{RunDir.CKPT_EXT}"

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1  # epochs completed
        score = trainer.callback_metrics.get(self.monitor)
        if score is not None and float(score) < self.best_score:
            self.best_score, self.best_epoch = float(score), epoch
            trainer.save_checkpoint(self.path("best"))
        if epoch % self.every == 0:
            trainer.save_checkpoint(self.path(f"epoch{epoch:03d}"))
        trainer.save_checkpoint(self.path("last"))

    def on_exception(self, trainer, pl_module, exception):
        if isinstance(exception, (TrainingDiverged, OSError)):  # NaN weights, or a full disk: keep the last good one
            return
        trainer.save_checkpoint(self.path("last"))
        self.saved_on_exception = self.path("last")

    def state_dict(self):
        return {"best_score": self.best_score, "best_epoch": self.best_epoch}

    def load_state_dict(self, state):
        self.best_score = float(state.get("best_score", float("inf")))
        self.best_epoch = int(state.get("best_epoch", -1))


class PlateauStop(L.Callback):
    """Stop when the validation loss has not improved by ``min_delta`` (relative) for ``patience`` validations in a
    row. Its state (best loss, validations waited, why it stopped) goes into every checkpoint, so a resumed run stops
    where an uninterrupted one would."""

    def __init__(self, patience: int, min_delta: float, monitor: str = "val_loss"):
        self.patience, self.min_delta, self.monitor = patience, min_delta, monitor
        self.best = float("inf")
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch + 1
        score = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or score is None or epoch % (trainer.check_val_every_n_epoch or 1):
            return
        score = float(score)
        if score < self.best * (1.0 - self.min_delta):
            self.best, self.wait = score, 0
        else:
            self.wait += 1
        if self.patience and self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.should_stop = True

    def state_dict(self):
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state):
        self.best = float(state.get("best", float("inf")))
        self.wait = int(state.get("wait", 0))
        self.stopped_epoch = state.get("stopped_epoch")


class StepBoundaryInterrupt(L.Callback):
    """Ctrl-C stops training between two steps, never inside one.

    A batch in flight has already moved BatchNorm's running statistics before its optimiser step; a checkpoint
    taken there, resumed, would train that batch twice. So the first SIGINT only records the request; the step
    finishes (forward, backward, optimiser, step counter), and KeyboardInterrupt is raised before the next one starts,
    so that the checkpoint (see :class:`RunCheckpoints`) holds a state from which resuming equals never stopping. A second
    Ctrl-C interrupts at once, as usual. Only the main thread of rank 0 installs the handler."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:  # twice: the user means it
            raise KeyboardInterrupt
        self.requested = True

    def on_train_start(self, trainer, pl_module):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def _restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        # here the previous step is complete in every count Lightning keeps (its progress, the sampler's position)
        if self.requested:
            self._restore()
            # this batch never starts: Lightning counted it "ready" just before this hook, and a checkpoint with one
            # batch more ready than completed makes the resumed loop count a step twice (its logged steps shift)
            progress = trainer.fit_loop.epoch_loop.batch_progress
            progress.total.ready -= 1
            progress.current.ready -= 1
            raise KeyboardInterrupt

    def on_train_end(self, trainer, pl_module):
        self._restore()

    def on_exception(self, trainer, pl_module, exception):
        self._restore()


class DivergenceGuard(L.Callback):
    """Stop when the epoch's training loss is not finite (checked once per epoch: no host sync per step). Runs
    before the checkpoints, so ``checkpoints/last`` keeps the last finite state."""

    def on_train_epoch_end(self, trainer, pl_module):
        loss = trainer.callback_metrics.get("train_loss_epoch")
        if loss is not None and not torch.isfinite(torch.as_tensor(loss)).all():
            raise TrainingDiverged(
                f"training diverged: the training loss is {float(loss)} after epoch {trainer.current_epoch + 1}; "
                "lower --lr (or check the data for extreme values)"
            )


class EpochTimer(L.Callback):
    """Wall time of each training epoch (its validation and snapshots included), of the whole fit, and of the
    optimiser steps alone (``images_per_s``, the first ``warmup`` steps of the fit left out)."""

    def __init__(self, warmup: int = 3):
        self.epoch_seconds: list[float] = []
        self.fit_seconds = 0.0
        self.step_seconds = 0.0
        self.step_images = 0
        self.warmup = warmup
        self._steps = 0
        self._t_epoch = self._t_fit = self._t_step = 0.0

    def on_fit_start(self, trainer, pl_module):
        self._t_fit = time.perf_counter()

    def on_fit_end(self, trainer, pl_module):
        self.fit_seconds = time.perf_counter() - self._t_fit

    def on_train_epoch_start(self, trainer, pl_module):
        self._t_epoch = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.epoch_seconds.append(time.perf_counter() - self._t_epoch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t_step = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._steps += 1
        if self._steps > self.warmup:
            self.step_seconds += time.perf_counter() - self._t_step
            self.step_images += len(batch["idx"])

    @property
    def images_per_s(self) -> float:
        """Training images per second per process, over the timed steps (0 when too few steps were timed)."""
        return self.step_images / self.step_seconds if self.step_seconds > 0 else 0.0


class ValidationImages(L.Callback):
    """After each validation, a grid of fixed validation frames (inputs over reconstructions) under ``images/``."""

    def __init__(self, folder: str | Path, n: int = 8):
        self.folder = Path(folder)
        self.n = n

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return

        idx = pl_module.split["val"][: self.n]
        x = pl_module.dataset.batch(idx).to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            nets = pl_module.networks()
            if pl_module.has_encoder:
                y = nets.reconstruct(x)
            else:
                y = nets.decode(torch.as_tensor(pl_module.targets[idx]).to(pl_module.device))
        pl_module.train(was_training)
        save_recon_grid(
            x.float().cpu().numpy(),
            y.float().cpu().numpy(),
            self.folder / val_image_name(trainer.current_epoch + 1),
            title=f"epoch {trainer.current_epoch + 1}: inputs (top) and outputs (bottom)",
        )


class RunCSVLogger(Logger):
    """``metrics.csv`` in the run directory, one row per logging call; kept across ``--resume`` (rows logged after
    the checkpoint being resumed are dropped, so no step appears twice)."""

    def __init__(self, path: str | Path, resume_step: int | None = None):
        super().__init__()
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as fh:
                self.rows = [r for r in csv.DictReader(fh) if int(float(r["step"])) < resume_step]
        self._dirty = False

    @property
    def name(self) -> str:
        return "csv"

    @property
    def version(self) -> str:
        return ""

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row = {"step": step if step is not None else len(self.rows)}
        row.update({k: float(v) for k, v in metrics.items()})
        self.rows.append(row)
        self._dirty = True

    @rank_zero_only
    def save(self) -> None:
        if not self._dirty:
            return
        keys = {k for r in self.rows for k in r}
        fields = ["step"] + (["epoch"] if "epoch" in keys else []) + sorted(keys - {"step", "epoch"})
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        write_text(self.path, buf.getvalue())
        self._dirty = False

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a run's metrics.csv as floats (empty cells omitted)."""
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(fh)]
