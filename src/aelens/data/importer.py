"""``aelens data import``: videos + pose tracking -> an aelens data directory of crops and conditions.

Each (video, poses) pair is one session. The video is streamed once, in order; for every selected frame and every
track whose centre and heading nodes are tracked, a square window (in video pixels) centred on the animal is resized
to ``size`` x ``size`` with anti-aliasing and appended to a growing ``images.npy``, so memory stays flat however long
the video. Rows of ``metadata.csv`` line up with the crops one to one. Nothing is written to ``out`` unless the whole
import succeeds (the output folder is built beside it and renamed into place).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AelensError
from ..storage import NpyAppender, atomic_dir, sha256_file, write_csv, write_json
from . import kinematics as kin
from .poses import Poses, read_poses
from .video import probe, stream_frames

WINDOW_BODY_LENGTHS = (
    4.0  # default window: 4 x the median back->front length holds a whole fly or rodent body and some floor
)
SMOOTH_S = 0.2  # speed smoothing window (s): removes tracking jitter, keeps a stride
PREVIEW_FRAMES = 100
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


@dataclass(frozen=True)
class ImportOptions:
    """What to cut and how (all optional). ``window``: crop side in video pixels (None: WINDOW_BODY_LENGTHS x the
    session's median body length); ``arena``: (cx, cy, r) in video pixels (None: estimated from the tracks)."""

    center: str = "auto"
    heading: str = "auto"
    window: float | None = None
    size: int = 50
    channels: int = 1
    egocentric: bool = False
    every: int = 1
    start: int = 0
    stop: int | None = None
    min_score: float = 0.0  # keep every tracked point; DeepLabCut users often pass 0.6 (its pcutoff)
    interpolate: int = 0  # fill gaps of up to N frames; 0: never invent a pose
    min_track_frames: int = 1
    arena: tuple[float, float, float] | None = None
    fps: float | None = None
    preview: bool = False

    def check(self) -> None:
        if not 24 <= self.size <= 1024:
            raise AelensError(f"--size must be 24..1024 pixels, got {self.size}")
        if self.channels not in (1, 3):
            raise AelensError(f"--channels must be 1 or 3, got {self.channels}")
        if self.window is not None and not (math.isfinite(self.window) and self.window >= 4):
            raise AelensError(f"--window must be at least 4 video pixels, got {self.window}")
        if self.every < 1:
            raise AelensError(f"--every must be at least 1, got {self.every}")
        if self.start < 0 or (self.stop is not None and self.stop <= self.start):
            raise AelensError(f"--start/--stop: need 0 <= start < stop, got {self.start}, {self.stop}")
        if not math.isfinite(self.min_score):
            raise AelensError(f"--min-score must be a number, got {self.min_score}")
        if self.interpolate < 0:
            raise AelensError(f"--interpolate must be 0 or more frames, got {self.interpolate}")
        if self.min_track_frames < 1:
            raise AelensError(f"--min-track-frames must be at least 1, got {self.min_track_frames}")
        if self.arena is not None and (
            len(self.arena) != 3 or not all(map(math.isfinite, self.arena)) or self.arena[2] <= 0
        ):
            raise AelensError(f"--arena: expected cx,cy,r with r > 0, got {self.arena}")
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise AelensError(f"--fps must be positive, got {self.fps}")


@dataclass
class Session:
    """One (video, poses) pair to import."""

    poses: str
    video: str | None = None
    name: str | None = None


@dataclass
class SessionResult:
    name: str
    rows: dict[str, np.ndarray]
    summary: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- planning (no video yet)


def resolve_video(poses: Poses, video: str | None) -> Path:
    """``--video`` if given; else the path the pose file names, as written or beside the pose file by file name."""
    if video is not None:
        return Path(video)
    if not poses.video:
        raise AelensError(f"{poses.source}: names no video; pass --video for it")
    named = Path(poses.video.replace("\\", "/"))
    for cand in (named, Path(poses.source).parent / named.name):
        if cand.is_file():
            return cand
    raise AelensError(
        f"{poses.source}: names video {poses.video!r}, which is neither there nor beside the pose file; pass --video"
    )


@dataclass
class Plan:
    """Per (frame, track) centres, angles and reasons, before any frame is decoded."""

    frames: np.ndarray  # (f,) video frame of each row of the dense grid
    center: np.ndarray  # (f, t, 2)
    angle: np.ndarray  # (f, t)
    head_angle: np.ndarray  # (f, t)
    body_len: np.ndarray  # (f, t)
    score: np.ndarray  # (f, t)
    interpolated: np.ndarray  # (f, t) bool
    keep: np.ndarray  # (f, t) bool: crop this
    skipped: dict[str, int]
    kept_tracks: list[int]


def plan_session(poses: Poses, opts: ImportOptions, n_video_frames: int) -> tuple[Plan, kin.NodeChoice]:
    """Decide every crop from the poses alone: nodes, masking, interpolation, headings, reasons for skipping."""
    choice = kin.choose_nodes(poses.nodes, opts.center, opts.heading, poses.source, poses.angles is not None)
    # a dense grid over video frames 0..last so that gaps, interpolation and speeds see real time
    last = int(poses.frames[-1])
    f_all = last + 1
    t, k = len(poses.tracks), len(poses.nodes)
    pts = np.full((f_all, t, k, 2), np.nan)
    pts[poses.frames] = poses.points
    sc = np.full((f_all, t, k), np.nan)
    sc[poses.frames] = poses.scores
    angles_in = None
    if poses.angles is not None:
        angles_in = np.full((f_all, t), np.nan)
        angles_in[poses.frames] = poses.angles
    used = tuple(dict.fromkeys(choice.center + choice.back + choice.front))
    anything = np.isfinite(pts[..., 0]).any(axis=2)
    if np.isfinite(sc).any() and not (sc[np.isfinite(sc)] >= opts.min_score).any():
        raise AelensError(f"{poses.source}: every point scores under --min-score {opts.min_score:g}")
    pts, low = kin.mask_scores(pts, sc, opts.min_score)
    low_used = low[:, :, list(used)].any(axis=2)
    if opts.interpolate:
        pts, filled = kin.interpolate_gaps(pts, opts.interpolate)
        if angles_in is not None:
            angles_in, fa = _interpolate_angles(angles_in, opts.interpolate)
            filled = filled | fa[:, :, None, None]
    else:
        filled = np.zeros(pts.shape, dtype=bool)
    center = kin.group_mean(pts, choice.center)
    if choice.back:
        back, front = kin.group_mean(pts, choice.back), kin.group_mean(pts, choice.front)
        angle = kin.heading_deg(back, front)
        body_len = np.hypot(*(front - back).transpose(2, 0, 1))
    else:
        angle = angles_in if angles_in is not None else np.full(center.shape[:2], np.nan)
        body_len = np.full(center.shape[:2], np.nan)
    head = (
        kin.heading_deg(kin.group_mean(pts, choice.head_back), kin.group_mean(pts, choice.head_front))
        if choice.head_back
        else np.full(angle.shape, np.nan)
    )
    score = _mean_known(sc[:, :, list(used)])
    ok_center = np.isfinite(center).all(axis=2)
    ok_angle = np.isfinite(angle) & (~np.isfinite(body_len) | (body_len > 0) if choice.back else np.isfinite(angle))
    # every frame in range and on the --every grid is a candidate; a reason is counted for each track within its
    # life (first to last frame with any point): outside it the track does not exist, which is not a skipped crop
    sel = np.zeros(f_all, dtype=bool)
    stop = min(f_all, opts.stop if opts.stop is not None else f_all)
    sel[opts.start : stop : opts.every] = True
    keep = ok_center & ok_angle & sel[:, None]
    skipped: dict[str, int] = {}
    seen = np.cumsum(anything, axis=0) > 0
    alive = seen & (np.cumsum(anything[::-1], axis=0)[::-1] > 0)
    cand = sel[:, None] & alive
    _count(skipped, "low_score", cand & ~keep & low_used)
    _count(skipped, "missing_center", cand & ~ok_center & ~low_used)
    _count(skipped, "missing_heading", cand & ok_center & ~ok_angle & ~low_used)
    # fragments: tracks with fewer usable frames than asked
    kept_tracks = [j for j in range(t) if keep[:, j].sum() >= opts.min_track_frames and keep[:, j].any()]
    short = [j for j in range(t) if j not in kept_tracks and keep[:, j].any()]
    if short:
        _count(skipped, "short_track", keep[:, short])
        keep[:, short] = False
    interp = filled[:, :, list(used)].any(axis=(2, 3)) & keep
    if poses.rows_are_frames and len(poses.frames) != n_video_frames:
        raise AelensError(
            f"{poses.source}: {len(poses.frames)} rows but the video has {n_video_frames} frames; a {poses.format} "
            "file has one row per video frame: is it the right video?"
        )
    if last >= n_video_frames:
        raise AelensError(
            f"{poses.source}: refers to frame {last} but the video has {n_video_frames} frames (0..{n_video_frames - 1})"
        )
    plan = Plan(np.arange(f_all), center, angle, head, body_len, score, interp, keep, skipped, kept_tracks)
    return plan, choice


def _mean_known(scores: np.ndarray) -> np.ndarray:
    """(f, t) mean over the last axis of the finite scores; NaN where none is known."""
    ok = np.isfinite(scores)
    n = ok.sum(axis=-1)
    total = np.where(ok, scores, 0.0).sum(axis=-1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _interpolate_angles(a: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.radians(a)
    uv, filled = kin.interpolate_gaps(np.stack([np.cos(r), np.sin(r)], axis=-1), gap)
    return np.mod(np.degrees(np.arctan2(uv[..., 1], uv[..., 0])), 360.0), filled[..., 0]


def _count(d: dict, reason: str, mask: np.ndarray) -> None:
    n = int(mask.sum())
    if n:
        d[reason] = d.get(reason, 0) + n


# --------------------------------------------------------------------------------------------- cropping


def crop(
    frame: np.ndarray, cx: float, cy: float, window: float, size: int, rotate_deg: float | None = None
) -> tuple[np.ndarray, float]:
    """A ``window`` x ``window`` square of ``frame`` centred on (cx, cy) (video px, pixel centres at integers),
    resized to ``size`` x ``size`` with anti-aliasing (Pillow's bilinear filter widened by the scale). Outside the
    frame is black: the animal stays centred. ``rotate_deg``: turn the crop counter-clockwise by this much.
    Returns (crop (c, size, size) uint8, fraction of the window outside the frame)."""
    from PIL import Image

    h, w = frame.shape[:2]
    out_size, win = size, window
    if rotate_deg is not None:  # cut a larger square at the same scale, turn it, keep the middle
        margin = int(math.ceil(size * (math.sqrt(2) - 1) / 2)) + 2
        out_size = size + 2 * margin
        win = window * out_size / size
    x0, y0 = cx + 0.5 - win / 2, cy + 0.5 - win / 2  # pixel edges: pixel i spans [i, i + 1]
    m = int(math.ceil(win / out_size)) + 2  # room for the filter's support
    ix0, iy0 = int(math.floor(x0)) - m, int(math.floor(y0)) - m
    ix1, iy1 = int(math.ceil(x0 + win)) + m, int(math.ceil(y0 + win)) + m
    region = np.zeros((iy1 - iy0, ix1 - ix0) + frame.shape[2:], dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(ix0, 0), max(iy0, 0), min(ix1, w), min(iy1, h)
    if sx1 > sx0 and sy1 > sy0:
        region[sy0 - iy0 : sy1 - iy0, sx0 - ix0 : sx1 - ix0] = frame[sy0:sy1, sx0:sx1]
    img = Image.fromarray(region).resize(
        (out_size, out_size), Image.BILINEAR, box=(x0 - ix0, y0 - iy0, x0 - ix0 + win, y0 - iy0 + win)
    )
    if rotate_deg is not None:
        img = img.rotate(rotate_deg, resample=Image.BILINEAR)
        img = img.crop((margin, margin, margin + size, margin + size))
    arr = np.asarray(img)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    wx0, wy0 = cx + 0.5 - window / 2, cy + 0.5 - window / 2
    ox = max(0.0, min(wx0 + window, w) - max(wx0, 0.0))
    oy = max(0.0, min(wy0 + window, h) - max(wy0, 0.0))
    return np.ascontiguousarray(arr), round(max(0.0, 1.0 - (ox * oy) / (window * window)), 6)


# --------------------------------------------------------------------------------------------- one session


def _session_name(s: Session, video: Path) -> str:
    return s.name or video.stem


def import_session(s: Session, opts: ImportOptions, part: Path, progress: bool = True) -> SessionResult:
    """Plan, stream and crop one session into ``part`` (images.npy); returns its condition columns and summary."""
    t0 = time.perf_counter()
    poses = read_poses(s.poses)
    video = resolve_video(poses, s.video)
    info = probe(video)
    n_frames = count_frames(video)
    fps = opts.fps or info.fps or poses.fps
    if not fps or fps <= 0:
        raise AelensError(f"{video}: the video states no frame rate; pass --fps")
    plan, choice = plan_session(poses, opts, n_frames)
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
    cxy = plan.center[plan.keep]
    arena_src = "given" if opts.arena else "estimated from the tracks"
    acx, acy, ar = opts.arena or kin.estimate_arena(cxy[:, 0], cxy[:, 1])
    width = max(1, int(round(SMOOTH_S * fps)) | 1)
    speed, ang_speed = kin.speeds(plan.center, plan.angle, fps, width)
    fidx, tidx = np.nonzero(plan.keep)  # row order: frames in order, tracks in order within a frame
    name = _session_name(s, video)
    rows = _condition_rows(plan, fidx, tidx, poses, fps, speed, ang_speed, med_len, (acx, acy, ar))
    t_plan = time.perf_counter() - t0
    pad = np.zeros(len(fidx))
    by_frame: dict[int, list[int]] = {}
    for i, fr in enumerate(fidx.tolist()):
        by_frame.setdefault(fr, []).append(i)
    last = int(fidx.max())
    preview = _Preview(part, window, opts.egocentric) if opts.preview else None
    t1 = time.perf_counter()
    n_read = 0
    bar = _bar(last + 1, name, progress)
    with NpyAppender(part / "images.npy", (opts.channels, opts.size, opts.size)) as out:
        block: list[np.ndarray] = []
        for fr, frame in enumerate(stream_frames(video, opts.channels, stop=last + 1, info=info)):
            n_read += 1
            bar.update(1)
            for i in by_frame.get(fr, ()):
                a = float(plan.angle[fr, tidx[i]])
                c, pad[i] = crop(
                    frame,
                    float(rows["x"][i]),
                    float(rows["y"][i]),
                    window,
                    opts.size,
                    (90.0 - a) if opts.egocentric else None,
                )
                block.append(c)
            if preview is not None and fr in by_frame:
                preview.add(
                    frame,
                    [(rows["x"][i], rows["y"][i], plan.angle[fr, tidx[i]], tidx[i]) for i in by_frame[fr]],
                    block[-len(by_frame[fr]) :],
                )
            if len(block) >= 256:
                out.append(np.stack(block))
                block = []
        if block:
            out.append(np.stack(block))
        written = out.rows
    bar.close()
    if n_read < last + 1:
        raise AelensError(f"{video}: decoding stopped at frame {n_read} of {n_frames}; the file may be truncated")
    if preview is not None:
        preview.close()
    rows["pad_fraction"] = pad
    t_stream = time.perf_counter() - t1
    rows["session"] = np.array([name] * len(fidx), dtype=object)
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
        "arena": {"cx": acx, "cy": acy, "r": ar, "source": arena_src},
        "frames_read": n_read,
        "crops_written": int(written),
        "skipped": plan.skipped,
        "interpolated_crops": int(plan.interpolated[plan.keep].sum()),
        "notes": poses.notes,
        "seconds": {"plan": round(t_plan, 3), "decode_and_crop": round(t_stream, 3)},
        "frames_per_s": n_read / max(t_stream, 1e-9),
    }
    return SessionResult(name, rows, summary)


def count_frames(video: Path) -> int:
    """Exact frame count by demuxing (no decoding): seconds even for an hour of video."""
    import imageio_ffmpeg

    try:
        n, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    except (RuntimeError, OSError) as exc:
        raise AelensError(f"{video}: cannot count its frames ({str(exc).splitlines()[-1][:200]})") from None
    if n <= 0:
        raise AelensError(f"{video}: holds no video frames")
    return int(n)


def _condition_rows(plan: Plan, fidx, tidx, poses: Poses, fps: float, speed, ang_speed, med_len, arena) -> dict:
    acx, acy, ar = arena
    x, y = plan.center[fidx, tidx, 0], plan.center[fidx, tidx, 1]
    return {
        "track": np.asarray(tidx, dtype=np.int64),
        "frame": plan.frames[fidx],
        "time_s": plan.frames[fidx] / fps,
        "x": x,
        "y": y,
        "body_angle_deg": plan.angle[fidx, tidx],
        "head_angle_deg": plan.head_angle[fidx, tidx],
        "speed": speed[fidx, tidx],
        "speed_bl_s": speed[fidx, tidx] / med_len if med_len > 0 else np.full(len(fidx), np.nan),
        "angular_speed_deg_s": ang_speed[fidx, tidx],
        "dist_from_center": np.hypot(x - acx, y - acy) / ar,
        "location_polar_deg": np.mod(np.degrees(np.arctan2(-(y - acy), x - acx)), 360.0),
        "body_length_px": plan.body_len[fidx, tidx],
        "pose_score": plan.score[fidx, tidx],
        "interpolated": plan.interpolated[fidx, tidx].astype(np.int64),
    }


def _reasons(skipped: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) or "none"


def _bar(total: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"import {name}", unit="frame", disable=not enabled, leave=False, mininterval=0.5)


# --------------------------------------------------------------------------------------------- preview


class _Preview:
    """preview.mp4 (the first frames with crop box, centre and heading arrow) and preview_crops.png."""

    COLORS = [(46, 204, 64), (255, 65, 54), (0, 116, 217), (255, 220, 0), (177, 13, 201), (255, 133, 27)]

    def __init__(self, folder: Path, window: float, egocentric: bool):
        self.folder, self.window, self.egocentric = folder, window, egocentric
        self.frames: list[np.ndarray] = []
        self.crops: list[tuple[np.ndarray, float]] = []

    def add(self, frame: np.ndarray, animals: list, crops: list[np.ndarray]) -> None:
        from PIL import Image, ImageDraw

        if len(self.frames) >= PREVIEW_FRAMES:
            return
        h, w = frame.shape[:2]
        s = min(1.0, 640.0 / max(h, w))
        img = Image.fromarray(frame).convert("RGB").resize((max(2, int(w * s) // 2 * 2), max(2, int(h * s) // 2 * 2)))
        d = ImageDraw.Draw(img)
        half = self.window / 2
        for (x, y, a, tr), c in zip(animals, crops):
            col = self.COLORS[int(tr) % len(self.COLORS)]
            rad = math.radians(a)
            if self.egocentric:
                corners = [(-half, -half), (half, -half), (half, half), (-half, half)]
                t = math.radians(a - 90)
                pts = [
                    ((x + u * math.cos(t) + v * math.sin(t)) * s, (y - u * math.sin(t) + v * math.cos(t)) * s)
                    for u, v in corners
                ]
                d.polygon(pts, outline=col)
            else:
                d.rectangle([(x - half) * s, (y - half) * s, (x + half) * s, (y + half) * s], outline=col)
            d.ellipse([x * s - 2, y * s - 2, x * s + 2, y * s + 2], fill=col)
            d.line(
                [
                    x * s,
                    y * s,
                    (x + 0.4 * self.window * math.cos(rad)) * s,
                    (y - 0.4 * self.window * math.sin(rad)) * s,
                ],
                fill=col,
                width=2,
            )
            if len(self.crops) < 48 and len(self.frames) % 2 == 0:  # every other frame: more variety
                self.crops.append((c, 90.0 if self.egocentric else a))
        self.frames.append(np.asarray(img))

    def close(self) -> None:
        from PIL import Image, ImageDraw

        from ..storage import atomic_path
        from .video import write_video

        if self.frames:
            h, w = self.frames[0].shape[:2]
            with atomic_path(self.folder / "preview.mp4") as tmp:
                write_video(tmp, iter(self.frames), (w, h), fps=10, crf=23, channels=3)
        if self.crops:
            size = self.crops[0][0].shape[-1]
            z = 2
            cols = 8
            rows = -(-len(self.crops) // cols)
            sheet = Image.new("RGB", (cols * size * z, rows * size * z))
            for i, (c, a) in enumerate(self.crops):
                tile = Image.fromarray(c[0] if c.shape[0] == 1 else c.transpose(1, 2, 0)).convert("RGB")
                tile = tile.resize((size * z, size * z), Image.NEAREST)
                d = ImageDraw.Draw(tile)
                m = size * z / 2
                rad = math.radians(a)
                d.line(
                    [m, m, m + 0.35 * size * z * math.cos(rad), m - 0.35 * size * z * math.sin(rad)],
                    fill=(46, 204, 64),
                    width=2,
                )
                sheet.paste(tile, ((i % cols) * size * z, (i // cols) * size * z))
            with atomic_path(self.folder / "preview_crops.png") as tmp:
                sheet.save(tmp, format="PNG")


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
    poses_l = [str(p) for p in ([poses] if isinstance(poses, (str, Path)) else list(poses))]
    videos_l = (
        [] if videos is None else [str(v) for v in ([videos] if isinstance(videos, (str, Path)) else list(videos))]
    )
    if not poses_l:
        raise AelensError("--poses: give at least one pose file")
    if videos_l and len(videos_l) != len(poses_l):
        raise AelensError(
            f"--video given {len(videos_l)} times but --poses {len(poses_l)} times: give one --video per --poses, "
            "or none when every pose file names its video"
        )
    if sessions and len(sessions) != len(poses_l):
        raise AelensError(
            f"--session given {len(sessions)} times for {len(poses_l)} pose files; give one per pose file"
        )
    todo = [
        Session(p, videos_l[i] if videos_l else None, sessions[i] if sessions else None) for i, p in enumerate(poses_l)
    ]
    if jobs < 1:
        raise AelensError(f"--jobs must be at least 1, got {jobs}")
    t0 = time.perf_counter()
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite, marker="import.json") as tmp:
        parts = []
        for i in range(len(todo)):
            (tmp / f"part{i}").mkdir()
            parts.append(tmp / f"part{i}")
        args = [(s, opts, str(p), progress and jobs == 1) for s, p in zip(todo, parts)]
        if jobs > 1 and len(todo) > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=min(jobs, len(todo))) as ex:
                results = list(ex.map(_worker, args))
        else:
            results = [_worker(a) for a in args]
        names = [r.name for r in results]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise AelensError(f"two sessions are both named {dup[0]!r} (the video file stem); set --session for each")
        _merge(tmp, parts, results, opts)
        summary = {
            "format": "aelens-import-1",
            "options": asdict(opts),
            "sessions": [r.summary for r in results],
            "crops": sum(r.summary["crops_written"] for r in results),
            "seconds": round(time.perf_counter() - t0, 3),
            "columns": COLUMNS,
            "conventions": "x, y: video pixels (x right, y down, pixel centres at integers); angles: degrees "
            "counter-clockwise from +x with y up; dist_from_center: fraction of the arena radius",
            "warnings": _axis_warnings([r.summary for r in results]),
        }
        write_json(tmp / "import.json", summary)
    return out


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


def _merge(tmp: Path, parts: list[Path], results: list[SessionResult], opts: ImportOptions) -> None:
    """Concatenate the sessions' crops into images.npy (streamed, flat memory) and their rows into metadata.csv."""
    import shutil

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
                target = extra if len(parts) == 1 else f"{Path(extra).stem}_{r.name}{Path(extra).suffix}"
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
    return (
        f"{s['session']}: {s['frames_read']} frames read, {s['crops_written']} crops of {len(s['tracks_kept'])} "
        f"track(s), skipped {sum(s['skipped'].values())} ({_reasons(s['skipped'])}); {s['nodes_used']}; window "
        f"{s['window_px']:.0f} px ({s['window_rule']}; median body length {s['body_length_median_px']:.1f} px); arena "
        f"({a['cx']:.0f}, {a['cy']:.0f}) r {a['r']:.0f} px, {a['source']}; {s['frames_per_s']:.0f} frames/s"
    )


def _crop_recipe(folder: Path) -> list[dict] | None:
    """What shaped the crops of an imported data directory (from its ``import.json``), one dict per session."""
    path = Path(folder) / "import.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
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
    except (OSError, ValueError, AttributeError):
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
