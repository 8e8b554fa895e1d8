"""Looking inside a latent map: the decoded atlas, latent traversals and the rotation probe.

Pure functions of arrays and callables (``encode``, ``decode``, ``predict``), so that planted models can test them;
:mod:`aelens.analysis.latent` and :mod:`aelens.analysis.compare` apply them to runs and draw the figures.

- **Atlas**: a grid over a 2-D map, only where the map has frames; each grid point gets the latent code that belongs
  there (a PCA map: its exact inverse; UMAP / t-SNE: the mean code of the nearest map points, weighted by 1/distance)
  and, decoded, the image a model would draw there. Runs without a decoder get the mean real frame near each point.
- **Traversals**: the median code with one dimension moved from -2 to +2 standard deviations (7 steps), decoded; the
  dimensions ordered by how much they change the image, beside their correlation with each condition.
- **Rotation probe**: frames turned through 0-360 degrees (behind a circular mask) and encoded: how much of the
  code's variance the rotation explains (0: invariant), whether each frame's rotated codes form a loop ordered by
  the angle, and, for a tagger, the slope of the predicted angle against the rotation (1: turns with the image).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..data.augment import circle_mask, rotate_batch

ATLAS_GRID = 12
ATLAS_NEIGHBOURS = 10
TRAVERSAL_STEPS = 7
TRAVERSAL_SPAN = 2.0  # standard deviations either side of the median
ROTATION_STEPS = 24


# --------------------------------------------------------------------------------------------- atlas


def atlas_grid(xy: np.ndarray, grid: int = ATLAS_GRID) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Centres (m, 2) of the cells of a ``grid`` x ``grid`` lattice over the map (1st to 99th percentile) that hold
    at least one map point, their (row, column) (m, 2), and the cell size (width, height)."""
    lo, hi = np.percentile(xy, 1, axis=0), np.percentile(xy, 99, axis=0)
    size = np.maximum(hi - lo, 1e-9) / grid
    cell = np.floor((xy - lo) / size).astype(int)
    inside = ((cell >= 0) & (cell < grid)).all(1)
    occupied = np.unique(cell[inside], axis=0)  # (column, row) pairs with frames
    centres = lo + (occupied + 0.5) * size
    return centres.astype(np.float64), occupied[:, ::-1], (float(size[0]), float(size[1]))


def nearest(xy: np.ndarray, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (m, k) and distances (m, k) of the ``k`` map points nearest each of ``points`` (m, 2)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(xy))
    dist, idx = NearestNeighbors(n_neighbors=k).fit(xy).kneighbors(points)
    return idx, dist


def atlas_codes(xy: np.ndarray, codes: np.ndarray, points: np.ndarray, pca=None, k: int = ATLAS_NEIGHBOURS):
    """The latent code at each map position ``points`` (m, 2), and how it was found.

    ``pca`` (a fitted scikit-learn PCA whose 2 components made the map): its exact inverse. Otherwise the mean of the
    codes of the ``k`` nearest map points, weighted by 1/distance (a point on a frame gets that frame's code)."""
    if pca is not None:
        return pca.inverse_transform(points[:, : pca.n_components_]).astype(np.float32), "the PCA map's exact inverse"
    idx, dist = nearest(xy, points, k)
    w = 1.0 / np.maximum(dist, 1e-9)
    exact = dist[:, 0] < 1e-9
    w[exact] = 0.0
    w[exact, 0] = 1.0
    w /= w.sum(1, keepdims=True)
    out = np.einsum("mk,mkd->md", w, codes[idx])
    return out.astype(np.float32), f"the mean code of the {idx.shape[1]} nearest frames, weighted by 1/distance"


def atlas_frames(xy: np.ndarray, frames: np.ndarray, points: np.ndarray, k: int = ATLAS_NEIGHBOURS) -> np.ndarray:
    """For runs without a decoder: the mean of the ``k`` real frames nearest each map position (m, c, h, w)."""
    idx, _ = nearest(xy, points, k)
    return frames[idx].mean(axis=1)


# --------------------------------------------------------------------------------------------- traversals


def traversal_codes(codes: np.ndarray, steps: int = TRAVERSAL_STEPS, span: float = TRAVERSAL_SPAN) -> np.ndarray:
    """(d, steps, d): the median code with dimension j moved from -``span`` to +``span`` of its standard deviation."""
    med, sd = np.median(codes, axis=0), codes.std(axis=0)
    offsets = np.linspace(-span, span, steps)
    d = codes.shape[1]
    out = np.repeat(med[None, None, :], d, 0).repeat(steps, 1)
    for j in range(d):
        out[j, :, j] = med[j] + offsets * sd[j]
    return out.astype(np.float32)


def traversal_change(images: np.ndarray) -> np.ndarray:
    """(d,) how much each dimension's strip (d, steps, c, h, w) changes the image: the mean absolute pixel change
    between neighbouring steps, summed along the strip."""
    return np.abs(np.diff(images, axis=1)).mean(axis=(2, 3, 4)).sum(axis=1)


def circular_linear_corr(x: np.ndarray, angle_deg: np.ndarray) -> float:
    """Mardia's circular-linear correlation (0..1) between a scalar ``x`` and an angle in degrees."""
    ok = np.isfinite(x) & np.isfinite(angle_deg)
    x, a = x[ok], np.radians(angle_deg[ok])
    if len(x) < 3 or x.std() == 0:
        return float("nan")
    rc, rs = np.corrcoef(x, np.cos(a))[0, 1], np.corrcoef(x, np.sin(a))[0, 1]
    cs = np.corrcoef(np.cos(a), np.sin(a))[0, 1]
    return float(np.sqrt(max(0.0, (rc**2 + rs**2 - 2 * rc * rs * cs) / max(1e-12, 1 - cs**2))))


