"""Trackers' mistakes, found with evidence from the pictures: a pose file out of step with its video (a constant
frame offset), poses that stay still while the animal in the crops moves (frozen tracking), and body parts that
jump off the body (onto another animal, when animals touch). Pure functions on arrays.

Every check compares the poses with the animal's image mass centre: in each crop (centred on the tracked centre),
the mass of the pixels brighter or darker than the crop's surroundings (see :mod:`.heading_check`), turned back into
video pixels. Where the tracking is right, the mass centre stays a short, steady distance from the tracked centre;
where it is wrong, it does not.
"""

from __future__ import annotations

import numpy as np

MAX_OFFSET = 8  # frames: the lags searched for a constant offset between poses and video
OFFSET_GAIN = 0.10  # an offset is reported when its steps fit the pictures this much better than none (share)
OFFSET_MIN_PX = 0.05  # ... and by at least this many video pixels per step
MOVING_PX = 0.5  # video pixels per frame: frames where the tracked centre moves less say nothing about lags
STILL_PX = 0.05  # video pixels per frame: a tracked centre that moves less than this repeats the same pose
STILL_S = 0.4  # seconds: repeated poses for at least this long (and 10 frames) make a still stretch
FROZEN_TRAVEL = 0.1  # x window: a still stretch whose image mass centre travels farther than this is frozen tracking
FROZEN_CONTRAST = 0.4  # ... or whose crops hold less than this share of the animal's usual image mass (it left)
PART_FAR = 2.0  # a body part farther from the centre than this x its usual distance (+ half a body length) is off
WARN_SHARE = 0.005  # a track is reported when at least this share of its frames (and WARN_MIN) show a mistake
WARN_MIN = 3


def mass_positions(x, y, side_deg, shift, window: float) -> tuple[np.ndarray, np.ndarray]:
    """The image mass centre of each crop in video pixels, from the crop's tracked centre ``x, y``, the direction
    of the mass from the crop centre (``side_deg``, counter-clockwise from +x with y up) and its distance
    (``shift``, a fraction of the crop side, which spans ``window`` video pixels)."""
    r = np.asarray(shift, float) * window
    a = np.radians(np.asarray(side_deg, float))
    return np.asarray(x, float) + r * np.cos(a), np.asarray(y, float) - r * np.sin(a)  # video y grows downwards


def _by_track(tracks: np.ndarray, frames: np.ndarray):
    """(track, row indices sorted by frame) for each track."""
    tracks = np.asarray(tracks).astype(str)
    for g in sorted(set(tracks.tolist())):
        idx = np.flatnonzero(tracks == g)
        yield g, idx[np.argsort(np.asarray(frames)[idx], kind="stable")]


def frame_offset(frames, tracks, x, y, mx, my, max_lag: int = MAX_OFFSET) -> dict:
    """The constant lag between the poses and the video that best explains the pictures.

    The animal's image mass centre sits a steady distance from its tracked centre (the body is not centred on the
    tracked point), so positions are not compared: motions are. For each lag L, the mean distance between the
    image mass centre's step at video frame f (half the move from f - 1 to f + 1) and the tracked centre's step at
    pose row f + L, same track. ``estimate``: the best L (0 unless it beats no offset by OFFSET_GAIN and
    OFFSET_MIN_PX); ``residual_px``: that mean distance at each lag; ``frames``: the steps compared. A positive
    estimate: the poses run ahead of the video (row f + L shows video frame f); ``--frame-offset L`` corrects it.
    An animal that never changes speed or direction shows no lag: the estimate is then 0."""
    frames = np.asarray(frames, np.int64)
    x, y, mx, my = (np.asarray(v, float) for v in (x, y, mx, my))
    sums = np.zeros(2 * max_lag + 1)
    counts = np.zeros(2 * max_lag + 1)
    for _, idx in _by_track(tracks, frames):
        f = frames[idx]
        if len(f) < 2 * max_lag + 3:
            continue
        pad = max_lag + 1
        n = f[-1] - f[0] + 1 + 2 * pad
        track_xy, mass_xy = np.full((n, 2), np.nan), np.full((n, 2), np.nan)  # on a dense frame grid
        pos = f - f[0] + pad
        track_xy[pos] = np.stack([x[idx], y[idx]], axis=1)
        mass_xy[pos] = np.stack([mx[idx], my[idx]], axis=1)
        step_t = np.full((n, 2), np.nan)
        step_m = np.full((n, 2), np.nan)
        step_t[1:-1] = (track_xy[2:] - track_xy[:-2]) / 2
        step_m[1:-1] = (mass_xy[2:] - mass_xy[:-2]) / 2
        moving = np.hypot(*step_t[pos].T) > MOVING_PX
        for k, lag in enumerate(range(-max_lag, max_lag + 1)):
            d = np.hypot(*(step_m[pos] - step_t[pos + lag]).T)
            use = moving & np.isfinite(d)
            sums[k] += d[use].sum()
            counts[k] += use.sum()
    used = int(counts[max_lag])
    if used < 20:
        return {"estimate": 0, "frames": used, "residual_px": {}, "readable": False}
    res = sums / np.maximum(counts, 1)
    best = int(np.argmin(res))
    gain = res[max_lag] - res[best]
    found = best != max_lag and gain >= max(OFFSET_MIN_PX, OFFSET_GAIN * res[max_lag])
    return {
        "estimate": best - max_lag if found else 0,
        "frames": used,
        "residual_px": {str(lag): round(float(res[k]), 3) for k, lag in enumerate(range(-max_lag, max_lag + 1))},
        "readable": True,
    }


