"""Run configuration: frozen dataclasses with their defaults (and the reason for each), YAML in and out.

The resolved config is saved as ``RUN_DIR/config.yaml``; ``aelens train ... --config RUN_DIR/config.yaml`` repeats the
run. Unknown keys are an error, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from .errors import AelensError
from .storage import read_yaml, write_yaml

KINDS = ("ae", "decoder", "tagger")

# ------------------------------------------------------------- options that are small languages
# ``--augment`` and ``--noise`` are parsed and checked here, so that the config validates them and the data
# layer acts on them from one grammar.

AUGMENT_PARTS = ("rotate", "flip", "shift", "scale", "photometric")
# Legacy `augment: true` (runs made before the parts existed) meant rotations and flips.
LEGACY_AUGMENT = "rotate,flip"


def parse_augment(spec: str | bool) -> tuple[str, ...]:
    """``'rotate,flip'`` -> ('rotate', 'flip') in canonical order; ``none``/``false`` -> (); ``all`` -> every part."""
    if isinstance(spec, bool):
        spec = LEGACY_AUGMENT if spec else "none"
    text = str(spec).strip().lower()
    if text in ("", "none", "false", "off", "no"):
        return ()
    if text in ("true", "on", "yes"):
        text = LEGACY_AUGMENT
    if text == "all":
        return AUGMENT_PARTS
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in parts if p not in AUGMENT_PARTS]
    if unknown or not parts:
        raise AelensError(
            f"--augment must be none, all or a comma-separated list of {', '.join(AUGMENT_PARTS)}; got {str(spec)!r}"
        )
    return tuple(p for p in AUGMENT_PARTS if p in parts)


def format_augment(parts: tuple[str, ...]) -> str:
    return ",".join(parts) if parts else "none"


# name -> what its number means (the functions live with the batches: ``data.batches.NOISES``)
NOISE_KINDS: dict[str, str] = {
    "gaussian": "standard deviation in pixel units (0..1), e.g. gaussian:0.1",
    "poisson": "photons at full brightness, e.g. poisson:20",
    "saltpepper": "fraction of pixels set to 0 or 1, e.g. saltpepper:0.05",
}


def parse_noise_spec(spec: str | None) -> tuple[str, float] | None:
    """'none' -> None; 'gaussian:0.1' -> ('gaussian', 0.1). Unknown names or bad parameters are an AelensError."""
    if spec in ("none", "", None):
        return None
    name, _, param = spec.partition(":")
    if name not in NOISE_KINDS:
        raise AelensError(
            f"--noise: unknown noise {spec!r}; expected none or one of {', '.join(f'{k}:X' for k in NOISE_KINDS)}"
        )
    meaning = NOISE_KINDS[name]
    try:
        value = float(param)
    except ValueError:
        raise AelensError(f"--noise: {spec!r} needs a number after '{name}:' ({meaning})") from None
    if not (value > 0 and math.isfinite(value)) or (name == "saltpepper" and value > 1):
        raise AelensError(f"--noise: {spec!r} is out of range ({meaning})")
    return name, value


@dataclass(frozen=True)
class DataConfig:
    # an images file (.npy/.npz), a data directory holding images.npz, a .txt file listing such paths, or a list of
    # them: several sessions read as one dataset with a `session` column
    path: str | tuple[str, ...] | None = None
    key: str | None = None  # array name inside an .npz with several arrays
    max_pixel_value: float | None = None  # divide float images by this; uint8 images are always divided by 255
    metadata: str | None = None  # conditions file; default: metadata.csv / metadata.npy beside the images
    conditions: dict[int, str] = field(default_factory=dict)  # names of .npy metadata columns: {7: body_angle_deg}
    angle_columns: tuple[str, ...] = ()  # columns in degrees besides those named *angle* or *_deg
    # none | session: each session's pixels mapped to a common range from its own pixels (data/normalize.py)
    normalize: str = "none"


@dataclass(frozen=True)
class SplitConfig:
    val_fraction: float = 0.2  # the reference held out 20% for validation
    test_fraction: float = 0.1  # never seen in training; `aelens test` scores these
    # video frames resemble their neighbours: auto = blocked in time within sessions when the conditions have a
    # frame, time_s or session column (random otherwise); random | blocked | group:COLUMN (hold out whole groups)
    kind: str = "auto"
    purge: int | None = None  # frames dropped at block boundaries; None: 1 s of video when known, else 10


@dataclass(frozen=True)
class SelectConfig:
    # training frames per run, chosen from the training blocks: consecutive frames are near copies, so a budget spread
    # over what the crops look like answers as all frames do at a fraction of the cost (docs/guide/scale.md);
    # 0 (or "all"): every training frame
    frames: int = field(default=3000, metadata={"words": {"all": 0}, "flag": "--train-frames"})
    method: str = "diverse"  # diverse (over looks, time, sessions, tracks) | stride (evenly in time) | random
    # validation on a fixed subset of the validation blocks, evenly spread in time (early stopping reads its loss);
    # 0 (or "all"): every validation frame
    val_frames: int = field(default=2000, metadata={"words": {"all": 0}, "flag": "--val-frames"})


@dataclass(frozen=True)
class ModelConfig:
    latent_dim: int = 16  # the reference's bottleneck; small enough to draw, large enough to rebuild the frame


@dataclass(frozen=True)
class TrainConfig:
    # 30, as in the study: taggers trained for 20 / 30 / 60 / 150 epochs transferred to a new session best at 30
    # (docs/results.md, "How many epochs"; 150, the reference's length, was off by 25 deg where 30 was off by 7.5)
    epochs: int = 30  # the ceiling: early stopping (patience) usually ends a run sooner
    max_steps: int = -1  # stop after this many optimiser steps (-1: all epochs); for benchmarks and quick checks
    # stop when the validation loss has not improved by min_delta (relative: 0.01 = 1%) for `patience` validations
    # in a row (0: never stop early; None: AUTO_PATIENCE by objective). 4 at 1%: the shortest patience that rode out
    # the flat epochs between the AE's improvement steps on the synthetic arena; a tagger's validation loss is too
    # noisy to read a plateau from (docs/guide/scale.md, "When a run stops")
    patience: int | None = None
    min_delta: float = 0.01
    budget: str = ""  # wall-clock ceiling per run, e.g. 90s, 10m, 1h ("": none); the run stops after the epoch
    batch_size: int = 64  # per device; with DDP the global batch is batch_size x devices x nodes
    lr: float = 1e-3  # Adam's usual default; not scaled with the number of devices (docs/guide/scale.md)
    lr_schedule: str = "cosine"  # cosine to lr/100 over the run; "step:15:0.1" is the reference's StepLR(15)
    val_every: int = 1  # validation (and the image grid) every N epochs
    checkpoint_every: int = 5  # keep epoch checkpoints every N epochs, besides last and best
    precision: str = "auto"  # auto: bf16 autocast where the CPU/GPU has fast bf16, else fp32
    channels_last: bool = True  # oneDNN's fast layout for convolutions
    threads: int = 0  # 0: one per physical core
    accelerator: str = "auto"
    devices: str = "1"  # an int, or "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # "ddp" to train on several processes / GPUs / nodes
    deterministic: bool = False  # deterministic kernels (resume tests); a little slower
    log_every: int = 25  # steps between logged losses (each log is a host sync)
    progress: bool = True


@dataclass(frozen=True)
class SnapshotConfig:
    enabled: bool = True  # latent snapshots for the evolution movie; off for decoder runs (no encoder)
    per_epoch: int = 1  # the reference took 3 per epoch
    # which epochs: "early" = each of the first 5, then every ~25% more epochs, and the last (the latent changes
    # most early on), thinned to at most 40% of the epochs in short runs (5 of 12 epochs, 10 of 30, 21 of 150);
    # "every" = each epoch
    schedule: str = "early"
    # analysis set of the snapshots: up to this many frames, chosen once and stored. 1,500 points show the movie's
    # structure and score the conditions over training; 2,000 cost 10-11% of a 12-15 epoch tagger run (docs/performance.md)
    max_images: int = 1500
    layers: tuple[str, ...] = ("fc1",)  # fc1 = the latent; fc2 = the decoder's first layer (AE only)


@dataclass(frozen=True)
class EmbeddingConfig:
    method: str = "pca"  # a registered reducer (reducers.REDUCERS): pca, umap, randproj, ica
    dim: int = 16
    umap_neighbors: int = 15  # umap-learn's default
    umap_min_dist: float = 0.1  # umap-learn's default
    umap_fit_max: int = 20000  # fit UMAP on at most this many training images, transform the rest
    umap_epochs: int | None = None  # None: umap-learn chooses (200 for large N, 500 for small)
    umap_low_memory: bool = True
    umap_n_jobs: int = 1  # 1: seeded, the same fit for the same seed; -1: every core, not repeatable
    umap_pca: int = 50  # UMAP on the first 50 principal components of the frames (0: on the raw pixels)


@dataclass(frozen=True)
class TaggerConfig:
    target: str = "body_angle_deg"  # an angle column in degrees, or a scalar column with kind=linear
    target_vector: tuple[str, ...] = ()  # X,Y or X1,Y1,X2,Y2 (direction from point 2 to point 1)
    kind: str = "angle"  # angle: predict (cos, sin); linear: regress a standardised scalar
    init_from: str | None = None  # an AE run whose encoder starts the tagger
    unfreeze: str = "all"  # trainable layers from the top: 0 (linear probe), 1 (fc1), 2 (+conv3), ... or all
    # training augmentation: none, all or parts rotate,flip,shift,scale,photometric (data/augment.py). `all` is the
    # default from the table in docs/results.md: a tagger trained on one fly session went from 83 deg to 7 deg on the other
    augment: str = "all"


@dataclass(frozen=True)
class RunConfig:
    kind: str = "ae"  # ae | decoder | tagger
    seed: int = 42
    noise: str = "none"  # explicit input corruption for denoising: gaussian:0.1, poisson:20, saltpepper:0.05
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    tagger: TaggerConfig = field(default_factory=TaggerConfig)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        if self.kind != "decoder":
            out.pop("embedding")
        if self.kind != "tagger":
            out.pop("tagger")
        return out

    def save(self, path: str | Path) -> None:
        write_yaml(path, self.to_dict())

    def with_overrides(self, overrides: dict[str, Any]) -> "RunConfig":
        """Return a copy with dotted keys replaced, e.g. ``{"train.epochs": 20}``; ``None`` values are skipped."""
        tree = self.to_dict()
        for dotted, value in overrides.items():
            if value is None:
                continue
            node = tree
            *parents, leaf = dotted.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        return from_dict(tree, "options")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if isinstance(value, (list, tuple)):  # str | tuple[str, ...]: a list picks the tuple
            inner = [a for a in inner if typing.get_origin(a) is tuple] or inner
        return _coerce(value, inner[0], where)
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise AelensError(f"{where}: expected a mapping, got {value!r}")
        return _build(tp, value, where)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise AelensError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise AelensError(f"{where}: expected a mapping like {{7: body_angle_deg}}, got {value!r}")
        return {_coerce(k, args[0], f"{where} key"): _coerce(v, args[1], f"{where}[{k}]") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise AelensError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float):
        what = "an integer" if tp is int else "a number"
        accepted = (int, str) if tp is int else (int, float, str)  # 2.5 is not an integer; "3" from the CLI is
        try:
            if isinstance(value, bool) or not isinstance(value, accepted):
                raise ValueError
            return tp(value)
        except ValueError:
            raise AelensError(f"{where}: expected {what}, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise AelensError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _word(value: Any, meta) -> Any:
    """A field's words for numbers (``frames: all`` -> 0); other text must be a number (else the flag's error)."""
    words = meta.get("words")
    if not words or not isinstance(value, str):
        return value
    if value in words:
        return words[value]
    if not value.strip().lstrip("-").isdigit():
        _bad(meta["flag"], f"a number of frames or {' or '.join(words)}", value)
    return value


def _build(cls: type, values: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise AelensError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(known))}")
    meta = {f.name: f.metadata for f in fields(cls)}
    values = {k: _word(v, meta[k]) for k, v in values.items()}  # e.g. frames: "all" -> 0
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in values.items()}
    return cls(**kwargs)


# fields that older runs wrote and that no longer exist: dropped when such a config.yaml is read
RETIRED = {
    "train": ("compile",)
}  # train.compile: never wired up (torch.compile measured slower on CPU: docs/performance.md)


def from_dict(values: dict, source: str = "config") -> RunConfig:
    if not isinstance(values, dict):
        raise AelensError(f"{source}: expected a mapping at the top level")
    for section, keys in RETIRED.items():
        if isinstance(values.get(section), dict):
            values = {**values, section: {k: v for k, v in values[section].items() if k not in keys}}
    cfg = _build(RunConfig, values, "")
    validate(cfg, source)
    return cfg


def load_config(path: str | Path) -> RunConfig:
    values = read_yaml(path) or {}
    try:
        return from_dict(values, str(path))
    except AelensError as exc:
        msg = str(exc)
        raise AelensError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None


SNAPSHOT_SCHEDULES = ("early", "every")


def _bad(opt: str, expected: str, got: Any) -> None:
    raise AelensError(f"{opt} must be {expected}, got {got!r}")


def _check_split(s: SplitConfig) -> None:
    if not 0.0 < s.val_fraction < 1.0:
        _bad("--val-fraction", "in (0, 1)", s.val_fraction)
    if not 0.0 <= s.test_fraction < 1.0:
        _bad("--test-fraction", "in [0, 1)", s.test_fraction)
    if s.val_fraction + s.test_fraction >= 1.0:
        _bad("--val-fraction + --test-fraction", "below 1", s.val_fraction + s.test_fraction)
    if s.kind not in ("auto", "random", "blocked") and not (s.kind.startswith("group:") and len(s.kind) > 6):
        _bad("--split", "auto, random, blocked or group:COLUMN", s.kind)
    if s.purge is not None and s.purge < 0:
        _bad("--purge", "0 or more frames", s.purge)


def _check_train(t: TrainConfig) -> None:
    if t.epochs < 1:
        _bad("--epochs", "at least 1", t.epochs)
    if t.batch_size < 1:
        _bad("--batch-size", "at least 1", t.batch_size)
    if not (t.lr > 0 and math.isfinite(t.lr)) or t.lr > 10:
        _bad("--lr", "a positive number up to 10", t.lr)
    if t.threads < 0:
        _bad("--threads", "0 (one per physical core) or more", t.threads)
    if t.accelerator not in ("auto", "cpu", "gpu", "cuda", "mps"):
        _bad("--accelerator", "auto, cpu, gpu, cuda or mps", t.accelerator)
    if t.strategy not in ("auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "fsdp", "deepspeed"):
        _bad("--strategy", "auto or ddp (ddp_spawn, fsdp and deepspeed are passed to Lightning)", t.strategy)
    if t.num_nodes < 1:
        _bad("--num-nodes", "at least 1", t.num_nodes)
    if not (t.devices == "auto" or (t.devices.isdigit() and int(t.devices) >= 1)):
        _bad("--devices", "a number of devices (1, 2, ...) or auto", t.devices)
    if t.max_steps != -1 and t.max_steps < 1:
        _bad("--max-steps", "-1 (every epoch) or at least 1 step", t.max_steps)
    if t.val_every < 1:
        _bad("--val-every", "at least 1", t.val_every)
    if t.checkpoint_every < 1:
        _bad("--checkpoint-every", "at least 1", t.checkpoint_every)
    if t.precision not in ("auto", "bf16", "fp32"):
        _bad("--precision", "auto, bf16 or fp32", t.precision)
    if t.patience is not None and t.patience < 0:
        _bad("--patience", "0 (never stop early) or more validations", t.patience)
    if not (0.0 <= t.min_delta < 1.0):
        _bad("--min-delta", "a relative improvement in [0, 1), e.g. 0.01 for 1%", t.min_delta)
    parse_budget(t.budget)
    parse_schedule(t.lr_schedule)


# the patience of each objective when train.patience is None (auto). The AE's and decoders' validation loss falls in
# steps with flat epochs between them (4 validations ride those out); a tagger's (1 - cos over a few held-out blocks)
# jumps by 2x between epochs while it still improves: a mouse tagger stopped at epoch 7 at 23 deg, trained to its 30
# epochs 8.9 deg (docs/guide/scale.md). Taggers are cheap to train; they train to the ceiling.
AUTO_PATIENCE = {"ae": 4, "decoder": 4, "tagger": 0}


def effective_patience(cfg: "RunConfig") -> int:
    """The patience a run uses: the configured one, or its objective's (AUTO_PATIENCE) when that is None."""
    p = cfg.train.patience
    return AUTO_PATIENCE.get(cfg.kind, 4) if p is None else p


