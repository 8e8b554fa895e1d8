"""``aelens data import``: videos + pose tracking -> an aelens data directory of crops and conditions.

Each (video, poses) pair is one session. The video is streamed once, in order; for every selected frame and every
track whose centre and heading nodes are tracked, a square window (in video pixels) centred on the animal is resized
to ``size`` x ``size`` with anti-aliasing and appended to a growing ``images.npy``, so memory stays flat however long
the video. Rows of ``metadata.csv`` line up with the crops one to one. Nothing is written to ``out`` unless the whole
import succeeds (the output folder is built beside it and renamed into place).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data.loading import IMPORT_SUMMARY
from ..errors import AelensError
from ..layout import safe_name
from ..storage import NpyAppender, atomic_dir, sha256_file, write_csv, write_json
from . import kinematics as kin
from . import tracking_check as tc
from .crops import Preview, count_frames, crop
from .heading_check import agreement_warnings, heading_agreement, heading_reversals, image_shape, reversal_warnings
from .options import WINDOW_BODY_LENGTHS, ImportOptions, Session
from .plan import Plan, condition_rows, plan_session, resolve_video
from .poses import read_poses
from .video import probe, stream_frames

__all__ = ["COLUMNS", "ImportOptions", "Session", "SessionResult", "crop", "crop_mismatches", "import_video"]

SMOOTH_S = 0.2  # speed smoothing window (s): removes tracking jitter, keeps a stride
COLUMNS = [
    "session",
    "track",
    "frame",
    "time_s",
    "x",
    "y",
    "body_angle_deg",
    "head_angle_deg",
    "speed",
    "speed_bl_s",
    "angular_speed_deg_s",
    "dist_from_center",
    "location_polar_deg",
    "body_length_px",
    "pose_score",
    "pad_fraction",
    "interpolated",
]


@dataclass
class SessionResult:
    name: str
    rows: dict[str, np.ndarray]
    summary: dict = field(default_factory=dict)
    shapes: tuple | None = None  # image_shape of each crop (axis, elongation, side, shift, contrast); None: egocentric


# --------------------------------------------------------------------------------------------- one session


def import_session(s: Session, opts: ImportOptions, part: Path, progress: bool = True) -> SessionResult:
    """Plan, stream and crop one session into ``part`` (images.npy); returns its condition columns and summary.
    With ``frame_offset="auto"``, a session whose pictures show an offset is imported again with it applied."""
    if opts.frame_offset != "auto":
        return _import_session(s, opts, part, progress)
    first = _import_session(s, dataclasses.replace(opts, frame_offset=0), part, progress)
    found = first.summary["tracking_checks"].get("frame_offset", {}).get("estimate", 0)
    if not found:
        return first
    again = _import_session(s, dataclasses.replace(opts, frame_offset=found), part, progress)
    again.summary["tracking_checks"]["frame_offset"] = {
        **first.summary["tracking_checks"]["frame_offset"],
        "applied": found,
        "after": again.summary["tracking_checks"].get("frame_offset", {}).get("residual_px", {}),
    }
    return again


def _import_session(s: Session, opts: ImportOptions, part: Path, progress: bool) -> SessionResult:
    t0 = time.perf_counter()
    poses = read_poses(s.poses)
    video = resolve_video(poses, s.video)
    info = probe(video)
    n_frames = count_frames(video)
    fps = opts.fps or info.fps or poses.fps
    if not fps or fps <= 0:
        raise AelensError(f"{video}: the video states no frame rate; pass --fps")
    plan, choice = plan_session(poses, opts, n_frames, (info.width, info.height))
    if not plan.keep.any():
        raise AelensError(f"{poses.source}: no frame has a usable pose (skipped: {_reasons(plan.skipped)})")
    med_len = (
        float(np.nanmedian(plan.body_len[plan.keep])) if np.isfinite(plan.body_len[plan.keep]).any() else float("nan")
    )
    window = opts.window
    if window is None:
        if not math.isfinite(med_len) or med_len <= 0:
            raise AelensError(f"{poses.source}: no body length to size the window from; pass --window PIXELS")
        window = WINDOW_BODY_LENGTHS * med_len
    largest = 2 * max(info.width, info.height)  # a larger window is all padding (and its buffer is window^2 bytes)
    if window > largest:
        raise AelensError(
            f"--window {window:g}: over twice the video's larger side ({info.width} x {info.height} pixels); pass a "
            "smaller --window"
            if opts.window
            else f"{poses.source}: the median body length ({med_len:g} px) gives a {window:g}-pixel window, over twice "
            f"the video's larger side ({info.width} x {info.height}): are the poses in this video's pixels?"
        )
    cxy = plan.center[plan.keep]
    arena = opts.arena or kin.estimate_arena(cxy[:, 0], cxy[:, 1])
    speed, ang_speed = kin.speeds(plan.center, plan.angle, fps, max(1, int(round(SMOOTH_S * fps)) | 1))
    fidx, tidx = np.nonzero(plan.keep)  # row order: frames in order, tracks in order within a frame
    name = s.name or video.stem
    rows = condition_rows(plan, fidx, tidx, fps, speed, ang_speed, med_len, arena)
    t_plan = time.perf_counter() - t0
    t1 = time.perf_counter()
    rows["pad_fraction"], n_read, written = _stream_crops(video, info, plan, rows, window, opts, part, name, progress)
    if n_read < int(fidx.max()) + 1:
        raise AelensError(f"{video}: decoding stopped at frame {n_read} of {n_frames}; the file may be truncated")
    t_stream = time.perf_counter() - t1
    rows["session"] = np.array([name] * len(fidx), dtype=object)
    shapes = None if opts.egocentric else _image_shapes(part / "images.npy")
    checks = _tracking_checks(rows, shapes, plan, window, fps, opts)
    summary = {
        "session": name,
        "video": str(video),
        "poses": str(s.poses),
        "poses_format": poses.format,
        "sha256": {"video": sha256_file(video), "poses": sha256_file(s.poses)},
        "video_info": {"width": info.width, "height": info.height, "fps": fps, "frames": n_frames, "codec": info.codec},
        "nodes": poses.nodes,
        "tracks_in_file": poses.tracks,
        "tracks_kept": [poses.tracks[j] for j in plan.kept_tracks],
        "nodes_used": choice.text,
        "window_px": window,
        "window_rule": "given" if opts.window else f"{WINDOW_BODY_LENGTHS} x median body length",
        "body_length_median_px": med_len,
        "arena": dict(zip(("cx", "cy", "r"), arena), source="given" if opts.arena else "estimated from the tracks"),
        "frames_read": n_read,
        "crops_written": int(written),
        "skipped": plan.skipped,
        "interpolated_crops": int(plan.interpolated[plan.keep].sum()),
        "notes": poses.notes,
        "tracking_checks": checks,
        "seconds": {"plan": round(t_plan, 3), "decode_and_crop": round(t_stream, 3)},
        "frames_per_s": n_read / max(t_stream, 1e-9),
    }
    return SessionResult(name, rows, summary, shapes)


def _image_shapes(images: Path) -> tuple[np.ndarray, ...]:
    """:func:`image_shape` of every crop of a session (axis, elongation, mass side, shift, contrast), in blocks."""
    crops = np.load(images, mmap_mode="r", allow_pickle=False)
    parts = [image_shape(c) for c in _chunks(crops, 0, len(crops))]
    return tuple(np.concatenate(v) for v in zip(*parts)) if parts else tuple(np.zeros(0) for _ in range(5))


def _tracking_checks(rows: dict, shapes, plan: Plan, window: float, fps: float, opts: ImportOptions) -> dict:
    """The trackers' mistakes the pictures show (see :mod:`.tracking_check`): a frame offset, frozen poses, body
    parts off the body. Egocentric crops are turned: their mass centres are not read back (parts are still checked)."""
    checks: dict = {"parts_off_body": plan.parts_off_body}
    if shapes is None:
        checks["not_checked"] = "frame offset and frozen poses: egocentric crops"
        return checks
    mx, my = tc.mass_positions(rows["x"], rows["y"], shapes[2], shapes[3], window)
    args = (rows["frame"], rows["track"], rows["x"], rows["y"], mx, my)
    checks["frame_offset"] = {**tc.frame_offset(*args), "applied": opts.frame_offset or 0}
    checks["frozen"] = tc.frozen_stretches(*args, shapes[4], window, fps)
    return checks


def _stream_crops(
    video, info, plan: Plan, rows: dict, window: float, opts: ImportOptions, part: Path, name: str, progress: bool
) -> tuple[np.ndarray, int, int]:
    """Decode the video once, in order, and append the crops of the planned rows to ``part/images.npy`` (in blocks:
    flat memory); returns (each crop's padded fraction, frames decoded, crops written)."""
    fidx, tidx = np.nonzero(plan.keep)
    pad = np.zeros(len(fidx))
    by_frame: dict[int, list[int]] = {}
    for i, fr in enumerate(fidx.tolist()):
        by_frame.setdefault(fr, []).append(i)
    last = int(fidx.max())
    preview = Preview(part, window, opts.egocentric) if opts.preview else None
    n_read = 0
    bar = _bar(last + 1, name, progress)
    with NpyAppender(part / "images.npy", (opts.channels, opts.size, opts.size)) as out:
        block: list[np.ndarray] = []
        for fr, frame in enumerate(stream_frames(video, opts.channels, stop=last + 1, info=info)):
            n_read += 1
            bar.update(1)
            for i in by_frame.get(fr, ()):
                a = float(plan.angle[fr, tidx[i]])
                turn = (90.0 - a) if opts.egocentric else None
                c, pad[i] = crop(frame, float(rows["x"][i]), float(rows["y"][i]), window, opts.size, turn)
                block.append(c)
            if preview is not None and fr in by_frame:
                animals = [(rows["x"][i], rows["y"][i], plan.angle[fr, tidx[i]], tidx[i]) for i in by_frame[fr]]
                preview.add(frame, animals, block[-len(by_frame[fr]) :])
            if len(block) >= 256:
                out.append(np.stack(block))
                block = []
        if block:
            out.append(np.stack(block))
        written = out.rows
    bar.close()
    if preview is not None and n_read == last + 1:
        preview.close()
    return pad, n_read, written


def _reasons(skipped: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) or "none"


def _bar(total: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"import {name}", unit="frame", disable=not enabled, leave=False, mininterval=0.5)


# --------------------------------------------------------------------------------------------- many sessions


def _worker(args) -> SessionResult:
    s, opts, part, progress = args
    return import_session(s, opts, Path(part), progress)


def import_video(
    videos: list[str | Path] | str | Path | None,
    poses: list[str | Path] | str | Path,
    out: str | Path,
    sessions: list[str] | None = None,
    options: ImportOptions | None = None,
    jobs: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Import one or more sessions (video + pose file each) into the data directory ``out``; returns ``out``.

    Example::

        aelens.import_video("fly.mp4", "fly.analysis.h5", "data/fly")            # one session
        aelens.import_video(None, ["s1.slp", "s2.slp"], "data/flies", options=aelens.ImportOptions(size=64))
    """
    opts = options or ImportOptions()
    opts.check()
    todo = _sessions(videos, poses, sessions)
    if jobs < 1:
        raise AelensError(f"--jobs must be at least 1, got {jobs}")
    t0 = time.perf_counter()
    out = Path(out)
    inputs = [p for s in todo for p in (s.poses, s.video)]
    with atomic_dir(out, overwrite=overwrite, marker=IMPORT_SUMMARY, inputs=inputs) as tmp:
        parts = []
        for i in range(len(todo)):
            (tmp / f"part{i}").mkdir()
            parts.append(tmp / f"part{i}")
        args = [(s, opts, str(p), progress and jobs == 1) for s, p in zip(todo, parts)]
        if jobs > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=min(jobs, len(todo))) as ex:
                results = list(ex.map(_worker, args))
        else:
            results = [_worker(a) for a in args]
        names = [r.name for r in results]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise AelensError(f"two sessions are both named {dup[0]!r} (the video file stem); set --session for each")
        _merge(tmp, parts, results, opts)
        label_notes = _check_headings(results, opts)
        summary = {
            "format": "aelens-import-1",
            "options": asdict(opts),
            "sessions": [r.summary for r in results],
            "crops": sum(r.summary["crops_written"] for r in results),
            "seconds": round(time.perf_counter() - t0, 3),
            "columns": COLUMNS,
            "conventions": "x, y: video pixels (x right, y down, pixel centres at integers); angles: degrees "
            "counter-clockwise from +x with y up; dist_from_center: fraction of the arena radius",
            "warnings": _axis_warnings([r.summary for r in results])
            + label_notes
            + [w for r in results for w in tc.tracking_warnings(r.summary["tracking_checks"], f"session {r.name}")],
        }
        write_json(tmp / IMPORT_SUMMARY, summary)
    return out


def _as_list(x) -> list[str]:
    return [] if x is None else [str(v) for v in ([x] if isinstance(x, (str, Path)) else list(x))]


def _sessions(videos, poses, names) -> list[Session]:
    """The (video, poses, name) of each session, checked to pair up one to one."""
    poses_l, videos_l = _as_list(poses), _as_list(videos)
    if not poses_l:
        raise AelensError("--poses: give at least one pose file")
    if videos_l and len(videos_l) != len(poses_l):
        raise AelensError(
            f"--video given {len(videos_l)} times but --poses {len(poses_l)} times: give one --video per --poses, "
            "or none when every pose file names its video"
        )
    if names and len(names) != len(poses_l):
        raise AelensError(f"--session given {len(names)} times for {len(poses_l)} pose files; give one per pose file")
    return [Session(p, videos_l[i] if videos_l else None, names[i] if names else None) for i, p in enumerate(poses_l)]


def _heading_of(nodes_used: str) -> str:
    """'centre thorax; heading thorax -> head; ...' -> 'heading thorax -> head' (the body axis of a session)."""
    return next((p for p in nodes_used.split("; ") if p.startswith("heading")), "")


def _axis_warnings(sessions: list[dict]) -> list[str]:
    """Sessions whose crops were cut on different body axes show the animals at different scales."""
    axes = {s["session"]: _heading_of(s["nodes_used"]) for s in sessions}
    if len(set(axes.values())) < 2:
        return []
    listed = "; ".join(f"{name}: {axis}" for name, axis in axes.items())
    return [
        f"the sessions' body axes differ ({listed}), so their crops show the animals at different scales; "
        "pass one --heading BACK:FRONT that every skeleton has"
    ]


def _check_headings(results: list[SessionResult], opts: ImportOptions) -> list[str]:
    """Per session and track, how far the pose headings sit from the animals' visible long axis in the crops
    (``heading_vs_image_axis`` in each session's summary) and signs of head-tail swaps (``head_tail_swaps``: turns
    round between consecutive frames, crops whose heading points the other way round against the body); sentences
    for the tracks reported. Egocentric crops are turned to the heading already: nothing to compare."""

    if opts.egocentric:
        return []
    notes = []
    for r in results:
        axis, elongation, side, shift, _ = r.shapes
        heading, track = r.rows["body_angle_deg"], r.rows["track"]
        r.summary["heading_vs_image_axis"] = heading_agreement(heading, axis, elongation, track)
        r.summary["head_tail_swaps"] = heading_reversals(heading, side, shift, track, r.rows["frame"])
        notes += _heading_warnings(r.summary, f"session {r.name}")
    return notes


def _chunks(crops: np.ndarray, start: int, stop: int, size: int = 4096):
    """Consecutive blocks of ``crops[start:stop]`` (a memory-mapped array is read one block at a time)."""
    return (crops[i : min(i + size, stop)] for i in range(start, stop, size))


def _heading_warnings(session: dict, where: str) -> list[str]:
    """The heading checks' sentences for one session's summary (either check may be missing from older imports)."""

    return agreement_warnings(session.get("heading_vs_image_axis", {}), where) + reversal_warnings(
        session.get("head_tail_swaps", {}), where
    )


def _merge(tmp: Path, parts: list[Path], results: list[SessionResult], opts: ImportOptions) -> None:
    """Concatenate the sessions' crops into images.npy (streamed, flat memory) and their rows into metadata.csv."""

    row_shape = (opts.channels, opts.size, opts.size)
    if len(parts) == 1:  # one session: its file is the result (a rename, no copy)
        (parts[0] / "images.npy").replace(tmp / "images.npy")
    else:  # plain reads, not a memory map: mapped pages would count as resident memory
        with NpyAppender(tmp / "images.npy", row_shape) as out:
            for p in parts:
                with open(p / "images.npy", "rb") as fh:
                    fh.seek(NpyAppender.HEADER)
                    while True:
                        block = np.fromfile(fh, dtype=np.uint8, count=4096 * int(np.prod(row_shape)))
                        if block.size == 0:
                            break
                        out.append(block.reshape((-1, *row_shape)))
    for p, r in zip(parts, results):
        for extra in ("preview.mp4", "preview_crops.png"):
            if (p / extra).exists():
                target = extra if len(parts) == 1 else f"{Path(extra).stem}_{safe_name(r.name)}{Path(extra).suffix}"
                (p / extra).replace(tmp / target)
        shutil.rmtree(p)

    def rows():  # streamed in chunks: an hour of video has hundreds of thousands of rows
        for r in results:
            n = len(r.rows["frame"])
            for s in range(0, n, 4096):
                cols = {c: r.rows[c][s : s + 4096].tolist() for c in COLUMNS}
                for i in range(len(cols["frame"])):
                    yield {c: cols[c][i] for c in COLUMNS}

    write_csv(tmp / "metadata.csv", rows(), COLUMNS)


def summary_line(s: dict) -> str:
    """The one line per session that the command prints."""
    a = s["arena"]
    body = s["body_length_median_px"]
    body = (
        f"; median body length {body:.1f} px" if isinstance(body, (int, float)) and body == body else ""
    )  # NaN: no axis
    return (
        f"{s['session']}: {s['frames_read']} frames read, {s['crops_written']} crops of {len(s['tracks_kept'])} "
        f"track(s), skipped {sum(s['skipped'].values())} ({_reasons(s['skipped'])}); {s['nodes_used']}; window "
        f"{s['window_px']:.0f} px ({s['window_rule']}{body}); arena "
        f"({a['cx']:.0f}, {a['cy']:.0f}) r {a['r']:.0f} px, {a['source']}; {s['frames_per_s']:.0f} frames/s"
    )


def _import_summary(folder: str | Path) -> dict | None:
    """The ``import.json`` of an imported data directory, or None (not an import, or unreadable)."""
    path = Path(folder) / IMPORT_SUMMARY
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _crop_recipe(folder: Path) -> list[dict] | None:
    """What shaped the crops of an imported data directory (from its ``import.json``), one dict per session."""
    summary = _import_summary(folder)
    if summary is None:
        return None
    try:
        opts = summary.get("options", {})
        return [
            {
                "session": s.get("session"),
                "heading": _heading_of(s.get("nodes_used", "")),
                "window": f"{opts['window']} px" if opts.get("window") else s.get("window_rule"),
                "egocentric": opts.get("egocentric"),
            }
            for s in summary.get("sessions", [])
        ]
    except (ValueError, AttributeError):
        return None


def crop_mismatches(training: list[str | Path], other: str | Path) -> list[str]:
    """Sentences naming how the crops of ``other`` were cut differently from those of the ``training`` data
    directories (body axis, window rule, egocentric rotation), when both were imported by aelens. Crops cut on
    another body axis show the animals at another scale, and a model cannot be expected to transfer across that."""
    new = _crop_recipe(Path(other))
    if not new:
        return []
    seen = [r for t in training for r in (_crop_recipe(Path(t)) or [])]
    notes = []
    for key, what in (("heading", "body axis"), ("window", "window"), ("egocentric", "egocentric rotation")):
        theirs = {str(r[key]) for r in new}
        ours = {str(r[key]) for r in seen}
        if ours and theirs != ours:
            notes.append(
                f"{other}: crops cut with {what} {', '.join(sorted(theirs))}, the training data's with "
                f"{', '.join(sorted(ours))}; the animals may appear at another scale or orientation "
                f"(import both with the same --heading / --window)"
            )
    return notes


def import_notes(folder: str | Path) -> list[str]:
    """Sentences for the tracks of an imported data directory whose pose headings sit consistently off the animals'
    visible axis or turn head to tail, and for the trackers' mistakes the pictures show (a frame offset, frozen
    poses, body parts off the body), from its ``import.json``; none for other directories or imports made before
    these checks."""
    summary = _import_summary(folder) or {}
    try:
        return [
            note
            for s in summary.get("sessions", [])
            for note in _heading_warnings(s, f"{folder} session {s.get('session')}")
            + tc.tracking_warnings(s.get("tracking_checks", {}), f"{folder} session {s.get('session')}")
        ]
    except (AttributeError, KeyError, TypeError, ValueError):
        return []
