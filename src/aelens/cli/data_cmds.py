"""``aelens data synth`` and ``aelens data import``: make datasets."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Optional

import typer

from ..errors import AelensError
from ..importing.options import ImportOptions
from .common import check_out, data_app, echo, need


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

    check_out(out_dir)
    need(n, 2, "--n", "at least 2 frames")
    need(seed, 0, "--seed", "an integer from 0 to 2^32 - 1", 2**32 - 1)
    need(size, 24, "--size", "from 24 to 512 pixels", 512)
    need(animals, 1, "--animals", "at least 1")
    if not video and 2 * n * size * size > 8 * 2**30:  # images + clean frames, uint8
        raise AelensError(
            f"--n {n} --size {size}: {2 * n * size * size / 2**30:.0f} GiB of frames; at most 8 GiB "
            "(use fewer or smaller frames)"
        )

    if video:
        from ..synthetic.video import synthesize_video

        written = synthesize_video(out_dir, n=n, animals=animals, seed=seed, overwrite=overwrite)
        echo(
            f"wrote {n} frames of the whole arena with {animals} animal(s) to {out_dir}: "
            + ", ".join(p.name for p in written.values())
        )
        return

    from ..synthetic.arena import contact_sheet, synthesize, write_dataset

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


def parse_arena(text: str | None):
    if text is None:
        return None
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise AelensError(f"--arena: expected cx,cy,r in video pixels, got {text!r}") from None
    if len(parts) != 3:
        raise AelensError(f"--arena: expected cx,cy,r in video pixels, got {text!r}")
    return parts


def parse_offset(text: str) -> int | str:
    """``--frame-offset``: auto or a whole number of frames."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise AelensError(f"--frame-offset: expected auto or a whole number of frames, got {text!r}") from None


IMPORT_DEFAULTS = ImportOptions()  # the defaults of the options below (defined once, in ImportOptions)


# a Typer command declares its options in its signature: 70 lines of declarations, a 20-line body
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
        IMPORT_DEFAULTS.center,
        "--center",
        help="Node to centre on, or a,b for their mean; auto: a centre/thorax node, else the body-axis nodes' mean.",
    ),
    heading: str = typer.Option(
        IMPORT_DEFAULTS.heading,
        "--heading",
        help="Body axis BACK:FRONT, e.g. tail_base:nose or abdomen,thorax:head (groups are averaged); auto: tail/abdomen/thorax -> neck/head/nose/snout.",
    ),
    window: Optional[float] = typer.Option(
        None, "--window", help="Crop side in video pixels \\[4 x the session's median body length]."
    ),
    size: int = typer.Option(IMPORT_DEFAULTS.size, "--size", help="Crop side in output pixels (anti-aliased resize)."),
    channels: int = typer.Option(IMPORT_DEFAULTS.channels, "--channels", help="1 (grayscale) or 3 (keep colour)."),
    egocentric: bool = typer.Option(
        IMPORT_DEFAULTS.egocentric,
        "--egocentric",
        help="Rotate every crop so the heading points up. A direction tagger has nothing to learn from such crops: use them to ask what is left when heading is removed.",
    ),
    every: int = typer.Option(IMPORT_DEFAULTS.every, "--every", help="Keep every K-th frame."),
    start: int = typer.Option(IMPORT_DEFAULTS.start, "--start", help="First video frame."),
    stop: Optional[int] = typer.Option(None, "--stop", help="Stop before this video frame."),
    min_score: float = typer.Option(
        IMPORT_DEFAULTS.min_score,
        "--min-score",
        help="Skip poses whose centre or heading points score under this (DeepLabCut's usual cutoff: 0.6).",
    ),
    interpolate: int = typer.Option(
        IMPORT_DEFAULTS.interpolate,
        "--interpolate",
        help="Fill gaps of up to N frames linearly (never longer ones, never a missing track).",
    ),
    min_track_frames: int = typer.Option(
        IMPORT_DEFAULTS.min_track_frames, "--min-track-frames", help="Drop track fragments with fewer usable frames."
    ),
    arena: Optional[str] = typer.Option(
        None, "--arena", help="Arena cx,cy,r in video pixels \\[estimated from the tracks, stated]."
    ),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate \\[the video's]."),
    preview: bool = typer.Option(
        IMPORT_DEFAULTS.preview,
        "--preview",
        help="Also write preview.mp4 (first frames with box, centre, heading) and preview_crops.png.",
    ),
    frame_offset: str = typer.Option(
        str(IMPORT_DEFAULTS.frame_offset),
        "--frame-offset",
        help="Pose row F+N shows video frame F: N frames, or auto (the offset the pictures show, when they show "
        "one; import.json records the estimate either way).",
    ),
    jobs: int = typer.Option(1, "--jobs", help="Sessions imported in parallel processes."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier import in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar per session."),
):
    from ..data.loading import IMPORT_SUMMARY
    from ..importing.importer import import_video, summary_line
    from ..storage import read_json

    check_out(out)
    values = dict(
        locals(), arena=parse_arena(arena), frame_offset=parse_offset(frame_offset)
    )  # the options by name: each ImportOptions field is one
    opts = ImportOptions(**{f.name: values[f.name] for f in fields(ImportOptions)})
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
    info = read_json(done / IMPORT_SUMMARY)
    for s in info["sessions"]:
        echo(summary_line(s))
    for warning in info.get("warnings", []):
        echo(f"warning: {warning}")
    echo(
        f"wrote {info['crops']} crops to {done} ({info['seconds']:.1f} s); next: aelens study --data {done} --out study"
    )
