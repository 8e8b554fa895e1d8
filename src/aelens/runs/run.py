"""Loading a finished (or interrupted) run: its config, networks and weights, for test mode, analysis and notebooks.

Example::

    run = aelens.load_run("runs/ae-20261128-101500")
    codes = run.encode(images)          # (n, 16) float32
    recon = run.reconstruct(images)     # (n, c, h, w) float32
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import RunConfig
from ..data.loading import Dataset
from ..data.normalize import normalized
from ..data.sessions import load_with_options
from ..errors import AelensError
from ..layout import MANIFEST, Manifest, RunDir
from ..models.inference import INFER_BATCH, default_device, inference_copy, resolve_precision, run_batched
from ..models.nets import Geometry, Networks
from ..models.reducers import Reducer
from ..objectives import OBJECTIVES
from ..storage import load_into, load_state_dict


def run_geometry(manifest: Manifest, run_dir: str | Path) -> Geometry:
    shape = manifest.image_shape
    if not shape or len(shape) != 3:
        raise AelensError(f"{Path(run_dir) / MANIFEST}: no image_shape recorded")
    return Geometry(*map(int, shape))


def build_objective(run_dir: str | Path, weights: bool = True):
    """(objective with weights loaded, config, manifest) for a run directory."""

    rd = RunDir(run_dir)
    manifest = rd.manifest()
    cfg = rd.config()
    geometry = run_geometry(manifest, run_dir)
    objective = OBJECTIVES[cfg.kind](cfg, geometry)
    if weights:
        path = rd.weights_file()
        load_into(objective, load_state_dict(path), path)
    objective.eval()
    return objective, cfg, manifest


class Run:
    """A trained model from a run directory, ready for inference (BatchNorm folded, bf16 where fast)."""

    def __init__(self, run_dir: str | Path, device: str | torch.device | None = None):
        self.path = Path(run_dir)
        objective, self.config, self.manifest = build_objective(self.path)
        self.config: RunConfig
        self.kind = self.config.kind
        self.geometry: Geometry = objective.geometry
        self.device = torch.device(device) if device is not None else default_device()
        self.bf16 = resolve_precision(self.config.train.precision, self.device.type) == "bf16"
        self.networks: Networks = inference_copy(objective.networks(), self.device)
        self.reducer = None
        if self.kind == "decoder":
            self.reducer = Reducer.load(RunDir(self.path).reducer, self.manifest)
        self.target_scale = None
        if self.kind == "tagger" and self.config.tagger.kind == "linear":
            self.target_scale = (float(objective.target_mean), float(objective.target_std))

    def __repr__(self) -> str:
        c, h, w = self.geometry.channels, self.geometry.height, self.geometry.width
        return f"Run({str(self.path)!r}, kind={self.kind!r}, images {c}x{h}x{w})"

    def dataset(self, data: str | Path | None = None, dataset: Dataset | None = None) -> Dataset:
        """The dataset to evaluate on: ``dataset``; else ``data`` read with the run's data options (key, scaling,
        condition names); else the run's own training data. Its frames must have the run's shape."""

        if dataset is None:
            dataset = load_with_options(self.config.data, data)
        dataset = normalized(dataset, self.config.data.normalize)  # a dataset handed in gets the run's levels too
        self.check_shape(dataset.shape, dataset.source)
        return dataset

    # ---------------------------------------------------------------------------------------------- inputs
    def _frames(self, images) -> tuple[callable, int]:
        """Accept a Dataset, or an array (n, h, w) / (n, c, h, w) uint8 (scaled by 255) or float."""
        if isinstance(images, Dataset):
            ds = normalized(images, self.config.data.normalize)  # the run's intensity normalisation, if any
            self.check_shape(ds.shape, ds.source)
            return ds.batch, ds.n
        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[:, None]
        if arr.ndim != 4 or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise AelensError(
                f"images must be a numeric N x H x W or N x C x H x W array, got {arr.dtype} {tuple(arr.shape)}"
            )
        self.check_shape(arr.shape[1:], "images")
        scale = 255.0 if arr.dtype == np.uint8 else 1.0

        def get(idx):
            return torch.from_numpy(np.ascontiguousarray(arr[idx])).float().div_(scale)

        return get, arr.shape[0]

    def check_shape(self, shape, source) -> None:
        g = self.geometry
        if tuple(shape) != (g.channels, g.height, g.width):
            raise AelensError(
                f"{source}: images are {'x'.join(map(str, shape))} but {self.path} was trained on {g.channels}x{g.height}x{g.width}"
            )

    def _apply(self, fn, get, n, channels_last=True) -> np.ndarray:
        return run_batched(fn, get, n, self.device, self.bf16, INFER_BATCH, channels_last)

    # ---------------------------------------------------------------------------------------------- API
    def encode(self, images, layer: str = "fc1") -> np.ndarray:
        """Latent codes (n, d) float32 at ``layer`` (fc1 = the latent; fc2 = the decoder's first layer)."""
        if layer not in ("fc1", "fc2"):
            raise AelensError(f"--layer must be fc1 or fc2, got {layer!r}")
        if layer == "fc2" and self.networks.decoder is None:
            raise AelensError(f"--layer fc2: {self.path} is a {self.kind} run without a decoder; use fc1")
        get, n = self._frames(images)
        if self.reducer is not None:
            codes = self.embed(get, n)
            if layer == "fc1":
                return codes
            return self._apply(lambda z: self.networks.latent(z, "fc2"), lambda i: torch.from_numpy(codes[i]), n, False)
        return self._apply(lambda x: self.networks.latent(x, layer), get, n)

    def embed(self, get, n) -> np.ndarray:
        """Decoder runs: the reducer's standardised embedding of every frame."""
        out = []
        for start in range(0, n, 4096):
            x = get(np.arange(start, min(n, start + 4096)))
            out.append(self.reducer.transform(x.reshape(len(x), -1).numpy()))
        return np.concatenate(out)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes (n, d) -> frames (n, c, h, w) float32."""
        if self.networks.decoder is None:
            raise AelensError(f"{self.path}: a {self.kind} run has no decoder")
        codes = np.asarray(codes, dtype=np.float32)
        d = self.networks.decoder.in_dim
        if codes.ndim != 2 or codes.shape[1] != d:
            raise AelensError(f"codes must be N x {d} for {self.path}, got shape {tuple(codes.shape)}")
        return self._apply(self.networks.decode, lambda i: torch.from_numpy(codes[i]), len(codes), False)

    def reconstruct(self, images) -> np.ndarray:
        """Frames -> reconstructed frames (n, c, h, w) float32."""
        if self.networks.decoder is None:
            raise AelensError(f"{self.path}: a {self.kind} run has no decoder")
        if self.reducer is not None:
            return self.decode(self.encode(images))
        get, n = self._frames(images)
        return self._apply(self.networks.reconstruct, get, n)

    def predict(self, images) -> np.ndarray:
        """Tagger runs: predicted angle in degrees [0, 360) (kind angle) or the scalar target (kind linear)."""
        if self.networks.readout is None:
            raise AelensError(f"{self.path}: only tagger runs predict a target (this is a {self.kind} run)")
        get, n = self._frames(images)
        out = self._apply(self.networks.predict, get, n)
        if self.config.tagger.kind == "angle":
            return np.mod(np.degrees(np.arctan2(out[:, 1], out[:, 0])), 360.0)
        mean, std = self.target_scale
        return out * std + mean


def load_run(run_dir: str | Path, device: str | None = None) -> Run:
    """Open a run directory for inference (see :class:`Run`)."""
    return Run(run_dir, device)


def check_same_image_shape(runs: list[Run]) -> None:
    """Runs compared with each other must have been trained on frames of one shape."""
    shapes = {r.manifest.image_shape for r in runs}
    if len(shapes) > 1:
        raise AelensError(
            "runs were trained on different image shapes: "
            + "; ".join(f"{r.path}: {'x'.join(map(str, r.manifest.image_shape or ()))}" for r in runs)
        )
