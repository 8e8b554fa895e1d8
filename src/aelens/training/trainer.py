"""Training entry points: run directory, Trainer, callbacks; one function for every objective.

Example::

    cfg = aelens.RunConfig(kind="ae").with_overrides({"data.path": "data/arena", "train.epochs": 20})
    run_dir = aelens.train(cfg)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, Timer, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger

from ..config import RunConfig, effective_patience, parse_budget
from ..data.loading import Dataset
from ..data.selection import select_split
from ..data.sessions import load_with_options, resolve_data_paths
from ..data.splits import make_split
from ..errors import AelensError, TrainingDiverged, TrainingInterrupted
from ..layout import (
    RunDir,
    create_run_dir,
    default_run_dir,
    read_manifest,
    record_file_hashes,
    save_run_files,
    update_manifest,
    write_manifest,
)
from ..models.inference import physical_cores, resolve_precision, set_threads
from ..models.nets import Geometry
from ..objectives import OBJECTIVES
from ..storage import load_tree, run_lock, save_tensors
from .callbacks import (
    DivergenceGuard,
    EpochTimer,
    PlateauStop,
    RunCheckpoints,
    RunCSVLogger,
    SafetensorsCheckpointIO,
    StepBoundaryInterrupt,
    ValidationImages,
)
from .snapshotting import LatentSnapshots

log = logging.getLogger("aelens")
RUN_DIR_ENV = "AELENS_RUN_DIR"  # how DDP worker processes (re-launched by Lightning) find rank 0's run directory


def is_worker() -> bool:
    """True in a DDP process other than rank 0 of node 0 (Lightning re-launches the command for those)."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0


def _describe_split(info: dict) -> str:
    sizes = info["sizes"]
    text = f"split: {info['kind']}"
    if info.get("requested") == "auto":
        text += " (auto: " + (
            "the conditions order frames in time)"
            if info["kind"] == "blocked"
            else "no frame, time_s or session column)"
        )
    if info["kind"] == "blocked":
        text += (
            f", {sum(info['blocks_per_session'])} blocks in {info['sessions']} session(s) by {info['time_column']}, "
            f"purge {info['purge']} frames ({info['dropped']} dropped)"
        )
    if "groups" in info:
        text += f", held out: test {info['groups']['test']}, val {info['groups']['val']}"
    return text + f"; train / val / test {sizes['train']} / {sizes['val']} / {sizes['test']}"


def _accelerator(cfg: RunConfig) -> str:
    acc = cfg.train.accelerator
    if acc == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if acc in ("gpu", "cuda") and not torch.cuda.is_available():
        raise AelensError(f"--accelerator {acc}: this machine has no CUDA GPU that torch can use; use cpu or auto")
    if acc == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise AelensError("--accelerator mps: this machine has no Apple GPU that torch can use; use cpu or auto")
    return acc


def _devices(spec: str):
    return spec if spec == "auto" else int(spec)


@dataclasses.dataclass
class _Start:
    """What a training process starts from: a new run, a resumed one, or (DDP) rank 0's run seen by a worker."""

    cfg: RunConfig
    run: RunDir
    dataset: Dataset
    split: dict[str, np.ndarray]
    ckpt: Path | None = None  # the checkpoint to resume from
    resuming: bool = False
    worker: bool = False

    @property
    def continuing(self) -> bool:
        """The run folder exists already (resume, or a DDP worker joining rank 0's run)."""
        return self.resuming or self.worker


def _start(cfg: RunConfig | None, out, overwrite: bool, resume, dataset: Dataset | None, locks) -> _Start:
    """Decide the mode and prepare the run folder; every check on data and options happens before it is created.
    The folder's lock is entered on ``locks`` (an ExitStack) before anything is written into it."""
    worker = is_worker() and RUN_DIR_ENV in os.environ
    if resume is not None:
        rd = RunDir(resume)
        manifest = rd.manifest()
        saved = rd.config()
        cfg = saved.with_overrides({"train.epochs": cfg.train.epochs if cfg is not None else saved.train.epochs})
        ckpt = rd.resume_checkpoint()
        if ckpt is None:
            raise AelensError(f"--resume {rd.path}: no {rd.CHECKPOINTS}/{rd.LAST} (nor any other checkpoint) to resume")
        if ckpt != rd.last_checkpoint:
            log.warning("%s: no %s (a kill during its first write?); resuming from %s", rd.path, rd.LAST, ckpt.name)
        if manifest.status == "complete" and manifest.epochs >= cfg.train.epochs:
            raise AelensError(
                f"--resume {rd.path}: the run already finished {manifest.epochs} epochs; pass a larger --epochs"
            )
        if not worker:
            locks.enter_context(run_lock(rd.path))
        start = _existing(cfg, rd, dataset, ckpt=ckpt, resuming=True, worker=worker)
        if not worker:  # only once the data is found and is the run's own: a refused resume changes no file
            cfg.save(rd.config_file)
        return start
    if worker:
        rd = RunDir(os.environ[RUN_DIR_ENV])
        return _existing(rd.config(), rd, dataset, ckpt=None, resuming=False, worker=True)
    return _new(cfg, out, overwrite, dataset, locks)