SELECT_METHODS = ("diverse", "stride", "random")  # how training frames are chosen (data.selection)


def _check_select(se: SelectConfig) -> None:
    if se.frames < 0:
        _bad("--train-frames", "a number of frames or all", se.frames)
    if se.method not in SELECT_METHODS:
        _bad("--select", "diverse, stride or random", se.method)
    if se.val_frames < 0:
        _bad("--val-frames", "a number of frames or all", se.val_frames)


def parse_budget(text: str) -> float | None:
    """'90s' / '10m' / '1.5h' / '' -> seconds (None for no budget)."""
    if not text:
        return None
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        value = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        _bad("--budget", "a positive time such as 90s, 10m or 1h", text)
    return value


def _check_snapshots(sn: SnapshotConfig) -> None:
    if sn.per_epoch < 1:
        _bad("--snapshots-per-epoch", "at least 1", sn.per_epoch)
    if sn.schedule not in SNAPSHOT_SCHEDULES:
        _bad("--snapshot-schedule", " or ".join(SNAPSHOT_SCHEDULES), sn.schedule)
    if sn.max_images < 2:
        _bad("--snapshot-max-images", "at least 2", sn.max_images)
    for layer in sn.layers:
        if layer not in ("fc1", "fc2"):
            _bad("snapshots.layers", "fc1 or fc2", layer)


