"""A few measured training steps of a model, to say what a run will cost before it starts (``aelens study
--plan-only``). Nothing is written: the objective is built and stepped in memory, with the precision, memory layout
and threads that training would use."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..config import RunConfig
from ..data.batches import batch_loader
from ..data.loading import Dataset
from ..models.inference import (
    INFER_BATCH,
    autocast,
    inference_copy,
    physical_cores,
    resolve_precision,
    run_batched,
    set_threads,
)
from ..models.nets import Geometry
from ..objectives import OBJECTIVES
from ..objectives.base import adam


def _objective(cfg: RunConfig, dataset: Dataset, idx: np.ndarray):
    objective = OBJECTIVES[cfg.kind](cfg, Geometry(*dataset.shape))
    split = {"train": idx, "val": idx, "test": idx[:0]}
    if cfg.kind == "decoder":  # the step does not depend on what the codes are: random ones, no reducer fitted
        codes = np.random.default_rng(0).normal(size=(dataset.n, cfg.embedding.dim)).astype(np.float32)
        objective.attach_data(dataset, split, codes)
    else:  # resuming: a tagger takes its targets only, no AE weights copied
        objective.prepare(dataset, split, None, resuming=True)
    return objective


def measure(cfg: RunConfig, dataset: Dataset, steps: int = 6, warmup: int = 2) -> dict:
    """Seconds per training step (one batch of ``cfg.train.batch_size``, forward, backward, optimiser) and frames per
    second of inference, measured on ``dataset``'s first frames on the CPU (after ``warmup`` steps)."""
    set_threads(cfg.train.threads or physical_cores())
    bf16 = resolve_precision(cfg.train.precision, "cpu") == "bf16"
    batch = cfg.train.batch_size
    idx = np.arange(min(dataset.n, batch * (steps + warmup)), dtype=np.int64)
    objective = _objective(cfg, dataset, idx)
    if cfg.train.channels_last:
        objective = objective.to(memory_format=torch.channels_last)
    objective.train()
    opt = adam(objective.trainable_parameters(), cfg.train.lr)
    loader = batch_loader(dataset, idx, batch, shuffle=True, seed=cfg.seed, targets=objective.targets,
                          images=objective.needs_images)  # fmt: skip
    times = []
    while len(times) < steps + warmup:
        for b in loader:
            t0 = time.perf_counter()
            with autocast(torch.device("cpu"), bf16):
                loss, _ = objective.loss(objective._prepare(b), "train")
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t0)
            if len(times) == steps + warmup:
                break
    step = float(np.median(times[warmup:]))
    nets = inference_copy(objective.networks(), torch.device("cpu"))
    if nets.encoder is None:
        fn = nets.decode
    else:
        fn = nets.reconstruct if nets.decoder is not None else nets.latent
    n = min(dataset.n, INFER_BATCH * 2)
    if nets.encoder is not None:
        inputs = dataset.batch
    else:
        codes = torch.zeros(dataset.n, cfg.embedding.dim)
        inputs = lambda i: codes[i]  # noqa: E731
    t0 = time.perf_counter()
    run_batched(fn, inputs, n, torch.device("cpu"), bf16)
    infer = n / max(time.perf_counter() - t0, 1e-9)
    return {"step_seconds": step, "batch_size": batch, "infer_frames_per_s": infer}
