"""Readers for pose-tracking output: every format becomes one :class:`Poses` array set.

Formats: SLEAP ``.slp`` (through ``sleap-io``, the optional extra ``aelens[pose]``) and SLEAP analysis ``.h5`` (with or
without ``point_scores``); DeepLabCut inference output ``.h5``/``.csv`` (single- and multi-animal headers) and
LightningPose ``.csv`` (the same header layout); NWB with ndx-pose (through ``sleap-io``, with ``pynwb``); and a plain
``.csv`` with ``frame,x,y[,angle_deg][,track][,score]`` for home-made trackers.

Coordinates are video pixels as the trackers write them: x to the right, y down, the centre of the top-left pixel at
(0, 0). Angles (``angle_deg`` of the plain CSV) are degrees counter-clockwise from +x with y up, as everywhere in
aelens. Nothing here unpickles: DeepLabCut's ``.h5`` keeps its column labels in a pickled attribute, which is decoded
by :func:`plain_pickle_labels`, an interpreter for the opcodes of lists, tuples, strings and numbers only.
"""

from __future__ import annotations

import csv
import pickletools
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AelensError

POSE_SUFFIXES = (".slp", ".h5", ".hdf5", ".csv", ".nwb")


@dataclass
class Poses:
    """Tracked points of one video.

    ``points``: (f, t, k, 2) float64 x, y in video pixels (NaN: not tracked); ``scores``: (f, t, k) float64 (NaN: the
    format has no score); ``frames``: (f,) int64 video frame of each row (increasing); ``nodes``: k names; ``tracks``: t
    names; ``angles``: (f, t) heading in degrees when the file gives one (plain CSV), else None.
    ``rows_are_frames``: the format has one row per video frame, so its row count must equal the video's.
    """

    points: np.ndarray
    scores: np.ndarray
    frames: np.ndarray
    nodes: list[str]
    tracks: list[str]
    source: str
    format: str
    video: str | None = None
    fps: float | None = None
    angles: np.ndarray | None = None
    rows_are_frames: bool = False
    notes: dict = field(default_factory=dict)

    def node(self, name: str) -> int:
        """Index of a node by name; an unknown name is an error listing the file's nodes."""
        if name not in self.nodes:
            raise AelensError(f"{self.source}: no node {name!r}; the file's nodes are: {', '.join(self.nodes)}")
        return self.nodes.index(name)