def _check_embedding(e: EmbeddingConfig) -> None:
    if e.dim < 1:
        _bad("--dim", "at least 1", e.dim)
    if e.method != "umap":  # the UMAP settings mean nothing to the other reducers
        return
    if e.umap_neighbors < 2:
        _bad("--umap-neighbors", "at least 2", e.umap_neighbors)
    if e.umap_pca < 0:
        _bad("--umap-pca", "0 (raw pixels) or more", e.umap_pca)
    if not (0.0 <= e.umap_min_dist and math.isfinite(e.umap_min_dist)):
        _bad("--umap-min-dist", "0 or more", e.umap_min_dist)
    if e.umap_fit_max < max(e.dim + 2, e.umap_neighbors + 1):
        _bad(
            "--umap-fit-max",
            f"at least {max(e.dim + 2, e.umap_neighbors + 1)} frames (dim + 2 and neighbors + 1)",
            e.umap_fit_max,
        )


def _check_tagger(tg: TaggerConfig) -> None:
    if tg.kind not in ("angle", "linear"):
        _bad("--kind", "angle or linear", tg.kind)
    if tg.target_vector and len(tg.target_vector) not in (2, 4):
        _bad("--target-vector", "2 columns (X,Y) or 4 (X1,Y1,X2,Y2)", ",".join(tg.target_vector))
    parse_augment(tg.augment)
    if tg.unfreeze != "all" and not (tg.unfreeze.isdigit()):
        _bad("--unfreeze", "a number of layers (0, 1, 2, ...) or 'all'", tg.unfreeze)


