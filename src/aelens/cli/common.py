"""What every command shares: the Typer apps, the option tables (defaults from the config fields), config building
and the cheap checks made before torch is imported."""

from __future__ import annotations

import functools
import inspect
import logging
import os
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import AelensError
from ..layout import RunDir  # file names of a run folder (cheap: no torch)

# rich_markup_mode=None: help texts are plain, so "[auto]" (a default) is shown, not read as a markup tag
app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="What do neural networks learn from top-view animal videos? Autoencoders, PCA/UMAP decoders and "
    "direction taggers, compared with figures and numbers.",
)
data_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, help="Make datasets.")
train_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, help="Train a model: ae, decoder or tagger.")
sweep_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, help="Train families of runs.")
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(sweep_app, name="sweep")

STATE = {"debug": False}
log = logging.getLogger("aelens")


def _show_version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"aelens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version (cite it) and exit."
    ),
):
    STATE["debug"] = debug


def echo(msg: str = "") -> None:
    typer.echo(msg)


# --------------------------------------------------------------------------------------------- shared options

# (parameter name, type, flag, help, dotted config key). The help gets the default from the config field named by
# the key (e.g. [30] for train.epochs); a field whose default is None says in its help what happens then.
TRAIN_OPTIONS = [
    (
        "data",
        Optional[List[str]],
        "--data",
        "Images file (.npy/.npz), data directory holding images.npz, or a .txt listing them; repeat for several sessions.",
        "data.path",
    ),
    ("key", Optional[str], "--key", "Array name inside a multi-array .npz.", "data.key"),
    (
        "max_pixel_value",
        Optional[float],
        "--max-pixel-value",
        "Divide float images by this (uint8 is always /255).",
        "data.max_pixel_value",
    ),
    (
        "metadata",
        Optional[str],
        "--metadata",
        "Conditions file (.csv/.npy); default: beside the images.",
        "data.metadata",
    ),
    (
        "normalize",
        Optional[str],
        "--normalize",
        "Intensities: none (as stored) | session (each session's pixels to a common range, from its own pixels).",
        "data.normalize",
    ),
    ("epochs", Optional[int], "--epochs", "Training epochs at most (early stopping may end sooner).", "train.epochs"),
    (
        "train_frames",
        Optional[str],
        "--train-frames",
        "Training frames chosen from the training blocks: a number, or all.",
        "select.frames",
    ),
    (
        "select",
        Optional[str],
        "--select",
        "How they are chosen: diverse (over looks, time, sessions, tracks) | stride (evenly in time) | random.",
        "select.method",
    ),
    (
        "val_frames",
        Optional[str],
        "--val-frames",
        "Validation frames, evenly spread in time: a number, or all.",
        "select.val_frames",
    ),
    (
        "patience",
        Optional[int],
        "--patience",
        "Stop after this many validations without a --min-delta improvement (0: never stop early) [auto: 4 for the "
        "AE and decoders; taggers train to --epochs].",
        "train.patience",
    ),
    (
        "min_delta",
        Optional[float],
        "--min-delta",
        "Relative improvement of the validation loss that counts (0.01: 1%).",
        "train.min_delta",
    ),
    ("budget", Optional[str], "--budget", "Wall-clock ceiling per run: 90s, 10m, 1h.", "train.budget"),
    ("batch_size", Optional[int], "--batch-size", "Batch size per device.", "train.batch_size"),
    ("lr", Optional[float], "--lr", "Adam learning rate.", "train.lr"),
    ("lr_schedule", Optional[str], "--lr-schedule", "cosine | none | step:EPOCHS:GAMMA.", "train.lr_schedule"),
    ("latent_dim", Optional[int], "--latent-dim", "Latent dimension.", "model.latent_dim"),
    ("val_fraction", Optional[float], "--val-fraction", "Validation fraction.", "split.val_fraction"),
    ("test_fraction", Optional[float], "--test-fraction", "Test fraction.", "split.test_fraction"),
    ("seed", Optional[int], "--seed", "Seed for the split, initialisation and shuffling.", "seed"),
    (
        "split",
        Optional[str],
        "--split",
        "auto | random | blocked | group:COLUMN (auto: blocked in time when the conditions have frame, time_s or session).",
        "split.kind",
    ),
    (
        "purge",
        Optional[int],
        "--purge",
        "Frames dropped at each block boundary of a blocked split [1 s of video, else 10].",
        "split.purge",
    ),
    (
        "checkpoint_every",
        Optional[int],
        "--checkpoint-every",
        "Keep a checkpoint every N epochs.",
        "train.checkpoint_every",
    ),
    ("val_every", Optional[int], "--val-every", "Validate every N epochs.", "train.val_every"),
    (
        "noise",
        Optional[str],
        "--noise",
        "Input corruption: none | gaussian:S | poisson:PEAK | saltpepper:P.",
        "noise",
    ),
    ("precision", Optional[str], "--precision", "auto | bf16 | fp32.", "train.precision"),
    ("threads", Optional[int], "--threads", "CPU threads (0: physical cores).", "train.threads"),
    ("accelerator", Optional[str], "--accelerator", "auto | cpu | gpu.", "train.accelerator"),
    ("devices", Optional[str], "--devices", "Devices (processes) per node, or auto.", "train.devices"),
    ("num_nodes", Optional[int], "--num-nodes", "Nodes.", "train.num_nodes"),
    ("strategy", Optional[str], "--strategy", "auto | ddp | ... (Lightning strategies).", "train.strategy"),
    (
        "deterministic",
        Optional[bool],
        "--deterministic/--no-deterministic",
        "Deterministic kernels.",
        "train.deterministic",
    ),
    (
        "snapshots",
        Optional[bool],
        "--snapshots/--no-snapshots",
        "Latent snapshots during training.",
        "snapshots.enabled",
    ),
    (
        "snapshots_per_epoch",
        Optional[int],
        "--snapshots-per-epoch",
        "Latent snapshots per epoch.",
        "snapshots.per_epoch",
    ),
    (
        "snapshot_max_images",
        Optional[int],
        "--snapshot-max-images",
        "Frames in the snapshot set.",
        "snapshots.max_images",
    ),
    ("snapshot_layers", Optional[str], "--snapshot-layers", "fc1 or fc1,fc2.", "snapshots.layers"),
    (
        "snapshot_schedule",
        Optional[str],
        "--snapshot-schedule",
        "Epochs with snapshots: early (1-5, then every ~25% more epochs, and the last; at most 40% of the epochs) | every.",
        "snapshots.schedule",
    ),
    ("progress", Optional[bool], "--progress/--no-progress", "Show a progress bar.", "train.progress"),
]
RUN_OPTIONS = [
    (
        "config",
        Optional[Path],
        "--config",
        "YAML config (e.g. a run's config.yaml); options given here override it.",
        None,
    ),
    ("out", Optional[Path], "--out", "Run directory [runs/KIND-TIMESTAMP].", None),
    ("overwrite", bool, "--overwrite", "Replace an existing run directory.", None),
    ("resume", Optional[Path], "--resume", "Continue this run directory from its last checkpoint.", None),
]


