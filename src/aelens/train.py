"""Training entry points: run directory, Trainer, callbacks; one function for every objective.

Example::

    cfg = aelens.RunConfig(kind="ae").with_overrides({"data.path": "data/arena", "train.epochs": 20})
    run_dir = aelens.train(cfg)
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import LearningRateMonitor, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger

from .analysis.snapshots import LatentSnapshots
from .callbacks import EpochTimer, RunCheckpoints, RunCSVLogger, SafetensorsCheckpointIO, ValidationImages
from .config import RunConfig, load_config
from .data.batches import make_split
from .data.loading import Dataset, load_dataset_from_config, resolve_data_paths
from .errors import AelensError, TrainingInterrupted
from .inference import physical_cores, resolve_precision, set_threads
from .nets import Geometry
from .objectives import OBJECTIVES
from .storage import (
    create_run_dir,
    default_run_dir,
    read_manifest,
    record_file_hashes,
    save_tensors,
    update_manifest,
    write_manifest,
)

log = logging.getLogger("aelens")
RUN_DIR_ENV = "AELENS_RUN_DIR"  # how DDP worker processes (re-launched by Lightning) find rank 0's run directory
SPLIT = "split.npz"


def is_worker() -> bool:
    """True in a DDP process other than rank 0 of node 0 (Lightning re-launches the command for those)."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0


def save_split(path: Path, split: dict[str, np.ndarray], info: dict | None = None) -> None:
    """train / val / test indices, and the split's kind and purge (plain arrays: no pickle)."""
    from .storage import atomic_path

    extra = {"kind": np.array(str((info or {}).get("kind", "random"))), "purge": np.array(int((info or {}).get("purge", 0)))}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **split, **extra)


def split_kind(path: Path) -> dict:
    """The kind and purge recorded in ``split.npz``; runs from before splits had kinds were random."""
    try:
        with np.load(path, allow_pickle=False) as z:
            kind = str(z["kind"]) if "kind" in z.files else "random"
            return {"kind": kind, "purge": int(z["purge"]) if "purge" in z.files else 0}
    except (OSError, ValueError) as exc:
        raise AelensError(f"{path}: cannot read the run's split ({exc})") from None


def load_split(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k].astype(np.int64) for k in ("train", "val", "test")}
    except (OSError, KeyError, ValueError) as exc:
        raise AelensError(f"{path}: cannot read the run's split ({exc})") from None


def _describe_split(info: dict) -> str:
    sizes = info["sizes"]
    text = f"split: {info['kind']}"
    if info.get("requested") == "auto":
        text += " (auto: " + ("the conditions order frames in time)" if info["kind"] == "blocked" else "no frame, time_s or session column)")
    if info["kind"] == "blocked":
        text += f", {sum(info['blocks_per_session'])} blocks in {info['sessions']} session(s) by {info['time_column']}, " \
                f"purge {info['purge']} frames ({info['dropped']} dropped)"
    if "groups" in info:
        text += f", held out: test {info['groups']['test']}, val {info['groups']['val']}"
    return text + f"; train / val / test {sizes['train']} / {sizes['val']} / {sizes['test']}"


def _accelerator(cfg: RunConfig) -> str:
    import torch

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


