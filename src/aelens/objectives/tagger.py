"""The direction tagger: the AE's encoder (same module, same latent) + a readout predicting the body direction.

The readout predicts a unit vector (cos, sin); the loss is ``1 - cos(angle error)``, zero for a perfect prediction
and blind to whole turns (adding 360 degrees changes nothing). ``kind="linear"`` regresses a standardised scalar
(e.g. distance from the arena centre) with MSE instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import RunConfig, TaggerConfig, format_augment, parse_augment
from ..data.augment import augment_batch, rotate_batch, uses_circle_mask  # noqa: F401
from ..data.loading import Conditions
from ..errors import AelensError
from ..layout import RunDir
from ..models.inference import INFER_BATCH, autocast
from ..models.nets import AngleReadout, Encoder, Geometry
from ..storage import load_into, load_state_dict
from .base import Objective

log = logging.getLogger("aelens")


def tagger_targets(tcfg: TaggerConfig, conditions: Conditions) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Training targets from the conditions: (values, valid rows, notes for the user).

    kind ``angle``: values (n, 2) = (cos, sin) of the target angle, from an angle column in degrees (wrapped into
    [0, 360)) or from ``target_vector`` columns (X, Y) or (X1, Y1, X2, Y2: direction from point 2 to point 1).
    kind ``linear``: values (n, 1), the column itself. Rows with a missing (non-finite) target are not valid.
    """
    notes = []
    if tcfg.target_vector:
        cols = [conditions.column(c) for c in tcfg.target_vector]
        if len(cols) == 2:
            dx, dy = cols
        else:
            dx, dy = cols[0] - cols[2], cols[1] - cols[3]
        degrees = np.degrees(np.arctan2(dy, dx))
        valid = np.isfinite(degrees) & ((dx != 0) | (dy != 0))
        name = ",".join(tcfg.target_vector)
    else:
        name = tcfg.target
        degrees = conditions.column(name).astype(np.float64)
        valid = np.isfinite(degrees)
    if not valid.any():
        raise AelensError(f"{conditions.source}: target {name!r} has no finite values")
    if (~valid).any():
        notes.append(f"target {name!r}: dropped {int((~valid).sum())} of {len(valid)} rows with a missing value")
    if tcfg.kind == "linear":
        return np.where(valid, degrees, 0.0)[:, None].astype(np.float32), valid, notes
    outside = valid & ((degrees < 0) | (degrees >= 360))
    if outside.any() and not tcfg.target_vector:
        notes.append(f"target {name!r}: wrapped {int(outside.sum())} angles outside [0, 360) into that range")
    rad = np.radians(np.where(valid, np.mod(degrees, 360.0), 0.0))
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32), valid, notes


def angle_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(error) for unit vectors ``pred``, ``target`` (b, 2) = (cos, sin). Range [0, 2]."""
    return (1.0 - (pred * target).sum(dim=1)).mean()


def angle_error_deg(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Absolute angle between (b, 2) vectors, degrees in [0, 180]."""
    cos = (pred * target).sum(1)
    sin = pred[:, 0] * target[:, 1] - pred[:, 1] * target[:, 0]
    return torch.rad2deg(torch.atan2(sin, cos).abs())


def trainable_layers(unfreeze: str) -> tuple[str, ...]:
    """Encoder layers trained for ``--unfreeze K|all`` (K counted from the top: 0 = none, 1 = fc1, 2 = fc1+conv3...)."""
    layers = Encoder.LAYERS
    if unfreeze == "all":
        return layers
    k = int(unfreeze)
    if k > len(layers):
        raise AelensError(
            f"--unfreeze must be at most {len(layers)} (the encoder has {len(layers)} layers: {', '.join(layers)}) or all, got {k}"
        )
    return layers[:k]


def check_init_from(ae_dir: str | Path, cfg: RunConfig, geometry: Geometry) -> None:
    """``--init-from`` must name an AE run with the tagger's latent dim and image shape, with weights."""
    rd = RunDir(ae_dir)
    manifest = rd.manifest()
    if manifest.kind != "ae":
        raise AelensError(f"--init-from {ae_dir}: a {manifest.kind} run, not an AE run")
    ae_cfg = rd.config()
    if ae_cfg.model.latent_dim != cfg.model.latent_dim:
        raise AelensError(
            f"--init-from {ae_dir}: the AE's latent dim is {ae_cfg.model.latent_dim}, the tagger's {cfg.model.latent_dim} (set --latent-dim)"
        )
    g = geometry
    if list(manifest.image_shape or ()) != [g.channels, g.height, g.width]:
        raise AelensError(
            f"--init-from {ae_dir}: the AE was trained on {'x'.join(map(str, manifest.image_shape or ()))} images, "
            f"these are {g.channels}x{g.height}x{g.width}"
        )
    rd.weights_file()


