"""``aelens compare``: how similar are the latents of several runs on the same frames, and what does each encode?"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np

from ..data.loading import Dataset
from ..errors import AelensError
from ..layout import COMPARE_RESULT, CompareFiles
from ..maps import map_figures
from ..maps.inside import rotated, rotation_probe
from ..maps.projection import embed
from ..maps.scores import cka_with_intervals, loop_score, mutual_knn_overlap, procrustes_distance
from ..runs.run import check_same_image_shape, load_run
from ..storage import write_json, write_text
from .latent import chosen_columns, condition_panels, encoding_scores
from .snapshots import analysis_indices

log = logging.getLogger("aelens")


def run_label(run) -> str:
    if run.kind == "tagger":
        t = run.config.tagger
        init = "AE" if t.init_from else "scratch"
        return f"tagger ({init}{', unfreeze ' + t.unfreeze if t.init_from else ''})"
    if run.kind == "decoder":
        return f"{run.config.embedding.method.upper()}-{run.config.embedding.dim}"
    return f"AE-{run.config.model.latent_dim}"


def check_comparable(runs) -> None:
    check_same_image_shape(runs)
    prints = {r.manifest.fingerprint for r in runs}
    if len(prints) > 1:
        raise AelensError(
            "runs were trained on different datasets: "
            + "; ".join(f"{r.path}: {r.manifest.get('data', {}).get('path')} ({r.manifest.fingerprint})" for r in runs)
        )


def compare_runs(
    run_dirs: list,
    data=None,
    layer: str = "fc1",
    out=None,
    max_images: int = 10000,
    color_by: list[str] | None = None,
    n_boot: int = 200,
    seed: int = 0,
    loop_on: str | None = None,
    dataset: Dataset | None = None,
    method: str = "umap",
) -> dict:
    """Pairwise CKA (linear and debiased, bootstrap 95% interval, permutation baseline), mutual k-NN overlap and
    Procrustes distance; per run and condition the decoding scores; the loop test of each run's 2-D map (on the
    angle column ``loop_on``, e.g. the taggers' target, else the first angle column); 16-D codes are mapped to 2-D by
    ``method`` (umap, pca or tsne).
    Writes ``comparison.json``, ``comparison.md`` and ``comparison.png`` to ``out``."""
    if len(run_dirs) < 2:
        raise AelensError("compare needs at least two run directories")
    runs = [load_run(r) for r in run_dirs]
    check_comparable(runs)
    ds = runs[0].dataset(data, dataset)
    out = Path(out) if out is not None else Path("comparison")
    idx = analysis_indices(ds.n, max_images, seed)
    frames = ds.batch(idx).numpy()
    codes = [r.encode(frames, layer) for r in runs]
    labels = [run_label(r) for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{lab} [{r.path.name}]" for lab, r in zip(labels, runs)]
    columns = chosen_columns(ds, color_by)
    pairs = _pairs(codes, labels, n_boot, seed)
    decoding = {lab: encoding_scores(c, ds, idx, columns, seed=seed) for lab, c in zip(labels, codes)}
    fitted = [embed(c, "pca" if c.shape[1] <= 2 else method, random_state=seed)[1] for c in codes]
    maps = [c[:, :2].astype(np.float32) if c.shape[1] == 2 else m.xy for c, m in zip(codes, fitted)]
    angle_col, loops = _loops(ds, idx, columns, maps, labels, loop_on, seed)
    panels = condition_panels(ds, idx, columns)
    notes = {lab: f"loop r = {loops[lab]['circular_corr']:.2f}" for lab in loops}
    map_figures.save_comparison_grid(maps, labels, panels, out / CompareFiles.FIGURE, notes)
    rotation = _rotation(runs, labels, frames, codes, fitted, layer, out)
    result = {
        "runs": [str(r.path) for r in runs],
        "labels": labels,
        "layer": layer,
        "n": int(len(idx)),
        "pairs": pairs,
        "decoding": decoding,
        "loop": loops,
        "loop_condition": angle_col,
        "rotation": rotation,
    }
    write_json(out / COMPARE_RESULT, result)
    write_text(out / CompareFiles.TABLE, comparison_markdown(result))
    return result


def _pairs(codes: list[np.ndarray], labels: list[str], n_boot: int, seed: int) -> list[dict]:
    """Every pair of runs: CKA with intervals, mutual 10-NN overlap (and its chance level), Procrustes distance."""
    pairs = []
    for (i, a), (j, b) in itertools.combinations(enumerate(codes), 2):
        cka = cka_with_intervals(a, b, n_boot=n_boot, n_perm=n_boot, random_state=seed)
        pairs.append(
            {
                "a": labels[i],
                "b": labels[j],
                **cka,
                "mutual_knn_10": mutual_knn_overlap(a, b, 10),
                "knn_chance": 10 / (len(a) - 1),
                "procrustes_distance": procrustes_distance(a, b),
            }
        )
    return pairs


def _loops(ds, idx, columns, maps, labels, loop_on, seed) -> tuple[str | None, dict]:
    """The loop test of each run's 2-D map on ``loop_on`` (if it is an angle column shown), else the first angle."""
    angles = [c for c in columns if ds.conditions.is_angle(c)]
    angle_col = loop_on if loop_on in angles else next(iter(angles), None)
    if angle_col is None:
        return None, {}
    truth = ds.conditions.column(angle_col)[idx]
    return angle_col, {lab: loop_score(truth, xy, random_state=seed) for lab, xy in zip(labels, maps)}


