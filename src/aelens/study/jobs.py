"""Training and testing several models that do not depend on each other (the decoders, the sweep's taggers): one
after another in this process, or side by side on an executor.

An executor is anything with ``submit(fn, *args) -> future`` whose ``result()`` waits: ``--jobs N`` makes a local
process pool (:func:`process_pool`); ``submitit``'s executors (SLURM, or its local one) fit as they are, so a
cluster runs the same steps (docs/guide/scale.md). A worker reads the data itself: the study's loaded dataset
stays in the study's process.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..config import RunConfig
from ..data.loading import Dataset
from ..models.inference import physical_cores
from ..runs.evaluate import ensure_test
from ..training.trainer import ensure_run


def train_and_test(cfg: RunConfig, run_dir: str | Path, dataset: Dataset | None = None) -> str:
    """Train ``cfg`` into ``run_dir`` (resumed or skipped when done) and test it; returns the run folder."""
    path = ensure_run(cfg, run_dir, dataset)
    ensure_test(path, dataset=dataset)
    return str(path)


def process_pool(jobs: int) -> ProcessPoolExecutor:
    """``jobs`` worker processes, started fresh (spawn: no copy of this process's threads or memory maps)."""
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


def threads_per_job(jobs: int) -> int:
    """The physical cores shared by ``jobs`` runs at once (at least one thread each)."""
    return max(1, physical_cores() // max(1, jobs))


def train_all(runs: list[tuple[RunConfig, Path]], dataset: Dataset | None, executor=None, jobs: int = 1) -> None:
    """Train and test each ``(cfg, run_dir)``: here with the loaded ``dataset``, or all at once on ``executor``
    (runs whose config leaves ``train.threads`` at 0 get their share of the cores, ``jobs`` runs at a time)."""
    if executor is None:
        for cfg, run_dir in runs:
            train_and_test(cfg, run_dir, dataset)
        return
    shared = []
    for cfg, run_dir in runs:
        if cfg.train.threads == 0:
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=threads_per_job(jobs)))
        shared.append(executor.submit(train_and_test, cfg, str(run_dir)))
    for future in shared:
        future.result()  # a failed run raises here, with its own message
