"""The ``aelens`` command line: parse options, build a config, call one library function, report.

Known problems (:class:`~aelens.errors.AelensError`) become one line on stderr and exit code 2 (a traceback with
``--debug``); Ctrl-C during training saves a checkpoint and exits with 130.
"""

from __future__ import annotations

import functools
import inspect
import logging
import traceback
from pathlib import Path
from typing import List, Optional

import typer

from .errors import AelensError, TrainingInterrupted
from .layout import RunDir  # file names of a run folder (cheap: no torch)

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


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")):
    STATE["debug"] = debug


def echo(msg: str = "") -> None:
    typer.echo(msg)


# --------------------------------------------------------------------------------------------- shared options

# (parameter name, type, flag, help, dotted config key). The help gets the default from the config field named by
# the key ([150]); a field whose default is None says in its help what happens then.
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
    ("epochs", Optional[int], "--epochs", "Training epochs.", "train.epochs"),
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
        "Epochs with snapshots: early (1-5, then every ~25% more epochs, and the last) | every.",
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


def config_default(key: str):
    """The default of a dotted ``RunConfig`` field (``train.epochs`` -> 150): the one place defaults are defined."""
    from .config import RunConfig

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
    return str(value)


def option_help(help_: str, key: str | None) -> str:
    """The option's help with its default from the config, e.g. "Training epochs. [150]"."""
    value = config_default(key) if key else None
    return help_ if value is None else f"{help_} [{_format_default(value)}]"


def study_help(help_: str, field: str) -> str:
    """A study option's help with its default from ``StudyConfig``."""
    from .config import StudyConfig

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
    from .config import RunConfig, load_config

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


def _out_dir(path: Path | None) -> Path | None:
    """``--out`` names a folder: an existing file there is a one-line error before any work (never replaced)."""
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise AelensError(f"{path}: exists and is not a folder; --out names a folder to write into")
    return path


def _run_dir(path: Path) -> Path:
    """A one-line error for a folder that is not a run, before the command imports torch (seconds)."""
    RunDir(path).manifest()
    return path


def _require_kind(path, kind: str, flag: str) -> None:
    """``flag`` must name a run of ``kind`` (a one-line error before any folder is made)."""
    found = RunDir(path).manifest().kind
    if found != kind:
        raise AelensError(
            f"{flag} {path}: a {found} run; resume it with aelens train {found}"
            if flag == "--resume"
            else f"{flag} {path}: a {found} run, not an {kind} run"
        )


def _train(kind: str, opts: dict, extra: dict | None = None) -> Path:
    # options and data are checked before torch and Lightning are imported: a mistake is reported at once
    if opts.get("resume"):
        cfg = build_config(kind, {"epochs": opts.get("epochs")}) if opts.get("epochs") else None
        _require_kind(opts["resume"], kind, "--resume")
        from .training import train

        run_dir = train(cfg, resume=opts["resume"])
    else:
        from .data.loading import load_dataset_from_config, resolve_data_paths

        cfg = build_config(kind, opts, extra)
        if cfg.data.path is None:
            raise AelensError("--data is required (an images file or a data directory), or a --config that names it")
        cfg = cfg.with_overrides({"data.path": resolve_data_paths(cfg.data.path)})
        dataset = load_dataset_from_config(cfg.data)
        from .training import train

        run_dir = train(cfg, out=opts.get("out"), overwrite=opts.get("overwrite", False), dataset=dataset)
    from .training import is_worker

    if not is_worker():  # DDP processes other than rank 0 re-run this command too: one summary
        _summary(run_dir)
    return run_dir


def _summary(run_dir: Path) -> None:
    from .storage import read_manifest

    m = read_manifest(run_dir)
    line = f"run: {run_dir}  epochs: {m.get('epochs')}  train time: {m.get('train_seconds', 0):.1f} s"
    if m.get("best_val_loss") is not None:
        line += f"  best val loss: {m['best_val_loss']:.5g} (epoch {m.get('best_epoch')})"
    echo(line)
    if "snapshot_overhead" in m:
        echo(f"latent snapshots: {m['snapshot_seconds']:.1f} s ({100 * m['snapshot_overhead']:.1f}% of training)")
    if "explained_variance" in m:
        echo(
            f"PCA: the {RunDir(run_dir).config().embedding.dim} components kept explain "
            f"{100 * m['explained_variance']:.1f}% of the training variance (cumulative curve: pca_variance.csv)"
        )
    echo(f"next: aelens test {run_dir}")


