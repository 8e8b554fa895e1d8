"""Test mode: score a run on its held-out frames, beside simple baselines, and draw what it does.

Reconstruction runs (AE, embedding decoders): MSE / PSNR / SSIM against the input and, when the dataset has
noise-free frames, against those (the real denoising score); baselines are the noisy input itself, a Gaussian blur,
a PCA reconstruction with as many components as the run's latent, and the training frames' mean image (what a
model that knows only the training data's average appearance would answer); ``pixels`` holds the scored frames'
mean and standard deviation (0-1 scale). Tagger runs: angle errors, with the error of
always answering the training circular mean as the baseline.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..data.loading import Dataset
from ..errors import AelensError
from ..layout import RECON_RESULT, ReconFiles, RunDir, TestFiles, inside_run
from ..maps.figures import (
    save_angle_arrows,
    save_angle_scatter,
    save_error_polar,
    save_recon_grid,
    save_side_by_side_gif,
)
from ..maps.map_figures import save_recon_comparison
from ..maps.metrics import (
    angle_metrics,
    angular_error,
    circular_mean_deg,
    gaussian_blur,
    image_metrics,
    psnr_per_image,
    regression_metrics,
)
from ..maps.projection import embed
from ..maps.scores import comparison_word, mean_interval, paired_difference, time_blocks
from ..objectives.tagger import tagger_targets
from ..storage import check_unlocked, write_json, write_table
from .run import Run, check_same_image_shape, load_run

log = logging.getLogger("aelens")
PCA_BASELINE_MAX_FIT = 20000  # frames; PCA on more adds nothing to a baseline
TRAINING_FIT_FRAMES = 256  # training frames scored beside the blur, to tell falling short from over-fitting


def evaluation_frames(run: Run, dataset: Dataset) -> tuple[np.ndarray, str, dict[str, np.ndarray] | None]:
    """Which frames to score: the run's test split when ``dataset`` is the training dataset (else its validation
    split if it had no test split); every frame of any other dataset. Returns (indices, description, split)."""
    rd = RunDir(run.path)
    if run.manifest.fingerprint == dataset.fingerprint and rd.split_file.is_file():
        split = rd.split(dataset.n)
        if len(split["test"]):
            return split["test"], "test split", split
        return split["val"], "validation split (the run has no test split)", split
    return np.arange(dataset.n), "all frames (not the dataset the run was trained on)", None


def training_reference(run: Run, train_dataset: Dataset | None = None) -> tuple[Dataset, dict[str, np.ndarray]] | None:
    """The run's own training dataset (``train_dataset`` when already loaded) and split, for baselines fitted on
    training frames when a run is scored on another dataset (a new session); None when that data is no longer where
    the run recorded it."""
    try:
        ds = run.dataset(dataset=train_dataset)
    except AelensError:
        return None
    rd = RunDir(run.path)
    if ds.fingerprint != run.manifest.fingerprint or not rd.split_file.is_file():
        return None
    return ds, rd.split(ds.n)


def _run_facts(run: Run) -> dict:
    m = run.manifest
    return {
        "kind": run.kind,
        "run": str(run.path),
        "train_seconds": m.get("train_seconds"),
        "epochs": m.get("epochs"),
        "seconds_per_epoch": m.get("seconds_per_epoch"),
        "split": m.get("split", {"kind": "random", "purge": 0}),  # runs from before split kinds were random
    }


def test_run(
    run_dir: str | Path,
    data: str | Path | None = None,
    out: str | Path | None = None,
    dataset: Dataset | None = None,
    figures: bool = True,
    train_dataset: Dataset | None = None,
) -> dict:
    """Score a run; write ``results.json`` and figures to ``out`` (default ``RUN_DIR/test``; for another dataset
    ``RUN_DIR/test-NAME``, NAME its folder or file name). Returns the results. ``dataset``: ``data`` already loaded;
    ``train_dataset``: the run's training data, loaded, for the baselines of another dataset's scores."""
    check_unlocked(run_dir)  # a run being trained is not scored (its weights are not final; it is being written)
    run = load_run(run_dir)
    ds = run.dataset(data, dataset)
    idx, which, split = evaluation_frames(run, ds)
    if out is None:  # another dataset's scores go beside the run's own test results, never over them
        rd = RunDir(run.path)
        source = Path(str(ds.source))
        out = rd.test_dir if split is not None else rd.other_test_dir(source.stem if source.is_file() else source.name)
        out = inside_run(run.path, out)
    out = Path(out)
    if run.kind == "tagger":
        results = _test_tagger(run, ds, idx, split, out, figures, train_dataset)
    else:
        results = _test_reconstruction(run, ds, idx, split, out, figures, train_dataset)
    results = {"n": results.pop("n"), "frames": which, **results, **_run_facts(run)}
    write_json(out / RunDir.RESULTS, results)
    return results


# --------------------------------------------------------------------------------------------- reconstruction


def pca_baseline(dataset: Dataset, train_idx: np.ndarray, frames: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Reconstruct ``frames`` (n, c, h, w) from ``dim`` principal components fitted on training frames."""

    if len(train_idx) > PCA_BASELINE_MAX_FIT:
        train_idx = np.sort(np.random.default_rng(seed).choice(train_idx, PCA_BASELINE_MAX_FIT, replace=False))
    from sklearn.decomposition import PCA

    x = dataset.batch(train_idx).reshape(len(train_idx), -1).numpy()
    dim = min(dim, *x.shape)
    # randomized SVD: only the leading `dim` components are needed (a full solver on 72 x 72 crops spent 10 s on the
    # eigendecomposition of a 5,184 x 5,184 covariance, for each run a study tests)
    pca = PCA(n_components=dim, svd_solver="randomized", random_state=seed).fit(x)
    flat = frames.reshape(len(frames), -1)
    return pca.inverse_transform(pca.transform(flat)).astype(np.float32).reshape(frames.shape)


