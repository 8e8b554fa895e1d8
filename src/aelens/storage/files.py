"""Atomic files: bytes, text, JSON/YAML, arrays, tables, growing ``.npy`` files and whole folders; reading text and
JSON with one-line errors."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
import yaml

from ..errors import AelensError

if TYPE_CHECKING:  # torch and safetensors are imported where tensors are read or written: the CLI starts fast
    pass


# --------------------------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``.

    A crash or kill before the rename leaves the previous ``path`` untouched (and at most a stray ``.tmp`` file).
    Example: ``with atomic_path("a.png") as tmp: fig.savefig(tmp, format="png")``
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")  # keeps the extension for writers that read it
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(_jsonable(obj), indent=2, allow_nan=True) + "\n")


def _read_text(path: str | os.PathLike, what: str, limit: int | None = None) -> str:
    """A text file's contents, or a one-line error: missing, a directory, over ``limit`` bytes, or not UTF-8 text
    (binary, .npz, ...)."""
    path = Path(path)
    if path.is_dir():
        raise AelensError(f"{path}: is a directory, expected a {what} file")
    if limit is not None and path.is_file() and path.stat().st_size > limit:
        raise AelensError(f"{path}: {path.stat().st_size:,} bytes; a {what} file aelens reads is under {limit:,}")
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the text
    except FileNotFoundError:
        raise AelensError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise AelensError(f"{path}: not a {what} text file (binary content)") from None
    except OSError as exc:
        raise AelensError(f"{path}: cannot read ({exc.strerror or exc})") from None


MAX_DEPTH = 32  # nesting of lists and maps in a config or run file: aelens writes at most 6
MAX_YAML_BYTES = 1 << 20  # a config is a few hundred bytes
MAX_JSON_BYTES = 256 << 20  # run files (manifests with frame lists, timings) stay far below


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file's value, as data: one-line errors for text that is not JSON, too large or too deeply nested."""
    text = _read_text(path, "JSON", MAX_JSON_BYTES)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AelensError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise AelensError(f"{path}: nested too deeply (over {MAX_DEPTH} levels)") from None
    return check_plain(value, path)


def read_record(path: str | os.PathLike, required: dict[str, type], optional: dict[str, type] | None = None) -> dict:
    """A JSON object whose named fields have the given types (``float`` also takes whole numbers; ``bool`` is not a
    number); fields not named are kept as they are. A missing or mistyped field is a one-line error naming it."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise AelensError(f"{path}: expected a JSON object, got {type(value).__name__}")
    for key, kind in {**required, **(optional or {})}.items():
        if key not in value:
            if key in required:
                raise AelensError(f"{path}: field {key!r} is missing")
            continue
        v = value[key]
        ok = (isinstance(v, (int, float)) if kind is float else isinstance(v, kind)) and not (
            isinstance(v, bool) and kind is not bool
        )
        if not ok:
            raise AelensError(f"{path}: field {key!r} is {type(v).__name__} ({str(v)[:40]}); expected {kind.__name__}")
    return value


def check_plain(value: Any, where: Any) -> Any:
    """``value`` as read from a file, checked to be plain data: maps keyed by names (strings), at most MAX_DEPTH
    levels deep. Returns it unchanged."""
    stack = [(value, 0, "")]
    while stack:
        v, depth, at = stack.pop()
        if depth > MAX_DEPTH:
            raise AelensError(f"{where}: nested too deeply (over {MAX_DEPTH} levels)")
        if isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise AelensError(
                        f"{where}: key {k!r} {'at ' + at if at else 'at the top'} is {type(k).__name__}; keys must be names"
                    )
                stack.append((item, depth + 1, f"{at}.{k}" if at else k))
        elif isinstance(v, list):  # only items that nest further are walked (a list of numbers is done here)
            stack.extend((item, depth + 1, f"{at}[]") for item in v if isinstance(item, (dict, list)))
    return value


def write_yaml(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, yaml.safe_dump(_jsonable(obj), sort_keys=False))


class _PlainLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases (``&a`` / ``*a``): a config has no need of them, and an alias bomb is
    billions of items from a few lines."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"an alias (*name) at line {mark.line + 1}: aelens reads YAML without aliases")
        return super().compose_node(parent, index)


def read_yaml(path: str | os.PathLike) -> Any:
    """A YAML file's value, as data (the safe loader: no objects, no aliases, keys are names, bounded depth and
    size); one-line errors."""
    text = _read_text(path, "YAML", MAX_YAML_BYTES)
    try:
        value = yaml.load(text, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise AelensError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise AelensError(f"{path}: nested too deeply (over {MAX_DEPTH} levels)") from None
    return check_plain(value, path)


def save_npz(path: str | os.PathLike, compressed: bool = False, **arrays: np.ndarray) -> None:
    """Plain arrays in one .npz, atomically (readable with ``allow_pickle=False``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)


