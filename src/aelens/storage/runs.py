"""Run folders on disk: provenance (versions, git hash), the split file, and one writer per folder (the lock)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from .._version import __version__
from ..errors import AelensError

if TYPE_CHECKING:  # torch and safetensors are imported where tensors are read or written: the CLI starts fast
    pass
from .files import save_npz

log = logging.getLogger("aelens")

# --------------------------------------------------------------------------------------------- provenance


def versions() -> dict[str, str]:
    import lightning
    import sklearn
    import torch

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


# --------------------------------------------------------------------------------------------- one writer per run

LOCK = ".aelens.lock"


def _lock_holder(folder: Path) -> dict | None:
    """The lock's record (pid, host, since, command), or None when there is no lock file."""
    try:
        text = (folder / LOCK).read_bytes()[:4096].decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return {}
    try:
        holder = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _alive(holder: dict) -> bool:
    """False only when the holder is certainly gone: a process of this machine that no longer exists."""
    pid = holder.get("pid")
    if holder.get("host") != platform.node() or not isinstance(pid, int) or isinstance(pid, bool):
        return True  # another machine (a shared disk), or an unreadable record: cannot tell, so assume alive
    if not 0 < pid < 1 << 22:  # no process has that id (pid_max is at most 2^22): a damaged record, not a live one
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(folder: Path, holder: dict) -> str:
    pid = holder.get("pid")
    if not holder or not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 1 << 22:
        return f"an unknown process ({folder / LOCK} exists but cannot be read)"
    text = f"process {pid} on {holder.get('host')} (since {holder.get('since')}: {holder.get('command', '?')})"
    return " ".join(text.split())[:400]  # the record is a file anyone could edit: one line, bounded


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
