"""Do a pose file's headings agree with the animal's visible long axis in its crops?

A tracker can place a body point consistently off the body (a head point beside the head, on a fly that sits still
for most of a clip): the labels then sit a constant angle away from what the picture shows, and a tagger that reads
the body from the picture is scored that far off on that animal, however well it learned. This module measures it:
the long axis of the animal in each crop from intensity moments (the animal brighter or darker than the crop's
border, decided per crop), and per track the offset between the pose heading and that axis, modulo 180 deg (the
axis has no front). Pure functions on arrays.
"""

from __future__ import annotations

import numpy as np

OFFSET_WARN_DEG = 15.0  # a track whose headings sit this far from the visible axis on most frames is reported
SPREAD_WARN_DEG = 30.0  # ... when they do so consistently (interquartile range below this)
MIN_ELONGATION = 0.3  # crops whose bright (or dark) mass is rounder than this carry no axis
MIN_SHIFT = 0.02  # a mass centre nearer the crop centre than this (fraction of the crop size) has no side to read
JUMP_DEG = 135.0  # a pose heading that turns this far between consecutive frames: swapped head and tail points
JUMP_WARN_SHARE = 0.01  # a track with such jumps in at least 1% of its consecutive frame pairs (and 3) is reported
SIDE_CONSISTENT = 0.8  # a track whose mass lies on one side of its heading in this share of crops has a usual side


def _animal_mass(crops: np.ndarray, radius: float):
    """Pixel weights of the animal inside a centred disk of ``radius`` x the crop size: how far each pixel is above
    the disk's 60th percentile (animal brighter than the crop's border) or below its 40th (darker), decided per
    crop. Returns ``(weight (n, m), px (m,), py (m,), mass (n,), centre_x, centre_y, size)``; ``px, py`` are the
    disk's pixel columns and rows, ``size`` the crop's shorter side."""
    x = np.asarray(crops, dtype=np.float32)
    if x.ndim == 4:
        x = x.mean(axis=1)
    n, h, w = x.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= (radius * min(h, w)) ** 2
    ring = (yy - cy) ** 2 + (xx - cx) ** 2 >= (0.45 * min(h, w)) ** 2
    inside = x[:, disk]
    bright = inside.mean(axis=1) >= x[:, ring].mean(axis=1)
    hi, lo = np.percentile(inside, 60, axis=1), np.percentile(inside, 40, axis=1)
    weight = np.where(bright[:, None], np.clip(inside - hi[:, None], 0, None), np.clip(lo[:, None] - inside, 0, None))
    return weight, xx[disk], yy[disk], weight.sum(axis=1) + 1e-9, cx, cy, min(h, w)


