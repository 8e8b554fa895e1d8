"""Reading the latent snapshots that ``training.snapshotting.LatentSnapshots`` takes during training.

Stored per run as ``snapshots/<layer>.npy`` (snapshots x N x D, float16, one file per layer), the analysis set as
``snapshots/analysis_indices.npy`` and the schedule as ``snapshots/index.csv`` (snapshot, epoch, global_step,
train_loss, seconds). Snapshot 0 is taken before the first update.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..layout import RunDir
from ..storage import load_npy
from ..training.snapshotting import analysis_indices, capture_points, read_index  # noqa: F401 -- analysis code reads them here


def load_snapshots(run_dir: str | Path, layer: str = "fc1") -> tuple[np.ndarray, list[dict], np.ndarray]:
    """(snapshots (S, N, D) float16 memory map, index rows, analysis indices) of a run."""
    rd = RunDir(run_dir)
    rows = read_index(rd.snapshots)
    arr = load_npy(rd.snapshot_layer(layer), mmap_mode="r")
    return arr[: len(rows)], rows, load_npy(rd.snapshot_subset)
