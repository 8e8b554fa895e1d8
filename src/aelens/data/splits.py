"""Splits of a dataset into train / validation / test: blocks of time with a purge gap within each session, whole
sessions or animals held out, or (for frames that are independent) a random split."""

from __future__ import annotations

import math

import numpy as np

from ..errors import AelensError
from .loading import Dataset


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Deterministic train/val/test split of ``range(n)`` from ``seed``; each part sorted (int64).

    The same (n, fractions, seed) always gives the same split, so every model of a study sees the same test frames.
    """
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction)) if test_fraction > 0 else 0
    n_test = max(1, n_test) if test_fraction > 0 else 0
    n_val = max(1, int(round(n * val_fraction)))
    if n - n_test - n_val < 1:
        raise AelensError(
            f"too few images ({n}) for --val-fraction {val_fraction} and --test-fraction {test_fraction}: "
            "no training images left"
        )
    return {
        "test": np.sort(perm[:n_test]).astype(np.int64),
        "val": np.sort(perm[n_test : n_test + n_val]).astype(np.int64),
        "train": np.sort(perm[n_test + n_val :]).astype(np.int64),
    }


TIME_COLUMNS = ("frame", "time_s")  # what orders the rows of a session in time, in order of preference
DEFAULT_PURGE = 10  # frames, when no frame rate is known; with time_s: one second of video
MAX_BLOCKS = 20  # contiguous blocks per session: enough to spread every part over the session


def make_split(
    dataset: Dataset, val_fraction: float, test_fraction: float, seed: int, kind: str = "auto", purge: int | None = None
) -> tuple[dict[str, np.ndarray], dict]:
    """Train / val / test row indices and a description of how they were made.

    ``kind``: ``random`` (a seeded permutation: only for independent frames); ``blocked`` (each session cut into
    contiguous blocks of time, whole blocks assigned to the parts, spread over the session, and ``purge`` frames of
    the earlier part dropped at every boundary between parts, so no training frame is within ``purge`` frames of a
    held-out one); ``group:COLUMN`` (whole groups, e.g. sessions or animals, held out); ``auto`` (blocked when the
    conditions have a frame, time_s or session column, else random). Rows of one time point (several animals)
    always share a block. Returns ({"train", "val", "test"} sorted int64 arrays, info dict).
    """
    conds = dataset.conditions
    names = conds.names if conds is not None else []
    requested = kind
    if kind == "auto":
        timed = any(c in names for c in TIME_COLUMNS + ("session",))
        kind = "blocked" if timed else "random"
    if kind == "random":
        split = split_indices(dataset.n, val_fraction, test_fraction, seed)
        info = {"kind": "random", "requested": requested, "purge": 0, "dropped": 0}
    elif kind == "blocked":
        split, info = _blocked(dataset, val_fraction, test_fraction, seed, purge)
        info["requested"] = requested
    elif kind.startswith("group:"):
        split, info = _grouped(dataset, kind.split(":", 1)[1], val_fraction, test_fraction, seed)
        info["requested"] = requested
    else:
        raise AelensError(f"--split must be auto, random, blocked or group:COLUMN, got {kind!r}")
    info["sizes"] = {k: int(len(v)) for k, v in split.items()}
    if len(split["train"]) < MIN_TRAIN:
        raise AelensError(
            f"{dataset.source}: {dataset.n} frames leave {len(split['train'])} for training after the validation "
            f"and test parts; a model needs at least {MIN_TRAIN} (a batch of one frame cannot train BatchNorm)"
        )
    return split, info


MIN_TRAIN = 2  # training frames: BatchNorm needs two frames in a batch


def session_codes(dataset: Dataset) -> np.ndarray:
    """Each row's session as a number (the ``session`` column; 0 for every row of a dataset without one)."""
    c = dataset.conditions
    if c is not None and "session" in c.names:
        s = c.column("session")
        if np.isnan(s).any():
            raise AelensError(f"{c.source}: column 'session' has empty cells; every row needs a session")
        return s
    return np.zeros(dataset.n)


def time_key(dataset: Dataset) -> tuple[np.ndarray, str]:
    """What orders each session's rows in time: (values, column name); the row order when no column says."""
    c = dataset.conditions
    for col in TIME_COLUMNS:
        if c is not None and col in c.names:
            t = c.column(col)
            if np.isnan(t).any():
                raise AelensError(
                    f"{c.source}: column {col!r} has empty cells; a blocked split needs the time of every row"
                )
            return t, col
    return np.arange(dataset.n, dtype=np.float64), "row order"


def default_purge(dataset: Dataset) -> int:
    """About one second of video in frames when the conditions give frame and time_s, else DEFAULT_PURGE."""
    c = dataset.conditions
    if c is not None and "frame" in c.names and "time_s" in c.names:
        f, t = c.column("frame"), c.column("time_s")
        ok = np.isfinite(f) & np.isfinite(t)
        df, dt = np.diff(f[ok]), np.diff(t[ok])
        good = (df > 0) & (dt > 0)
        if good.any():
            return max(1, int(round(float(np.median(df[good] / dt[good])))))
    return DEFAULT_PURGE


def _spread(k: int, count: int, rng: np.random.Generator, taken: np.ndarray) -> list[int]:
    """``count`` of the ``k`` block positions not yet ``taken``, evenly spread with a seeded offset."""
    free = np.flatnonzero(~taken)
    if count <= 0 or len(free) == 0:
        return []
    pos = ((np.arange(count) + rng.uniform()) * len(free) / count).astype(int)
    return free[np.minimum(pos, len(free) - 1)].tolist()