def image_shape(crops: np.ndarray, radius: float = 0.24) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`image_axis` and :func:`image_mass_side` from one pass over the crops (the import needs both), and
    ``contrast``, the animal's mass per pixel of the disk (grey levels; about the same for an animal's crops, near
    noise level on a crop without the animal): ``(axis_deg, elongation, side_deg, shift, contrast)``."""
    weight, px, py, mass, cx, cy, size = _animal_mass(crops, radius)
    mx, my = weight @ px / mass, weight @ py / mass
    dx, dy = px[None] - mx[:, None], py[None] - my[:, None]
    mu20, mu02, mu11 = ((weight * v).sum(axis=1) / mass for v in (dx * dx, dy * dy, dx * dy))
    axis_down = 0.5 * np.degrees(np.arctan2(2 * mu11, mu20 - mu02))  # image rows grow downwards
    elongation = np.sqrt((mu20 - mu02) ** 2 + 4 * mu11**2) / (mu20 + mu02 + 1e-9)
    sx, sy = mx - cx, my - cy
    side = np.mod(np.degrees(np.arctan2(-sy, sx)), 360.0)
    return np.mod(-axis_down, 180.0), elongation, side, np.hypot(sx, sy) / size, mass / len(px)


def image_axis(crops: np.ndarray, radius: float = 0.24) -> tuple[np.ndarray, np.ndarray]:
    """Long axis of the animal at the centre of each crop: ``(axis_deg, elongation)``.

    ``crops``: (n, h, w) or (n, c, h, w) (channels averaged). Moments are taken inside a centred disk of ``radius`` x
    the crop size (an importer crop is 4 body lengths wide: the disk spans about one body length each way), weighted
    by how far each pixel is above the disk's 60th percentile (animal brighter than the border) or below its 40th
    (darker). ``axis_deg`` is in [0, 180), counter-clockwise from +x with y up (the importer's convention);
    ``elongation`` is 0 for a round blob and 1 for a line."""
    return image_shape(crops, radius)[:2]


def image_mass_side(crops: np.ndarray, radius: float = 0.24) -> tuple[np.ndarray, np.ndarray]:
    """Which way the animal's mass lies from the crop centre (the tracked centre point): ``(direction_deg, shift)``.

    ``direction_deg`` in [0, 360), counter-clockwise from +x with y up; ``shift`` is the distance of the mass centre
    from the crop centre as a fraction of the crop size (below MIN_SHIFT the side cannot be read). The body is not
    symmetric about a tracked centre point (a fly's thorax: the wings and abdomen lie on one side), so along one
    track the heading keeps one relation to this side, ahead or behind; a heading that turns the other way round
    on some crops was swapped head to tail there (see :func:`heading_reversals`)."""
    return image_shape(crops, radius)[2:4]


def axial_offset(heading_deg: np.ndarray, axis_deg: np.ndarray) -> np.ndarray:
    """Heading minus axis, modulo 180, in [-90, 90)."""
    return np.mod(np.asarray(heading_deg, float) - np.asarray(axis_deg, float) + 90.0, 180.0) - 90.0


def visible_heading(axis_deg: np.ndarray, heading_deg: np.ndarray) -> np.ndarray:
    """The visible axis as a direction, its front taken from the pose heading (the end within 90 deg of it), in
    [0, 360): a reference for scoring a tagger on crops whose labels sit off the body."""
    axis_deg = np.asarray(axis_deg, float)
    reverse = np.abs(np.mod(np.asarray(heading_deg, float) - axis_deg + 180.0, 360.0) - 180.0) > 90.0
    return np.mod(axis_deg + 180.0 * reverse, 360.0)


def heading_agreement(
    heading_deg: np.ndarray, axis_deg: np.ndarray, elongation: np.ndarray, groups: np.ndarray
) -> dict[str, dict]:
    """Per group (track): the typical offset of the headings from the visible axis and its spread.

    ``offset_deg`` is the median offset around the offsets' axial mean (so a tight cluster near +-90 is not split);
    ``iqr_deg`` its interquartile range; ``frames`` the crops used (finite heading, elongation >= MIN_ELONGATION)."""
    heading_deg, axis_deg = np.asarray(heading_deg, float), np.asarray(axis_deg, float)
    groups = np.asarray(groups).astype(str)
    out = {}
    for g in sorted(set(groups.tolist())):
        use = (groups == g) & np.isfinite(heading_deg) & (np.asarray(elongation) >= MIN_ELONGATION)
        if use.sum() < 10:
            continue
        off = axial_offset(heading_deg[use], axis_deg[use])
        centre = np.degrees(np.angle(np.exp(2j * np.radians(off)).mean())) / 2
        dev = axial_offset(off, centre)
        q25, q50, q75 = np.percentile(dev, [25, 50, 75]) + centre
        out[g] = {
            "frames": int(use.sum()),
            "offset_deg": round(float(axial_offset(q50, 0.0)), 2),
            "iqr_deg": [round(float(q25), 2), round(float(q75), 2)],
        }
    return out


def agreement_warnings(agreement: dict[str, dict], where: str) -> list[str]:
    """One sentence per track whose headings sit consistently more than OFFSET_WARN_DEG from the visible axis."""
    notes = []
    for track, a in agreement.items():
        lo, hi = a["iqr_deg"]
        if abs(a["offset_deg"]) > OFFSET_WARN_DEG and hi - lo < SPREAD_WARN_DEG:
            notes.append(
                f"{where}, track {track}: the pose heading sits {a['offset_deg']:+.1f} deg from the animal's visible "
                f"long axis in its crops (interquartile {lo:+.1f} to {hi:+.1f} deg, {a['frames']} crops): check the "
                "tracked head and tail points; a tagger that reads the body from the picture is scored about that "
                "far off on this track"
            )
    return notes


def _angle_diff(a, b) -> np.ndarray:
    """|a - b| on the circle, degrees in [0, 180]."""
    return np.abs(np.mod(np.asarray(a, float) - np.asarray(b, float) + 180.0, 360.0) - 180.0)


def _mass_ahead(heading_deg, side_deg, shift) -> tuple[np.ndarray, np.ndarray]:
    """Per crop: is the side readable (finite heading, shift >= MIN_SHIFT), and does the mass lie ahead of the
    heading (within 90 deg of it)?"""
    readable = np.isfinite(np.asarray(heading_deg, float)) & (np.asarray(shift) >= MIN_SHIFT)
    return readable, _angle_diff(heading_deg, side_deg) < 90.0


def _reversed(readable: np.ndarray, ahead: np.ndarray, members: np.ndarray) -> tuple[str | None, np.ndarray]:
    """One track (``members``: a boolean mask): its usual mass side (``ahead``, ``behind`` or None) and the mask of
    its readable crops on the other side."""
    use = members & readable
    share = float(ahead[use].mean()) if use.any() else 0.5
    side = "ahead" if share >= SIDE_CONSISTENT else "behind" if share <= 1 - SIDE_CONSISTENT else None
    return side, (use & (ahead != (side == "ahead"))) if side else np.zeros_like(use)


def heading_reversals(
    heading_deg: np.ndarray, side_deg: np.ndarray, shift: np.ndarray, groups: np.ndarray, frames: np.ndarray
) -> dict[str, dict]:
    """Per group (track): signs that the tracker swapped head and tail on some frames.

    - ``jumps``: consecutive frame pairs (frame numbers one apart) across which the heading turns by more than
      JUMP_DEG; ``frame_pairs``: the consecutive pairs counted. An animal filmed at video rates does not turn round
      in one frame; a swapped head and tail point does, and turns back when the swap ends.
    - ``mass_side``: where the animal's mass lies from the tracked centre relative to the heading on most crops
      (``ahead`` or ``behind``; None when neither holds on SIDE_CONSISTENT of the readable crops);
      ``reversed``: readable crops on the other side, and ``reversed_frames`` the first and last frame among them.

    Example: a track whose headings are turned by 180 deg on frames 60-79 has 2 jumps and 20 reversed crops."""
    groups = np.asarray(groups).astype(str)
    heading_deg, frames = np.asarray(heading_deg, float), np.asarray(frames)
    readable, ahead = _mass_ahead(heading_deg, side_deg, shift)
    out = {}
    for g in sorted(set(groups.tolist())):
        idx = np.flatnonzero(groups == g)
        idx = idx[np.argsort(frames[idx], kind="stable")]
        pairs = (np.diff(frames[idx]) == 1) & np.isfinite(heading_deg[idx][1:]) & np.isfinite(heading_deg[idx][:-1])
        turn = _angle_diff(heading_deg[idx][1:], heading_deg[idx][:-1])
        side, rev = _reversed(readable, ahead, groups == g)
        rev = np.flatnonzero(rev)
        out[g] = {
            "frame_pairs": int(pairs.sum()),
            "jumps": int((pairs & (turn > JUMP_DEG)).sum()),
            "readable_crops": int((readable & (groups == g)).sum()),
            "mass_side": side,
            "reversed": int(len(rev)),
            "reversed_frames": [int(frames[rev].min()), int(frames[rev].max())] if len(rev) else None,
        }
    return out


def reversal_warnings(reversals: dict[str, dict], where: str) -> list[str]:
    """One sentence per track whose heading turns round between consecutive frames in at least JUMP_WARN_SHARE of
    its frame pairs (and at least 3 times)."""
    notes = []
    for track, r in reversals.items():
        if r["jumps"] < max(3, JUMP_WARN_SHARE * r["frame_pairs"]):
            continue
        picture = ""
        if r["mass_side"] and r["reversed"]:
            first, last = r["reversed_frames"]
            picture = (
                f"; on {r['reversed']} of its {r['readable_crops']} crops (frames {first}-{last}) it also points the "
                f"other way round from the rest of the track against the animal's body in the crop"
            )
        notes.append(
            f"{where}, track {track}: the pose heading turns by more than {JUMP_DEG:.0f} deg from one frame to the "
            f"next {r['jumps']} times in {r['frame_pairs']} frame pairs{picture}: the tracker likely swapped head and "
            "tail there; a tagger that reads the body from the picture is scored about 180 deg off on swapped frames"
        )
    return notes


def side_consistent_heading(
    heading_deg: np.ndarray, side_deg: np.ndarray, shift: np.ndarray, groups: np.ndarray
) -> np.ndarray:
    """The pose headings with the reversed crops of :func:`heading_reversals` turned by 180 deg: a reference for
    scoring a tagger on tracks whose head and tail were swapped on some frames (tracks without a usual mass side,
    and unreadable crops, keep their headings)."""
    groups = np.asarray(groups).astype(str)
    out = np.asarray(heading_deg, float).copy()
    readable, ahead = _mass_ahead(heading_deg, side_deg, shift)
    for g in set(groups.tolist()):
        flip = _reversed(readable, ahead, groups == g)[1]
        out[flip] = np.mod(out[flip] + 180.0, 360.0)
    return out
