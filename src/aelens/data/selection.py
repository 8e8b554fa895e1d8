"""Which training frames a run trains on: a budget of frames chosen from the training blocks, not all of them.

Consecutive video frames are near copies (25-30 per second), and an animal that sits still gives thousands of the
same crop: what a session holds grows far slower than its length. ``diverse`` spreads a budget over what the crops
look like *and* over time, sessions and animals; ``stride`` takes frames evenly in time; ``random`` draws uniformly.

Only the training part of the split is ever looked at: validation and test frames are never read to choose.
``diverse``, per session and track (each gets its share of the budget, in proportion to its frames):

1. a sketch of every frame: the crop averaged down to 8 x 8 pixels, projected on the 16 principal components of the
   sketches (fitted on up to 20,000 of them);
2. a quarter of the share evenly spaced in time (no stretch of the session is left out);
3. the rest by farthest-point sampling (k-centre greedy) on the sketch: each next frame is the one least like every
   frame chosen so far, so a pose that the animal takes for a few frames only is chosen, where a uniform draw of the
   same size would most likely miss it.

Deterministic for a seed (the sketch's subsample; ties go to the earliest frame).
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from ..config import SELECT_METHODS
from ..errors import AelensError
from .loading import Dataset
from .splits import session_codes, time_key

METHODS = SELECT_METHODS
SKETCH_SIDE = 8  # pixels per side of a frame's sketch: the animal's pose and place, not its texture or noise
SKETCH_DIM = 16  # principal components of the sketches that distances are measured in
SKETCH_FIT = 20000  # sketches the components are fitted on
TIME_SHARE = 0.25  # of each share taken evenly in time before the farthest-point search


def sketch(dataset: Dataset, idx: np.ndarray, batch: int = 4096, seed: int = 0) -> np.ndarray:
    """(len(idx), SKETCH_DIM) float32: frames ``idx`` averaged down to 8 x 8 and projected on the sketches' first
    principal components (fewer when there are fewer frames or pixels)."""
    parts = []
    for start in range(0, len(idx), batch):
        x = dataset.batch(idx[start : start + batch])
        parts.append(F.adaptive_avg_pool2d(x, SKETCH_SIDE).flatten(1).numpy())
    flat = np.concatenate(parts) if parts else np.zeros((0, SKETCH_SIDE * SKETCH_SIDE), np.float32)
    rng = np.random.default_rng(seed)
    fit = flat if len(flat) <= SKETCH_FIT else flat[np.sort(rng.choice(len(flat), SKETCH_FIT, replace=False))]
    mean = fit.mean(0) if len(fit) else np.zeros(flat.shape[1], np.float32)
    k = max(1, min(SKETCH_DIM, len(fit) - 1, flat.shape[1]))
    if len(fit) < 2:  # nothing to find components in: the sketch as it is
        return (flat - mean)[:, :k].astype(np.float32)
    vt = np.linalg.svd(fit - mean, full_matrices=False)[2]
    return ((flat - mean) @ vt[:k].T).astype(np.float32)


def shares(sizes: list[int], budget: int) -> list[int]:
    """``budget`` split over groups in proportion to their ``sizes`` (largest remainders; never more than a size)."""
    total = sum(sizes)
    if budget >= total:
        return list(sizes)
    exact = np.array(sizes, dtype=np.float64) * budget / total
    out = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - out), kind="stable")[: budget - int(out.sum())]:
        out[i] += 1
    return [int(min(o, s)) for o, s in zip(out, sizes)]


def evenly(n: int, k: int) -> np.ndarray:
    """``k`` positions spread evenly over ``range(n)`` (all of them when k >= n)."""
    if k >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, num=max(k, 0)).round().astype(np.int64))


def farthest_points(x: np.ndarray, start: np.ndarray, k: int) -> np.ndarray:
    """Positions of ``k`` rows of ``x`` (n, d): the ``start`` rows, then each next row the one farthest from every
    row chosen so far (k-centre greedy; ties to the lowest position). Rows identical to chosen ones are added last,
    evenly in order."""
    n = len(x)
    k = min(k, n)
    chosen = list(dict.fromkeys(int(i) for i in start))[:k]
    dist = np.full(n, np.inf, dtype=np.float32)
    sq = (x * x).sum(1)
    for lo in range(0, len(chosen), 512):  # distance to the nearest start row, in blocks (n x 512 at most)
        c = x[chosen[lo : lo + 512]]
        d = sq[:, None] + (c * c).sum(1)[None, :] - 2.0 * (x @ c.T)
        dist = np.minimum(dist, np.maximum(d.min(1), 0.0))
    dist[chosen] = -1.0
    while len(chosen) < k:
        j = int(np.argmax(dist))
        if dist[j] <= 0.0:  # only copies of chosen rows are left
            rest = np.flatnonzero(dist >= 0.0)
            chosen += rest[evenly(len(rest), k - len(chosen))].tolist()
            break
        chosen.append(j)
        diff = x - x[j]
        np.minimum(dist, np.einsum("ij,ij->i", diff, diff), out=dist, where=dist >= 0.0)
        dist[j] = -1.0
    return np.array(chosen, dtype=np.int64)


def _groups(dataset: Dataset, pool: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The pool's rows per session and track, each group in time order: (name, rows)."""
    c = dataset.conditions
    sessions = session_codes(dataset)[pool]
    tracks = c.column("track")[pool] if c is not None and "track" in c.names else np.zeros(len(pool))
    times = time_key(dataset)[0][pool]
    out = []
    for s in np.unique(sessions):
        for t in np.unique(tracks[sessions == s]):
            rows = np.flatnonzero((sessions == s) & (tracks == t))
            rows = rows[np.lexsort((pool[rows], times[rows]))]
            name = c.label("session", s) if c is not None else f"{s:g}"
            out.append((f"session {name}" + (f" track {int(t)}" if len(np.unique(tracks)) > 1 else ""), pool[rows]))
    return out