def read_poses(path: str | Path) -> Poses:
    """Read any supported pose file (chosen by suffix, then by content); errors name the file and what was expected.

    Example: ``p = read_poses("session1.analysis.h5"); p.points.shape  # (frames, tracks, nodes, 2)``
    """
    path = Path(path)
    if not path.is_file():
        raise AelensError(f"{path}: pose file not found" if not path.exists() else f"{path}: is not a file")
    suffix = path.suffix.lower()
    if suffix == ".slp":
        return _read_with_sleap_io(path, "sleap-slp")
    if suffix == ".nwb":
        return _read_with_sleap_io(path, "nwb")
    if suffix in (".h5", ".hdf5"):
        return _read_h5(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise AelensError(
        f"{path}: unsupported pose file type {suffix or '(none)'!r}; expected {', '.join(POSE_SUFFIXES)} "
        "(SLEAP, DeepLabCut, LightningPose, NWB or a plain frame,x,y CSV)"
    )


def _check_points(poses: Poses) -> Poses:
    f, t, k = poses.points.shape[:3]
    if f == 0 or t == 0 or k == 0:
        raise AelensError(f"{poses.source}: holds no tracked points ({f} frames, {t} tracks, {k} nodes)")
    if np.any(poses.frames < 0):
        raise AelensError(f"{poses.source}: negative frame index {int(poses.frames.min())}")
    if np.any(np.diff(poses.frames) <= 0):
        raise AelensError(f"{poses.source}: frame indices are not strictly increasing (a frame listed twice?)")
    bad = ~np.isfinite(poses.points) & ~np.isnan(poses.points)
    if bad.any():
        raise AelensError(f"{poses.source}: holds infinite coordinates")
    return poses


# --------------------------------------------------------------------------------------------- SLEAP / NWB via sleap-io


def _read_with_sleap_io(path: Path, fmt: str) -> Poses:
    try:
        import sleap_io as sio
    except ImportError:
        raise AelensError(
            f"{path}: reading {'SLEAP .slp' if fmt == 'sleap-slp' else 'NWB'} files needs sleap-io: "
            f"pip install 'aelens[{'pose' if fmt == 'sleap-slp' else 'nwb'}]'"
        ) from None
    try:
        if fmt == "sleap-slp":
            labels = sio.load_slp(str(path), open_videos=False)
        else:
            labels = sio.load_nwb(str(path))
    except ImportError as exc:
        raise AelensError(f"{path}: reading NWB needs pynwb and ndx-pose ({exc}): pip install 'aelens[nwb]'") from None
    except Exception as exc:  # noqa: BLE001 - a third-party reader: any failure is a bad file for the user
        raise AelensError(f"{path}: cannot read as {fmt} ({exc.__class__.__name__}: {exc})") from None
    if len(labels.videos) != 1:
        raise AelensError(f"{path}: holds {len(labels.videos)} videos; aelens imports one video per pose file")
    if len(labels.skeletons) != 1:
        raise AelensError(f"{path}: holds {len(labels.skeletons)} skeletons; expected one")
    nodes = list(labels.skeletons[0].node_names)
    tracked = len(labels.tracks) > 0
    untracked = sum(1 for lf in labels.labeled_frames for inst in lf.instances if inst.track is None)
    # with tracks, instances without one cannot be followed over time: counted and left out; without tracks, each
    # instance slot of a frame becomes a "track" (right for one animal per video)
    arr = labels.numpy(untracked=not tracked, return_confidence=True, user_instances=True)
    if arr.ndim != 4 or arr.shape[0] == 0:
        raise AelensError(f"{path}: holds no labelled frames")
    tracks = (
        [t.name or f"track_{i}" for i, t in enumerate(labels.tracks)]
        if tracked
        else [f"instance_{i}" for i in range(arr.shape[1])]
    )
    video = labels.videos[0].filename
    video = video if isinstance(video, str) else None
    fps = None
    notes = {"untracked_instances_left_out": untracked} if tracked and untracked else {}
    return _check_points(
        Poses(
            points=arr[..., :2].astype(np.float64),
            scores=arr[..., 2].astype(np.float64),
            frames=np.arange(arr.shape[0], dtype=np.int64),
            nodes=nodes,
            tracks=tracks,
            source=str(path),
            format=fmt,
            video=video,
            fps=fps,
            notes=notes,
        )
    )


# --------------------------------------------------------------------------------------------- HDF5: SLEAP analysis, DLC


def _read_h5(path: Path) -> Poses:
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise AelensError(f"{path}: cannot read as HDF5 ({exc})") from None
    with fh:
        if "tracks" in fh and "node_names" in fh:
            return _read_sleap_analysis(path, fh)
        tables = [k for k in fh.keys() if isinstance(fh[k], h5py.Group) and "pandas_type" in fh[k].attrs]
        if tables:
            return _read_dlc_h5(path, fh, tables)
        found = ", ".join(list(fh.keys())[:8]) or "nothing"
        raise AelensError(
            f"{path}: not a SLEAP analysis file (datasets tracks, node_names) nor a DeepLabCut .h5 (a pandas table); found: {found}"
        )


def _strings(ds) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(ds).ravel()]