def _blocked(dataset: Dataset, val_fraction, test_fraction, seed, purge) -> tuple[dict, dict]:
    purge = default_purge(dataset) if purge is None else int(purge)
    sessions = session_codes(dataset)
    times, time_col = time_key(dataset)
    rng = np.random.default_rng(seed)
    part = np.full(dataset.n, -1, dtype=np.int64)  # 0 train, 1 val, 2 test, -1 purged
    blocks_per_session = []
    for s in np.unique(sessions):
        rows = np.flatnonzero(sessions == s)
        tu, inv = np.unique(times[rows], return_inverse=True)  # time points of the session, in order
        n_t = len(tu)
        k = int(min(MAX_BLOCKS, max(3, n_t // max(1, 3 * (purge + 1)))))  # blocks at least 3 purges long
        # enough blocks for the fractions to come out as asked (10 blocks for a 10% test part)
        fracs = [f for f in (val_fraction, test_fraction) if f > 0]
        k = int(min(max(k, math.ceil(1.0 / min(fracs) - 1e-9)), MAX_BLOCKS, n_t))
        n_test = max(1, int(round(k * test_fraction))) if test_fraction > 0 else 0
        n_val = max(1, int(round(k * val_fraction)))
        if k - n_test - n_val < 1:
            raise AelensError(
                f"session {int(s)} has only {n_t} time points: too few for blocked --val-fraction {val_fraction} "
                f"and --test-fraction {test_fraction} with --purge {purge}; use fewer held-out frames or --split random"
            )
        taken = np.zeros(k, dtype=bool)
        block_part = np.zeros(k, dtype=np.int64)
        for code, count in ((2, n_test), (1, n_val)):
            chosen = _spread(k, count, rng, taken)
            taken[chosen] = True
            block_part[chosen] = code
        block_of_t = np.minimum((np.arange(n_t) * k) // n_t, k - 1)
        t_part = block_part[block_of_t]
        t_part = _purge(t_part, purge)
        part[rows] = t_part[inv]
        blocks_per_session.append(k)
    split = {
        name: np.flatnonzero(part == code).astype(np.int64) for name, code in (("train", 0), ("val", 1), ("test", 2))
    }
    for name, idx in split.items():
        if len(idx) == 0 and (name != "test" or test_fraction > 0):
            raise AelensError(
                f"blocked split left no {name} frames; use fewer held-out frames, a smaller --purge or --split random"
            )
    info = {
        "kind": "blocked",
        "purge": purge,
        "time_column": time_col,
        "sessions": len(blocks_per_session),
        "blocks_per_session": blocks_per_session,
        "dropped": int((part < 0).sum()),
    }
    return split, info


def _purge(t_part: np.ndarray, purge: int) -> np.ndarray:
    """Drop (-1) the time points of one part within ``purge`` steps of a time point of another part: training
    points near validation or test ones, and validation points near test ones."""
    out = t_part.copy()
    if purge <= 0:
        return out
    n = len(t_part)
    idx = np.arange(n)
    for keep_code, against in ((0, (1, 2)), (1, (2,))):
        other = np.flatnonzero(np.isin(t_part, against))
        if len(other) == 0:
            continue
        pos = np.searchsorted(other, idx)
        left = np.where(pos > 0, idx - other[np.maximum(pos - 1, 0)], n + purge)
        right = np.where(pos < len(other), other[np.minimum(pos, len(other) - 1)] - idx, n + purge)
        near = np.minimum(np.abs(left), np.abs(right)) <= purge
        out[(t_part == keep_code) & near] = -1
    return out


def _grouped(dataset: Dataset, column: str, val_fraction, test_fraction, seed) -> tuple[dict, dict]:
    conds = dataset.require_conditions(f"--split group:{column}")
    values = conds.column(column)
    if np.isnan(values).any():
        raise AelensError(
            f"{conds.source}: column {column!r} has empty cells; --split group:{column} needs a group for every row"
        )
    groups, counts = np.unique(values, return_counts=True)
    need = 2 + (test_fraction > 0)
    if len(groups) < need:
        raise AelensError(
            f"--split group:{column}: {len(groups)} group(s) in {conds.source}; need at least {need} "
            f"(train, validation{', test' if test_fraction > 0 else ''})"
        )
    order = np.random.default_rng(seed).permutation(len(groups))
    part = {}
    n, i = dataset.n, 0
    for name, frac in (("test", test_fraction), ("val", val_fraction)):
        chosen = []
        while frac > 0 and i < len(order) - 1 and (not chosen or counts[chosen].sum() < frac * n):
            chosen.append(order[i])
            i += 1
        part[name] = chosen
    part["train"] = list(order[i:])
    for name, chosen in part.items():
        if not chosen and (name != "test" or test_fraction > 0):
            raise AelensError(
                f"--split group:{column}: no group left for {name}; {len(groups)} groups are too few for these fractions"
            )
    label = conds.labels.get(column)
    split = {k: np.flatnonzero(np.isin(values, groups[v])).astype(np.int64) for k, v in part.items()}
    names = {k: [label[int(groups[g])] if label else float(groups[g]) for g in v] for k, v in part.items()}
    info = {"kind": f"group:{column}", "purge": 0, "dropped": 0, "groups": names}
    return split, info