def mean_frame(dataset: Dataset, train_idx: np.ndarray, max_frames: int = 4096) -> np.ndarray:
    """The mean of up to ``max_frames`` evenly spaced training frames, (1, c, h, w) float32: as a reconstruction, a
    baseline that knows only the training data's average appearance (its PSNR falls on frames that look unlike it)."""
    idx = train_idx[:: max(1, len(train_idx) // max_frames)]
    return dataset.batch(idx).numpy().mean(axis=0, keepdims=True)


def reconstruction_scores(
    run: Run, ds: Dataset, idx: np.ndarray
) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray | None]:
    """MSE / PSNR / SSIM of a run's reconstructions of frames ``idx`` against the frames (and the clean frames when
    the dataset has them). Returns (scores, frames, reconstructions, clean frames or None)."""
    frames = ds.batch(idx).numpy()
    recon = run.reconstruct(frames)
    results = {"n": int(len(idx)), **image_metrics(recon, frames)}
    clean = ds.batch(idx, clean=True).numpy() if ds.clean is not None else None
    if clean is not None:
        results.update(image_metrics(recon, clean, "_clean"))
    if ds.levels is not None:  # normalised intensities: the same scores in the stored pixels' units too
        gain, bias = (ds.levels[idx, k].reshape(-1, 1, 1, 1) for k in (0, 1))
        results.update(image_metrics((recon - bias) / gain, (frames - bias) / gain, "_stored"))
    return results, frames, recon, clean


def training_fit(run: Run, ds: Dataset, train_idx: np.ndarray, n: int = TRAINING_FIT_FRAMES) -> dict:
    """A reconstruction run and a Gaussian blur on up to ``n`` evenly spread frames the run trained on, scored as
    its test frames are (mean PSNR against the clean frames when the data has them, else against the frames).

    A model that is worse than the blur on its test frames either falls short on the frames it learnt from too (how
    sharply it draws) or only on new ones (over-fitting to its training frames).
    Returns {"n", "metric", "model", "gaussian_blur"}.
    """
    pick = train_idx[np.unique(np.linspace(0, len(train_idx) - 1, num=min(n, len(train_idx))).astype(int))]
    frames = ds.batch(pick).numpy()
    clean = ds.batch(pick, clean=True).numpy() if ds.clean is not None else None
    target = _target(frames, clean)
    return {
        "n": int(len(pick)),
        "metric": _quality(clean),
        "model": float(psnr_per_image(run.reconstruct(frames), target).mean()),
        "gaussian_blur": float(psnr_per_image(gaussian_blur(frames, sigma=1.0), target).mean()),
    }


def scoring_blocks(idx: np.ndarray, ds: Dataset, min_blocks: int = 20) -> np.ndarray:
    """The units an interval resamples: the held-out blocks of time of a split; a session scored whole (transfer)
    is cut into ``min_blocks`` equal stretches of time, since its frames are not independent either."""
    blocks = time_blocks(idx, _sessions(ds, idx))
    n_blocks = int(blocks.max()) + 1 if len(blocks) else 0
    if 0 < n_blocks < min(min_blocks, len(idx) // 10):
        per = max(1, int(np.ceil(min_blocks / n_blocks)))
        sub = np.zeros_like(blocks)
        for b in range(n_blocks):
            where = np.flatnonzero(blocks == b)
            sub[where] = b * per + (np.arange(len(where)) * per) // len(where)
        blocks = np.unique(sub, return_inverse=True)[1]
    return blocks


def group_rows(values: np.ndarray, idx: np.ndarray, ds: Dataset, metric: str, blocks: np.ndarray) -> dict:
    """Per-frame ``values`` (scored on frames ``idx``) summarised per session and per track, when the conditions
    have those columns and more than one value: {"session": [{"group", "n", metric, "ci95"}, ...], "track": ...}.
    The frame-weighted mean of a column's rows is the pooled mean."""
    out: dict = {}
    if ds.conditions is None:
        return out
    for column, name, where in ds.conditions.groups(idx):
        out.setdefault(column, []).append(
            {
                "group": name,
                "n": int(where.sum()),
                metric: float(values[where].mean()),
                "ci95": mean_interval(values[where], blocks[where]),
            }
        )
    return out


def interval_fields(values: np.ndarray, idx: np.ndarray, ds: Dataset, metric: str, ci_key: str | None = None) -> dict:
    """What a test score adds to its pooled mean: ``ci_key`` (default ``METRIC_ci95``; over blocks of time), the
    number of blocks, and ``by_group`` (per session and track, rows keyed ``metric``) where there are several."""
    blocks = scoring_blocks(idx, ds)
    fields = {ci_key or f"{metric}_ci95": mean_interval(values, blocks), "blocks": int(blocks.max()) + 1}
    groups = group_rows(values, idx, ds, metric, blocks)
    return {**fields, "by_group": groups} if groups else fields


def _test_reconstruction(run: Run, ds: Dataset, idx, split, out: Path, figures: bool, train_ds=None) -> dict:
    results, frames, recon, clean = reconstruction_scores(run, ds, idx)
    results.update(interval_fields(psnr_per_image(recon, _target(frames, clean)), idx, ds, _quality(clean)))
    dim = run.networks.decoder.in_dim
    fit_ds, train_idx = ds, (split["train"] if split is not None else idx)
    if split is None:
        ref = training_reference(run, train_ds)
        if ref is not None:
            fit_ds, train_idx = ref[0], ref[1]["train"]
            results["baselines_note"] = (
                f"pca{dim} and mean_frame were fitted on the run's training frames ({ref[0].source})"
            )
        else:
            results["baselines_note"] = (
                f"pca{dim} and mean_frame were fitted on the scored frames themselves (the run's training data is "
                "not where it was)"
            )
    baselines = {
        "gaussian_blur": gaussian_blur(frames, sigma=1.0),
        f"pca{dim}": pca_baseline(fit_ds, train_idx, frames, dim, run.config.seed),
        "mean_frame": np.repeat(mean_frame(fit_ds, train_idx), len(frames), axis=0),
    }
    results["pixels"] = {"mean": round(float(frames.mean()), 4), "std": round(float(frames.std()), 4)}
    if clean is not None:
        baselines = {"noisy_input": frames, **baselines}
    results["baselines"] = {}
    for name, pred in baselines.items():
        scores = image_metrics(pred, frames) if name != "noisy_input" else {}
        if clean is not None:
            scores.update(image_metrics(pred, clean, "_clean"))
        results["baselines"][name] = scores
    if split is not None:
        results["training_frames"] = training_fit(run, ds, split["train"])
    if figures:
        k = min(16, len(idx))
        save_recon_grid(
            frames[:k],
            recon[:k],
            out / TestFiles.RECON_GRID,
            "test frames (top), reconstructions (bottom)" + (", clean (third row)" if clean is not None else ""),
            clean[:k] if clean is not None else None,
        )
        g = min(48, len(idx))
        save_side_by_side_gif(frames[:g], recon[:g], out / TestFiles.RECON_GIF)
    return results


# --------------------------------------------------------------------------------------------- tagger


def _test_tagger(run: Run, ds: Dataset, idx, split, out: Path, figures: bool, train_ds=None) -> dict:
    conds = ds.require_conditions("testing a tagger")
    values, valid, notes = tagger_targets(run.config.tagger, conds)
    for note in notes:
        log.warning(note)
    idx = idx[valid[idx]]
    if len(idx) == 0:
        raise AelensError(f"{ds.source}: no test frame has a valid target")
    frames = ds.batch(idx).numpy()
    pred = run.predict(frames)
    train_values, train_idx, baseline_from = values, (split["train"] if split is not None else idx), "training frames"
    if split is None:  # another dataset: the baseline still answers what the training frames suggest
        ref = training_reference(run, train_ds)
        if ref is not None:
            train_values, ref_valid, _ = tagger_targets(run.config.tagger, ref[0].require_conditions("the baseline"))
            train_idx = ref[1]["train"][ref_valid[ref[1]["train"]]]
        else:
            baseline_from = "scored frames (the run's training data is not where it was)"
    else:
        train_idx = train_idx[valid[train_idx]]
    if run.config.tagger.kind == "linear":
        true = values[idx, 0]
        results = regression_metrics(pred, true)
        results["baselines"] = {
            "training_mean": {
                **regression_metrics(np.full_like(true, train_values[train_idx, 0].mean()), true),
                "from": baseline_from,
            }
        }
        return {"n": int(len(idx)), **results}
    true = np.mod(np.degrees(np.arctan2(values[idx, 1], values[idx, 0])), 360.0)
    train_deg = np.degrees(np.arctan2(train_values[train_idx, 1], train_values[train_idx, 0]))
    mean_dir = circular_mean_deg(train_deg)
    results = angle_metrics(pred, true)
    results.update(interval_fields(angular_error(pred, true), idx, ds, "angle_mae_deg", "angle_mae_ci95"))
    results["baselines"] = {
        "circular_mean": {
            **angle_metrics(np.full_like(true, mean_dir), true),
            "direction_deg": mean_dir,
            "from": baseline_from,
        }
    }
    if figures:
        save_angle_scatter(true, pred, out / TestFiles.ANGLE_SCATTER)
        save_error_polar(true, pred, out / TestFiles.ANGLE_POLAR)
        save_angle_arrows(frames[:24], true[:24], pred[:24], out / TestFiles.ANGLE_ARROWS)
    return {"n": int(len(idx)), **results}


# --------------------------------------------------------------------------------------------- comparison


def latent_source(run: Run) -> str:
    return run.config.embedding.method if run.kind == "decoder" else run.kind


def model_label(run: Run) -> str:
    """Short column label: AE-16, PCA-16, UMAP-2, ..."""
    dim = run.networks.decoder.in_dim if run.networks.decoder is not None else run.config.model.latent_dim
    return f"{latent_source(run).upper()}-{dim}"


def common_test_frames(runs: list[Run], ds: Dataset) -> tuple[np.ndarray, str, dict[str, np.ndarray] | None]:
    """The test frames every run held out: the runs must share image shape and, on their training dataset, split."""
    check_same_image_shape(runs)
    picks = [evaluation_frames(r, ds) for r in runs]
    first_idx, first_which, first_split = picks[0]
    for r, (idx, which, _) in zip(runs[1:], picks[1:]):
        if which != first_which or not np.array_equal(idx, first_idx):
            raise AelensError(
                f"{r.path} held out other test frames than {runs[0].path} (another dataset, seed or split); "
                "compare runs trained on the same data with the same --seed and fractions"
            )
    return first_idx, first_which, first_split


def compare_reconstructions(
    run_dirs: list,
    data=None,
    out=None,
    color_by: str | None = "body_angle_deg",
    n_show: int = 4,
    max_map: int = 3000,
    dataset: Dataset | None = None,
    method: str = "umap",
) -> dict:
    """Evaluate every run on the same test frames: ``recon_comparison.csv`` / ``.md`` and ``recon_comparison.png``
    (one column per model; rows: inputs, outputs, the model's latent mapped to 2-D by ``method``: umap, pca or
    tsne)."""

    if not run_dirs:
        raise AelensError("compare-recon needs at least one run directory")
    runs = [load_run(r) for r in run_dirs]
    for r in runs:
        if r.networks.decoder is None:
            raise AelensError(f"{r.path}: a {r.kind} run has no decoder; compare-recon takes AE and decoder runs")
    ds = runs[0].dataset(data, dataset)
    idx, which, split = common_test_frames(runs, ds)
    out = Path(out) if out is not None else Path("recon_comparison")
    rows, recons, maps = [], [], []
    show = idx[np.linspace(0, len(idx) - 1, num=min(n_show, len(idx))).astype(int)]
    map_idx = idx if len(idx) <= max_map else np.sort(np.random.default_rng(0).choice(idx, max_map, replace=False))
    values = None
    is_angle = False
    if color_by and ds.conditions is not None:
        values = ds.conditions.column(color_by)[map_idx]
        is_angle = ds.conditions.is_angle(color_by)
    blocks = scoring_blocks(idx, ds)
    per_frame = {}
    for r in runs:
        scores, frames, recon, clean = reconstruction_scores(r, ds, idx)
        per_frame[r.path] = psnr_per_image(recon, _target(frames, clean))
        scores[f"{_quality(clean)}_ci95"] = mean_interval(per_frame[r.path], blocks)
        rows.append(_recon_row(r, scores))
        recons.append(r.reconstruct(ds.batch(show).numpy()))
        codes = r.encode(ds.batch(map_idx).numpy())
        maps.append(codes[:, :2] if codes.shape[1] <= 2 else embed(codes, method, random_state=0)[0])
    fields = ["run", "model", "latent_source", "dim", "mse", "psnr", "ssim"]
    fields += [k for k in ("mse_clean", "psnr_clean", "ssim_clean") if k in rows[0]]
    fields += ["train_seconds", "epochs", "seconds_per_epoch", "explained_variance"]
    write_table(out / ReconFiles.CSV, out / ReconFiles.TABLE, rows, fields)
    save_recon_comparison(
        ds.batch(show).numpy(),
        recons,
        maps,
        values,
        is_angle,
        [r["model"] for r in rows],
        color_by or "",
        out / ReconFiles.FIGURE,
        method=method,
    )
    result = {"n": int(len(idx)), "frames": which, "rows": rows, "color_by": color_by}
    result["intervals"] = (
        f"95% intervals: percentile bootstrap over the {int(blocks.max()) + 1 if len(blocks) else 0} held-out blocks "
        "of time (frames within a block are not independent); comparisons are paired (the same resampled frames)"
    )
    result["pairs"] = _paired_rows(runs, rows, per_frame, blocks)
    ae = next((r for r in runs if latent_source(r) == "ae"), None)
    result["baselines"] = _baseline_pairs(ae, ds, frames, clean, split, per_frame, blocks)
    if ae is not None and split is not None:
        result["ae_training_frames"] = {"model_label": model_label(ae), **training_fit(ae, ds, split["train"])}
    write_json(out / RECON_RESULT, result)
    return result


def _sessions(ds: Dataset, idx: np.ndarray) -> np.ndarray | None:
    cond = ds.conditions
    return cond.column("session")[idx] if cond is not None and "session" in cond.names else None


def _quality(clean) -> str:
    return "psnr_clean" if clean is not None else "psnr"


def _target(frames: np.ndarray, clean: np.ndarray | None) -> np.ndarray:
    """What a reconstruction is scored against: the clean frames when the data has them, else the frames."""
    return clean if clean is not None else frames


def _paired_rows(runs: list[Run], rows: list[dict], per_frame: dict, blocks: np.ndarray) -> list[dict]:
    """Every model against the AE on the same frames: the PSNR difference, its paired interval and its word."""
    ae = next((r for r, row in zip(runs, rows) if row["latent_source"] == "ae"), None)
    if ae is None:
        return []
    ae_label = rows[runs.index(ae)]["model"]
    out = []
    for r, row in zip(runs, rows):
        if r is ae:
            continue
        d = paired_difference(per_frame[r.path], per_frame[ae.path], blocks)
        out.append({"a": row["model"], "b": ae_label, "metric": "psnr_db", **d, "word": comparison_word(d["ci95"])})
    return out


def _baseline_pairs(ae: Run | None, ds: Dataset, frames, clean, split, per_frame: dict, blocks) -> list[dict]:
    """The AE against the trivial reconstructions of the same frames: the noisy input itself (when there are clean
    frames), a Gaussian blur, the training frames' mean image and PCA of the AE's size fitted on training frames."""
    if ae is None or split is None:
        return []
    target = _target(frames, clean)
    train = split["train"]
    dim = ae.networks.decoder.in_dim
    preds = {}
    if clean is not None:
        preds["noisy input"] = frames
    preds["Gaussian blur"] = gaussian_blur(frames, sigma=1.0)
    preds["mean training frame"] = np.repeat(mean_frame(ds, train), len(frames), axis=0)
    preds[f"PCA-{dim} (training frames)"] = pca_baseline(ds, train, frames, dim, ae.config.seed)
    out = []
    for name, pred in preds.items():
        d = paired_difference(per_frame[ae.path], psnr_per_image(pred, target), blocks)
        out.append({"a": model_label(ae), "b": name, "metric": "psnr_db", **d, "word": comparison_word(d["ci95"])})
    return out


def _recon_row(r, scores: dict) -> dict:
    """One model's line of the reconstruction table: its scores beside its size and training cost."""
    m = r.manifest
    return {
        "run": r.path.name,
        "model": model_label(r),
        "latent_source": latent_source(r),
        "dim": r.networks.decoder.in_dim,
        **{k: v for k, v in scores.items() if k != "n"},
        "train_seconds": m.get("train_seconds"),
        "epochs": m.get("epochs"),
        "seconds_per_epoch": m.get("seconds_per_epoch"),
        "explained_variance": m.get("explained_variance"),
    }


def ensure_test(run_dir: str | Path, data=None, dataset: Dataset | None = None) -> dict:
    """The run's test results, scored now unless ``test/results.json`` exists."""
    return RunDir(run_dir).test_result() or test_run(run_dir, data=data, dataset=dataset)