def _existing(cfg: RunConfig, rd: RunDir, dataset: Dataset | None, **mode) -> _Start:
    dataset = dataset if dataset is not None else load_with_options(cfg.data)
    if rd.manifest().fingerprint not in (None, dataset.fingerprint):
        raise AelensError(f"{dataset.source}: not the dataset this run was trained on (fingerprint differs)")
    return _Start(cfg, rd, dataset, rd.split(dataset.n), **mode)


def _new(cfg: RunConfig, out, overwrite: bool, dataset: Dataset | None, locks) -> _Start:
    if cfg.data.path is not None:  # absolute: `aelens test RUN` works from any folder
        cfg = cfg.with_overrides({"data.path": resolve_data_paths(cfg.data.path)})
    if dataset is None:
        dataset = load_with_options(cfg.data)  # validate data and settings before creating anything
    s, se = cfg.split, cfg.select
    split, info = make_split(dataset, s.val_fraction, s.test_fraction, cfg.seed, s.kind, s.purge)
    log.info(_describe_split(info))
    split, selection = select_split(dataset, split, se.frames, se.method, se.val_frames, cfg.seed)
    log.info(_describe_selection(selection))
    OBJECTIVES[cfg.kind].check(cfg, dataset, split)
    _accelerator(cfg)  # an accelerator this machine lacks is an error before the run folder exists
    rd = RunDir(create_run_dir(out if out is not None else default_run_dir(cfg.kind), overwrite))
    locks.enter_context(run_lock(rd.path))  # a second aelens into the same --out stops here, having written nothing
    cfg.save(rd.config_file)
    rd.save_split(split, info)
    data = {
        "path": str(dataset.source),
        "n": dataset.n,
        "fingerprint": dataset.fingerprint,
        "dtype": str(dataset.images.dtype),
        "normalize": dataset.level_info or {"method": "none"},
    }
    write_manifest(
        rd.path,
        cfg.kind,
        cfg.seed,
        {
            "image_shape": list(dataset.shape),
            "data": data,
            "split_sizes": {k: int(len(v)) for k, v in split.items()},
            "split": info,
            "selection": selection,
        },
    )
    os.environ[RUN_DIR_ENV] = str(rd.path.resolve())
    return _Start(cfg, rd, dataset, split)


def _describe_selection(sel: dict) -> str:
    if sel["method"] == "all":
        what = f"all {sel['chosen']} training frames"
    else:
        what = f"{sel['chosen']} of {sel['pool']} training frames ({sel['method']})"
    return f"training on {what}; validation on {sel['val_chosen']} of {sel['val_pool']} frames"


@dataclasses.dataclass
class _Hooks:
    """The callbacks whose results the run records."""

    ckpts: RunCheckpoints
    timer: EpochTimer
    snapshots: LatentSnapshots | None
    plateau: PlateauStop
    budget: Timer | None


