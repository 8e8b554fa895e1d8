"""Readers for pose-tracking output: every format becomes one :class:`Poses` array set.

Formats: SLEAP ``.slp`` (through ``sleap-io``, the optional extra ``aelens[pose]``) and SLEAP analysis ``.h5`` (with or
without ``point_scores``); DeepLabCut inference output ``.h5``/``.csv`` (single- and multi-animal headers) and
LightningPose ``.csv`` (the same header layout); NWB with ndx-pose (read with ``h5py``: DeepLabCut's and SLEAP's); and a plain
``.csv`` with ``frame,x,y[,angle_deg][,track][,score]`` for home-made trackers.

Coordinates are video pixels as the trackers write them: x to the right, y down, the centre of the top-left pixel at
(0, 0). Angles (``angle_deg`` of the plain CSV) are degrees counter-clockwise from +x with y up, as everywhere in
aelens. Nothing here unpickles: DeepLabCut's ``.h5`` keeps its column labels in a pickled attribute, which is decoded
by :func:`plain_pickle_labels`, an interpreter for the opcodes of lists, tuples, strings and numbers only.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import AelensError
from .pose_data import Poses, check_points, open_h5
from .pose_dlc import plain_pickle_labels, read_dlc_csv, read_dlc_h5
from .pose_nwb import read_nwb
from .pose_sleap import read_sleap_analysis, read_with_sleap_io

__all__ = ["POSE_SUFFIXES", "Poses", "describe", "plain_pickle_labels", "read_poses"]

POSE_SUFFIXES = (".slp", ".h5", ".hdf5", ".csv", ".nwb")


def read_poses(path: str | Path) -> Poses:
    """Read any supported pose file (chosen by suffix, then by content); errors name the file and what was expected.

    Example: ``p = read_poses("session1.analysis.h5"); p.points.shape  # (frames, tracks, nodes, 2)``
    """
    path = Path(path)
    if not path.is_file():
        raise AelensError(f"{path}: pose file not found" if not path.exists() else f"{path}: is not a file")
    suffix = path.suffix.lower()
    if suffix == ".slp":
        return read_with_sleap_io(path)
    if suffix == ".nwb":
        return read_nwb(path)
    if suffix in (".h5", ".hdf5"):
        return _read_h5(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise AelensError(
        f"{path}: unsupported pose file type {suffix or '(none)'!r}; expected {', '.join(POSE_SUFFIXES)} "
        "(SLEAP, DeepLabCut, LightningPose, NWB or a plain frame,x,y CSV)"
    )


# --------------------------------------------------------------------------------------------- HDF5: SLEAP analysis, DLC


def _read_h5(path: Path) -> Poses:
    import h5py

    with open_h5(path) as fh:
        try:
            if "tracks" in fh and "node_names" in fh:
                return read_sleap_analysis(path, fh)
            tables = [k for k in fh.keys() if isinstance(fh[k], h5py.Group) and "pandas_type" in fh[k].attrs]
            if tables:
                return read_dlc_h5(path, fh, tables)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:  # an unexpected inner layout
            raise AelensError(
                f"{path}: not laid out as SLEAP or DeepLabCut write it ({exc.__class__.__name__}: {exc})"
            ) from None
        found = ", ".join(list(fh.keys())[:8]) or "nothing"
        raise AelensError(
            f"{path}: not a SLEAP analysis file (datasets tracks, node_names) nor a DeepLabCut .h5 (a pandas table); found: {found}"
        )


# --------------------------------------------------------------------------------------------- CSV: DLC / LightningPose, plain


def _read_csv(path: Path) -> Poses:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            first = next(csv.reader(fh), None)
            if first is not None and first and first[0].strip().lower() == "scorer":
                fh.seek(0)
                return read_dlc_csv(path, fh)
            rows = [first] + [r for r in csv.reader(fh) if r] if first else []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AelensError(f"{path}: cannot read as CSV ({exc})") from None
    if not rows:
        raise AelensError(f"{path}: empty; expected a pose table")
    header = [c.strip().lower() for c in rows[0]]
    if {"frame", "x", "y"} <= set(header):
        return _read_plain_csv(path, rows, header)
    raise AelensError(
        f"{path}: not a DeepLabCut/LightningPose CSV (first cell 'scorer') nor a plain CSV with columns frame,x,y; "
        f"header: {','.join(rows[0][:6])}"
    )


def _read_plain_csv(path: Path, rows: list[list[str]], header: list[str]) -> Poses:
    allowed = {"frame", "x", "y", "angle_deg", "track", "score"}
    unknown = [h for h in header if h not in allowed]
    if unknown:
        raise AelensError(
            f"{path}: unknown column {unknown[0]!r}; a plain pose CSV has frame,x,y[,angle_deg][,track][,score]"
        )
    twice = [h for h in dict.fromkeys(header) if header.count(h) > 1]
    if twice:
        raise AelensError(
            f"{path}: column {twice[0]!r} appears {header.count(twice[0])} times in the header; once expected"
        )
    col = {h: header.index(h) for h in header}
    vals: dict[str, list[float]] = {h: [] for h in header}
    for i, r in enumerate(rows[1:]):
        if len(r) != len(header):
            raise AelensError(f"{path}: row {i + 2} has {len(r)} fields; the header has {len(header)}")
        for h in header:
            cell = r[col[h]].strip()
            if cell == "" or cell.lower() in ("nan", "na"):
                if h in ("frame", "track"):
                    raise AelensError(f"{path}: row {i + 2}: column {h!r} is empty")
                vals[h].append(np.nan)
                continue
            try:
                vals[h].append(float(cell))
            except ValueError:
                raise AelensError(f"{path}: row {i + 2}, column {h!r}: {cell!r} is not a number") from None
    if not vals["frame"]:
        raise AelensError(f"{path}: header only, no rows of points")
    frame = np.asarray(vals["frame"])
    if np.any(frame != np.round(frame)) or np.any(np.abs(frame) > 2**40):
        raise AelensError(f"{path}: column 'frame' holds non-integer values or values beyond any video's length")
    frame = frame.astype(np.int64)
    track_f = np.asarray(vals["track"], dtype=np.float64) if "track" in col else np.zeros(len(frame))
    bad_t = ~np.isfinite(track_f) | (track_f != np.round(track_f)) | (np.abs(track_f) > 2**31)
    if bad_t.any():
        raise AelensError(
            f"{path}: column 'track' holds {track_f[bad_t][0]:g}; expected whole-number track ids (0, 1, 2, ...)"
        )
    track = track_f.astype(np.int64)
    uf = np.unique(frame)
    ut = np.unique(track)
    fi = np.searchsorted(uf, frame)
    ti = np.searchsorted(ut, track)
    if len(set(zip(fi.tolist(), ti.tolist()))) != len(frame):
        raise AelensError(f"{path}: a (frame, track) pair appears twice")
    points = np.full((len(uf), len(ut), 1, 2), np.nan)
    points[fi, ti, 0, 0] = vals["x"]
    points[fi, ti, 0, 1] = vals["y"]
    scores = np.full((len(uf), len(ut), 1), np.nan)
    if "score" in col:
        scores[fi, ti, 0] = vals["score"]
    angles = None
    if "angle_deg" in col:
        angles = np.full((len(uf), len(ut)), np.nan)
        angles[fi, ti] = vals["angle_deg"]
    return check_points(
        Poses(points, scores, uf, ["center"], [str(t) for t in ut], str(path), "plain-csv", angles=angles)
    )


def describe(poses: Poses) -> str:
    """One line: format, rows, tracks, nodes."""
    return (
        f"{Path(poses.source).name}: {poses.format}, {len(poses.frames)} frames, {len(poses.tracks)} tracks, "
        f"nodes {', '.join(poses.nodes)}"
    )