def _read_sleap_analysis(path: Path, fh) -> Poses:
    nodes = _strings(fh["node_names"])
    tracks_arr = np.asarray(fh["tracks"], dtype=np.float64)
    k = len(nodes)
    # SLEAP writes (tracks, 2, nodes, frames) as HDF5 sees it (MATLAB order); some tools store the transpose
    if tracks_arr.ndim != 4:
        raise AelensError(f"{path}: dataset 'tracks' has shape {tracks_arr.shape}; expected 4 dimensions")
    if tracks_arr.shape[1] == 2 and tracks_arr.shape[2] == k:
        points = tracks_arr.transpose(3, 0, 2, 1)
        transposed = False
    elif tracks_arr.shape[2] == 2 and tracks_arr.shape[1] == k:
        points = tracks_arr.transpose(0, 3, 1, 2)
        transposed = True
    else:
        raise AelensError(
            f"{path}: dataset 'tracks' has shape {tracks_arr.shape}, which does not fit {k} node names and x/y"
        )
    f, t = points.shape[:2]
    if "point_scores" in fh:  # old analysis files have no point_scores: scores unknown (NaN), not zero
        sc = np.asarray(fh["point_scores"], dtype=np.float64)
        scores = sc.transpose(1, 0, 2) if transposed else sc.transpose(2, 0, 1)
        if scores.shape != (f, t, k):
            raise AelensError(f"{path}: point_scores shape {sc.shape} does not match tracks {tracks_arr.shape}")
    else:
        scores = np.full((f, t, k), np.nan)
    names = _strings(fh["track_names"]) if "track_names" in fh else []
    if len(names) != t:
        names = [f"track_{i}" for i in range(t)]
    video = None
    if "video_path" in fh:
        v = np.asarray(fh["video_path"][()]).ravel()
        video = (v[0].decode() if isinstance(v[0], bytes) else str(v[0])) if v.size else None
    return _check_points(
        Poses(
            points=np.ascontiguousarray(points),
            scores=np.ascontiguousarray(scores),
            frames=np.arange(f, dtype=np.int64),
            nodes=nodes,
            tracks=names,
            source=str(path),
            format="sleap-analysis-h5" + ("" if "point_scores" in fh else " (no point_scores)"),
            video=video or None,
            # SLEAP writes rows up to the last labelled frame, not always the video's length: rows must not exceed it
            rows_are_frames=False,
        )
    )


_SAFE_OPS = {
    "PROTO",
    "FRAME",
    "STOP",
    "MARK",
    "EMPTY_LIST",
    "LIST",
    "APPEND",
    "APPENDS",
    "EMPTY_TUPLE",
    "TUPLE",
    "TUPLE1",
    "TUPLE2",
    "TUPLE3",
    "PUT",
    "BINPUT",
    "LONG_BINPUT",
    "MEMOIZE",
    "GET",
    "BINGET",
    "LONG_BINGET",
    "UNICODE",
    "BINUNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE8",
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
    "INT",
    "BININT",
    "BININT1",
    "BININT2",
    "LONG",
    "LONG1",
    "FLOAT",
    "BINFLOAT",
    "NONE",
    "NEWTRUE",
    "NEWFALSE",
}


def plain_pickle_labels(data: bytes, where: str) -> object:
    """Decode a pickle that holds only lists, tuples, strings and numbers, without unpickling.

    Walks the opcodes with :mod:`pickletools` and builds the value with a small stack machine; any opcode that could
    name a class or call a function (GLOBAL, REDUCE, BUILD, ...) is refused, so no code from the file can run.
    """
    stack: list = []
    marks: list[int] = []
    memo: dict = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name not in _SAFE_OPS:
                raise AelensError(f"{where}: the column labels hold pickled objects ({name}); expected plain labels")
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                break
            if name == "MARK":
                marks.append(len(stack))
            elif name in ("EMPTY_LIST",):
                stack.append([])
            elif name == "LIST":
                m = marks.pop()
                items, stack[m:] = stack[m:], []
                stack.append(list(items))
            elif name == "APPEND":
                v = stack.pop()
                stack[-1].append(v)
            elif name == "APPENDS":
                m = marks.pop()
                items, stack[m:] = stack[m:], []
                stack[-1].extend(items)
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name == "TUPLE":
                m = marks.pop()
                items, stack[m:] = stack[m:], []
                stack.append(tuple(items))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items, stack[-n:] = stack[-n:], []
                stack.append(tuple(items))
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            elif name == "NONE":
                stack.append(None)
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(name == "NEWTRUE")
            else:  # strings and numbers: pickletools has decoded the argument already
                stack.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
    except AelensError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed bytes of any kind
        raise AelensError(f"{where}: cannot decode the column labels ({exc.__class__.__name__}: {exc})") from None
    if len(stack) != 1:
        raise AelensError(f"{where}: cannot decode the column labels (malformed)")
    return stack[0]


