"""Splits, batch slicing (from memory or a memory map, no per-sample collate) and input corruption."""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from ..errors import AelensError
from ..options import NOISE_KINDS, parse_noise_spec
from .loading import Dataset

# --------------------------------------------------------------------------------------------- splits


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
    return split, info


def _session_codes(dataset: Dataset) -> np.ndarray:
    c = dataset.conditions
    if c is not None and "session" in c.names:
        s = c.column("session")
        if np.isnan(s).any():
            raise AelensError(f"{c.source}: column 'session' has empty cells; every row needs a session")
        return s
    return np.zeros(dataset.n)


def _time_key(dataset: Dataset) -> tuple[np.ndarray, str]:
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
    sessions = _session_codes(dataset)
    times, time_col = _time_key(dataset)
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


# --------------------------------------------------------------------------------------------- batches


class IndexBatchSampler(Sampler):
    """Yields sorted index arrays, one per batch; reshuffled every epoch from (seed, epoch); sharded by rank.

    With ``world_size`` > 1 each rank takes every world_size-th index of the epoch's permutation (as PyTorch's
    DistributedSampler does), so ``batch_size`` is per device.
    """

    def __init__(
        self,
        indices: np.ndarray,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.yielded = 0  # batches handed out in the current epoch
        self._skip = (0, 0)  # (epoch, batches) to skip when resuming in the middle of that epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _epoch_order(self) -> np.ndarray:
        idx = self.indices
        if self.shuffle:
            idx = idx[np.random.default_rng((self.seed, self.epoch)).permutation(len(idx))]
        if self.world_size > 1:
            per_rank = -(-len(idx) // self.world_size)
            idx = np.resize(idx, per_rank * self.world_size)  # pad by wrapping, like DistributedSampler
            idx = idx[self.rank :: self.world_size]
        return idx

    def _bounds(self, n: int) -> list[tuple[int, int]]:
        """(start, stop) of each batch of an epoch of ``n`` indices. In training (``shuffle``) a last batch of a
        single frame joins the one before it: BatchNorm cannot train on a batch of one."""
        stop = n - (n % self.batch_size if self.drop_last else 0)
        bounds = [(start, min(start + self.batch_size, stop)) for start in range(0, stop, self.batch_size)]
        if self.shuffle and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], bounds[-1][1])]
        return bounds

    def __iter__(self) -> Iterator[np.ndarray]:
        idx = self._epoch_order()
        skip = self._skip[1] if self._skip[0] == self.epoch else 0
        self._skip = (0, 0)
        self.yielded = skip
        for start, stop in self._bounds(len(idx))[skip:]:
            self.yielded += 1
            yield np.sort(idx[start:stop])

    def state_dict(self, completed: int | None = None) -> dict:
        return {"epoch": self.epoch, "completed": self.yielded if completed is None else completed}

    def load_state_dict(self, state: dict) -> None:
        """Continue an interrupted epoch: iterating that epoch again skips the batches already trained on."""
        self._skip = (int(state["epoch"]), int(state["completed"]))

    def __len__(self) -> int:
        n = -(-len(self.indices) // self.world_size) if self.world_size > 1 else len(self.indices)
        return len(self._bounds(n))


class ArrayBatches(TorchDataset):
    """Maps an index array to a batch dict: ``x`` (b, c, h, w) float32 frames, ``idx`` (b,) int64 and, when given,
    ``y`` rows of ``targets`` (float32) for supervised objectives or embeddings for the decoder."""

    def __init__(self, dataset: Dataset, targets: np.ndarray | None = None, images: bool = True):
        self.dataset = dataset
        self.targets = None if targets is None else torch.as_tensor(np.asarray(targets, dtype=np.float32))
        self.images = images

    def __len__(self) -> int:
        return self.dataset.n

    def __getitem__(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        out = {"idx": torch.from_numpy(np.asarray(idx, dtype=np.int64))}
        if self.images:
            out["x"] = self.dataset.batch(idx)
        if self.targets is not None:
            out["y"] = self.targets[out["idx"]]
        return out


class ResumableLoader(DataLoader):
    """A DataLoader whose position within the epoch is saved in checkpoints (Lightning's stateful-loader protocol),
    so a run interrupted mid-epoch resumes with the batches it had not yet trained on.

    ``completed``: a callable giving the batches of the current epoch whose step finished (the trainer's count;
    the sampler alone would also count the batch in flight and the one prefetched).
    """

    completed = None

    def state_dict(self) -> dict:
        return self.sampler.state_dict(self.completed() if self.completed is not None else None)

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


def batch_loader(
    dataset: Dataset,
    indices: np.ndarray,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    targets: np.ndarray | None = None,
    rank: int = 0,
    world_size: int = 1,
    images: bool = True,
) -> DataLoader:
    """A DataLoader whose sampler hands whole sorted index arrays to :class:`ArrayBatches` (``batch_size=None``:
    no per-sample indexing, no collate)."""
    sampler = IndexBatchSampler(indices, batch_size, shuffle, seed, False, rank, world_size)
    return ResumableLoader(ArrayBatches(dataset, targets, images), sampler=sampler, batch_size=None, num_workers=0)


# --------------------------------------------------------------------------------------------- corruption

NoiseFn = Callable[[torch.Tensor, float, torch.Generator | None], torch.Tensor]


def _gaussian(x: torch.Tensor, sigma: float, gen: torch.Generator | None) -> torch.Tensor:
    return x + sigma * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


def _poisson(x: torch.Tensor, peak: float, gen: torch.Generator | None) -> torch.Tensor:
    return torch.poisson(x.clamp(min=0) * peak, generator=gen) / peak


def _saltpepper(x: torch.Tensor, p: float, gen: torch.Generator | None) -> torch.Tensor:
    u = torch.rand(x.shape, generator=gen, device=x.device)
    out = x.clone()
    out[u < p / 2] = 0.0
    out[(u >= p / 2) & (u < p)] = 1.0
    return out


NOISES: dict[str, NoiseFn] = {"gaussian": _gaussian, "poisson": _poisson, "saltpepper": _saltpepper}
assert set(NOISES) == set(NOISE_KINDS)


def parse_noise(spec: str) -> tuple[NoiseFn, float] | None:
    """'none' -> None; 'gaussian:0.1' -> (fn, 0.1); the grammar and its errors are ``options.parse_noise_spec``."""
    parsed = parse_noise_spec(spec)
    return None if parsed is None else (NOISES[parsed[0]], parsed[1])


def corrupt(x: torch.Tensor, spec: str, gen: torch.Generator | None = None) -> torch.Tensor:
    parsed = parse_noise(spec)
    if parsed is None:
        return x
    fn, value = parsed
    return fn(x, value, gen)
