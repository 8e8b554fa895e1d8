"""What every objective shares: the optimiser and schedule, the data loaders, the step/log pattern.

An objective is a small LightningModule: it names its networks (from :mod:`aelens.models.nets`) and its loss; the loop,
checkpointing, logging and devices belong to Lightning (see :mod:`aelens.training.trainer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from ..config import RunConfig, parse_schedule
from ..data.batches import batch_loader
from ..data.loading import Dataset
from ..models.nets import Geometry, Networks

# Files an objective asks the training to save, by path relative to the run folder: a numpy array (.npy, its SHA-256
# recorded in the manifest), a fitted Reducer (a folder; hashes recorded), table rows ``(rows, fields)`` (.csv) or a
# figure (a callable that draws it to the path it is given).
RunFiles = dict[str, Any]


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with PyTorch's fused kernel (one call for all parameters instead of ~10 per tensor: less per-step
    work on CPU and GPU); the per-tensor loop where the fused kernel cannot run (other devices or dtypes)."""
    params = list(params)
    fusable = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.bfloat16) for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fusable or None)


def match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor its parameter's memory layout. A checkpoint stores tensors in the
    standard layout; the fused Adam kernel walks a channels-last parameter and its moments as flat memory, so moments
    restored in another layout would be applied to the wrong weights after a resume."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


class EpochSums:
    """Batch-size-weighted sums of a training epoch's losses, kept as tensors on the device (no host sync per step)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, values: dict[str, torch.Tensor], n: int) -> None:
        for key, value in values.items():
            value = value.detach().float() * n
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += n

    def means(self) -> dict[str, torch.Tensor]:
        return {key: total / max(1, self.count) for key, total in self.sums.items()}


class Objective(L.LightningModule):
    """Base class. Subclasses define the networks in ``__init__`` and ``loss(batch, stage) -> (loss, extras)``."""

    kind = ""
    has_encoder = True
    has_decoder = True

    def __init__(self, cfg: RunConfig, geometry: Geometry):
        super().__init__()
        self.cfg = cfg
        self.geometry = geometry
        self.dataset: Dataset | None = None
        self.split: dict[str, np.ndarray] = {}
        self.targets: np.ndarray | None = None  # per-image rows for batch["y"] (embeddings or angle vectors)
        self._epoch_sums = EpochSums()

    # ----------------------------------------------------------------------------------------- data

    def attach_data(self, dataset: Dataset, split: dict[str, np.ndarray], targets: np.ndarray | None = None) -> None:
        self.dataset, self.split, self.targets = dataset, split, targets

    @classmethod
    def check(cls, cfg: RunConfig, dataset: Dataset, split: dict[str, np.ndarray]) -> None:
        """Refuse settings that cannot work with this data, before a run directory is created."""

    def prepare(self, dataset: Dataset, split: dict[str, np.ndarray], run_dir: Path, resuming: bool) -> RunFiles:
        """Fit what the objective needs from the training split (a reducer, targets, initial weights), then attach
        the data. ``resuming``: read those back from ``run_dir`` instead of fitting them again. Returns the files to
        save in the run folder (the training saves them: objectives never write)."""
        self.attach_data(dataset, split)
        return {}

    def init_output_mean(self) -> None:
        """Start the decoder at the mean training frame (per channel), from up to 4,096 training frames."""
        idx = self.split["train"][:: max(1, len(self.split["train"]) // 4096)]
        self.decoder.set_output_mean(self.dataset.batch(idx).mean(dim=(0, 2, 3)))

    def finish(self) -> tuple[dict[str, Any], RunFiles]:
        """After training (rank 0): facts for the manifest, and objective-specific files to save in the run folder."""
        return {}, {}

    def _rank_world(self) -> tuple[int, int]:
        trainer = self._trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, part: str, shuffle: bool):
        rank, world = self._rank_world()
        return batch_loader(
            self.dataset,
            self.split[part],
            self.cfg.train.batch_size,
            shuffle=shuffle,
            seed=self.cfg.seed,
            targets=self.targets,
            rank=rank,
            world_size=world,
            images=self.needs_images,
        )

    needs_images = True

    def train_dataloader(self):
        loader = self._loader("train", shuffle=True)
        if self._trainer is not None:
            progress = self.trainer.fit_loop.epoch_loop.batch_progress
            loader.completed = lambda: progress.current.completed
        return loader

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    # ----------------------------------------------------------------------------------------- optimisation

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self):
        t = self.cfg.train
        opt = adam(self.trainable_parameters(), t.lr)
        name, params = parse_schedule(t.lr_schedule)
        if name == "none":
            return opt
        if name == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=int(params[0]), gamma=params[1])
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t.epochs, eta_min=t.lr * 0.01)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    # ----------------------------------------------------------------------------------------- steps

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """Batches are made on the CPU: there they stay as they are (Lightning's generic walk over the batch costs
        more than the step's other bookkeeping); to a GPU they go by Lightning's transfer."""
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def _prepare(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "x" in batch and self.cfg.train.channels_last:
            batch["x"] = batch["x"].contiguous(memory_format=torch.channels_last)
        return batch

    def loss(self, batch: dict[str, torch.Tensor], stage: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, extras = self.loss(self._prepare(batch), "train")
        n = len(batch["idx"])
        self._epoch_sums.add({"loss": loss, **extras}, n)
        # Lightning's ``self.log`` costs ~1 ms of Python per call: the step loss is logged only on the steps whose
        # logs are written (every ``log_every``), and the epoch means once, on the epoch's last step.
        if self._logs_written_this_step():
            self.log("train_loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        if batch_idx + 1 == self.trainer.num_training_batches:
            for key, mean in self._epoch_sums.means().items():
                name = "train_loss_epoch" if key == "loss" else f"train_{key}"
                self.log(name, mean, on_step=False, on_epoch=True, prog_bar=key == "loss", batch_size=1)
        return loss

    def _logs_written_this_step(self) -> bool:
        """Whether Lightning writes this step's logs (every ``log_every`` steps); every step if this Lightning
        version does not say (its logger connector is internal)."""
        connector = getattr(self.trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True))

    def on_train_start(self) -> None:
        for optimizer in self.trainer.optimizers:  # after a resume, the restored moments in the weights' layout
            match_state_layout(optimizer)

    def on_train_epoch_start(self) -> None:
        self._epoch_sums = EpochSums()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, extras = self.loss(self._prepare(batch), "val")
        n = len(batch["idx"])
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=n)
        for key, value in extras.items():
            self.log(f"val_{key}", value, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=n)

    def noise_generator(self) -> torch.Generator:
        """A fresh generator per step, seeded by (seed, global step): the same corruption after a resume."""
        return torch.Generator(device=self.device).manual_seed(self.cfg.seed * 1_000_003 + self.global_step)

    # ----------------------------------------------------------------------------------------- inference

    def networks(self) -> Networks:
        """This objective's encoder / decoder / readout (shared, not copied)."""
        return Networks(getattr(self, "encoder", None), getattr(self, "decoder", None), getattr(self, "readout", None))

    def describe(self) -> dict[str, Any]:
        """Facts recorded in the manifest (e.g. which layers were trainable)."""
        return {}