def _trainer(st: _Start, objective, accelerator: str, precision: str, extra=()) -> tuple[L.Trainer, _Hooks]:
    cfg, rd = st.cfg, st.run
    for name in (
        "lightning.pytorch",
        "lightning.fabric",
    ):  # Lightning sets INFO when imported; its notes are noise here
        logging.getLogger(name).setLevel(logging.WARNING)
    seconds = parse_budget(cfg.train.budget)
    budget = Timer(duration=dt.timedelta(seconds=seconds), interval="epoch") if seconds else None
    plateau = PlateauStop(effective_patience(cfg), cfg.train.min_delta)
    hooks = _Hooks(RunCheckpoints(rd.checkpoints, cfg.train.checkpoint_every), EpochTimer(), None, plateau, budget)
    callbacks: list = [
        DivergenceGuard(),
        plateau,  # before the checkpoints: they keep its state
        *([budget] if budget else []),
        hooks.ckpts,
        hooks.timer,
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if objective.has_decoder:
        callbacks.append(ValidationImages(rd.images))
    if cfg.snapshots.enabled and objective.has_encoder:
        sn = cfg.snapshots
        layers = tuple(layer for layer in sn.layers if layer == "fc1" or objective.has_decoder)
        hooks.snapshots = LatentSnapshots(
            rd.snapshots, layers, sn.per_epoch, sn.max_images, cfg.seed, precision == "bf16", sn.schedule
        )
        callbacks.append(hooks.snapshots)
    if cfg.train.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, cfg.train.log_every // 5)))
    callbacks += list(extra)
    callbacks.append(StepBoundaryInterrupt())  # last: every other callback sees the step before it stops
    resume_step = int(load_tree(st.ckpt).get("global_step", 0)) if st.resuming else None
    loggers = [
        RunCSVLogger(rd.metrics, resume_step=resume_step),
        TensorBoardLogger(save_dir=str(rd.path), name="tb", version="", default_hp_metric=False),
    ]
    trainer = L.Trainer(
        max_epochs=cfg.train.epochs,
        max_steps=cfg.train.max_steps,
        accelerator=accelerator,
        devices=_devices(cfg.train.devices),
        num_nodes=cfg.train.num_nodes,
        strategy=cfg.train.strategy,
        precision="bf16-mixed" if precision == "bf16" else "32-true",
        callbacks=callbacks,
        logger=loggers,
        plugins=[SafetensorsCheckpointIO()],
        enable_checkpointing=False,  # RunCheckpoints writes safetensors checkpoints itself
        check_val_every_n_epoch=cfg.train.val_every,
        log_every_n_steps=cfg.train.log_every,
        use_distributed_sampler=False,  # IndexBatchSampler shards by rank itself
        deterministic=cfg.train.deterministic,
        num_sanity_val_steps=0,
        enable_progress_bar=cfg.train.progress,
        enable_model_summary=False,
        default_root_dir=str(rd.path),
    )
    return trainer, hooks


def _fit(trainer: L.Trainer, objective, st: _Start, hooks: _Hooks) -> float:
    """``trainer.fit`` with Lightning's noise filtered; Ctrl-C marks the run interrupted. Returns the seconds."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # frozen tagger layers, on purpose
        try:
            trainer.fit(objective, ckpt_path=str(st.ckpt) if st.ckpt else None, weights_only=True)
        except TrainingDiverged:
            update_manifest(st.run.path, status="failed")
            raise
        except SystemExit:
            if trainer.interrupted and trainer.is_global_zero:
                update_manifest(st.run.path, status="interrupted")
                raise TrainingInterrupted(
                    st.run.path, hooks.ckpts.saved_on_exception or hooks.ckpts.path("last")
                ) from None
            raise
    return time.perf_counter() - t0


def _record(st: _Start, objective, trainer: L.Trainer, hooks: _Hooks, seconds: float, precision: str) -> None:
    """Final weights and the manifest's facts (times add up over resumes), then the files' hashes."""
    rd = st.run
    save_tensors(rd.weights, objective.state_dict())
    previous = read_manifest(rd.path)
    train_seconds = previous.get("train_seconds", 0.0) * st.resuming + seconds
    epoch_seconds = previous.get("epoch_seconds", []) * st.resuming + [round(s, 3) for s in hooks.timer.epoch_seconds]
    ckpts = hooks.ckpts
    final_facts, final_files = objective.finish()
    save_run_files(rd.path, final_files)
    facts = {
        "status": "complete",
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "train_seconds": round(train_seconds, 3),
        "epoch_seconds": epoch_seconds,
        "seconds_per_epoch": round(float(np.mean(epoch_seconds)), 4) if epoch_seconds else None,
        "train_images_per_s": round(hooks.timer.images_per_s, 2),
        "precision": precision,
        "best_val_loss": ckpts.best_score if np.isfinite(ckpts.best_score) else None,
        "stopped": _stop_reason(st.cfg, trainer, hooks),
        "best_epoch": ckpts.best_epoch,
        "world_size": trainer.world_size,
        **objective.describe(),
        **final_facts,
    }
    if hooks.snapshots is not None:
        snap = previous.get("snapshot_seconds", 0.0) * st.resuming + hooks.snapshots.seconds
        facts["snapshot_seconds"] = round(snap, 3)
        facts["snapshot_overhead"] = round(snap / max(train_seconds - snap, 1e-9), 4)
    update_manifest(rd.path, **facts)
    record_file_hashes(rd.path, [rd.WEIGHTS, rd.CONFIG, rd.SPLIT])


def _stop_reason(cfg: RunConfig, trainer: L.Trainer, hooks: _Hooks) -> dict:
    """Why the run ended: plateau (early stopping), budget (wall clock), max_steps, or epochs (the ceiling)."""
    epoch = trainer.current_epoch
    if hooks.plateau.stopped_epoch is not None:
        t = cfg.train
        why = f"the validation loss improved by less than {t.min_delta:.0%} in {effective_patience(cfg)} validations"
        return {"reason": "plateau", "epoch": epoch, "detail": why}
    if hooks.budget is not None and hooks.budget.time_remaining("train") <= 0:
        return {"reason": "budget", "epoch": epoch, "detail": f"the wall-clock budget of {cfg.train.budget} ran out"}
    if 0 < cfg.train.max_steps <= trainer.global_step:
        return {"reason": "max_steps", "epoch": epoch, "detail": f"{cfg.train.max_steps} optimiser steps"}
    return {"reason": "epochs", "epoch": epoch, "detail": f"the ceiling of {cfg.train.epochs} epochs"}


def train(
    cfg: RunConfig,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: str | Path | None = None,
    dataset: Dataset | None = None,
    callbacks: tuple = (),
) -> Path:
    """Train the objective ``cfg.kind`` and return the run directory.

    ``resume``: continue an existing run from ``checkpoints/last.safetensors`` with its optimiser and schedule state
    (``cfg`` then only supplies a new ``train.epochs``, and may be None). ``callbacks``: extra Lightning callbacks
    (measurements, your own logging); they run after aelens's own.
    """
    with contextlib.ExitStack() as locks:
        return _train(cfg, out, overwrite, resume, dataset, locks, callbacks)


def _train(cfg, out, overwrite, resume, dataset, locks, callbacks=()) -> Path:
    st = _start(cfg, out, overwrite, resume, dataset, locks)
    cfg = st.cfg
    accelerator = _accelerator(cfg)
    procs = int(cfg.train.devices) if cfg.train.devices.isdigit() and accelerator == "cpu" else 1
    set_threads(cfg.train.threads or max(1, physical_cores() // procs))  # CPU DDP: share the cores
    L.seed_everything(cfg.seed, workers=False, verbose=False)
    objective = OBJECTIVES[cfg.kind](cfg, Geometry(*st.dataset.shape))
    save_run_files(st.run.path, objective.prepare(st.dataset, st.split, st.run.path, resuming=st.continuing))
    precision = resolve_precision(cfg.train.precision, accelerator)
    if cfg.train.precision == "auto" and precision == "fp32" and not st.worker:
        log.info("precision: fp32 (this device has no fast bf16)")
    if cfg.train.channels_last:
        objective = objective.to(memory_format=torch.channels_last)
    trainer, hooks = _trainer(st, objective, accelerator, precision, callbacks)
    seconds = _fit(trainer, objective, st, hooks)
    if trainer.is_global_zero:
        _record(st, objective, trainer, hooks, seconds, precision)
    return st.run.path


def ensure_run(cfg: RunConfig, run_dir: str | Path, dataset: Dataset | None = None) -> Path:
    """Train ``cfg`` into ``run_dir`` unless it is already complete; resume it when it was interrupted.
    ``dataset``: ``cfg``'s data, already loaded (a study loads it once for all its runs)."""
    rd = RunDir(run_dir)
    if not rd.exists():
        return train(cfg, out=rd.path, dataset=dataset)
    if rd.is_complete():
        return rd.path
    if rd.resume_checkpoint() is not None:
        log.info("resuming %s", rd.path)
        return train(cfg, resume=rd.path, dataset=dataset)
    return train(cfg, out=rd.path, overwrite=True, dataset=dataset)


def train_autoencoder(cfg: RunConfig, **kwargs) -> Path:
    """Train the denoising AE (``cfg.kind`` is set to "ae")."""
    return train(cfg.with_overrides({"kind": "ae"}), **kwargs)


def train_decoder(cfg: RunConfig, **kwargs) -> Path:
    """Train the AE decoder on a PCA/UMAP/... embedding (``cfg.embedding``)."""
    return train(cfg.with_overrides({"kind": "decoder"}), **kwargs)


def train_tagger(cfg: RunConfig, **kwargs) -> Path:
    """Train the direction tagger (``cfg.tagger``)."""
    return train(cfg.with_overrides({"kind": "tagger"}), **kwargs)