def validate(cfg: RunConfig, source: str = "config") -> None:
    """Range checks that need no data. Each message names the option as the CLI spells it."""
    if cfg.kind not in KINDS:
        _bad("kind", f"one of {', '.join(KINDS)}", cfg.kind)
    if not 0 <= cfg.seed < 2**32:
        _bad("--seed", "an integer from 0 to 2^32 - 1", cfg.seed)
    mpv = cfg.data.max_pixel_value
    if mpv is not None and not (math.isfinite(mpv) and mpv > 0):
        _bad("--max-pixel-value", "a positive number (the value of a white pixel)", mpv)
    if cfg.data.normalize not in NORMALIZE:
        _bad("--normalize", "none or session", cfg.data.normalize)
    _check_split(cfg.split)
    _check_select(cfg.select)
    _check_train(cfg.train)
    if cfg.model.latent_dim < 1:
        _bad("--latent-dim", "at least 1", cfg.model.latent_dim)
    parse_noise_spec(cfg.noise)
    _check_snapshots(cfg.snapshots)
    if cfg.kind == "decoder":
        _check_embedding(cfg.embedding)
    if cfg.kind == "tagger":
        _check_tagger(cfg.tagger)


NORMALIZE = ("none", "session")  # data.normalize: how frames' intensities are mapped before a model sees them
FIT_MODES = ("last", "first", "every", "aligned", "reference")  # how the evolution movie's map is fitted


def check_fit_mode(fit: str) -> None:
    """``--fit``: last, first, every, aligned or reference:RUN_DIR (a one-line error otherwise)."""
    mode, _, ref = fit.partition(":")
    if mode not in FIT_MODES or (mode == "reference") != bool(ref):
        raise AelensError(f"--fit must be one of last, first, every, aligned, reference:RUN_DIR; got {fit!r}")


def parse_schedule(spec: str) -> tuple[str, tuple[float, ...]]:
    """'cosine' | 'none' | 'step:STEP_EPOCHS:GAMMA' -> (name, params)."""
    name, *params = spec.split(":")
    try:
        values = tuple(float(p) for p in params)
    except ValueError:
        values = None
    if name in ("cosine", "none") and values == ():
        return name, ()
    if name == "step" and values is not None and len(values) == 2 and values[0] >= 1 and 0 < values[1] <= 1:
        return name, values
    raise AelensError(f"--lr-schedule must be cosine, none or step:EPOCHS:GAMMA (e.g. step:15:0.1), got {spec!r}")