def dimension_correlations(codes: np.ndarray, conditions: list[tuple[str, np.ndarray, bool]]) -> np.ndarray:
    """(d, k): each latent dimension's correlation with each condition (name, values, is_angle): Pearson's r for a
    scalar, the circular-linear correlation (0..1) for an angle."""
    out = np.full((codes.shape[1], len(conditions)), np.nan)
    for c, (_, values, is_angle) in enumerate(conditions):
        ok = np.isfinite(values)
        for j in range(codes.shape[1]):
            x = codes[ok, j]
            if is_angle:
                out[j, c] = circular_linear_corr(x, values[ok])
            elif len(x) > 2 and x.std() > 0 and values[ok].std() > 0:
                out[j, c] = np.corrcoef(x, values[ok])[0, 1]
    return out


# --------------------------------------------------------------------------------------------- rotation probe


def rotated(frames: np.ndarray, steps: int = ROTATION_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """Every frame (n, c, h, w) turned counter-clockwise (y up) by 0, 360/steps, ... degrees behind the circular
    mask: (n, steps, c, h, w) float32, and the angles in degrees."""

    x = torch.as_tensor(np.asarray(frames, dtype=np.float32))
    x = x * circle_mask(x.shape[-2], x.shape[-1])
    angles = np.arange(steps) * 360.0 / steps
    out = [rotate_batch(x, torch.full((len(x),), float(np.radians(a)))) for a in angles]
    return torch.stack(out, 1).numpy(), angles


def rotation_variance(codes: np.ndarray) -> float:
    """Codes (n, steps, d) of frames turned through a circle: the share of the codes' total variance that lies
    between the turns of one frame (0: the code ignores rotation; 1: it holds nothing but the rotation)."""
    total = codes.reshape(-1, codes.shape[-1]).var(axis=0).sum()
    within = codes.var(axis=1).sum(axis=-1).mean()
    return float(within / total) if total > 0 else 0.0


def rotation_loop(codes: np.ndarray, angles: np.ndarray, random_state: int = 0) -> tuple[float, int]:
    """How well each frame's rotated codes (their 2-D PCA) go round a loop in rotation order, and how many times.

    Per frame, the mean resultant length of (angle around the path's centre - k x rotation) for k = 1 or 2 and either
    way round (1: a closed loop in order; near 0: no loop); k = 2 means the code goes round twice per turn, as for
    a model that cannot tell the head from the tail. Returns the mean over frames of the best score, and the k most
    frames follow. (The compare step's loop test asks this of a whole map; here the angles are evenly spaced, where
    a circular correlation of two uniform circles is undefined, so the phase lock is measured instead.)"""
    from sklearn.decomposition import PCA

    theta = np.radians(angles)
    scores, windings = [], []
    for c in codes:
        if np.allclose(c, c[0]):
            scores.append(0.0)
            windings.append(0)
            continue
        xy = PCA(n_components=2, random_state=random_state).fit_transform(c.astype(np.float64))
        phi = np.arctan2(xy[:, 1] - xy[:, 1].mean(), xy[:, 0] - xy[:, 0].mean())
        lock = {k: max(abs(np.exp(1j * (phi - k * theta)).mean()), abs(np.exp(1j * (phi + k * theta)).mean()))
                for k in (1, 2)}  # fmt: skip
        best = max(lock, key=lock.get)
        scores.append(lock[best])
        windings.append(best)
    return float(np.mean(scores)), int(np.bincount(windings).argmax())


def rotation_slope(pred_deg: np.ndarray, angles: np.ndarray) -> tuple[float, float]:
    """Predicted angles (n, steps) of turned frames: the slope of the predicted turn against the input's (through
    the origin, unwrapped along the circle; 1: the answer turns with the image) and the mean absolute error of the
    predicted turn against the true one (degrees)."""
    turn = np.unwrap(np.radians(pred_deg - pred_deg[:, :1]), axis=1)
    true = np.radians(angles)[None, :]
    slope = float((turn * true).sum() / (len(turn) * (true**2).sum()))
    err = np.degrees(np.abs(np.angle(np.exp(1j * (turn - true)))))
    return slope, float(err.mean())


def rotation_probe(
    frames: np.ndarray,
    encode: Callable[[np.ndarray], np.ndarray],
    predict: Callable[[np.ndarray], np.ndarray] | None = None,
    steps: int = ROTATION_STEPS,
) -> dict:
    """Turn ``frames`` through a circle and encode them (``encode``: (m, c, h, w) -> (m, d)); ``predict`` (taggers):
    (m, c, h, w) -> angles in degrees. Returns the variance the rotation explains, the loop score, and for taggers
    the slope and error of the predicted turn."""
    turned, angles = rotated(frames, steps)
    n = len(frames)
    flat = turned.reshape(n * steps, *turned.shape[2:])
    codes = np.asarray(encode(flat), dtype=np.float64).reshape(n, steps, -1)
    out = {
        "frames": n,
        "steps": steps,
        "variance_explained": rotation_variance(codes),
    }
    out["loop"], out["winding"] = rotation_loop(codes, angles)
    if predict is not None:
        pred = np.asarray(predict(flat), dtype=np.float64).reshape(n, steps)
        out["slope"], out["turn_error_deg"] = rotation_slope(pred, angles)
    return out
