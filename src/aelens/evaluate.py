"""Test mode: score a run on its held-out frames, beside simple baselines, and draw what it does.

Reconstruction runs (AE, embedding decoders): MSE / PSNR / SSIM against the input and, when the dataset has
noise-free frames, against those (the real denoising score); baselines are the noisy input itself, a Gaussian blur
and a PCA reconstruction with as many components as the run's latent. Tagger runs: angle errors, with the error of
always answering the training circular mean as the baseline.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .data.loading import Dataset, load_dataset, load_dataset_from_config
from .errors import AelensError
from .metrics import (
    angle_metrics,
    circular_mean_deg,
    gaussian_blur,
    image_metrics,
    regression_metrics,
)
from .runs import Run, load_run
from .storage import write_json
from .train import SPLIT, load_split

log = logging.getLogger("aelens")
PCA_BASELINE_MAX_FIT = 20000  # frames; PCA on more adds nothing to a baseline


def evaluation_frames(run: Run, dataset: Dataset) -> tuple[np.ndarray, str, dict[str, np.ndarray] | None]:
    """Which frames to score: the run's test split when ``dataset`` is the training dataset (else its validation
    split if it had no test split); every frame of any other dataset. Returns (indices, description, split)."""
    fp = run.manifest.get("data", {}).get("fingerprint")
    if fp == dataset.fingerprint and (run.path / SPLIT).is_file():
        split = load_split(run.path / SPLIT)
        if len(split["test"]):
            return split["test"], "test split", split
        return split["val"], "validation split (the run has no test split)", split
    return np.arange(dataset.n), "all frames (not the dataset the run was trained on)", None


def _dataset_for(run: Run, data: str | Path | None, dataset: Dataset | None) -> Dataset:
    if dataset is not None:
        ds = dataset
    elif data is not None:
        d = run.config.data
        ds = load_dataset(data, key=d.key, max_pixel_value=d.max_pixel_value, conditions=d.conditions or None,
                          angle_columns=d.angle_columns)
    else:
        ds = load_dataset_from_config(run.config.data)
    run.check_shape(ds.shape, ds.source)
    return ds


def _run_facts(run: Run) -> dict:
    m = run.manifest
    return {
        "kind": run.kind,
        "run": str(run.path),
        "train_seconds": m.get("train_seconds"),
        "epochs": m.get("epochs"),
        "seconds_per_epoch": m.get("seconds_per_epoch"),
    }


def test_run(run_dir: str | Path, data: str | Path | None = None, out: str | Path | None = None,
             dataset: Dataset | None = None, figures: bool = True) -> dict:
    """Score a run; write ``results.json`` and figures to ``out`` (default ``RUN_DIR/test``). Returns the results."""
    run = load_run(run_dir)
    ds = _dataset_for(run, data, dataset)
    idx, which, split = evaluation_frames(run, ds)
    out = Path(out) if out is not None else run.path / "test"
    if run.kind == "tagger":
        results = _test_tagger(run, ds, idx, split, out, figures)
    else:
        results = _test_reconstruction(run, ds, idx, split, out, figures)
    results = {"n": results.pop("n"), "frames": which, **results, **_run_facts(run)}
    write_json(out / "results.json", results)
    return results


# --------------------------------------------------------------------------------------------- reconstruction


def pca_baseline(dataset: Dataset, train_idx: np.ndarray, frames: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Reconstruct ``frames`` (n, c, h, w) from ``dim`` principal components fitted on training frames."""
    from .reducers import PCAReducer

    if len(train_idx) > PCA_BASELINE_MAX_FIT:
        train_idx = np.sort(np.random.default_rng(seed).choice(train_idx, PCA_BASELINE_MAX_FIT, replace=False))
    dim = min(dim, len(train_idx))
    pca = PCAReducer(dim, seed).fit(dataset.batch(train_idx).reshape(len(train_idx), -1).numpy())
    return pca.inverse(pca.transform(frames.reshape(len(frames), -1))).reshape(frames.shape)


def _test_reconstruction(run: Run, ds: Dataset, idx, split, out: Path, figures: bool) -> dict:
    frames = ds.batch(idx).numpy()
    recon = run.reconstruct(frames)
    results = {"n": int(len(idx)), **image_metrics(recon, frames)}
    clean = ds.batch(idx, clean=True).numpy() if ds.clean is not None else None
    if clean is not None:
        results.update(image_metrics(recon, clean, "_clean"))
    dim = run.networks.decoder.in_dim
    train_idx = split["train"] if split is not None else idx
    baselines = {
        "gaussian_blur": gaussian_blur(frames, sigma=1.0),
        f"pca{dim}": pca_baseline(ds, train_idx, frames, dim, run.config.seed),
    }
    if clean is not None:
        baselines = {"noisy_input": frames, **baselines}
    results["baselines"] = {}
    for name, pred in baselines.items():
        scores = image_metrics(pred, frames) if name != "noisy_input" else {}
        if clean is not None:
            scores.update(image_metrics(pred, clean, "_clean"))
        results["baselines"][name] = scores
    if figures:
        from .analysis.figures import save_recon_grid, save_side_by_side_gif

        k = min(16, len(idx))
        save_recon_grid(frames[:k], recon[:k], out / "recon_grid.png", "test frames (top), reconstructions (bottom)"
                        + (", clean (third row)" if clean is not None else ""), clean[:k] if clean is not None else None)
        g = min(48, len(idx))
        save_side_by_side_gif(frames[:g], recon[:g], out / "recon.gif")
    return results


# --------------------------------------------------------------------------------------------- tagger


def _test_tagger(run: Run, ds: Dataset, idx, split, out: Path, figures: bool) -> dict:
    from .objectives.tagger import tagger_targets

    conds = ds.require_conditions("testing a tagger")
    values, valid, notes = tagger_targets(run.config.tagger, conds)
    for note in notes:
        log.warning(note)
    idx = idx[valid[idx]]
    if len(idx) == 0:
        raise AelensError(f"{ds.source}: no test frame has a valid target")
    frames = ds.batch(idx).numpy()
    pred = run.predict(frames)
    train_idx = split["train"] if split is not None else idx
    train_idx = train_idx[valid[train_idx]]
    if run.config.tagger.kind == "linear":
        true = values[idx, 0]
        results = regression_metrics(pred, true)
        results["baselines"] = {"training_mean": regression_metrics(np.full_like(true, values[train_idx, 0].mean()), true)}
        return {"n": int(len(idx)), **results}
    true = np.mod(np.degrees(np.arctan2(values[idx, 1], values[idx, 0])), 360.0)
    train_deg = np.degrees(np.arctan2(values[train_idx, 1], values[train_idx, 0]))
    mean_dir = circular_mean_deg(train_deg)
    results = angle_metrics(pred, true)
    results["baselines"] = {"circular_mean": {**angle_metrics(np.full_like(true, mean_dir), true), "direction_deg": mean_dir}}
    if figures:
        from .analysis.figures import save_angle_arrows, save_angle_scatter, save_error_polar

        save_angle_scatter(true, pred, out / "angle_scatter.png")
        save_error_polar(true, pred, out / "angle_errors_polar.png")
        save_angle_arrows(frames[:24], true[:24], pred[:24], out / "angle_arrows.png")
    return {"n": int(len(idx)), **results}
