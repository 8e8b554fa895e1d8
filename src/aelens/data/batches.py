"""Batch slicing (from memory or a memory map, no per-sample collate) and input corruption."""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from ..config import NOISE_KINDS, parse_noise_spec
from .loading import Dataset


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