def frozen_stretches(frames, tracks, x, y, mx, my, contrast, window: float, fps: float) -> dict[str, dict]:
    """Per track: stretches where the pose repeats (the tracked centre moves under STILL_PX a frame for STILL_S and
    10 frames or more) while the pictures change: the animal's image mass centre travels more than FROZEN_TRAVEL x
    ``window``, or the animal leaves the crops (``contrast``, its mass per pixel, under FROZEN_CONTRAST of the
    track's usual on most of the stretch). The tracker kept an old pose while the animal moved on. ``frames``: crops
    in such stretches; ``stretches``: their first and last frames (up to 5)."""
    frames = np.asarray(frames, np.int64)
    x, y, mx, my, contrast = (np.asarray(v, float) for v in (x, y, mx, my, contrast))
    min_len = max(10, int(round(STILL_S * fps)))
    out = {}
    for g, idx in _by_track(tracks, frames):
        f = frames[idx]
        step = np.hypot(np.diff(x[idx]), np.diff(y[idx]))
        still = (np.diff(f) == 1) & (step < STILL_PX)
        usual = float(np.median(contrast[idx])) if len(idx) else 0.0
        found, n = [], 0
        start = 0
        for i in range(len(still) + 1):  # runs of still pairs: frames start .. i
            if i < len(still) and still[i]:
                continue
            run = idx[start : i + 1]
            if len(run) >= min_len and _pictures_change(mx[run], my[run], contrast[run], usual, window):
                found.append([int(frames[run[0]]), int(frames[run[-1]])])
                n += len(run)
            start = i + 1
        out[g] = {"frames": n, "of": int(len(idx)), "stretches": found[:5]}
    return out


def _pictures_change(mx, my, contrast, usual: float, window: float) -> bool:
    """Within a stretch of repeated poses: does the animal move in the crops, or leave them?"""
    gone = contrast < FROZEN_CONTRAST * usual
    if gone.mean() > 0.5:
        return True
    ok = np.isfinite(mx) & np.isfinite(my) & ~gone
    if ok.sum() < 5:
        return False
    travel = np.hypot(mx[ok] - np.median(mx[ok]), my[ok] - np.median(my[ok]))
    return bool(np.percentile(travel, 90) > FROZEN_TRAVEL * window)


def parts_off_body(points: np.ndarray, center: np.ndarray, keep: np.ndarray, body_len: float) -> dict[int, dict]:
    """Per track (index): frames where a body part lies far off the body (farther from the track's centre than
    PART_FAR x that part's median distance + half a body length), and among them those where it lies on another
    animal (within one body length of another track's centre): one animal's parts given to another.

    ``points``: (f, t, k, 2) the file's points; ``center``: (f, t, 2); ``keep``: (f, t) the crops made."""
    f, t, k = points.shape[:3]
    dist = np.hypot(*(points - center[:, :, None, :]).transpose(3, 0, 1, 2))  # (f, t, k)
    bl = body_len if np.isfinite(body_len) and body_len > 0 else np.nan
    out = {}
    for j in range(t):
        rows = keep[:, j]
        if rows.sum() < 10 or not np.isfinite(bl):
            continue
        with np.errstate(invalid="ignore"):
            usual = np.nanmedian(np.where(rows[:, None], dist[:, j], np.nan), axis=0)  # (k,)
            off = (dist[:, j] > PART_FAR * usual[None] + 0.5 * bl) & rows[:, None]
        any_off = off.any(axis=1)
        on_other = np.zeros(f, dtype=bool)
        for o in range(t):
            if o == j:
                continue
            d_other = np.hypot(*(points[:, j] - center[:, o][:, None, :]).transpose(2, 0, 1))  # (f, k)
            with np.errstate(invalid="ignore"):
                on_other |= (off & (d_other < bl)).any(axis=1)
        first = np.flatnonzero(any_off)
        out[j] = {
            "frames": int(any_off.sum()),
            "on_another_animal": int(on_other.sum()),
            "of": int(rows.sum()),
            "first_frames": [int(v) for v in first[:5]],
        }
    return out


def _reported(n: int, of: int) -> bool:
    return n >= WARN_MIN and n >= WARN_SHARE * max(of, 1)


def tracking_warnings(checks: dict, where: str) -> list[str]:
    """Sentences for the mistakes found in one session's ``tracking_checks``."""
    notes = []
    off = checks.get("frame_offset", {})
    if off.get("estimate"):
        applied = off.get("applied", 0)
        notes.append(
            f"{where}: the poses follow the pictures best {off['estimate']:+d} frames off the video (the animal's "
            f"image moves with its poses to within {off['residual_px'].get(str(off['estimate']))} px a frame there, "
            f"{off['residual_px'].get('0')} px as given): "
            + (
                f"--frame-offset {applied} was applied"
                if applied
                else f"check the pose file belongs to this video, or import with --frame-offset {off['estimate']}"
            )
        )
    for track, fr in checks.get("frozen", {}).items():
        if _reported(fr["frames"], fr["of"]):
            spans = ", ".join(f"{a}-{b}" for a, b in fr["stretches"])
            notes.append(
                f"{where}, track {track}: the pose stays still on {fr['frames']} frames (e.g. {spans}) while the "
                "animal in the crops moves: frozen tracking; those crops are not centred on the animal"
            )
    for track, p in checks.get("parts_off_body", {}).items():
        if _reported(p["frames"], p["of"]):
            other = f", {p['on_another_animal']} of them on another animal" if p["on_another_animal"] else ""
            notes.append(
                f"{where}, track {track}: body parts lie far off the body on {p['frames']} frames{other} (first "
                f"{', '.join(map(str, p['first_frames']))}): identity or part swaps; their headings are wrong"
            )
    return notes