def train(
    cfg: RunConfig,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: str | Path | None = None,
    dataset: Dataset | None = None,
) -> Path:
    """Train the objective ``cfg.kind`` and return the run directory.

    ``resume``: continue an existing run from ``checkpoints/last.safetensors`` with its optimiser and schedule state
    (``cfg`` then only supplies a new ``train.epochs``, and may be None).
    """
    worker = is_worker() and RUN_DIR_ENV in os.environ
    resuming = resume is not None
    if resuming:
        run_dir = Path(resume)
        manifest = read_manifest(run_dir)
        saved = load_config(run_dir / "config.yaml")
        epochs = cfg.train.epochs if cfg is not None else saved.train.epochs
        cfg = saved.with_overrides({"train.epochs": epochs})
        ckpt = run_dir / "checkpoints" / "last.safetensors"
        if not ckpt.is_file():
            raise AelensError(f"--resume {run_dir}: no checkpoints/last.safetensors to resume from")
        if manifest.get("status") == "complete" and manifest.get("epochs", 0) >= cfg.train.epochs:
            raise AelensError(f"--resume {run_dir}: the run already finished {manifest.get('epochs')} epochs; pass a larger --epochs")
        if not worker:
            cfg.save(run_dir / "config.yaml")
    elif worker:
        run_dir = Path(os.environ[RUN_DIR_ENV])
        cfg = load_config(run_dir / "config.yaml")
        ckpt = None
    else:
        ckpt = None
        if cfg.data.path is not None:  # absolute: `aelens test RUN` works from any folder
            cfg = cfg.with_overrides({"data.path": resolve_data_paths(cfg.data.path)})
        if dataset is None:
            dataset = load_dataset_from_config(cfg.data)  # validate data and settings before creating anything
        split, split_info = make_split(dataset, cfg.split.val_fraction, cfg.split.test_fraction, cfg.seed,
                                       cfg.split.kind, cfg.split.purge)
        log.info(_describe_split(split_info))
        OBJECTIVES[cfg.kind].check(cfg, dataset, split)
        _accelerator(cfg)  # an accelerator this machine lacks is an error before the run folder exists
        run_dir = create_run_dir(out if out is not None else default_run_dir(cfg.kind), overwrite)

    if dataset is None:
        dataset = load_dataset_from_config(cfg.data)
    geometry = Geometry(*dataset.shape)
    if resuming or worker:
        manifest = read_manifest(run_dir)
        if manifest.get("data", {}).get("fingerprint") not in (None, dataset.fingerprint):
            raise AelensError(f"{dataset.source}: not the dataset this run was trained on (fingerprint differs)")
        split = load_split(run_dir / SPLIT)
    else:
        cfg.save(run_dir / "config.yaml")
        save_split(run_dir / SPLIT, split, split_info)
        write_manifest(
            run_dir,
            cfg.kind,
            cfg.seed,
            {
                "image_shape": list(dataset.shape),
                "data": {"path": str(dataset.source), "n": dataset.n, "fingerprint": dataset.fingerprint,
                         "dtype": str(dataset.images.dtype)},
                "split_sizes": {k: int(len(v)) for k, v in split.items()},
                "split": split_info,
            },
        )
        os.environ[RUN_DIR_ENV] = str(run_dir.resolve())

    accelerator = _accelerator(cfg)
    procs = int(cfg.train.devices) if cfg.train.devices.isdigit() and accelerator == "cpu" else 1
    set_threads(cfg.train.threads or max(1, physical_cores() // procs))  # CPU DDP: share the cores
    L.seed_everything(cfg.seed, workers=False, verbose=False)
    objective = OBJECTIVES[cfg.kind](cfg, geometry)
    objective.prepare(dataset, split, run_dir, resuming=resuming or worker)

    precision = resolve_precision(cfg.train.precision, accelerator)
    if cfg.train.precision == "auto" and precision == "fp32" and not worker:
        log.info("precision: fp32 (this device has no fast bf16)")
    if cfg.train.channels_last:
        import torch

        objective = objective.to(memory_format=torch.channels_last)

    ckpts = RunCheckpoints(run_dir / "checkpoints", cfg.train.checkpoint_every)
    timer = EpochTimer()
    callbacks: list = [ckpts, timer, LearningRateMonitor(logging_interval="epoch")]
    if objective.has_decoder:
        callbacks.append(ValidationImages(run_dir / "images"))
    snapshots = None
    if cfg.snapshots.enabled and objective.has_encoder:
        sn = cfg.snapshots
        layers = tuple(layer for layer in sn.layers if layer == "fc1" or objective.has_decoder)
        snapshots = LatentSnapshots(run_dir, layers, sn.per_epoch, sn.max_images, cfg.seed, precision == "bf16")
        callbacks.append(snapshots)
    if cfg.train.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, cfg.train.log_every // 5)))
    resume_step = None
    if resuming:
        from .storage import load_tree

        resume_step = int(load_tree(ckpt).get("global_step", 0))
    loggers = [
        RunCSVLogger(run_dir / "metrics.csv", resume_step=resume_step),
        TensorBoardLogger(save_dir=str(run_dir), name="tb", version="", default_hp_metric=False),
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
        default_root_dir=str(run_dir),
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # frozen tagger layers, on purpose
        try:
            trainer.fit(objective, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
        except SystemExit:
            if trainer.interrupted and trainer.is_global_zero:
                update_manifest(run_dir, status="interrupted")
                raise TrainingInterrupted(run_dir, ckpts.saved_on_exception or ckpts.path("last")) from None
            raise
    seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return run_dir

    save_tensors(run_dir / "model.safetensors", objective.state_dict())
    previous = read_manifest(run_dir)
    train_seconds = previous.get("train_seconds", 0.0) * resuming + seconds
    epoch_seconds = previous.get("epoch_seconds", []) * resuming + [round(s, 3) for s in timer.epoch_seconds]
    facts = {
        "status": "complete",
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "train_seconds": round(train_seconds, 3),
        "epoch_seconds": epoch_seconds,
        "seconds_per_epoch": round(float(np.mean(epoch_seconds)), 4) if epoch_seconds else None,
        "train_images_per_s": round(timer.images_per_s, 2),
        "precision": precision,
        "best_val_loss": ckpts.best_score if np.isfinite(ckpts.best_score) else None,
        "best_epoch": ckpts.best_epoch,
        "world_size": trainer.world_size,
        **objective.describe(),
        **objective.finish(run_dir),
    }
    if snapshots is not None:
        snap = previous.get("snapshot_seconds", 0.0) * resuming + snapshots.seconds
        facts["snapshot_seconds"] = round(snap, 3)
        facts["snapshot_overhead"] = round(snap / max(train_seconds - snap, 1e-9), 4)
    update_manifest(run_dir, **facts)
    record_file_hashes(run_dir, ["model.safetensors", "config.yaml", SPLIT])
    return run_dir


def train_autoencoder(cfg: RunConfig, **kwargs) -> Path:
    """Train the denoising AE (``cfg.kind`` is set to "ae")."""
    return train(cfg.with_overrides({"kind": "ae"}), **kwargs)


def train_decoder(cfg: RunConfig, **kwargs) -> Path:
    """Train the AE decoder on a PCA/UMAP/... embedding (``cfg.embedding``)."""
    return train(cfg.with_overrides({"kind": "decoder"}), **kwargs)


def train_tagger(cfg: RunConfig, **kwargs) -> Path:
    """Train the direction tagger (``cfg.tagger``)."""
    return train(cfg.with_overrides({"kind": "tagger"}), **kwargs)