def _read_dlc_h5(path: Path, fh, tables: list[str]) -> Poses:
    key = "df_with_missing" if "df_with_missing" in tables else tables[0]
    grp = fh[key]
    where = f"{path}:{key}"
    if "table" in grp:  # pandas "table" format (what DeepLabCut writes): a compound dataset + pickled labels
        table = grp["table"]
        names = table.dtype.names or ()
        blocks = [n for n in names if n.startswith("values_block_")]
        if len(blocks) != 1:
            raise AelensError(f"{where}: expected one block of float values, found {len(blocks)}")
        kind = table.attrs.get(f"{blocks[0]}_kind")
        if kind is None:
            raise AelensError(f"{where}: no column labels ({blocks[0]}_kind)")
        labels = plain_pickle_labels(bytes(np.asarray(kind).tobytes() if not isinstance(kind, bytes) else kind), where)
        data = np.asarray(table[blocks[0]], dtype=np.float64)
        index = np.asarray(table["index"]) if "index" in names else np.arange(data.shape[0])
    elif "block0_values" in grp:  # pandas "fixed" format: labels as plain string arrays and codes
        nlev = len([k for k in grp.keys() if re.fullmatch(r"axis0_level\d+", k)])
        if nlev == 0:
            raise AelensError(f"{where}: no column levels (axis0_level0)")
        levels = [_strings(grp[f"axis0_level{i}"]) for i in range(nlev)]
        codes = [np.asarray(grp[f"axis0_label{i}"]) for i in range(nlev)]
        labels = [tuple(levels[i][codes[i][j]] for i in range(nlev)) for j in range(len(codes[0]))]
        data = np.asarray(grp["block0_values"], dtype=np.float64)
        index = np.asarray(grp["axis1"]) if "axis1" in grp else np.arange(data.shape[0])
    else:
        raise AelensError(f"{where}: not a pandas table DeepLabCut writes (no 'table' or 'block0_values')")
    if not isinstance(labels, list) or not all(isinstance(c, tuple) for c in labels):
        raise AelensError(f"{where}: column labels are not (scorer, [individual,] bodypart, coord) tuples")
    return _dlc_from_columns(path, labels, data, index, "deeplabcut-h5")


def _dlc_from_columns(path: Path, columns: list[tuple], data: np.ndarray, index, fmt: str) -> Poses:
    """Columns (scorer, [individual,] bodypart, coord) with coord x / y / likelihood -> Poses."""
    depth = {len(c) for c in columns}
    if depth not in ({3}, {4}):
        raise AelensError(
            f"{path}: column labels have {sorted(depth)} levels; expected scorer, [individuals,] bodyparts, coords"
        )
    multi = depth == {4}
    single_parts = []
    keyed: dict[tuple[str, str], dict[str, int]] = {}
    tracks: list[str] = []
    nodes: list[str] = []
    for j, col in enumerate(columns):
        ind, part, coord = (col[1], col[2], col[3]) if multi else ("animal", col[1], col[2])
        coord = str(coord).lower()
        if multi and ind == "single":  # maDLC "unique bodyparts" (arena landmarks): not an animal
            single_parts.append(part)
            continue
        if coord not in ("x", "y", "likelihood"):
            raise AelensError(f"{path}: column {col}: coord {coord!r}; expected x, y or likelihood")
        if ind not in tracks:
            tracks.append(ind)
        if part not in nodes:
            nodes.append(part)
        keyed.setdefault((ind, part), {})[coord] = j
    if not tracks:
        raise AelensError(f"{path}: no animal columns (only unique body parts)")
    try:
        frames = np.asarray([int(float(v)) for v in index], dtype=np.int64)
    except (TypeError, ValueError):
        raise AelensError(
            f"{path}: the row labels are not frame numbers (found {str(index[0])!r}): this looks like a labelled-data "
            "file of image paths; import the tracker's inference output for the video instead"
        ) from None
    f = data.shape[0]
    points = np.full((f, len(tracks), len(nodes), 2), np.nan)
    scores = np.full((f, len(tracks), len(nodes)), np.nan)
    for (ind, part), cols in keyed.items():
        if "x" not in cols or "y" not in cols:
            raise AelensError(f"{path}: body part {part!r} of {ind!r} lacks an x or y column")
        ti, ki = tracks.index(ind), nodes.index(part)
        points[:, ti, ki, 0] = data[:, cols["x"]]
        points[:, ti, ki, 1] = data[:, cols["y"]]
        if "likelihood" in cols:
            scores[:, ti, ki] = data[:, cols["likelihood"]]
    notes = {"unique_bodyparts_left_out": sorted(set(single_parts))} if single_parts else {}
    return _check_points(
        Poses(points, scores, frames, nodes, tracks, str(path), fmt, rows_are_frames=True, notes=notes)
    )