def choose_frames(dataset: Dataset, pool: np.ndarray, budget: int, method: str, seed: int) -> tuple[np.ndarray, dict]:
    """``budget`` frames of ``pool`` (row indices: the training part of a split) by ``method``; ``budget`` 0 or at
    least the pool: all of them. Returns (sorted int64 indices, a summary: budget, method, pool size, chosen per
    session and track)."""
    if method not in METHODS:
        raise AelensError(f"--select must be one of {', '.join(METHODS)}, got {method!r}")
    if budget < 0:
        raise AelensError(f"--train-frames must be a positive number of frames or 'all', got {budget}")
    pool = np.asarray(pool, dtype=np.int64)
    groups = _groups(dataset, pool) if len(pool) else []
    everything = budget == 0 or budget >= len(pool)
    if everything:
        chosen = pool
    elif method == "random":
        chosen = np.random.default_rng(seed).choice(pool, budget, replace=False)
    else:
        quota = shares([len(rows) for _, rows in groups], budget)
        picks = []
        for (_, rows), q in zip(groups, quota):
            if method == "stride" or q == 0:
                picks.append(rows[evenly(len(rows), q)])
            else:
                first = evenly(len(rows), int(np.ceil(q * TIME_SHARE)))
                picks.append(rows[farthest_points(sketch(dataset, rows, seed=seed), first, q)])
        chosen = np.concatenate(picks) if picks else pool[:0]
    chosen = np.sort(chosen).astype(np.int64)
    per_group = {name: int(np.isin(rows, chosen).sum()) for name, rows in groups}
    info = {
        "budget": int(budget),
        "method": "all" if everything else method,
        "pool": int(len(pool)),
        "chosen": int(len(chosen)),
        "per_group": per_group,
    }
    return chosen, info


def select_split(
    dataset: Dataset, split: dict[str, np.ndarray], frames: int, method: str, val_frames: int, seed: int
) -> tuple[dict[str, np.ndarray], dict]:
    """The split a run trains on: ``frames`` training frames chosen by ``method`` from the training part (0: all),
    validation on at most ``val_frames`` of the validation part, evenly spread in time (0: all); the test part whole.
    Returns (the split, the selection summary for the manifest)."""
    train, info = choose_frames(dataset, split["train"], frames, method, seed)
    val = split["val"]
    if val_frames < 0:
        raise AelensError(f"--val-frames must be a positive number of frames or 'all', got {val_frames}")
    if 0 < val_frames < len(val):
        val = val[evenly(len(val), val_frames)]
    info.update(val_pool=int(len(split["val"])), val_chosen=int(len(val)))
    return {**split, "train": train, "val": val}, info
