"""``aelens latent``: what a run's latent encodes (maps coloured by each condition, decoding scores) and how it
developed during training (the evolution movie)."""

from __future__ import annotations

import logging
import textwrap
import time
from pathlib import Path

import numpy as np

from ..data.loading import Dataset
from ..errors import AelensError
from ..layout import LATENT_SUMMARY, LatentFiles, RunDir, inside_run
from ..maps import figures, inside, map_figures
from ..maps.projection import check_fit_mode, embed, evolution_maps
from ..maps.scores import decoding_score, trustworthiness
from ..runs.run import Run, load_run
from ..storage import check_unlocked, load_npy, save_npy, write_csv, write_json
from .snapshots import analysis_indices, load_snapshots

log = logging.getLogger("aelens")
SKIP_COLUMNS = (
    "frame",
    "session",
    "track",
    "time_s",
    "interpolated",
)  # ids and counters: not conditions worth a map by default


def is_training_data(run: Run, ds: Dataset) -> bool:
    return run.manifest.fingerprint == ds.fingerprint


def analysis_frames(run: Run, ds: Dataset, max_images: int) -> np.ndarray:
    """The run's snapshot analysis set when ``ds`` is its training data (so the final map is the last snapshot's
    frames), else all frames up to ``max_images``."""
    path = RunDir(run.path).snapshot_subset
    if path.is_file() and is_training_data(run, ds):
        idx = load_npy(path)
        return idx[:max_images] if len(idx) > max_images else idx
    return analysis_indices(ds.n, max_images, run.config.seed)


def chosen_columns(ds: Dataset, color_by: list[str] | None) -> list[str]:
    if ds.conditions is None:
        if color_by:
            raise AelensError(f"{ds.source}: --color-by needs per-frame conditions, and this dataset has none")
        return []
    names = ds.conditions.names
    if not color_by:  # columns with fewer than 2 known values (e.g. a head angle no session could measure) say nothing
        return [n for n in names if n not in SKIP_COLUMNS and np.isfinite(ds.conditions.column(n)).sum() >= 2]
    unknown = [c for c in color_by if c not in names]
    if unknown:
        raise AelensError(f"--color-by: unknown column {unknown[0]!r}; available: {', '.join(names)}")
    return list(color_by)


def condition_panels(ds: Dataset, idx: np.ndarray, columns: list[str]) -> list[tuple[str, np.ndarray, bool]]:
    """(name, values of the frames ``idx``, is_angle) per column: the panels of an overview or comparison figure."""
    return [(c, ds.conditions.column(c)[idx], ds.conditions.is_angle(c)) for c in columns]


def format_score(row: dict) -> str:
    if row["metric"] == "mae_deg":
        return f"{row['decoder']}: {row['score']:.1f}° (chance {row['chance']:.0f}°)"
    return f"{row['decoder']}: R² {row['score']:.2f} (chance {row['chance']:.2f})"


def encoding_scores(
    codes: np.ndarray,
    ds: Dataset,
    idx: np.ndarray,
    columns: list[str],
    decoders=("ridge", "knn"),
    max_points: int = 5000,
    seed: int = 0,
) -> list[dict]:
    rows = []
    for name in columns:
        values = ds.conditions.column(name)[idx]
        for dec in decoders:
            res = decoding_score(
                codes, values, ds.conditions.is_angle(name), method=dec, max_points=max_points, random_state=seed
            )
            rows.append({"condition": name, "decoder": dec, **res})
    return rows


def group_encoding_scores(
    codes: np.ndarray, ds: Dataset, idx: np.ndarray, columns: list[str], seed: int = 0
) -> list[dict]:
    """Ridge decoding of each condition within each session and each track (animal), where the data has several:
    rows ``{"by", "group", "condition", "metric", "score", "chance", "n", "fold_range"}``. A condition decoded well
    on the pooled frames may be decoded well on one session only."""
    rows = []
    if ds.conditions is None:
        return rows
    group_columns = [c for c in ("session", "track") if c not in columns]
    for by, label, where in ds.conditions.groups(idx, group_columns):
        for r in encoding_scores(codes[where], ds, idx[where], columns, decoders=("ridge",), seed=seed):
            rows.append({"by": by, "group": label, **r})
    return rows


