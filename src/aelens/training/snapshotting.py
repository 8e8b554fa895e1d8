"""Latent snapshots during training: which epochs and steps are captured, the callback that encodes a fixed frame
subset into a growing ``.npy`` per layer, and the index that the analysis reads back."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from ..layout import SNAPSHOT_INDEX, SNAPSHOT_SUBSET, snapshot_layer_name
from ..models.inference import INFER_BATCH, autocast, inference_copy
from ..storage import load_npy, save_npy, write_csv

# Stored per run as ``snapshots/<layer>.npy`` (snapshots x N x D, float16, one file per layer), the analysis set as
# ``snapshots/analysis_indices.npy`` and the schedule as ``snapshots/index.csv`` (snapshot, epoch, global_step,
# train_loss, seconds). Snapshot 0 is taken before the first update.

INDEX = SNAPSHOT_INDEX
INDEX_FIELDS = ("snapshot", "epoch", "global_step", "train_loss", "seconds")


def analysis_indices(n: int, max_images: int, seed: int) -> np.ndarray:
    """All frames up to ``max_images``, else a seeded random subset; sorted int64."""
    if n <= max_images:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng((seed, 7)).choice(n, size=max_images, replace=False)).astype(np.int64)


SNAPSHOT_SHARE = 0.4  # "early": at most this share of a run's epochs (at least 5) get snapshots


def snapshot_epochs(max_epochs: int, schedule: str = "early") -> set[int]:
    """The epochs (1-based) in which snapshots are taken. ``every``: all. ``early``: 1 to 5, then each ~25% more
    epochs than the one before (6, 8, 10, 13, 16, 20, 25, 31, ...), and the last epoch; in a short run, where that
    would be most epochs, thinned to ``SNAPSHOT_SHARE`` of them (at least 5), evenly in log-epoch, keeping the first
    and the last."""
    if schedule == "every":
        return set(range(1, max_epochs + 1))
    chosen, e = set(range(1, min(5, max_epochs) + 1)), 5
    while e < max_epochs:
        e = max(e + 1, int(e * 1.25 + 0.5))
        chosen.add(min(e, max_epochs))
    early = sorted(chosen | {max_epochs})
    budget = max(5, math.ceil(SNAPSHOT_SHARE * max_epochs))
    if len(early) <= budget:
        return set(early)
    targets = np.geomspace(1, max_epochs, budget)
    return {min(early, key=lambda x: abs(math.log(x) - math.log(t))) for t in targets} | {1, max_epochs}


def capture_points(batches_per_epoch: int, per_epoch: int) -> set[int]:
    """Batch indices (0-based) after which a snapshot is taken: ``per_epoch`` evenly spaced, the last one at the
    epoch's end."""
    per_epoch = min(per_epoch, max(1, batches_per_epoch))
    return {int(round(batches_per_epoch * k / per_epoch)) - 1 for k in range(1, per_epoch + 1)}


def read_index(folder: str | Path) -> list[dict]:
    path = Path(folder) / INDEX
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        {
            "snapshot": int(r["snapshot"]),
            "epoch": float(r["epoch"]),
            "global_step": int(r["global_step"]),
            "train_loss": float(r["train_loss"]) if r["train_loss"] else float("nan"),
            "seconds": float(r["seconds"]),
        }
        for r in rows
    ]