DECODER_OPTIONS = [
    ("embedding", Optional[str], "--embedding", "pca | umap | randproj | ica.", "embedding.method"),
    ("dim", Optional[int], "--dim", "Embedding dimension.", "embedding.dim"),
    (
        "umap_fit_max",
        Optional[int],
        "--umap-fit-max",
        "Fit UMAP on at most N training frames.",
        "embedding.umap_fit_max",
    ),
    ("umap_neighbors", Optional[int], "--umap-neighbors", "UMAP n_neighbors.", "embedding.umap_neighbors"),
    ("umap_min_dist", Optional[float], "--umap-min-dist", "UMAP min_dist.", "embedding.umap_min_dist"),
    (
        "umap_epochs",
        Optional[int],
        "--umap-epochs",
        "UMAP optimisation epochs [umap-learn's choice].",
        "embedding.umap_epochs",
    ),
    (
        "umap_n_jobs",
        Optional[int],
        "--umap-n-jobs",
        "UMAP threads (1: repeatable for a --seed; -1: every core, not repeatable).",
        "embedding.umap_n_jobs",
    ),
    (
        "umap_pca",
        Optional[int],
        "--umap-pca",
        "UMAP on this many principal components (0: raw pixels).",
        "embedding.umap_pca",
    ),
]


TAGGER_OPTIONS = [
    (
        "target",
        Optional[str],
        "--target",
        "Target column: an angle in degrees, or a scalar with --kind linear.",
        "tagger.target",
    ),
    (
        "target_vector",
        Optional[str],
        "--target-vector",
        "X,Y or X1,Y1,X2,Y2 columns: the direction from point 2 to point 1.",
        "tagger.target_vector",
    ),
    ("target_kind", Optional[str], "--kind", "angle | linear.", "tagger.kind"),
    (
        "init_from",
        Optional[str],
        "--init-from",
        "AE run directory whose encoder starts the tagger.",
        "tagger.init_from",
    ),
    (
        "unfreeze",
        Optional[str],
        "--unfreeze",
        "Trainable encoder layers from the top: 0, 1, 2, ... or all.",
        "tagger.unfreeze",
    ),
    (
        "augment",
        Optional[str],
        "--augment",
        "Training augmentation: none, all, or parts from rotate,flip,shift,scale,photometric.",
        "tagger.augment",
    ),
]