class DirectionTagger(Objective):
    kind = "tagger"
    has_decoder = False

    def __init__(self, cfg: RunConfig, geometry: Geometry):
        super().__init__(cfg, geometry)
        self.augment_parts = parse_augment(cfg.tagger.augment)
        self.encoder = Encoder(geometry, cfg.model.latent_dim, masked=uses_circle_mask(self.augment_parts))
        self.readout = AngleReadout(cfg.model.latent_dim, cfg.tagger.kind)
        self.trainable = trainable_layers(cfg.tagger.unfreeze)
        for name in Encoder.LAYERS:
            getattr(self.encoder, name).requires_grad_(name in self.trainable)
        # kind=linear: the scalar target is standardised with the training rows' mean and std (saved with the weights)
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))

    def train(self, mode: bool = True):
        """Frozen layers keep their BatchNorm statistics: they stay in eval mode while the rest trains."""
        super().train(mode)
        for name in Encoder.LAYERS:
            if name not in self.trainable:
                getattr(self.encoder, name).eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.encoder(x))

    def _augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = augment_batch(x, y, self.augment_parts, self.noise_generator())
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.train.channels_last else x, y

    def loss(self, batch, stage):
        x, y = batch["x"], batch["y"]
        if self.cfg.tagger.kind == "linear":
            pred = self(x).float()
            target = y[:, 0]
            return F.mse_loss(pred, target), {}
        if stage == "train" and self.augment_parts:
            x, y = self._augment(x, y)
        pred = self(x).float()
        return angle_loss(pred, y), {"angle_mae_deg": angle_error_deg(pred.detach(), y).mean()}

    def prepare(self, dataset, split, run_dir, resuming):
        conditions = dataset.require_conditions("the direction tagger")
        values, valid, notes = tagger_targets(self.cfg.tagger, conditions)
        for note in notes:
            log.warning(note)
        split = {part: idx[valid[idx]] for part, idx in split.items()}
        if len(split["train"]) == 0 or len(split["val"]) == 0:
            raise AelensError(f"{conditions.source}: too few rows with a valid target for training and validation")
        if self.cfg.tagger.kind == "linear":
            train_vals = values[split["train"], 0]
            mean, std = float(train_vals.mean()), float(train_vals.std()) or 1.0
            self.target_mean.fill_(mean)
            self.target_std.fill_(std)
            values = (values - mean) / std
        self.attach_data(dataset, split, values)
        if self.cfg.tagger.init_from and not resuming:
            self.init_from(self.cfg.tagger.init_from)
            self.init_readout()
        return {}

    @torch.no_grad()
    def init_readout(self, max_frames: int = 20000, ridge: float = 1e-2) -> None:
        """Start the readout at the least-squares (ridge) solution on the pretrained latent of the training frames.

        A linear probe trained from a random readout with Adam at lr 1e-3 needs thousands of steps to reach what one
        solve gives; with it, "unfreeze 0" measures the AE latent rather than the optimiser's patience."""

        idx = self.split["train"]
        if len(idx) > max_frames:
            idx = np.sort(np.random.default_rng(self.cfg.seed).choice(idx, max_frames, replace=False))
        was = self.training
        self.eval()
        z = []
        for start in range(0, len(idx), INFER_BATCH * 4):
            with autocast(self.device, False):
                z.append(self.encoder(self.dataset.batch(idx[start : start + INFER_BATCH * 4])).double())
        self.train(was)
        z = torch.cat(z)
        y = torch.as_tensor(self.targets[idx], dtype=torch.float64)
        zm, ym = z.mean(0), y.mean(0)
        zc = z - zm
        gram = zc.T @ zc + ridge * len(z) * torch.eye(z.shape[1], dtype=torch.float64)
        w = torch.linalg.solve(gram, zc.T @ (y - ym))  # (latent, outputs)
        b = ym - zm @ w
        self.readout.linear.weight.copy_(w.T.to(self.readout.linear.weight.dtype))
        self.readout.linear.bias.copy_(b.to(self.readout.linear.bias.dtype))

    def init_from(self, ae_dir: str | Path) -> None:
        """Copy the encoder weights of an AE run (same latent dim and image shape)."""
        check_init_from(ae_dir, self.cfg, self.geometry)
        path = RunDir(ae_dir).weights_file()
        state = load_state_dict(path)
        enc = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
        load_into(self.encoder, enc, path)

    @classmethod
    def check(cls, cfg, dataset, split):
        trainable_layers(cfg.tagger.unfreeze)
        tagger_targets(cfg.tagger, dataset.require_conditions("the direction tagger"))
        if cfg.tagger.init_from:
            check_init_from(cfg.tagger.init_from, cfg, Geometry(*dataset.shape))

    def describe(self):
        return {
            "trainable_layers": list(self.trainable),
            "frozen_layers": [n for n in Encoder.LAYERS if n not in self.trainable],
            "augment": format_augment(self.augment_parts),
            "input_mask": "circle" if self.encoder.input_mask is not None else "none",
        }
