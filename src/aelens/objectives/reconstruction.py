"""The denoising autoencoder: encoder -> 16-D latent -> decoder, MSE to the (uncorrupted) frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import RunConfig
from ..data.batches import corrupt
from ..models.nets import Decoder, Encoder, Geometry
from .base import Objective


class Reconstruction(Objective):
    kind = "ae"

    def __init__(self, cfg: RunConfig, geometry: Geometry):
        super().__init__(cfg, geometry)
        self.encoder = Encoder(geometry, cfg.model.latent_dim)
        self.decoder = Decoder(geometry, cfg.model.latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def prepare(self, dataset, split, run_dir, resuming):
        files = super().prepare(dataset, split, run_dir, resuming)
        if not resuming:
            self.init_output_mean()
        return files

    def loss(self, batch, stage):
        x = batch["x"]
        noisy = stage == "train" and self.cfg.noise != "none"
        inp = corrupt(x, self.cfg.noise, self.noise_generator()) if noisy else x
        return F.mse_loss(self(inp).float(), x), {}