def snapshot_scores(run: Run, ds: Dataset, columns: list[str], layer: str, seed: int) -> list[dict]:
    """Ridge decodability of each condition at every snapshot (3,000 frames per snapshot)."""
    snaps, index, idx = load_snapshots(run.path, layer)
    rows = []
    for s, meta in enumerate(index):
        codes = np.asarray(snaps[s], dtype=np.float32)
        for name in columns:
            res = decoding_score(
                codes,
                ds.conditions.column(name)[idx],
                ds.conditions.is_angle(name),
                "ridge",
                max_points=3000,
                random_state=seed,
            )
            rows.append(
                {"snapshot": s, "epoch": meta["epoch"], "global_step": meta["global_step"], "condition": name, **res}
            )
    return rows


def _map_figures(run: Run, ds: Dataset, idx, frames, codes, xy, columns, rows, out: Path, layer: str, method: str,
                 trust: float, seed: int) -> list[str]:  # fmt: skip
    """One scatter per condition (with example frames and, for an AE, their reconstructions) and the overview."""
    examples = map_figures.spread_examples(xy, 3, seed)
    recon = None
    if run.kind == "ae":
        recon = np.zeros_like(frames)
        recon[examples] = run.reconstruct(frames[examples])
    files = []
    for name in columns:
        values = ds.conditions.column(name)[idx]
        map_figures.save_latent_scatter(xy, values, name, ds.conditions.is_angle(name), frames, recon, examples,
                                    out / LatentFiles.scatter(name), method=method)  # fmt: skip
        files.append(LatentFiles.scatter(name))
    if not columns:
        map_figures.save_latent_scatter(
            xy, None, "", False, frames, recon, examples, out / LatentFiles.scatter(), method=method
        )
        files.append(LatentFiles.scatter())
    label = {r["condition"]: format_score(r) for r in rows if r["decoder"] == "ridge"}
    title = f"{run.kind} latent ({layer}, {len(idx)} frames), {method.upper()}; trustworthiness {trust:.2f}"
    map_figures.save_overview(
        xy, condition_panels(ds, idx, columns), out / LatentFiles.OVERVIEW, scores=label, title=title
    )
    return [*files, LatentFiles.OVERVIEW]


def _score_curves(run: Run, ds: Dataset, columns, layer: str, seed: int, out: Path) -> list[str]:
    """Decodability of each condition over training, from the snapshots (only for the run's own data)."""
    rd = RunDir(run.path)
    if not (rd.snapshot_index.is_file() and is_training_data(run, ds) and rd.snapshot_layer(layer).is_file()):
        return []
    srows = snapshot_scores(run, ds, columns, layer, seed)
    fields = ["snapshot", "epoch", "global_step", "condition", "metric", "score", "chance", "n"]
    write_csv(out / LatentFiles.ENCODING_VS_EPOCH_CSV, srows, fields)
    figures.save_score_curves(srows, out / LatentFiles.ENCODING_VS_EPOCH_PNG)
    return [LatentFiles.ENCODING_VS_EPOCH_CSV, LatentFiles.ENCODING_VS_EPOCH_PNG]


