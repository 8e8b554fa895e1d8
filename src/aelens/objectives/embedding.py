"""The AE's decoder trained on a dimensionality-reduction embedding (PCA, UMAP, ...) instead of a learned code."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from ..config import RunConfig
from ..data.loading import Dataset
from ..layout import ReducerFiles, RunDir, read_manifest
from ..maps.figures import save_variance_plot
from ..models.nets import Decoder, Geometry
from ..models.reducers import PCAReducer, Reducer, make_reducer
from ..storage import load_npy
from .base import Objective

log = logging.getLogger("aelens")


def flat_frames(dataset: Dataset, idx: np.ndarray) -> np.ndarray:
    """Frames ``idx`` as (len(idx), c*h*w) float32 in [0, 1]."""
    return dataset.batch(idx).reshape(len(idx), -1).numpy()


def embed_all(reducer: Reducer, dataset: Dataset, skip: np.ndarray, skip_values: np.ndarray) -> np.ndarray:
    """Standardised embedding of every frame; frames ``skip`` (the fit set) take ``skip_values``."""
    emb = np.zeros((dataset.n, reducer.dim), dtype=np.float32)
    emb[skip] = skip_values
    rest = np.setdiff1d(np.arange(dataset.n), skip)
    for start in range(0, len(rest), 8192):
        idx = rest[start : start + 8192]
        emb[idx] = reducer.transform(flat_frames(dataset, idx))
    return emb


class EmbeddingDecoder(Objective):
    """``batch["y"]``: the standardised embedding of each frame (computed once by the fitted reducer)."""

    kind = "decoder"
    has_encoder = False

    def __init__(self, cfg: RunConfig, geometry: Geometry):
        super().__init__(cfg, geometry)
        self.decoder = Decoder(geometry, cfg.embedding.dim)
        self.reducer: Reducer | None = None

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(codes)

    def loss(self, batch, stage):
        return F.mse_loss(self(batch["y"]).float(), batch["x"]), {}

    def make_reducer(self) -> Reducer:
        e = self.cfg.embedding
        options = {}
        if e.method == "umap":
            options = {
                "n_neighbors": e.umap_neighbors,
                "min_dist": e.umap_min_dist,
                "fit_max": e.umap_fit_max,
                "n_epochs": e.umap_epochs,
                "low_memory": e.umap_low_memory,
                "n_jobs": e.umap_n_jobs,
                "pca": e.umap_pca,
                "verbose": True,
            }
        return make_reducer(e.method, e.dim, self.cfg.seed, **options)

    @classmethod
    def check(cls, cfg, dataset, split):
        e = cfg.embedding
        make_reducer(e.method, e.dim).check(len(split["train"]), int(np.prod(dataset.shape)))

    def prepare(self, dataset, split, run_dir, resuming):
        folder = RunDir(run_dir).reducer
        files = {}
        if resuming:
            self.reducer = Reducer.load(folder, read_manifest(run_dir))
            emb = load_npy(folder / ReducerFiles.EMBEDDINGS)
        else:
            reducer = self.make_reducer()
            train = split["train"]
            reducer.check(len(train), int(np.prod(dataset.shape)))
            log.info("fitting %s (dim %d) on %d training frames", reducer.name, reducer.dim, len(train))
            reducer.fit(flat_frames(dataset, train))
            emb = embed_all(reducer, dataset, train, reducer._fit_embedding)
            files = {
                ReducerFiles.FOLDER: reducer,
                f"{ReducerFiles.FOLDER}/{ReducerFiles.EMBEDDINGS}": emb,
                f"{ReducerFiles.FOLDER}/{ReducerFiles.FIT_INDICES}": train[
                    getattr(reducer, "fit_subset_", np.arange(len(train)))
                ],
            }
            self.reducer = reducer
        self.attach_data(dataset, split, emb)
        if not resuming:
            self.init_output_mean()
        return files

    def finish(self):
        facts = {"reducer": self.reducer.name, "reducer_fit_seconds": round(self.reducer.fit_seconds, 3)}
        files = {}
        if isinstance(self.reducer, PCAReducer):
            ratio = self.reducer.explained_variance_ratio_
            cum = np.cumsum(ratio)
            rows = [
                {"component": i + 1, "explained_variance_ratio": float(r), "cumulative": float(c)}
                for i, (r, c) in enumerate(zip(ratio, cum))
            ]

            dim = self.reducer.dim
            files = {
                RunDir.PCA_VARIANCE_CSV: (rows, ["component", "explained_variance_ratio", "cumulative"]),
                RunDir.PCA_VARIANCE_PNG: lambda path: save_variance_plot(cum, dim, path),
            }
            facts["explained_variance"] = round(self.reducer.explained_variance, 6)
        return facts, files
