"""Splits, batch slicing (from memory or a memory map, no per-sample collate) and input corruption."""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from ..errors import AelensError
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

    def __iter__(self) -> Iterator[np.ndarray]:
        idx = self._epoch_order()
        stop = len(idx) - (len(idx) % self.batch_size if self.drop_last else 0)
        skip = self._skip[1] if self._skip[0] == self.epoch else 0
        self._skip = (0, 0)
        self.yielded = skip
        for start in range(skip * self.batch_size, stop, self.batch_size):
            self.yielded += 1
            yield np.sort(idx[start : start + self.batch_size])

    def state_dict(self, completed: int | None = None) -> dict:
        return {"epoch": self.epoch, "completed": self.yielded if completed is None else completed}

    def load_state_dict(self, state: dict) -> None:
        """Continue an interrupted epoch: iterating that epoch again skips the batches already trained on."""
        self._skip = (int(state["epoch"]), int(state["completed"]))

    def __len__(self) -> int:
        n = -(-len(self.indices) // self.world_size) if self.world_size > 1 else len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


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


def iterate_batches(dataset: Dataset, indices: np.ndarray, batch_size: int, clean: bool = False):
    """Yield (index array, float32 frames) in order, for inference."""
    indices = np.asarray(indices, dtype=np.int64)
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        yield idx, dataset.batch(idx, clean=clean)


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


NOISES: dict[str, tuple[NoiseFn, str]] = {
    "gaussian": (_gaussian, "standard deviation in pixel units (0..1), e.g. gaussian:0.1"),
    "poisson": (_poisson, "photons at full brightness, e.g. poisson:20"),
    "saltpepper": (_saltpepper, "fraction of pixels set to 0 or 1, e.g. saltpepper:0.05"),
}


def parse_noise(spec: str) -> tuple[NoiseFn, float] | None:
    """'none' -> None; 'gaussian:0.1' -> (fn, 0.1). Unknown names or bad parameters are an AelensError."""
    if spec in ("none", "", None):
        return None
    name, _, param = spec.partition(":")
    if name not in NOISES:
        raise AelensError(f"--noise: unknown noise {spec!r}; expected none or one of {', '.join(f'{k}:X' for k in NOISES)}")
    fn, meaning = NOISES[name]
    try:
        value = float(param)
    except ValueError:
        raise AelensError(f"--noise: {spec!r} needs a number after '{name}:' ({meaning})") from None
    if not value > 0 or (name == "saltpepper" and value > 1):
        raise AelensError(f"--noise: {spec!r} is out of range ({meaning})")
    return fn, value


def corrupt(x: torch.Tensor, spec: str, gen: torch.Generator | None = None) -> torch.Tensor:
    parsed = parse_noise(spec)
    if parsed is None:
        return x
    fn, value = parsed
    return fn(x, value, gen)
