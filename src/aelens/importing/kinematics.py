"""From tracked points to crop centres, headings and per-frame conditions: pure functions on arrays.

Conventions: points are video pixels, x right, y down (as trackers write them); every angle is in degrees,
counter-clockwise from +x with y up, in [0, 360), so an animal facing the top of the video has 90 deg.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AelensError

# auto node choice, by (lower-case) name, in order of preference
CENTER_NAMES = (
    "center",
    "centre",
    "centroid",
    "body_center",
    "bodycenter",
    "body_centre",
    "thorax",
    "mid",
    "spine_mid",
    "midbody",
    "body",
)
BACK_NAMES = ("tail_base", "tailbase", "tail_root", "tailroot", "tail", "abdomen", "thorax")
FRONT_NAMES = ("neck", "head", "nose", "snout")
HEAD_BACK_NAMES = ("neck", "head_base", "headbase", "thorax")
HEAD_FRONT_NAMES = ("nose", "snout", "head")


@dataclass(frozen=True)
class NodeChoice:
    """Node indices: ``center`` (averaged), ``back`` -> ``front`` (each averaged) for the body axis, and the optional
    head axis ``head_back`` -> ``head_front``; ``text`` says what was chosen, in the file's names."""

    center: tuple[int, ...]
    back: tuple[int, ...]
    front: tuple[int, ...]
    head_back: tuple[int, ...] = ()
    head_front: tuple[int, ...] = ()
    text: str = ""


def _group(spec: str, nodes: list[str], source: str, option: str) -> tuple[int, ...]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise AelensError(f"{option}: empty node list")
    missing = [nm for nm in names if nm not in nodes]
    if missing:
        raise AelensError(f"{option}: {source} has no node {missing[0]!r}; its nodes are: {', '.join(nodes)}")
    return tuple(nodes.index(nm) for nm in names)


def _first(nodes: list[str], prefs: tuple[str, ...], exclude: tuple[int, ...] = ()) -> int | None:
    low = [n.lower().replace("-", "_").replace(" ", "_") for n in nodes]
    for p in prefs:
        for i, n in enumerate(low):
            if n == p and i not in exclude:
                return i
    return None


def choose_nodes(nodes: list[str], center: str, heading: str, source: str, has_angles: bool = False) -> NodeChoice:
    """Resolve ``--center`` (a node, ``a,b`` for their mean, or ``auto``) and ``--heading`` (``back:front`` with
    comma groups, or ``auto``). ``auto`` picks by common names and otherwise fails listing the file's nodes."""
    if heading == "auto":
        if has_angles and len(nodes) == 1:
            back = front = ()
        else:
            b = _first(nodes, BACK_NAMES)
            f = _first(nodes, FRONT_NAMES, exclude=(b,) if b is not None else ())
            if b is None or f is None:
                raise AelensError(
                    f"--heading auto: cannot tell back from front in {source} (nodes: {', '.join(nodes)}); "
                    "pass --heading BACK:FRONT, e.g. --heading tail_base:nose or --heading abdomen,thorax:head"
                )
            back, front = (b,), (f,)
    else:
        if heading.count(":") != 1:
            raise AelensError(f"--heading: expected BACK:FRONT (node names, comma-separated groups), got {heading!r}")
        bs, fs = heading.split(":")
        back = _group(bs, nodes, source, "--heading")
        front = _group(fs, nodes, source, "--heading")
        if set(back) & set(front):
            raise AelensError(f"--heading: a node is on both sides of {heading!r}")
    if center == "auto":
        c = _first(nodes, CENTER_NAMES)
        if c is not None:
            cen: tuple[int, ...] = (c,)
        elif back:
            cen = tuple(dict.fromkeys(back + front))
        else:
            cen = tuple(range(len(nodes)))
    else:
        cen = _group(center, nodes, source, "--center")
    hb = _first(nodes, HEAD_BACK_NAMES)
    hf = _first(nodes, HEAD_FRONT_NAMES, exclude=(hb,) if hb is not None else ())
    head_back, head_front = ((hb,), (hf,)) if hb is not None and hf is not None else ((), ())
    if (head_back, head_front) == (back, front):
        head_back, head_front = (), ()

    def names(g):
        return ",".join(nodes[i] for i in g)

    text = f"centre {names(cen)}; heading " + (
        f"{names(back)} -> {names(front)}" if back else "from the file's angle_deg"
    )
    if head_back:
        text += f"; head {names(head_back)} -> {names(head_front)}"
    return NodeChoice(cen, back, front, head_back, head_front, text)


