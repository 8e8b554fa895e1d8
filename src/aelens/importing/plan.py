"""Planning an import from the poses alone (no video yet): which node is the centre and which the heading, which
(frame, track) pairs become crops, why the others are skipped, and the condition columns of each crop."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AelensError
from . import kinematics as kin
from .options import ImportOptions
from .poses import Poses
from .tracking_check import parts_off_body


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
    parts_off_body: dict = dataclasses.field(default_factory=dict)  # see tracking_check.parts_off_body


def plan_session(
    poses: Poses, opts: ImportOptions, n_video_frames: int, frame_size: tuple[int, int] | None = None
) -> tuple[Plan, kin.NodeChoice]:
    """Decide every crop from the poses alone: nodes, masking, interpolation, headings, reasons for skipping.
    With ``frame_size`` (the video's width, height), a centre outside the picture is skipped, not cropped."""
    choice = kin.choose_nodes(poses.nodes, opts.center, opts.heading, poses.source, poses.angles is not None)
    _check_frames(poses, n_video_frames)
    if isinstance(opts.frame_offset, int) and opts.frame_offset:
        poses = shift_frames(poses, opts.frame_offset, n_video_frames)
    pts, sc, angles_in = _dense(poses)
    used = list(dict.fromkeys(choice.center + choice.back + choice.front))
    anything = np.isfinite(pts[..., 0]).any(axis=2)
    if np.isfinite(sc).any() and not (sc[np.isfinite(sc)] >= opts.min_score).any():
        raise AelensError(f"{poses.source}: every point scores under --min-score {opts.min_score:g}")
    pts, low = kin.mask_scores(pts, sc, opts.min_score)
    low_used = low[:, :, used].any(axis=2)
    if opts.interpolate:
        pts, filled = kin.interpolate_gaps(pts, opts.interpolate)
        if angles_in is not None:
            angles_in, fa = _interpolate_angles(angles_in, opts.interpolate)
            filled = filled | fa[:, :, None, None]
    else:
        filled = np.zeros(pts.shape, dtype=bool)
    center, angle, body_len, head = _axes(pts, choice, angles_in)
    ok_center = np.isfinite(center).all(axis=2)
    outside = np.zeros_like(ok_center)
    if frame_size is not None:
        with np.errstate(invalid="ignore"):
            x, y = center[..., 0], center[..., 1]
            outside = ok_center & ((x < -0.5) | (y < -0.5) | (x > frame_size[0] - 0.5) | (y > frame_size[1] - 0.5))
        ok_center = ok_center & ~outside
    ok_angle = np.isfinite(angle) & (~np.isfinite(body_len) | (body_len > 0) if choice.back else np.isfinite(angle))
    keep, skipped, kept_tracks = _select(opts, anything, ok_center, ok_angle, low_used, outside)
    interp = filled[:, :, used].any(axis=(2, 3)) & keep
    score = _mean_known(sc[:, :, used])
    plan = Plan(np.arange(len(pts)), center, angle, head, body_len, score, interp, keep, skipped, kept_tracks)
    med = float(np.nanmedian(body_len[keep])) if np.isfinite(body_len[keep]).any() else float("nan")
    plan.parts_off_body = {str(j): v for j, v in parts_off_body(pts, center, keep, med).items()}
    return plan, choice


def shift_frames(poses: Poses, offset: int, n_video_frames: int) -> Poses:
    """The poses moved ``offset`` frames earlier (``--frame-offset``): pose row f + offset becomes video frame f;
    rows that fall before the video's first frame or after its last are dropped."""
    frames = poses.frames - offset
    ok = (frames >= 0) & (frames < n_video_frames)
    if not ok.any():
        raise AelensError(f"{poses.source}: --frame-offset {offset} moves every pose outside the video")
    angles = poses.angles[ok] if poses.angles is not None else None
    return dataclasses.replace(
        poses, points=poses.points[ok], scores=poses.scores[ok], frames=frames[ok], angles=angles
    )


def _check_frames(poses: Poses, n_video_frames: int) -> None:
    """The pose file must fit the video: one row per frame where the format says so, no frame past its end."""
    last = int(poses.frames[-1])
    if poses.rows_are_frames and len(poses.frames) != n_video_frames:
        raise AelensError(
            f"{poses.source}: {len(poses.frames)} rows but the video has {n_video_frames} frames; a {poses.format} "
            "file has one row per video frame: is it the right video?"
        )
    if last >= n_video_frames:
        raise AelensError(
            f"{poses.source}: refers to frame {last} but the video has {n_video_frames} frames (0..{n_video_frames - 1})"
        )


def _dense(poses: Poses):
    """Points (f, t, k, 2), scores (f, t, k) and given angles (f, t) or None on a dense grid over video frames
    0..last (NaN where untracked), so that gaps, interpolation and speeds see real time."""
    f_all, t, k = int(poses.frames[-1]) + 1, len(poses.tracks), len(poses.nodes)
    pts = np.full((f_all, t, k, 2), np.nan)
    pts[poses.frames] = poses.points
    sc = np.full((f_all, t, k), np.nan)
    sc[poses.frames] = poses.scores
    angles_in = None
    if poses.angles is not None:
        angles_in = np.full((f_all, t), np.nan)
        angles_in[poses.frames] = poses.angles
    return pts, sc, angles_in


def _axes(pts: np.ndarray, choice: kin.NodeChoice, angles_in):
    """Centre (f, t, 2), body angle, body length and head angle (f, t) from the chosen nodes."""
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
    return center, angle, body_len, head


def _select(opts: ImportOptions, anything, ok_center, ok_angle, low_used, outside):
    """Which (frame, track) become crops, and how many were skipped for which reason.

    Every frame in range and on the --every grid is a candidate; a reason is counted for each track within its life
    (first to last frame with any point): outside it the track does not exist, which is not a skipped crop."""
    f_all, t = ok_center.shape
    sel = np.zeros(f_all, dtype=bool)
    stop = min(f_all, opts.stop if opts.stop is not None else f_all)
    sel[opts.start : stop : opts.every] = True
    keep = ok_center & ok_angle & sel[:, None]
    skipped: dict[str, int] = {}
    alive = (np.cumsum(anything, axis=0) > 0) & (np.cumsum(anything[::-1], axis=0)[::-1] > 0)
    cand = sel[:, None] & alive
    _count(skipped, "low_score", cand & ~keep & low_used)
    _count(skipped, "center_outside_video", cand & outside & ~low_used)
    _count(skipped, "missing_center", cand & ~ok_center & ~outside & ~low_used)
    _count(skipped, "missing_heading", cand & ok_center & ~ok_angle & ~low_used)
    # fragments: tracks with fewer usable frames than asked
    kept_tracks = [j for j in range(t) if keep[:, j].sum() >= opts.min_track_frames and keep[:, j].any()]
    short = [j for j in range(t) if j not in kept_tracks and keep[:, j].any()]
    if short:
        _count(skipped, "short_track", keep[:, short])
        keep[:, short] = False
    return keep, skipped, kept_tracks


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


def condition_rows(plan: Plan, fidx, tidx, fps: float, speed, ang_speed, med_len, arena) -> dict:
    """The condition columns of the planned crops (rows fidx, tidx of the grid)."""
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
