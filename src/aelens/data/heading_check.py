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


def image_axis(crops: np.ndarray, radius: float = 0.24) -> tuple[np.ndarray, np.ndarray]:
    """Long axis of the animal at the centre of each crop: ``(axis_deg, elongation)``.

    ``crops``: (n, h, w) or (n, c, h, w) (channels averaged). Moments are taken inside a centred disk of ``radius`` x
    the crop size (an importer crop is 4 body lengths wide: the disk spans about one body length each way), weighted
    by how far each pixel is above the disk's 60th percentile (animal brighter than the border) or below its 40th
    (darker). ``axis_deg`` is in [0, 180), counter-clockwise from +x with y up (the importer's convention);
    ``elongation`` is 0 for a round blob and 1 for a line."""
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
    mass = weight.sum(axis=1) + 1e-9
    px, py = xx[disk], yy[disk]
    mx, my = weight @ px / mass, weight @ py / mass
    dx, dy = px[None] - mx[:, None], py[None] - my[:, None]
    mu20, mu02, mu11 = ((weight * v).sum(axis=1) / mass for v in (dx * dx, dy * dy, dx * dy))
    axis_down = 0.5 * np.degrees(np.arctan2(2 * mu11, mu20 - mu02))  # image rows grow downwards
    elongation = np.sqrt((mu20 - mu02) ** 2 + 4 * mu11**2) / (mu20 + mu02 + 1e-9)
    return np.mod(-axis_down, 180.0), elongation


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
