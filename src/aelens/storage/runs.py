"""Run folders on disk: creating them, the manifest (versions, git hash, file hashes) and the split file."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from ..errors import AelensError

if TYPE_CHECKING:  # torch and safetensors are imported where tensors are read or written: the CLI starts fast
    pass
from .files import read_json, save_npy, save_npz, sha256_file, write_csv, write_json

MANIFEST = "manifest.json"
log = logging.getLogger("aelens")

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
    then only a directory that holds an aelens manifest is removed (never a folder of the user's own files, never one
    that another aelens process is writing)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        check_unlocked(path)
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

    from .._version import __version__

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


def save_run_files(run_dir: str | os.PathLike, files: dict[str, Any]) -> None:
    """Save the files an objective asked for (:data:`aelens.objectives.base.RunFiles`), by path relative to
    ``run_dir``: an array (.npy), an object with ``save(folder) -> names`` (a fitted reducer), table rows
    ``(rows, fields)`` (.csv) or a callable that draws a figure to the path. Arrays' and saved objects' SHA-256
    hashes go into the manifest."""
    hashed: list[str] = []
    for rel, value in files.items():
        path = Path(run_dir) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, np.ndarray):
            save_npy(path, value)
            hashed.append(rel)
        elif hasattr(value, "save"):
            hashed += [f"{rel}/{name}" for name in value.save(path)]
        elif isinstance(value, tuple):
            write_csv(path, *value)
        elif callable(value):
            value(path)
        else:
            raise TypeError(f"{rel}: cannot save a {type(value).__name__}")
    if hashed:
        record_file_hashes(run_dir, hashed)


# --------------------------------------------------------------------------------------------- one writer per run

LOCK = ".aelens.lock"


def _lock_holder(folder: Path) -> dict | None:
    """The lock's record (pid, host, since, command), or None when there is no lock file."""
    try:
        text = (folder / LOCK).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _alive(holder: dict) -> bool:
    """False only when the holder is certainly gone: a process of this machine that no longer exists."""
    if holder.get("host") != platform.node() or not isinstance(holder.get("pid"), int):
        return True  # another machine (a shared disk), or an unreadable record: cannot tell, so assume alive
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(folder: Path, holder: dict) -> str:
    if not holder:
        return f"{folder / LOCK} exists but cannot be read"
    return (
        f"process {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')}: "
        f"{holder.get('command', '?')})"
    )


def check_unlocked(folder: str | os.PathLike) -> None:
    """A one-line error when another live aelens process holds ``folder``'s lock."""
    folder = Path(folder)
    holder = _lock_holder(folder)
    if holder is not None and _alive(holder):
        raise AelensError(
            f"{folder}: being written by {_describe(folder, holder)}; wait for it to finish, or, if that process is "
            f"gone, delete {folder / LOCK}"
        )


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold ``folder``'s lock (created atomically: one writer at a time) while the block runs.

    A second aelens into the same folder gets a one-line error naming the holder. A lock left by a process of this
    machine that no longer exists (killed) is taken over, and said so. Leftover ``.tmp-PID`` files of killed writes
    inside the folder are removed once the lock is held."""
    folder = Path(folder)
    record = json.dumps(
        {
            "pid": os.getpid(),
            "host": platform.node(),
            "since": _dt.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300] if sys.argv else "python",
        }
    )
    for _ in range(2):
        try:
            fd = os.open(folder / LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            holder = _lock_holder(folder) or {}
            if _alive(holder):
                check_unlocked(folder)  # raises, naming the holder
            log.warning("%s: taking over the lock of %s, which no longer runs", folder, _describe(folder, holder))
            with contextlib.suppress(FileNotFoundError):
                (folder / LOCK).unlink()
    else:
        check_unlocked(folder)
    with os.fdopen(fd, "w") as fh:
        fh.write(record)
    try:
        for tmp in folder.rglob(".*.tmp-*"):  # a killed write's leftovers: nobody else writes here now
            if tmp.is_file():
                tmp.unlink()
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            (folder / LOCK).unlink()