def remove_tree(path: str | os.PathLike) -> None:
    """Delete a folder and everything in it (a run folder being replaced by ``--overwrite``)."""
    shutil.rmtree(path)


def remove_file(path: str | os.PathLike) -> None:
    """Delete a file if it exists (old checkpoints)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)


def load_npy(path: str | os.PathLike, mmap_mode: str | None = None) -> np.ndarray:
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except FileNotFoundError:
        raise AelensError(f"{path}: file not found") from None
    except ValueError as exc:
        raise AelensError(f"{path}: cannot read as a NumPy array ({exc})") from None


def _jsonable(obj: Any) -> Any:
    """Plain Python types for JSON/YAML: NumPy scalars and arrays, tuples and Paths converted."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    torch = sys.modules.get("torch")  # no tensor exists before torch is imported
    if torch is not None and isinstance(obj, torch.Tensor):
        return _jsonable(obj.detach().cpu().tolist())
    return obj


def format_cell(value: Any) -> str:
    """Table cells: floats with 6 significant digits, NaN and None as empty cells."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return str(value)


def write_csv(path: str | os.PathLike, rows: Iterable[dict], fields: list[str]) -> None:
    """Rows (dicts, any iterable: streamed, never held as one string) as CSV with a header, atomically; keys not in
    ``fields`` are left out."""
    import csv

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows({k: format_cell(r.get(k)) for k in fields} for r in rows)


def markdown_table(rows: list[dict], fields: list[str]) -> str:
    lines = ["| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    lines += ["| " + " | ".join(format_cell(r.get(k)) for k in fields) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_table(csv_path: Path, md_path: Path, rows: list[dict], fields: list[str]) -> None:
    """The same rows as a CSV file and a Markdown table."""
    write_csv(csv_path, rows, fields)
    write_text(md_path, markdown_table(rows, fields))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- growing arrays


class NpyAppender:
    """Write a ``.npy`` file whose first dimension grows: rows are appended as they come and the header, reserved at
    a fixed size up front, is rewritten with the final count by :meth:`close`. Memory stays flat however many rows
    are written; the file is a plain ``.npy`` that ``np.load(mmap_mode="r")`` reads.

    Example: ``with NpyAppender(tmp, (1, 50, 50), np.uint8) as out: out.append(block)``
    """

    HEADER = 256  # bytes, magic included: room for any 64-bit row count

    def __init__(self, path: str | os.PathLike, row_shape: tuple[int, ...], dtype=np.uint8):
        self.path = Path(path)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._fh = open(self.path, "wb")
        self._fh.write(self._header(0))

    def _header(self, rows: int) -> bytes:
        d = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (rows, *self.row_shape),
        }
        text = repr(d).encode("latin-1")
        pad = self.HEADER - 10 - len(text) - 1
        return b"\x93NUMPY\x01\x00" + (self.HEADER - 10).to_bytes(2, "little") + text + b" " * pad + b"\n"

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {block.shape[1:]} appended to an array of rows {self.row_shape}")
        self._fh.write(block.tobytes())
        self.rows += block.shape[0]

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.seek(0)
        self._fh.write(self._header(self.rows))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def __enter__(self) -> "NpyAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike, overwrite: bool = False, marker: str | None = None, inputs: Iterable = ()
) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` in one rename.

    An error or kill leaves ``path`` as it was (and at most a ``.tmp-PID`` folder, removed here on errors). An
    existing non-empty ``path`` is refused unless ``overwrite``; even then only a folder holding ``marker`` (a file
    this tool wrote) is replaced, never a folder of the user's own files, and never one that holds any of ``inputs``
    (the files the command reads: replacing the folder would delete them).
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not overwrite:
            raise AelensError(f"{path}: already exists; choose another --out or pass --overwrite")
        if marker is None or not (path / marker).is_file():
            raise AelensError(f"{path}: exists and was not written by aelens (no {marker}); refusing to overwrite")
        inside = [Path(p) for p in inputs if p is not None and Path(p).resolve().is_relative_to(path.resolve())]
        if inside:
            raise AelensError(
                f"{path}: holds {inside[0]}, which this command reads; --overwrite would delete it: move it out of "
                "the folder or choose another --out"
            )
    made = [p for p in reversed(path.parents) if not p.exists()]  # folders above path made here
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(made):  # an error leaves no trace: the parents it made go too (if still empty)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
