"""Settings of ``aelens study``: the run settings every model shares (a nested :class:`~aelens.config.RunConfig`)
and the study's own (decoders, map method, movie fit, transfer sets). Read from study.yaml, flat shorthands included."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, _build, _check_tagger, check_fit_mode, validate
from ..errors import AelensError
from ..storage import read_yaml, write_yaml

# the demo's settings: small enough for about 3 minutes on 2 CPU cores in fp32 (measured: docs/performance.md), large
# enough that every table and figure of the study answers its question (32 px crops: the animal's axis and head
# stay clear). 30 epochs: at 8 the AE (620 training frames, 80 steps) reconstructed the clean frames worse than the
# noisy input itself (20.3 vs 21.3 dB); at 30 with batches of 32, to the ceiling, it beats it (AMD EPYC with
# AVX-512 BF16: docs/performance.md)
DEMO = {
    "n": 1000,
    "size": 32,
    "epochs": 30,
    "sweep_epochs": 5,
    "batch_size": 32,
    "patience": 0,
    "max_images": 1000,
    "umap_epochs": 200,
}

# every model of `aelens study` trains with these run settings unless study.yaml's `run:` section says otherwise
STUDY_RUN = {"train.epochs": 30, "train.progress": False}  # 30 = `aelens train`'s default, kept explicit here
# study.yaml's shorthands (also the flat keys of study.yaml files from before `run:`): each sets one run setting
STUDY_SHORTHANDS = {
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "latent_dim": "model.latent_dim",
    "seed": "seed",
    "umap_fit_max": "embedding.umap_fit_max",
    "target": "tagger.target",
    "augment": "tagger.augment",
    "snapshots_per_epoch": "snapshots.per_epoch",
    "split": "split.kind",
    "purge": "split.purge",
    "train_frames": "select.frames",
    "select": "select.method",
    "patience": "train.patience",
    "budget": "train.budget",
    "data": "data",
    "normalize": "data.normalize",
}


MAX_SEEDS = 10  # trainings per model: each costs as much as the first


def _study_run() -> RunConfig:
    tree = dataclasses.asdict(RunConfig())
    for dotted, value in STUDY_RUN.items():
        _set(tree, dotted, value)
    return _build(RunConfig, tree, "run")


def _set(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@dataclass(frozen=True)
class StudyConfig:
    """Settings of ``aelens study`` (YAML via ``--config``; unknown keys are an error).

    ``run``: the run settings every model shares (any field of a run's ``config.yaml``; the study sets each model's
    kind, and the decoders' embedding method and size). The keys of :data:`STUDY_SHORTHANDS` set single run fields
    (``epochs: 10`` is ``run: {train: {epochs: 10}}``)."""

    run: RunConfig = field(default_factory=_study_run)
    sweep_epochs: int | None = None  # tagger and unfreeze-sweep epochs (None: run.train.epochs)
    decoders: tuple[str, ...] = ("pca:16", "pca:2", "umap:16", "umap:2")  # METHOD:DIM embeddings for the decoder
    latent_method: str = "umap"
    evolution_fit: str = "last"  # fit mode of the AE's evolution movie
    max_images: int = 20000  # frames in latent maps and comparisons (the training movie: run.snapshots.max_images)
    transfer: tuple[str, ...] = ()  # datasets (new sessions) every model is also scored on, never trained on
    seeds: int = 1  # the AE and the tagger trained this many times (seed, seed + 1, ...): the spread over training

    # the run settings that the study's steps and its report read, by their shorthand names
    epochs = property(lambda self: self.run.train.epochs)
    latent_dim = property(lambda self: self.run.model.latent_dim)
    seed = property(lambda self: self.run.seed)
    target = property(lambda self: self.run.tagger.target)
    augment = property(lambda self: self.run.tagger.augment)
    split = property(lambda self: self.run.split.kind)
    train_frames = property(lambda self: self.run.select.frames)
    select = property(lambda self: self.run.select.method)
    patience = property(lambda self: self.run.train.patience)
    budget = property(lambda self: self.run.train.budget)
    data = property(lambda self: self.run.data)
    normalize = property(lambda self: self.run.data.normalize)

    def save(self, path: str | Path) -> None:
        write_yaml(path, dataclasses.asdict(self))

    def with_data(self, data, transfer: tuple[str, ...]) -> "StudyConfig":
        """A copy whose data path and transfer sets are ``data`` and ``transfer``."""
        run = dataclasses.replace(self.run, data=dataclasses.replace(self.run.data, path=data))
        return dataclasses.replace(self, run=run, transfer=transfer)


def _study_values(values: dict, overrides: dict, where: str) -> dict:
    """study.yaml's values with the shorthands and the command-line ``overrides`` moved into ``run``."""
    values = dict(values)
    run = values.pop("run", None) or {}
    if not isinstance(run, dict):
        raise AelensError(f"{where}: run: expected a mapping of run settings (as in a run's config.yaml)")
    flat: dict = {}
    for key in [k for k in values if k in STUDY_SHORTHANDS]:
        if _has(run, STUDY_SHORTHANDS[key]):
            raise AelensError(f"{where}: {key} and run.{STUDY_SHORTHANDS[key]} both given; keep one")
        _set(flat, STUDY_SHORTHANDS[key], values.pop(key))
    for key, value in overrides.items():  # the command line's options win over the file
        if value is not None:
            if key in STUDY_SHORTHANDS or key.startswith("run."):
                _set(flat, STUDY_SHORTHANDS.get(key, key[4:]), value)
            else:
                values[key] = value
    values["run"] = _merge(_merge(dataclasses.asdict(_study_run()), run), flat)
    return values


def _has(tree: dict, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def load_study_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> StudyConfig:
    values = (read_yaml(path) or {}) if path else {}
    where = str(path or "study options")
    if not isinstance(values, dict):
        raise AelensError(f"{path}: expected a mapping at the top level")
    try:
        cfg = _build(StudyConfig, _study_values(values, overrides or {}, where), "")
    except AelensError as exc:
        msg = str(exc)
        raise AelensError(msg if msg.startswith(where) else f"{where}: {msg}") from None
    validate(cfg.run, where)  # each message names the option as the command line spells it
    _check_tagger(cfg.run.tagger)
    if cfg.sweep_epochs is not None and cfg.sweep_epochs < 1:
        raise AelensError(f"sweep_epochs must be at least 1, got {cfg.sweep_epochs}")
    if not 1 <= cfg.seeds <= MAX_SEEDS:
        raise AelensError(f"{where}: seeds must be 1 to {MAX_SEEDS}, got {cfg.seeds}")
    if cfg.max_images < 20:
        raise AelensError(f"{where}: max_images must be at least 20 frames, got {cfg.max_images}")
    try:
        check_fit_mode(cfg.evolution_fit)
    except AelensError as exc:
        raise AelensError(
            f"{where}: evolution_fit: {str(exc).partition('; got ')[0].replace('--fit ', '')}; got {cfg.evolution_fit!r}"
        ) from None
    for spec in cfg.decoders:
        method, _, dim = spec.partition(":")
        if not dim.isdigit() or int(dim) < 1:
            raise AelensError(f"decoders: {spec!r} must be METHOD:DIM, e.g. pca:16")
    return cfg