def mask_scores(points: np.ndarray, scores: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Points whose score is under ``min_score`` become NaN (unknown scores, NaN, are kept). Returns the masked
    points and a boolean (f, t, k) mask of the points removed by the score."""
    low = np.isfinite(scores) & (scores < min_score) & np.isfinite(points[..., 0])
    out = points.copy()
    out[low] = np.nan
    return out, low


def interpolate_gaps(series: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Fill interior runs of NaN rows no longer than ``max_gap`` linearly, along axis 0 of (f, ...) arrays, each
    trailing position on its own. Never fills a longer gap nor the ends (before the first or after the last valid
    row). Returns (filled copy, (f, ...) mask of filled entries)."""
    out = series.copy()
    filled = np.zeros(series.shape, dtype=bool)
    if max_gap <= 0:
        return out, filled
    flat = out.reshape(out.shape[0], -1)
    fflat = filled.reshape(filled.shape[0], -1)
    for j in range(flat.shape[1]):
        col = flat[:, j]
        ok = np.isfinite(col)
        idx = np.flatnonzero(ok)
        if len(idx) < 2:
            continue
        gaps = np.diff(idx) - 1
        for a, g in zip(idx[:-1][(gaps > 0) & (gaps <= max_gap)], gaps[(gaps > 0) & (gaps <= max_gap)]):
            b = a + g + 1
            t = np.arange(1, g + 1) / (g + 1)
            col[a + 1 : b] = col[a] + t * (col[b] - col[a])
            fflat[a + 1 : b, j] = True
    return out, filled


def group_mean(points: np.ndarray, group: tuple[int, ...]) -> np.ndarray:
    """(f, t, 2) mean of the nodes in ``group``; NaN where any of them is missing."""
    return points[:, :, list(group), :].mean(axis=2)


def heading_deg(back: np.ndarray, front: np.ndarray) -> np.ndarray:
    """Degrees counter-clockwise from +x with y up, in [0, 360), of the vector back -> front (video px, y down)."""
    d = front - back
    return np.mod(np.degrees(np.arctan2(-d[..., 1], d[..., 0])), 360.0)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` (odd) rows along axis 0; NaN wherever the window holds a NaN."""
    if width <= 1:
        return x.copy()
    k = width // 2
    pad = np.pad(x, [(k, k)] + [(0, 0)] * (x.ndim - 1), constant_values=np.nan)
    c = np.nancumsum(np.nan_to_num(pad, nan=0.0), axis=0)
    c = np.concatenate([np.zeros((1,) + x.shape[1:]), c], axis=0)
    nanc = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(np.isnan(pad), axis=0)], axis=0)
    s = (c[width:] - c[:-width]) / width
    n_nan = nanc[width:] - nanc[:-width]
    s[n_nan > 0] = np.nan
    return s


def speeds(center: np.ndarray, angle_deg: np.ndarray, fps: float, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Speed (px/s) of the smoothed centre and angular speed (deg/s, counter-clockwise positive) of the smoothed
    heading, by central differences over consecutive frames; (f, t) arrays, NaN next to gaps."""
    c = _smooth(center, width)
    vel = np.full_like(c, np.nan)
    vel[1:-1] = (c[2:] - c[:-2]) * (fps / 2.0)
    speed = np.hypot(vel[..., 0], vel[..., 1])
    # unit vectors average without wrap-around trouble; the angle difference is then taken on the circle
    rad = np.radians(angle_deg)
    u = _smooth(np.stack([np.cos(rad), np.sin(rad)], axis=-1), width)
    a = np.arctan2(u[..., 1], u[..., 0])
    ang = np.full(a.shape, np.nan)
    ang[1:-1] = np.degrees(np.angle(np.exp(1j * (a[2:] - a[:-2])))) * (fps / 2.0)
    return speed, ang


def estimate_arena(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Arena (cx, cy, r) from where the animals went: the centre of the 0.5-99.5 percentile box of the tracked
    centres and the radius that holds 99.5% of them. A guess: pass ``--arena cx,cy,r`` when you know it."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        raise AelensError("cannot estimate the arena from fewer than 2 tracked positions; pass --arena cx,cy,r")
    xs, ys = x[ok], y[ok]
    cx = float(np.mean(np.percentile(xs, [0.5, 99.5])))
    cy = float(np.mean(np.percentile(ys, [0.5, 99.5])))
    r = float(np.percentile(np.hypot(xs - cx, ys - cy), 99.5))
    return cx, cy, max(r, 1.0)