def latent_analysis(
    run_dir: str | Path,
    data: str | Path | None = None,
    layer: str = "fc1",
    method: str = "umap",
    color_by: list[str] | None = None,
    out: str | Path | None = None,
    evolution: bool = False,
    fit: str = "last",
    max_images: int = 20000,
    scores: bool = True,
    dataset: Dataset | None = None,
) -> dict:
    """Write maps, scores and (with ``evolution``) the movie to ``out`` (default ``RUN_DIR/latent``); return a
    summary (also written as ``summary.json``)."""
    t_start = time.perf_counter()
    check_unlocked(run_dir)  # a run being trained is not mapped (its snapshots and weights are being written)
    run = load_run(run_dir)
    ds = run.dataset(data, dataset)
    out = Path(out) if out is not None else inside_run(run.path, RunDir(run.path).latent)
    columns = chosen_columns(ds, color_by)
    seed = run.config.seed
    if evolution:
        _check_evolution(run, ds, layer)
        check_fit_mode(fit)
    idx = analysis_frames(run, ds, max_images)
    frames = ds.batch(idx).numpy()
    codes = run.encode(frames, layer)
    xy, fitted = embed(codes, method, random_state=seed)
    save_npy(out / LatentFiles.MAP_XY, xy)
    save_npy(out / LatentFiles.MAP_INDICES, idx)
    summary: dict = {"run": str(run.path), "kind": run.kind, "layer": layer, "method": method, "n": int(len(idx)),
                     "map_seconds": round(fitted.seconds, 3), "columns": columns, "files": []}  # fmt: skip
    rows = []
    if scores and columns:
        rows = encoding_scores(codes, ds, idx, columns, seed=seed)
        for r in rows:  # the spread over folds as two plain columns
            r["fold_min"], r["fold_max"] = r.get("fold_range", [None, None])
        fields = ["condition", "decoder", "metric", "score", "fold_min", "fold_max", "chance", "n"]
        write_csv(out / LatentFiles.ENCODING_SCORES, rows, fields)
        summary["encoding_scores"] = rows
        summary["files"].append(LatentFiles.ENCODING_SCORES)
        summary["encoding_scores_by_group"] = group_encoding_scores(codes, ds, idx, columns, seed=seed)
    summary["trustworthiness"] = trustworthiness(codes, xy, random_state=seed)
    trust = summary["trustworthiness"]
    summary["files"] += _map_figures(run, ds, idx, frames, codes, xy, columns, rows, out, layer, method, trust, seed)
    if scores and columns:
        summary["files"] += _score_curves(run, ds, columns, layer, seed, out)
    summary.update(_atlas(run, ds, idx, frames, codes, xy, fitted, layer, method, out))
    if layer == "fc1" and run.networks.decoder is not None:
        summary.update(_traversals(run, ds, idx, codes, columns, out))
    summary["files"] += [
        f for f in (LatentFiles.ATLAS, LatentFiles.TRAVERSALS_PNG, LatentFiles.TRAVERSALS_CSV) if (out / f).is_file()
    ]
    if evolution:
        summary["evolution"] = evolution_movie(run, ds, layer, method, fit, columns, out)
        summary["files"] += [LatentFiles.EVOLUTION_GIF, LatentFiles.EVOLUTION_MP4]
    summary["seconds"] = round(time.perf_counter() - t_start, 2)
    write_json(out / LATENT_SUMMARY, summary)
    return summary


def _atlas(run: Run, ds: Dataset, idx, frames, codes, xy, fitted, layer: str, method: str, out: Path) -> dict:
    """atlas.png: what lives where in the map (decoded codes; mean real frames for a run that cannot decode)."""
    centres, _, cell = inside.atlas_grid(xy)
    if layer == "fc1" and run.networks.decoder is not None:
        at, how = inside.atlas_codes(xy, codes, centres, pca=fitted.pca)
        images = run.decode(at)
        what = f"decoded codes: {how}"
    else:
        images = inside.atlas_frames(xy, frames, centres)
        what = f"the mean of the {inside.ATLAS_NEIGHBOURS} real frames nearest each point (this run has no decoder)"
    title = f"{run.kind} latent ({layer}), {method.upper()} map: at each grid point, {what}"
    map_figures.save_atlas(xy, centres, cell, images, "\n".join(textwrap.wrap(title, 100)), out / LatentFiles.ATLAS)
    return {"atlas": {"cells": int(len(centres)), "images": what}}


