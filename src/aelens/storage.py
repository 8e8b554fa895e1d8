"""Every write to disk goes through here: atomic files, safetensors weights, JSON/YAML, run directories, manifests.

Nothing here unpickles anything. Checkpoints are safetensors files whose header metadata carries the non-tensor part
of the training state as JSON (see :func:`save_tree` / :func:`load_tree`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
import yaml

from .errors import AelensError

if TYPE_CHECKING:  # torch and safetensors are imported where tensors are read or written: the CLI starts fast
    import torch

MANIFEST = "manifest.json"
TREE_FORMAT = "aelens-tree-1"
WEIGHTS_NAME = "model.safetensors"  # a run's final weights (flat safetensors; checkpoints are trees)


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


def _read_text(path: str | os.PathLike, what: str) -> str:
    """A text file's contents, or a one-line error: missing, a directory, or not UTF-8 text (binary, .npz, ...)."""
    path = Path(path)
    if path.is_dir():
        raise AelensError(f"{path}: is a directory, expected a {what} file")
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the text
    except FileNotFoundError:
        raise AelensError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise AelensError(f"{path}: not a {what} text file (binary content)") from None
    except OSError as exc:
        raise AelensError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_json(path: str | os.PathLike) -> Any:
    text = _read_text(path, "JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AelensError(f"{path}: not valid JSON ({exc})") from None


def write_yaml(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, yaml.safe_dump(_jsonable(obj), sort_keys=False))


def read_yaml(path: str | os.PathLike) -> Any:
    text = _read_text(path, "YAML")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AelensError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def save_npz(path: str | os.PathLike, compressed: bool = False, **arrays: np.ndarray) -> None:
    """Plain arrays in one .npz, atomically (readable with ``allow_pickle=False``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)


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


def write_table(out: Path, name: str, rows: list[dict], fields: list[str]) -> None:
    """``out/name.csv`` and ``out/name.md`` with the same rows."""
    write_csv(out / f"{name}.csv", rows, fields)
    write_text(out / f"{name}.md", markdown_table(rows, fields))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- tensors


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None):
    """Write a dict of tensors as one safetensors file, atomically."""
    from safetensors.torch import save as _st_save

    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    write_bytes(path, _st_save(flat, metadata=metadata))


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file: (tensors, header metadata). A missing, truncated or corrupted file is an AelensError."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise AelensError(f"{path}: checkpoint file not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise AelensError(f"{path}: corrupted or truncated safetensors file ({exc})") from None
    return tensors, meta


# --------------------------------------------------------------------------------------------- nested state trees


def tree_to_safetensors(tree: Any) -> tuple[dict[str, torch.Tensor], str]:
    """Split a nested state (dicts, lists, tuples, scalars, strings, tensors) into tensors and a JSON skeleton.

    Tensors become ``{"__t__": name}``; dicts with non-string keys become ``{"__dict__": [[k, v], ...]}``; tuples
    become ``{"__tuple__": [...]}``. Anything else (an arbitrary object) is refused: we never pickle.
    """
    import torch

    tensors: dict[str, torch.Tensor] = {}

    def enc(obj: Any, where: str) -> Any:
        if isinstance(obj, torch.Tensor):
            name = f"t{len(tensors)}"
            tensors[name] = obj
            return {"__t__": name}
        if isinstance(obj, np.ndarray):
            return enc(torch.from_numpy(np.ascontiguousarray(obj)), where)
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
            return obj
        if isinstance(obj, float):
            return {"__float__": repr(obj)} if not math.isfinite(obj) else obj
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: enc(v, f"{where}.{k}") for k, v in obj.items()}
            return {"__dict__": [[enc(k, where), enc(v, f"{where}[{k!r}]")] for k, v in obj.items()]}
        if isinstance(obj, list):
            return [enc(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, tuple):  # includes torch.Size
            return {"__tuple__": [enc(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"cannot store {type(obj).__name__} at {where} in a safetensors checkpoint")

    skeleton = enc(tree, "checkpoint")
    return tensors, json.dumps(skeleton)


def tree_from_safetensors(tensors: dict[str, torch.Tensor], skeleton: str) -> Any:
    def dec(obj: Any) -> Any:
        if isinstance(obj, list):
            return [dec(v) for v in obj]
        if isinstance(obj, dict):
            if "__t__" in obj:
                return tensors[obj["__t__"]]
            if "__float__" in obj:
                return float(obj["__float__"])
            if "__tuple__" in obj:
                return tuple(dec(v) for v in obj["__tuple__"])
            if "__dict__" in obj:
                return {_hashable(dec(k)): dec(v) for k, v in obj["__dict__"]}
            return {k: dec(v) for k, v in obj.items()}
        return obj

    return dec(json.loads(skeleton))


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def save_tree(path: str | os.PathLike, tree: Any) -> None:
    """Save a nested training state (e.g. a Lightning checkpoint dict) as one safetensors file, atomically."""
    tensors, skeleton = tree_to_safetensors(tree)
    save_tensors(path, tensors, metadata={"format": TREE_FORMAT, "tree": skeleton})


def load_tree(path: str | os.PathLike) -> Any:
    tensors, meta = load_tensors(path)
    if meta.get("format") != TREE_FORMAT or "tree" not in meta:
        raise AelensError(f"{path}: not an aelens checkpoint (no '{TREE_FORMAT}' header)")
    try:
        return tree_from_safetensors(tensors, meta["tree"])
    except (json.JSONDecodeError, KeyError) as exc:
        raise AelensError(f"{path}: corrupted checkpoint header ({exc})") from None


# --------------------------------------------------------------------------------------------- run directories


def default_run_dir(kind: str, root: str | os.PathLike = "runs") -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{kind}-{stamp}"
    path, i = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}-{i}")
        i += 1
    return path


def create_run_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Create a fresh run directory. An existing non-empty one is an error unless ``overwrite`` is given, and even
    then only a directory that holds an aelens manifest is removed (never a folder of the user's own files)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not overwrite:
            raise AelensError(f"{path}: run directory already exists; choose another --out or pass --overwrite")
        if not (path / MANIFEST).is_file():
            raise AelensError(
                f"{path}: exists and is not an aelens run directory (no {MANIFEST}); refusing to overwrite"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def versions() -> dict[str, str]:
    import lightning
    import sklearn
    import torch

    from ._version import __version__

    return {
        "aelens": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }


def git_hash() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def write_manifest(run_dir: str | os.PathLike, kind: str, seed: int, extra: dict | None = None) -> dict:
    manifest = {
        "kind": kind,
        "status": "running",
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "argv": sys.argv,
        "seed": seed,
        "versions": versions(),
        "git": git_hash(),
        "files": {},
        **(extra or {}),
    }
    write_json(Path(run_dir) / MANIFEST, manifest)
    return manifest


def read_manifest(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise AelensError(f"{run_dir}: not an aelens run directory (no {MANIFEST})")
    return read_json(path)


def update_manifest(run_dir: str | os.PathLike, **fields: Any) -> dict:
    manifest = read_manifest(run_dir)
    for key, value in fields.items():
        if key == "files":
            manifest.setdefault("files", {}).update(value)
        else:
            manifest[key] = value
    write_json(Path(run_dir) / MANIFEST, manifest)
    return manifest


def record_file_hashes(run_dir: str | os.PathLike, relpaths: list[str]) -> dict:
    run_dir = Path(run_dir)
    return update_manifest(run_dir, files={p: sha256_file(run_dir / p) for p in relpaths if (run_dir / p).is_file()})


# --------------------------------------------------------------------------------------------- splits and weights


def save_split(path: Path, split: dict[str, np.ndarray], info: dict | None = None) -> None:
    """train / val / test indices, and the split's kind and purge (plain arrays: no pickle)."""
    extra = {
        "kind": np.array(str((info or {}).get("kind", "random"))),
        "purge": np.array(int((info or {}).get("purge", 0))),
    }
    save_npz(path, **split, **extra)


def split_info(path: Path) -> dict:
    """The kind and purge recorded in ``split.npz``; runs from before splits had kinds were random."""
    try:
        with np.load(path, allow_pickle=False) as z:
            kind = str(z["kind"]) if "kind" in z.files else "random"
            return {"kind": kind, "purge": int(z["purge"]) if "purge" in z.files else 0}
    except (OSError, ValueError) as exc:
        raise AelensError(f"{path}: cannot read the run's split ({exc})") from None


def load_split(path: Path, n: int | None = None) -> dict[str, np.ndarray]:
    """train / val / test indices; with ``n`` (the dataset's frames) every index must lie in 0 .. n-1."""
    try:
        with np.load(path, allow_pickle=False) as z:
            split = {k: z[k].astype(np.int64) for k in ("train", "val", "test")}
    except (OSError, KeyError, ValueError) as exc:
        raise AelensError(f"{path}: cannot read the run's split ({exc})") from None
    for name, idx in split.items():
        if idx.ndim != 1 or (n is not None and len(idx) and (idx.min() < 0 or idx.max() >= n)):
            raise AelensError(
                f"{path}: the {name} indices must be frame numbers 0 to {(n or 0) - 1} of the run's data, "
                f"got {idx.min() if len(idx) else ''} to {idx.max() if len(idx) else ''}; the file was edited or "
                "belongs to another run"
            )
    return split


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model weights of a run's ``model.safetensors`` or of a training checkpoint (safetensors tree)."""
    path = Path(path)
    if path.name == WEIGHTS_NAME:
        tensors, _ = load_tensors(path)
        return tensors
    tree = load_tree(path)
    if not isinstance(tree, dict) or "state_dict" not in tree:
        raise AelensError(f"{path}: checkpoint has no model state")
    return tree["state_dict"]


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike) -> None:
    """``module.load_state_dict(state)`` with a one-line error naming the first mismatch."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        detail = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise AelensError(f"{source}: checkpoint does not match the model architecture ({detail})")
    for key, value in own.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise AelensError(
                f"{source}: checkpoint does not match the model ({key}: file has {tuple(state[key].shape)}, "
                f"model expects {tuple(value.shape)}); was it trained on another image size, channel count or latent dim?"
            )
    module.load_state_dict(state)


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
def atomic_dir(path: str | os.PathLike, overwrite: bool = False, marker: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` in one rename.

    An error or kill leaves ``path`` as it was (and at most a ``.tmp-PID`` folder, removed here on errors). An
    existing non-empty ``path`` is refused unless ``overwrite``; even then only a folder holding ``marker`` (a file
    this tool wrote) is replaced, never a folder of the user's own files.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not overwrite:
            raise AelensError(f"{path}: already exists; choose another --out or pass --overwrite")
        if marker is None or not (path / marker).is_file():
            raise AelensError(f"{path}: exists and was not written by aelens (no {marker}); refusing to overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