def config_default(key: str):
    """The default of a dotted ``RunConfig`` field (``train.epochs`` -> 30): the one place defaults are defined."""
    from ..config import RunConfig

    node = RunConfig()
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _format_default(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if value != "" else "none"


def option_help(help_: str, key: str | None) -> str:
    """The option's help with its default from the config, e.g. "Training epochs. [30]"."""
    value = config_default(key) if key else None
    return help_ if value is None else f"{help_} [{_format_default(value)}]"


def study_help(help_: str, field: str) -> str:
    """A study option's help with its default from ``StudyConfig``."""
    from ..study.config import StudyConfig

    return f"{help_} [{_format_default(getattr(StudyConfig(), field))}]"


def with_options(options):
    """Add ``options`` as keyword parameters of a Typer command; the command receives them in ``opts``."""

    def deco(fn):
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.name != "opts"]
        extra = []
        for name, tp, flag, help_, key in options:
            metavar = "PATH" if "List" in str(tp) else None  # repeatable paths, not "<list[str]>"
            opt = typer.Option(
                False if tp is bool else None, flag, help=option_help(help_, key), show_default=False, metavar=metavar
            )
            extra.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=tp))

        @functools.wraps(fn)
        def wrapper(**kwargs):
            opts = {name: kwargs.pop(name) for name, *_ in options}
            return fn(**kwargs, opts=opts)

        wrapper.__signature__ = sig.replace(parameters=own + extra)
        return wrapper

    return deco


def build_config(kind: str, opts: dict, extra: dict | None = None):
    from ..config import RunConfig, load_config

    base = load_config(opts["config"]) if opts.get("config") else RunConfig(kind=kind)
    overrides = {"kind": kind}
    for name, _, _, _, key in TRAIN_OPTIONS:
        if key is not None and opts.get(name) is not None:
            overrides[key] = opts[name]
    data = overrides.get("data.path")
    if isinstance(data, (list, tuple)):  # --data repeated: several sessions; once: one path
        overrides["data.path"] = (data[0] if len(data) == 1 else list(data)) if data else None
    overrides.update({k: v for k, v in (extra or {}).items() if v is not None})
    return base.with_overrides(overrides)


def check_out(path: Path | None, flag: str = "--out", folder: bool = True) -> Path | None:
    """An output path that cannot be written is a one-line error before any work: an existing file where a folder
    goes (never replaced), a file above it, a name too long for the file system, a symbolic-link loop."""
    if path is None:
        return None
    path = Path(path)
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise AelensError(
                f"{flag} {str(path)[:60]}...: the name {part[:24]}... is {len(os.fsencode(part))} bytes; file systems "
                f"allow {NAME_MAX}"
            )
    if len(os.fsencode(str(path.absolute()))) > PATH_MAX:
        raise AelensError(f"{flag} {str(path)[:60]}...: the path is over {PATH_MAX} bytes long")
    try:
        path.resolve()
    except (OSError, RuntimeError):
        raise AelensError(f"{flag} {path}: a symbolic-link loop; name a real folder") from None
    if path.is_symlink() and not path.exists():
        raise AelensError(f"{flag} {path}: a symbolic link to nothing ({os.readlink(path)}); name a real folder")
    if folder and path.exists() and not path.is_dir():
        raise AelensError(f"{path}: exists and is not a folder; {flag} names a folder to write into")
    for above in path.absolute().parents:
        if above.exists():
            if not above.is_dir():
                raise AelensError(f"{flag} {path}: {above} is a file, not a folder")
            break
    return path


NAME_MAX = 255  # bytes in one file name (ext4, XFS, APFS, NTFS)
PATH_MAX = 4000  # bytes in a whole path (Linux allows 4096)


def check_run(path: Path) -> Path:
    """A one-line error for a folder that is not a run, before the command imports torch (seconds)."""
    RunDir(path).manifest()
    return path


def require_kind(path, kind: str, flag: str) -> None:
    """``flag`` must name a run of ``kind`` (a one-line error before any folder is made)."""
    found = RunDir(path).manifest().kind
    if found != kind:
        raise AelensError(
            f"{flag} {path}: {_a(found)} run; resume it with aelens train {found}"
            if flag == "--resume"
            else f"{flag} {path}: {_a(found)} run, not {_a(kind)} run"
        )


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def need(value, low, flag: str, expected: str, high=None) -> None:
    """A command-line number outside [low, high] is a one-line error naming the option."""
    if value is not None and (value < low or (high is not None and value > high)):
        raise AelensError(f"{flag} must be {expected}, got {value}")


def split_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None