ROTATION_FRAMES = 64  # frames turned through the circle per run (x 24 turns)


def _rotation(runs, labels, frames, codes, fitted, layer: str, out: Path) -> dict:
    """The rotation probe of every run on the same frames, and rotation.png: a few frames' turns in each map."""
    pick = np.linspace(0, len(frames) - 1, min(ROTATION_FRAMES, len(frames))).astype(int)
    probes, paths, notes = {}, [], []
    for r, lab, c, m in zip(runs, labels, codes, fitted):
        predict = r.predict if r.kind == "tagger" and r.config.tagger.kind == "angle" else None
        probes[lab] = rotation_probe(frames[pick], lambda x, r=r: r.encode(x, layer), predict)
        turned, _ = rotated(frames[pick[:3]])
        tc = r.encode(turned.reshape(-1, *turned.shape[2:]), layer)
        xy = tc[:, :2] if c.shape[1] == 2 else m.place(tc)
        paths.append(xy.reshape(len(pick[:3]), -1, 2))
        notes.append(_rotation_note(probes[lab]))
    maps = [c[:, :2] if c.shape[1] == 2 else m.xy for c, m in zip(codes, fitted)]
    map_figures.save_rotation_paths(maps, paths, labels, notes, out / CompareFiles.ROTATION)
    return probes


def _rotation_note(p: dict) -> str:
    note = f"turn: {100 * p['variance_explained']:.0f}% of code variance; loop {p['loop']:.2f} ({p['winding']}x)"
    return note + (f"; turn slope {p['slope']:.2f}" if "slope" in p else "")


def comparison_markdown(res: dict) -> str:
    lines = [
        f"# Representation comparison ({res['layer']}, {res['n']} frames)",
        "",
        "| run A | run B | linear CKA [95% CI] | debiased CKA | permutation 95% | mutual 10-NN | Procrustes |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in res["pairs"]:
        lo, hi = p["linear_cka_ci95"]
        lines.append(
            f"| {p['a']} | {p['b']} | {p['linear_cka']:.3f} [{lo:.3f}, {hi:.3f}] | {p['debiased_cka']:.3f} | "
            f"{p['permutation_95']:.3f} | {p['mutual_knn_10']:.3f} (chance {p['knn_chance']:.4f}) | "
            f"{p['procrustes_distance']:.3f} |"
        )
    conditions = []
    for rows in res["decoding"].values():
        for r in rows:
            if r["condition"] not in conditions:
                conditions.append(r["condition"])
    if conditions:
        lines += [
            "",
            "Decoding from each latent (ridge / k-NN; angles: MAE in degrees, lower is better; others: R²):",
            "",
            "| condition | " + " | ".join(res["decoding"]) + " |",
            "|---|" + "---|" * len(res["decoding"]),
        ]
        for c in conditions:
            cells = []
            for rows in res["decoding"].values():
                rr = {r["decoder"]: r for r in rows if r["condition"] == c}
                cells.append(f"{rr['ridge']['score']:.3g} / {rr['knn']['score']:.3g}")
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
    if res.get("rotation"):
        lines += [
            "",
            "Rotation probe: frames turned through 360 deg (24 steps, circular mask) and encoded. Variance: the share "
            "of the code's variance that the turn explains (0: invariant). Loop: how well each frame's turned codes go "
            "round a loop in order (1: a closed loop), and how many times per turn (2: head and tail confused). Slope (taggers): the predicted turn against the true "
            "one (1: the answer turns with the image), and its mean error.",
            "",
            "| run | variance explained by rotation | loop (times round per turn) | turn slope | turn error (deg) |",
            "|---|---|---|---|---|",
        ]
        for lab, pr in res["rotation"].items():
            slope = f"{pr['slope']:.3f}" if "slope" in pr else "-"
            err = f"{pr['turn_error_deg']:.1f}" if "turn_error_deg" in pr else "-"
            loop = f"{pr['loop']:.3f} ({pr['winding']}x)"
            lines.append(f"| {lab} | {pr['variance_explained']:.3f} | {loop} | {slope} | {err} |")
    if res["loop"]:
        lines += [
            "",
            f"Loop test: |circular correlation| between {res['loop_condition']} and the angle around each "
            "map's centroid (permutation 95% in brackets):",
            "",
        ]
        for lab, lp in res["loop"].items():
            lines.append(f"- {lab}: {lp['circular_corr']:.3f} [{lp['permutation_95']:.3f}]")
    return "\n".join(lines) + "\n"
