"""DeepLabCut (and LightningPose) output: ``.h5`` pandas tables and ``.csv`` files with scorer/bodyparts/coords header
rows. DeepLabCut's ``.h5`` keeps its column labels in a pickled attribute: :func:`plain_pickle_labels` decodes it
without unpickling (an interpreter for the opcodes of lists, tuples, strings and numbers only)."""

from __future__ import annotations

import csv
import pickletools
import re
from pathlib import Path

import numpy as np

from ..errors import AelensError
from .pose_data import Poses, check_points, h5_floats, h5_strings

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
    try:
        _walk(pickletools.genops(data), stack, where)
    except AelensError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed bytes of any kind
        raise AelensError(f"{where}: cannot decode the column labels ({exc.__class__.__name__}: {exc})") from None
    if len(stack) != 1:
        raise AelensError(f"{where}: cannot decode the column labels (malformed)")
    return stack[0]


def _walk(ops, stack: list, where: str) -> None:
    marks: list[int] = []
    memo: dict = {}

    def since_mark() -> list:  # the items pushed since the last MARK, taken off the stack
        m = marks.pop()
        items = stack[m:]
        del stack[m:]
        return items

    for op, arg, _ in ops:
        name = op.name
        if name not in _SAFE_OPS:
            raise AelensError(f"{where}: the column labels hold pickled objects ({name}); expected plain labels")
        if name == "STOP":
            return
        if name in ("PROTO", "FRAME"):
            continue
        if name == "MARK":
            marks.append(len(stack))
        elif name in ("EMPTY_LIST", "EMPTY_TUPLE"):
            stack.append([] if name == "EMPTY_LIST" else ())
        elif name in ("LIST", "TUPLE"):
            items = since_mark()
            stack.append(items if name == "LIST" else tuple(items))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = stack[-n:]
            del stack[-n:]
            stack.append(tuple(items))
        elif name == "APPEND":
            v = stack.pop()
            stack[-1].append(v)
        elif name == "APPENDS":
            items = since_mark()
            stack[-1].extend(items)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        else:  # strings and numbers: pickletools has decoded the argument already
            stack.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)


def read_dlc_h5(path: Path, fh, tables: list[str]) -> Poses:
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
        data = h5_floats(table[blocks[0]], f"{where}/table/{blocks[0]}")
        index = np.asarray(table["index"]) if "index" in names else np.arange(data.shape[0])
    elif "block0_values" in grp:  # pandas "fixed" format: labels as plain string arrays and codes
        nlev = len([k for k in grp.keys() if re.fullmatch(r"axis0_level\d+", k)])
        if nlev == 0:
            raise AelensError(f"{where}: no column levels (axis0_level0)")
        levels = [h5_strings(grp[f"axis0_level{i}"]) for i in range(nlev)]
        codes = [np.asarray(grp[f"axis0_label{i}"]) for i in range(nlev)]
        if any(c.ndim != 1 or c.dtype.kind not in "iu" or len(c) != len(codes[0]) for c in codes) or any(
            len(c) and (c.min() < 0 or c.max() >= len(levels[i])) for i, c in enumerate(codes)
        ):
            raise AelensError(f"{where}: column label codes (axis0_label*) do not index the label levels")
        labels = [tuple(levels[i][codes[i][j]] for i in range(nlev)) for j in range(len(codes[0]))]
        data = h5_floats(grp["block0_values"], f"{where}/block0_values")
        index = np.asarray(grp["axis1"]) if "axis1" in grp else np.arange(data.shape[0])
    else:
        raise AelensError(f"{where}: not a pandas table DeepLabCut writes (no 'table' or 'block0_values')")
    if not isinstance(labels, list) or not all(
        isinstance(c, tuple) and all(isinstance(v, str) for v in c) for c in labels
    ):
        raise AelensError(f"{where}: column labels are not (scorer, [individual,] bodypart, coord) tuples of names")
    if data.ndim != 2 or data.shape[1] != len(labels):
        raise AelensError(
            f"{where}: {len(labels)} column labels for {data.shape[1] if data.ndim == 2 else '?'} columns of values"
        )
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
        if coord in keyed.get((ind, part), {}):
            raise AelensError(
                f"{path}: column {col} appears twice (animal {ind!r}, body part {part!r}, {coord}); one column each"
            )
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
    return check_points(Poses(points, scores, frames, nodes, tracks, str(path), fmt, rows_are_frames=True, notes=notes))


def read_dlc_csv(path: Path, fh) -> Poses:
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
            if any(len(h) != width for h in head):
                raise AelensError(
                    f"{path}: header rows of {[len(h) for h in head]} fields; each header row names every column"
                )
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