def _traversals(run: Run, ds: Dataset, idx, codes, columns: list[str], out: Path) -> dict:
    """traversals.png / .csv: what each latent dimension does to the image, and which condition it follows."""
    trav = inside.traversal_codes(codes)
    d, steps = trav.shape[:2]
    images = run.decode(trav.reshape(-1, d)).reshape(d, steps, *ds.shape)
    change = inside.traversal_change(images)
    conds = [(c, ds.conditions.column(c)[idx], ds.conditions.is_angle(c)) for c in columns]
    corr = inside.dimension_correlations(codes, conds) if conds else np.zeros((d, 0))
    order = [int(j) for j in np.argsort(-change)]
    rows, labels = [], []
    for j in range(d):
        best = int(np.nanargmax(np.abs(corr[j]))) if conds and np.isfinite(corr[j]).any() else None
        labels.append(f"dim {j}" + (f"\n{conds[best][0]} r={corr[j, best]:.2f}" if best is not None else ""))
        rows.append(
            {"dim": j, "image_change": float(change[j]), **{c[0]: float(corr[j, k]) for k, c in enumerate(conds)}}
        )
    write_csv(
        out / LatentFiles.TRAVERSALS_CSV, [rows[j] for j in order], ["dim", "image_change", *[c[0] for c in conds]]
    )
    map_figures.save_traversals(images, order, labels, out / LatentFiles.TRAVERSALS_PNG)
    return {"traversals": [rows[j] for j in order]}


def _check_evolution(run: Run, ds: Dataset, layer: str) -> None:
    rd = RunDir(run.path)
    if not rd.snapshot_index.is_file() or not rd.snapshot_layer(layer).is_file():
        hint = (
            "(train with --snapshots, and --snapshot-layers fc1,fc2 for fc2)"
            if run.kind != "decoder"
            else "(decoder runs have no encoder to snapshot)"
        )
        raise AelensError(f"{run.path}: no latent snapshots of {layer} to make a movie from {hint}")
    if not is_training_data(run, ds):
        raise AelensError(f"{ds.source}: --evolution needs the run's own dataset (the snapshots are of its frames)")


def evolution_movie(run: Run, ds: Dataset, layer: str, method: str, fit: str, columns: list[str], out: Path) -> dict:
    """Render every snapshot's 2-D map as evolution.gif / evolution.mp4; returns timings."""
    t0 = time.perf_counter()
    snaps, index, idx = load_snapshots(run.path, layer)
    mode, _, ref_dir = fit.partition(":")
    reference_codes = None
    if mode == "reference":
        if not ref_dir:
            raise AelensError("--fit reference:RUN_DIR needs the other run's directory after the colon")
        other = load_run(ref_dir)
        reference_codes = other.encode(ds.batch(idx).numpy(), layer)
        if reference_codes.shape[1] != snaps.shape[2]:
            raise AelensError(
                f"--fit {fit}: its {layer} is {reference_codes.shape[1]}-D, this run's is {snaps.shape[2]}-D"
            )
    maps, timing = evolution_maps(
        np.asarray(snaps, dtype=np.float32), mode, method, reference_codes, random_state=run.config.seed
    )
    color_col = next((c for c in columns if ds.conditions.is_angle(c)), columns[0] if columns else None)
    if color_col is not None:
        rgb, _ = map_figures.color_values(ds.conditions.column(color_col)[idx], ds.conditions.is_angle(color_col))
    else:
        rgb = np.tile([[0.2, 0.3, 0.6]], (len(idx), 1))
    tracked = map_figures.spread_examples(maps[-1], 3, run.config.seed)
    titles = [
        f"epoch {m['epoch']:g}, step {m['global_step']}, loss "
        + ("-" if np.isnan(m["train_loss"]) else f"{m['train_loss']:.4g}")
        for m in index
    ]
    t1 = time.perf_counter()
    frames = map_figures.render_movie_frames(maps, rgb, titles, tracked)
    map_figures.save_movie(frames, out / LatentFiles.EVOLUTION_GIF, out / LatentFiles.EVOLUTION_MP4)
    save_npy(out / LatentFiles.EVOLUTION_MAPS, maps.astype(np.float16))
    timing.update(
        {
            "render_seconds": round(time.perf_counter() - t1, 3),
            "total_seconds": round(time.perf_counter() - t0, 3),
            "frames": len(frames),
            "colored_by": color_col,
            "fit": fit,
        }
    )
    write_json(out / LatentFiles.EVOLUTION_TIMING, timing)
    return timing