class LatentSnapshots(L.Callback):
    """Capture the latent of the analysis set before the first update and ``per_epoch`` times in each epoch that
    the ``schedule`` names (``snapshot_epochs``)."""

    def __init__(
        self,
        folder: str | Path,
        layers: tuple[str, ...],
        per_epoch: int,
        max_images: int,
        seed: int,
        bf16: bool,
        schedule: str = "early",
    ):
        self.folder = Path(folder)
        self.layers = layers
        self.per_epoch = per_epoch
        self.schedule = schedule
        self._epochs: set[int] = set()
        self.max_images = max_images
        self.seed = seed
        self.bf16 = bf16
        self.rows: list[dict] = []
        self.seconds = 0.0
        self._loss_sum = 0.0
        self._loss_n = 0
        self._points: set[int] = set()
        self._arrays: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------------------------------------ set-up
    def setup(self, trainer, pl_module, stage):
        if not trainer.is_global_zero:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / SNAPSHOT_SUBSET
        if path.is_file():
            self.indices = load_npy(path)
        else:
            self.indices = analysis_indices(pl_module.dataset.n, self.max_images, self.seed)
            save_npy(path, self.indices)

    def _open(self, trainer, pl_module) -> None:
        # one more slot: a run that stops early (plateau, budget) gets a snapshot of the epoch it stopped at
        capacity = 2 + len(snapshot_epochs(trainer.max_epochs, self.schedule)) * self.per_epoch
        n = len(self.indices)
        for layer in self.layers:
            path = self.folder / snapshot_layer_name(layer)
            dim = self._dim(pl_module, layer)
            if path.is_file():
                old = np.load(path, mmap_mode="r", allow_pickle=False)
                if old.shape[0] >= capacity and old.shape[1:] == (n, dim):
                    self._arrays[layer] = np.load(path, mmap_mode="r+", allow_pickle=False)
                    continue
                keep = np.array(old[: len(self.rows)])
            else:
                keep = None
            arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(capacity, n, dim))
            if keep is not None and len(keep):
                arr[: len(keep)] = keep[:capacity]
            self._arrays[layer] = arr

    @staticmethod
    def _dim(pl_module, layer: str) -> int:
        g = pl_module.geometry
        if layer == "fc2":
            return g.feature_dim
        return pl_module.cfg.model.latent_dim if pl_module.has_encoder else pl_module.cfg.embedding.dim

    def on_train_start(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        step = trainer.global_step
        self.rows = [r for r in read_index(self.folder) if r["global_step"] <= step]  # drop any after a crash
        self._open(trainer, pl_module)
        self._points = capture_points(trainer.num_training_batches, self.per_epoch)
        self._epochs = snapshot_epochs(trainer.max_epochs, self.schedule)
        if not self.rows:
            self._capture(trainer, pl_module, epoch=0.0, loss=float("nan"))

    # ------------------------------------------------------------------------------------------------ capture
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not trainer.is_global_zero:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._loss_sum = self._loss_sum + loss.detach()
        self._loss_n += 1
        if batch_idx in self._points and trainer.current_epoch + 1 in self._epochs:
            nb = max(1, trainer.num_training_batches)
            epoch = trainer.current_epoch + (batch_idx + 1) / nb
            mean_loss = float(self._loss_sum / max(1, self._loss_n))
            self._loss_sum, self._loss_n = 0.0, 0
            self._capture(trainer, pl_module, epoch=epoch, loss=mean_loss)

    def on_train_epoch_end(self, trainer, pl_module):
        """A run told to stop at this epoch (early stopping runs before this callback) ends with its snapshot, so the
        movie and the scores over training end where training did."""
        epoch = trainer.current_epoch + 1
        if trainer.is_global_zero and trainer.should_stop and epoch not in self._epochs:
            mean_loss = float(self._loss_sum / max(1, self._loss_n)) if self._loss_n else float("nan")
            self._loss_sum, self._loss_n = 0.0, 0
            self._capture(trainer, pl_module, epoch=float(epoch), loss=mean_loss)

    @torch.no_grad()
    def _capture(self, trainer, pl_module, epoch: float, loss: float) -> None:
        t0 = time.perf_counter()
        was_training = pl_module.training
        pl_module.eval()
        fast = inference_copy(pl_module.networks(), pl_module.device)
        if pl_module.has_encoder:
            source = pl_module.dataset.batch
        else:  # a decoder run: its "latent" is the embedding
            targets = torch.as_tensor(pl_module.targets)

            def source(idx):
                return targets[torch.as_tensor(idx)]

        device = pl_module.device
        s = len(self.rows)
        with torch.inference_mode():
            for start in range(0, len(self.indices), INFER_BATCH):
                idx = self.indices[start : start + INFER_BATCH]
                x = source(idx).to(device)
                if x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(device, self.bf16 and device.type != "mps"):
                    for layer in self.layers:
                        z = fast.latent(x, layer)
                        self._arrays[layer][s, start : start + len(idx)] = z.float().cpu().numpy()
        for arr in self._arrays.values():
            arr.flush()
        if was_training:
            pl_module.train()
        seconds = time.perf_counter() - t0
        self.seconds += seconds
        self.rows.append(
            {
                "snapshot": s,
                "epoch": round(epoch, 4),
                "global_step": trainer.global_step,
                "train_loss": loss,
                "seconds": seconds,
            }
        )
        write_csv(self.folder / INDEX, self.rows, list(INDEX_FIELDS))

    def on_fit_end(self, trainer, pl_module):
        """Trim the preallocated arrays to the snapshots actually taken."""
        if not trainer.is_global_zero:
            return
        for layer, arr in list(self._arrays.items()):
            if arr.shape[0] != len(self.rows):
                data = np.array(arr[: len(self.rows)])
                del arr
                self._arrays.pop(layer)
                save_npy(self.folder / snapshot_layer_name(layer), data)
        self._arrays.clear()