# --------------------------------------------------------------------------------------------- data


def _need(value, low, flag: str, expected: str, high=None) -> None:
    """A command-line number outside [low, high] is a one-line error naming the option."""
    if value is not None and (value < low or (high is not None and value > high)):
        raise AelensError(f"{flag} must be {expected}, got {value}")


@data_app.command("synth")
def data_synth(
    out_dir: Path = typer.Argument(..., help="Folder to write images.npz, clean.npz, metadata.csv/.npy into."),
    n: int = typer.Option(5000, "--n", help="Number of frames."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    size: int = typer.Option(50, "--size", help="Crop size in pixels (S x S)."),
    npy: bool = typer.Option(False, "--npy", help="Write images.npy (memory-mappable) instead of images.npz."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing files in OUT_DIR."),
    sheet: Optional[Path] = typer.Option(None, "--contact-sheet", help="Also draw 32 samples with their body angles."),
    video: bool = typer.Option(
        False,
        "--video",
        help="Write a full-frame arena video (video.mp4) with the true poses as SLEAP and DeepLabCut files instead of crops.",
    ),
    animals: int = typer.Option(1, "--animals", help="Animals in the video (with --video)."),
):
    """Render the synthetic arena: a rodent-like animal in a round arena with six ports, seen from above."""
    import time

    _out_dir(out_dir)
    _need(n, 2, "--n", "at least 2 frames")
    _need(seed, 0, "--seed", "an integer from 0 to 2^32 - 1", 2**32 - 1)
    _need(size, 24, "--size", "from 24 to 512 pixels", 512)
    _need(animals, 1, "--animals", "at least 1")
    if not video and 2 * n * size * size > 8 * 2**30:  # images + clean frames, uint8
        raise AelensError(
            f"--n {n} --size {size}: {2 * n * size * size / 2**30:.0f} GiB of frames; at most 8 GiB "
            "(use fewer or smaller frames)"
        )

    if video:
        from .data.synthetic_video import synthesize_video

        written = synthesize_video(out_dir, n=n, animals=animals, seed=seed, overwrite=overwrite)
        echo(
            f"wrote {n} frames of the whole arena with {animals} animal(s) to {out_dir}: "
            + ", ".join(p.name for p in written.values())
        )
        return

    from .data.synthetic import contact_sheet, synthesize, write_dataset

    t0 = time.perf_counter()
    data = synthesize(n, seed=seed, size=size)
    seconds = time.perf_counter() - t0
    write_dataset(out_dir, data, overwrite=overwrite, npy=npy)
    if sheet is not None:
        contact_sheet(data, sheet)
    echo(f"wrote {n} frames of {size}x{size} to {out_dir} ({n / seconds:.0f} frames/s)")


IMPORT_HELP = """Cut crops centred on each animal out of videos, using pose-tracking output; write a data directory.

One session per (video, poses) pair: give --video and --poses once per session, in the same order. A SLEAP file
that names its video needs no --video (--video overrides a moved path).

Examples, each after: aelens data import --out DIR

  SLEAP .slp           --poses fly.predictions.slp   (needs aelens\\[pose])

  SLEAP analysis .h5   --video fly.mp4 --poses fly.analysis.h5

  DeepLabCut .h5/.csv  --video m.mp4 --poses mDLC_resnet50.h5

  LightningPose .csv   --video m.mp4 --poses predictions.csv

  NWB with ndx-pose    --video m.mp4 --poses m.nwb   (needs pynwb, ndx-pose)

  plain CSV            --video m.mp4 --poses track.csv   (frame,x,y\\[,angle_deg]\\[,track]\\[,score])

  two sessions         --video a.mp4 --poses a.h5 --video b.mp4 --poses b.h5 --jobs 2

Positions are video pixels (x right, y down); angles are degrees counter-clockwise from +x with y up. Identity
swaps between tracks are the tracker's responsibility: aelens keeps the file's track ids as they are.
"""


def _parse_arena(text: str | None):
    if text is None:
        return None
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise AelensError(f"--arena: expected cx,cy,r in video pixels, got {text!r}") from None
    if len(parts) != 3:
        raise AelensError(f"--arena: expected cx,cy,r in video pixels, got {text!r}")
    return parts


@data_app.command("import", help=IMPORT_HELP)
def data_import(
    out: Path = typer.Option(..., "--out", help="Data directory to write (images.npy, metadata.csv, import.json)."),
    poses: list[Path] = typer.Option(
        ...,
        "--poses",
        help="Pose file: .slp, .h5 (SLEAP analysis or DeepLabCut), .csv (DeepLabCut, LightningPose or plain), .nwb.",
    ),
    video: Optional[list[Path]] = typer.Option(None, "--video", help="Video of the session (one per --poses)."),
    session: Optional[list[str]] = typer.Option(
        None, "--session", help="Session name (one per --poses) \\[the video's file stem]."
    ),
    center: str = typer.Option(
        "auto",
        "--center",
        help="Node to centre on, or a,b for their mean; auto: a centre/thorax node, else the body-axis nodes' mean.",
    ),
    heading: str = typer.Option(
        "auto",
        "--heading",
        help="Body axis BACK:FRONT, e.g. tail_base:nose or abdomen,thorax:head (groups are averaged); auto: tail/abdomen/thorax -> neck/head/nose/snout.",
    ),
    window: Optional[float] = typer.Option(
        None, "--window", help="Crop side in video pixels \\[4 x the session's median body length]."
    ),
    size: int = typer.Option(50, "--size", help="Crop side in output pixels (anti-aliased resize)."),
    channels: int = typer.Option(1, "--channels", help="1 (grayscale) or 3 (keep colour)."),
    egocentric: bool = typer.Option(
        False,
        "--egocentric",
        help="Rotate every crop so the heading points up. A direction tagger has nothing to learn from such crops: use them to ask what is left when heading is removed.",
    ),
    every: int = typer.Option(1, "--every", help="Keep every K-th frame."),
    start: int = typer.Option(0, "--start", help="First video frame."),
    stop: Optional[int] = typer.Option(None, "--stop", help="Stop before this video frame."),
    min_score: float = typer.Option(
        0.0,
        "--min-score",
        help="Skip poses whose centre or heading points score under this (DeepLabCut's usual cutoff: 0.6).",
    ),
    interpolate: int = typer.Option(
        0, "--interpolate", help="Fill gaps of up to N frames linearly (never longer ones, never a missing track)."
    ),
    min_track_frames: int = typer.Option(
        1, "--min-track-frames", help="Drop track fragments with fewer usable frames."
    ),
    arena: Optional[str] = typer.Option(
        None, "--arena", help="Arena cx,cy,r in video pixels \\[estimated from the tracks, stated]."
    ),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate \\[the video's]."),
    preview: bool = typer.Option(
        False,
        "--preview",
        help="Also write preview.mp4 (first frames with box, centre, heading) and preview_crops.png.",
    ),
    jobs: int = typer.Option(1, "--jobs", help="Sessions imported in parallel processes."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier import in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar per session."),
):
    from .data.importer import ImportOptions, import_video, summary_line
    from .storage import read_json

    opts = ImportOptions(
        center=center,
        heading=heading,
        window=window,
        size=size,
        channels=channels,
        egocentric=egocentric,
        every=every,
        start=start,
        stop=stop,
        min_score=min_score,
        interpolate=interpolate,
        min_track_frames=min_track_frames,
        arena=_parse_arena(arena),
        fps=fps,
        preview=preview,
    )
    done = import_video(
        video or None,
        poses,
        out,
        sessions=session or None,
        options=opts,
        jobs=jobs,
        overwrite=overwrite,
        progress=progress,
    )
    info = read_json(done / "import.json")
    for s in info["sessions"]:
        echo(summary_line(s))
    for warning in info.get("warnings", []):
        echo(f"warning: {warning}")
    echo(
        f"wrote {info['crops']} crops to {done} ({info['seconds']:.1f} s); next: aelens study --data {done} --out study"
    )


# --------------------------------------------------------------------------------------------- train


@train_app.command("ae")
@with_options(RUN_OPTIONS + TRAIN_OPTIONS)
def train_ae(opts):
    """Train the denoising convolutional autoencoder (16-D latent)."""
    _train("ae", opts)


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
    ("umap_n_jobs", Optional[int], "--umap-n-jobs", "UMAP threads (-1: all).", "embedding.umap_n_jobs"),
    (
        "umap_pca",
        Optional[int],
        "--umap-pca",
        "UMAP on this many principal components (0: raw pixels).",
        "embedding.umap_pca",
    ),
]


@train_app.command("decoder")
@with_options(RUN_OPTIONS + TRAIN_OPTIONS + DECODER_OPTIONS)
def train_decoder(opts):
    """Train the AE's decoder on a PCA / UMAP / ... embedding of the frames."""
    _train("decoder", opts, {key: opts[name] for name, _, _, _, key in DECODER_OPTIONS})


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


@train_app.command("tagger")
@with_options(RUN_OPTIONS + TRAIN_OPTIONS + TAGGER_OPTIONS)
def train_tagger(opts):
    """Train the direction tagger (the AE's encoder + a readout of the body angle)."""
    _train("tagger", opts, {key: opts[name] for name, _, _, _, key in TAGGER_OPTIONS})


@sweep_app.command("unfreeze")
@with_options(
    [o for o in RUN_OPTIONS if o[0] in ("config",)]
    + TRAIN_OPTIONS
    + [o for o in TAGGER_OPTIONS if o[0] not in ("unfreeze",)]
)
def sweep_unfreeze(
    out: Path = typer.Option(Path("unfreeze_sweep"), "--out", help="Folder for the sweep's runs and table."),
    opts=None,
):
    """Train the tagger from scratch and from the AE encoder with 0, 1, 2, ... all layers trainable; test each."""
    if not opts.get("init_from"):
        raise AelensError("--init-from AE_RUN_DIR is required: the AE whose encoder starts the sweep's runs")
    _out_dir(out)
    _require_kind(opts["init_from"], "ae", "--init-from")  # before the sweep folder exists
    from .sweep import unfreeze_sweep

    cfg = build_config("tagger", opts, {key: opts[name] for name, _, _, _, key in TAGGER_OPTIONS if name in opts})
    if cfg.data.path is None:
        raise AelensError("--data is required (an images file or a data directory)")
    res = unfreeze_sweep(cfg, opts["init_from"], out)
    echo(f"{'run':14s} {'trainable':24s} {'MAE deg':>8s} {'median':>7s} {'<15deg':>7s}")
    for r in res["rows"]:
        echo(
            f"{r['run']:14s} {r['trainable_layers']:24s} {r['angle_mae_deg']:8.2f} {r['angle_median_deg']:7.2f} {r['within_15deg']:7.2f}"
        )
    echo(f"circular-mean baseline: {res['circular_mean_mae_deg']:.1f} deg; table: {out / 'unfreeze_sweep.md'}")


# --------------------------------------------------------------------------------------------- test


@app.command("test")
def test(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset to score [the run's own: its test split]."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder [RUN_DIR/test]."),
):
    """Score a run on held-out frames beside simple baselines; write results.json and figures."""
    _run_dir(run_dir)  # before the import: a wrong path is reported at once
    from .evaluate import test_run

    res = test_run(run_dir, data=data, out=out)
    keys = [
        k
        for k in (
            "mse",
            "psnr",
            "ssim",
            "psnr_clean",
            "ssim_clean",
            "angle_mae_deg",
            "angle_median_deg",
            "within_15deg",
            "within_30deg",
            "mae",
            "r2",
        )
        if k in res
    ]
    echo(f"{res['kind']} run, {res['n']} frames ({res['frames']}): " + ", ".join(f"{k} {res[k]:.4g}" for k in keys))
    for name, scores in res.get("baselines", {}).items():
        shown = [k for k in keys if k in scores]
        source = f" (from the {scores['from']})" if "from" in scores else ""
        echo(f"  baseline {name}{source}: " + ", ".join(f"{k} {scores[k]:.4g}" for k in shown))
    echo(f"results: {Path(out) / RunDir.RESULTS if out else RunDir(run_dir).test_results}")


@app.command("compare-recon")
def compare_recon(
    run_dirs: list[Path] = typer.Argument(..., help="AE and decoder run directories."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset [the first run's own]."),
    out: Path = typer.Option(Path("recon_comparison"), "--out", help="Output folder."),
    color_by: str = typer.Option("body_angle_deg", "--color-by", help="Condition colouring the latent maps."),
):
    """Evaluate AE and decoder runs on the same test frames: one table, one figure."""
    _out_dir(out)
    for r in run_dirs:  # before the import: a wrong path is reported at once
        _run_dir(r)
    from .evaluate import compare_reconstructions

    res = compare_reconstructions(run_dirs, data, out, color_by)
    keys = [k for k in ("psnr", "ssim", "psnr_clean", "train_seconds", "seconds_per_epoch") if k in res["rows"][0]]
    echo(f"{res['n']} {res['frames']}")
    echo(f"{'model':10s} " + " ".join(f"{k:>17s}" for k in keys))
    for r in res["rows"]:
        echo(f"{r['model']:10s} " + " ".join(f"{(r[k] if r[k] is not None else float('nan')):17.4g}" for k in keys))
    echo(f"table: {out / 'recon_comparison.md'}  figure: {out / 'recon_comparison.png'}")


# --------------------------------------------------------------------------------------------- latent space


def _split_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@app.command("latent")
def latent(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset [the run's own]."),
    layer: str = typer.Option("fc1", "--layer", help="fc1 (the latent) or fc2 (the decoder's first layer)."),
    method: str = typer.Option("umap", "--method", help="umap | pca | tsne."),
    color_by: Optional[str] = typer.Option(None, "--color-by", help="Columns to colour by, comma-separated [all]."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder [RUN_DIR/latent]."),
    evolution: bool = typer.Option(False, "--evolution", help="Also render the latent's evolution over training."),
    fit: str = typer.Option("last", "--fit", help="Evolution map: last | first | every | aligned | reference:RUN_DIR."),
    max_images: int = typer.Option(20000, "--max-images", help="Frames in the map."),
    no_scores: bool = typer.Option(False, "--no-scores", help="Skip the decoding scores."),
):
    """Map the latent to 2-D, colour it by each condition, score how decodable each condition is; --evolution adds
    the movie of the latent over training."""
    _need(max_images, 20, "--max-images", "at least 20 frames")
    _out_dir(out)
    _run_dir(run_dir)  # before the import: a wrong path is reported at once
    from .analysis.latent import latent_analysis

    s = latent_analysis(
        run_dir, data, layer, method, _split_list(color_by), out, evolution, fit, max_images, not no_scores
    )
    folder = Path(out) if out else RunDir(run_dir).latent
    echo(
        f"{s['kind']} latent ({s['layer']}, {s['n']} frames): {s['method']} map in {s['map_seconds']:.1f} s, "
        f"trustworthiness {s['trustworthiness']:.3f}"
    )
    for r in s.get("encoding_scores", []):
        if r["decoder"] == "ridge":
            knn = next(x for x in s["encoding_scores"] if x["condition"] == r["condition"] and x["decoder"] == "knn")
            unit = "deg MAE" if r["metric"] == "mae_deg" else "R2"
            echo(
                f"  {r['condition']:24s} {unit:8s} ridge {r['score']:8.3f}  knn {knn['score']:8.3f}  (chance {r['chance']:.3f})"
            )
    if "evolution" in s:
        e = s["evolution"]
        echo(
            f"evolution: {e['frames']} frames ({e['fit']}), {e['total_seconds']:.1f} s -> {folder / 'evolution.gif'}, {folder / 'evolution.mp4'}"
        )
    echo(f"overview: {folder / 'overview.png'}")


@app.command("encode")
def encode(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset [the run's own]."),
    out: Path = typer.Option(..., "--out", help="Codes file to write (.npy)."),
    layer: str = typer.Option("fc1", "--layer", help="fc1 or fc2."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
):
    """Write the latent code of every frame (a compressed copy of the dataset, and the door to your own analyses)."""
    _run_dir(run_dir)  # before the import: a wrong path is reported at once
    from .export import encode_to_file

    r = encode_to_file(run_dir, out, data, layer, overwrite)
    line = f"wrote {r['n']} x {r['dim']} codes to {r['out']}: {r['code_bytes'] / 1e6:.2f} MB vs {r['image_bytes'] / 1e6:.2f} MB of frames ({r['compression']:.1f}x smaller)"
    echo(line + (f", reconstruction PSNR {r['psnr']:.2f} dB" if "psnr" in r else ""))


@app.command("decode")
def decode(
    run_dir: Path = typer.Argument(..., help="A run directory with a decoder (AE or decoder run)."),
    codes: Path = typer.Argument(..., help="Codes (.npy, N x D) from aelens encode."),
    out: Path = typer.Option(..., "--out", help="Frames file to write (.npz, key images)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
):
    """Turn latent codes back into frames."""
    _run_dir(run_dir)  # before the import: a wrong path is reported at once
    from .export import decode_to_file

    r = decode_to_file(run_dir, codes, out, overwrite)
    echo(f"wrote {r['n']} frames {tuple(r['shape'][1:])} {r['dtype']} to {r['out']}")


@app.command("compare")
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="Two or more run directories (same image shape and dataset)."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset [the first run's own]."),
    layer: str = typer.Option("fc1", "--layer", help="fc1 or fc2."),
    out: Path = typer.Option(Path("comparison"), "--out", help="Output folder."),
    max_images: int = typer.Option(10000, "--max-images", help="Frames compared."),
    color_by: Optional[str] = typer.Option(None, "--color-by", help="Conditions (rows of the figure) [all]."),
):
    """Compare the latents of several runs on the same frames: CKA, k-NN overlap, Procrustes, decoding, loop test."""
    _need(max_images, 20, "--max-images", "at least 20 frames")
    _out_dir(out)
    for r in run_dirs:  # before the import: a wrong path is reported at once
        _run_dir(r)
    from .analysis.compare import compare_runs

    res = compare_runs(run_dirs, data, layer, out, max_images, _split_list(color_by))
    for p in res["pairs"]:
        lo, hi = p["linear_cka_ci95"]
        echo(
            f"{p['a']} vs {p['b']}: linear CKA {p['linear_cka']:.3f} [{lo:.3f}, {hi:.3f}] (permutation 95% "
            f"{p['permutation_95']:.3f}), debiased {p['debiased_cka']:.3f}, mutual 10-NN {p['mutual_knn_10']:.3f}, "
            f"Procrustes {p['procrustes_distance']:.3f}"
        )
    for lab, lp in res["loop"].items():
        echo(f"loop test {lab}: |circular corr| {lp['circular_corr']:.3f} (permutation 95% {lp['permutation_95']:.3f})")
    echo(f"report: {out / 'comparison.md'}  figure: {out / 'comparison.png'}")


# --------------------------------------------------------------------------------------------- study


@app.command("study")
def study(
    data: Optional[List[str]] = typer.Option(
        None,
        "--data",
        metavar="PATH",
        help="Images file or data directory (with metadata for the tagger); repeat for several sessions [the config's data.path].",
    ),
    out: Path = typer.Option(..., "--out", help="Study folder (resumed when it exists)."),
    config: Optional[Path] = typer.Option(None, "--config", help="study.yaml with settings (see README)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help=study_help("Epochs for every model.", "epochs")),
    split: Optional[str] = typer.Option(
        None, "--split", help=study_help("auto | random | blocked | group:COLUMN.", "split")
    ),
    purge: Optional[int] = typer.Option(
        None, "--purge", help="Frames dropped at block boundaries [1 s of video, else 10]."
    ),
    transfer: Optional[List[str]] = typer.Option(
        None, "--transfer", metavar="PATH", help="A new session (dataset) every model is also scored on; repeatable."
    ),
    augment: Optional[str] = typer.Option(
        None,
        "--augment",
        help=study_help("The taggers' training augmentation (see train tagger --augment).", "augment"),
    ),
    latent_dim: Optional[int] = typer.Option(
        None, "--latent-dim", help=study_help("Latent size of the AE and the taggers.", "latent_dim")
    ),
    target: Optional[str] = typer.Option(None, "--target", help=study_help("The taggers' angle column.", "target")),
):
    """Run the whole pipeline: AE, PCA/UMAP decoders, tagger + unfreeze sweep, latent analysis, comparisons, report."""
    _out_dir(out)
    from .config import load_study_config
    from .study import run_study

    cfg = load_study_config(
        config,
        {
            "epochs": epochs,
            "split": split,
            "purge": purge,
            "augment": augment,
            "latent_dim": latent_dim,
            "target": target,
            "transfer": list(transfer) if transfer else None,
        },
    )
    if not data and cfg.data.path is None:
        raise AelensError(
            "--data is required (an images file or a data directory), or a --config whose data.path names it"
        )
    res = run_study(data, out, cfg, echo)
    _print_answers(res, out)


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo"), "--out", help="Folder for the synthetic data and the study."),
    n: Optional[int] = typer.Option(None, "--n", help="Synthetic frames [2000]."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs per model [10; 6 for the tagger sweep]."),
):
    """Synthetic arena data + a small study (measured times: README, Quickstart); prints the report's path."""
    import time

    _out_dir(out)
    from .study import run_demo

    _need(n, 100, "--n", "at least 100 frames")
    _need(epochs, 1, "--epochs", "at least 1")
    t0 = time.perf_counter()
    res = run_demo(out, n, epochs, echo)
    _print_answers(res, out)
    echo(f"demo finished in {time.perf_counter() - t0:.0f} s")


def _print_answers(res: dict, out: Path) -> None:
    echo("")
    for q, title in (
        ("q1", "What does the AE encode?"),
        ("q2", "Can PCA/UMAP replace the encoder?"),
        ("q3", "How does the objective shape the representation?"),
    ):
        echo(f"{title}\n  {res['answers'][q]}")
    echo(f"\nreport: {Path(out) / 'report.html'}")


# --------------------------------------------------------------------------------------------- bench


@app.command("bench")
def bench(
    out: Path = typer.Option(Path("."), "--out", help="Folder for bench.json."),
    quick: bool = typer.Option(False, "--quick", help="About 3 minutes on 2 CPU cores: fewer steps, smaller datasets."),
):
    """Measure speed beside the reference implementation's way of training, in one run; print ratios."""
    _out_dir(out)
    from .bench import run_bench

    res = run_bench(out, quick=quick, echo=echo)
    echo("")
    echo(f"{'figure':38s} {'aelens':>12s} {'reference':>12s} {'ratio':>7s}")
    for key, value in res.items():
        if isinstance(value, dict) and "ratio" in value and "aelens" in value:
            echo(f"{key:38s} {value['aelens']:>12.5g} {value['reference']:>12.5g} {value['ratio']:>6.2f}x")
    echo(f"bench.json: {Path(out) / 'bench.json'}")


# --------------------------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "numexpr", "numexpr.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        app(args=argv)  # standalone: --help and usage errors (exit 2) end in SystemExit
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except TrainingInterrupted as exc:
        typer.echo(f"aelens: {exc}", err=True)
        return 130
    except AelensError as exc:
        if STATE["debug"]:
            traceback.print_exc()
        typer.echo(f"aelens: error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("aelens: interrupted", err=True)
        return 130
    return 0