# --------------------------------------------------------------------------------------------- CSV: DLC / LightningPose, plain


def _read_csv(path: Path) -> Poses:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            first = next(csv.reader(fh), None)
            if first is not None and first and first[0].strip().lower() == "scorer":
                fh.seek(0)
                return _read_dlc_csv(path, fh)
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


def _read_dlc_csv(path: Path, fh) -> Poses:
    """Header rows, then one row per frame parsed straight into a float array (an hour of video with many body
    parts is millions of cells: never held as Python strings all at once)."""
    n_lines = sum(1 for line in fh if line.strip())
    fh.seek(0)
    reader = csv.reader(fh)
    head: list[list[str]] = []
    data = index = None
    width = i = 0
    for r in reader:
        if not r:
            continue
        if data is None:
            if r[0].strip().lower() in ("scorer", "individuals", "bodyparts", "coords"):
                head.append(r)
                continue
            kinds = [h[0].strip().lower() for h in head]
            if kinds not in (["scorer", "bodyparts", "coords"], ["scorer", "individuals", "bodyparts", "coords"]):
                raise AelensError(f"{path}: header rows {kinds}; expected scorer, [individuals,] bodyparts, coords")
            width = len(head[0])
            data = np.full((n_lines - len(head), width - 1), np.nan)
            index = []
        if len(r) != width:
            raise AelensError(f"{path}: row {len(head) + i + 1} has {len(r)} fields; the header has {width}")
        index.append(r[0])
        for j in range(1, width):
            cell = r[j].strip()
            if cell and cell.lower() not in ("nan", "na"):
                try:
                    data[i, j - 1] = float(cell)
                except ValueError:
                    raise AelensError(
                        f"{path}: row {len(head) + i + 1}, column {j + 1}: {cell!r} is not a number"
                    ) from None
        i += 1
    if data is None or i == 0:
        raise AelensError(f"{path}: header only, no rows of points")
    columns = [tuple(h[j].strip() for h in head) for j in range(1, width)]
    return _dlc_from_columns(path, columns, data[:i], index, "deeplabcut-csv")


def _read_plain_csv(path: Path, rows: list[list[str]], header: list[str]) -> Poses:
    allowed = {"frame", "x", "y", "angle_deg", "track", "score"}
    unknown = [h for h in header if h not in allowed]
    if unknown:
        raise AelensError(
            f"{path}: unknown column {unknown[0]!r}; a plain pose CSV has frame,x,y[,angle_deg][,track][,score]"
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
    if np.any(frame != np.round(frame)):
        raise AelensError(f"{path}: column 'frame' holds non-integer values")
    frame = frame.astype(np.int64)
    track = np.asarray(vals["track"], dtype=np.float64).astype(np.int64) if "track" in col else np.zeros_like(frame)
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
    return _check_points(
        Poses(points, scores, uf, ["center"], [str(t) for t in ut], str(path), "plain-csv", angles=angles)
    )


def describe(poses: Poses) -> str:
    """One line: format, rows, tracks, nodes."""
    return (
        f"{Path(poses.source).name}: {poses.format}, {len(poses.frames)} frames, {len(poses.tracks)} tracks, "
        f"nodes {', '.join(poses.nodes)}"
    )
