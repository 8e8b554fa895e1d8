"""Several inputs as one dataset: ``--data`` given more than once or as a ``.txt`` list, frames concatenated without
copying, conditions stacked with a ``session`` column."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import AelensError
from .loading import Conditions, Dataset, load_dataset
from .normalize import normalized


def load_with_options(data_cfg, path: str | Path | None = None) -> Dataset:
    """Data read with a run's data options (:class:`~aelens.config.DataConfig`: array key, pixel scale, condition
    names, angle columns): the one place that reads a dataset the way a run does.

    ``path`` None: the run's own data, ``data_cfg.path`` (one or several sessions, ``data_cfg.metadata`` included);
    else another dataset at ``path`` with its own metadata beside it (a transfer set, ``aelens test RUN --data``).
    No condition names (``{}``, the default, or None) keep every column of the metadata. With ``normalize:
    session``, each session's frames are normalised by its own pixels (see :mod:`aelens.data.normalize`)."""
    kwargs = dict(
        key=data_cfg.key,
        max_pixel_value=data_cfg.max_pixel_value,
        conditions=dict(data_cfg.conditions or {}),
        angle_columns=data_cfg.angle_columns,
    )
    return normalized(_load(data_cfg, path, kwargs), getattr(data_cfg, "normalize", "none"))


def _load(data_cfg, path, kwargs) -> Dataset:
    if path is not None:
        return load_dataset(path, **kwargs)
    paths = expand_data_paths(data_cfg.path)
    if len(paths) == 1:
        return load_dataset(paths[0], metadata=data_cfg.metadata, **kwargs)
    if data_cfg.metadata is not None:
        raise AelensError(
            "--metadata names one conditions file, but there are several --data inputs; "
            "keep each input's metadata.csv beside its images"
        )
    return load_datasets(paths, **kwargs)


# --------------------------------------------------------------------------------------------- several inputs


def expand_data_paths(value) -> list[str]:
    """``--data`` as given: one path, several (a list), or a ``.txt`` file listing data paths one per line (``#``
    starts a comment; relative paths are relative to the list file). Returns the list of paths."""
    if value is None:
        raise AelensError("--data is required: an images file (.npy/.npz) or a data directory holding images.npz")
    items = [value] if isinstance(value, (str, Path)) else list(value)
    out: list[str] = []
    for item in items:
        path = Path(item)
        if path.suffix.lower() == ".txt":
            try:
                lines = path.read_text(encoding="utf-8-sig").splitlines()
            except FileNotFoundError:
                raise AelensError(
                    f"{path}: file not found (a .txt --data lists data directories, one per line)"
                ) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise AelensError(f"{path}: cannot read the list of data directories ({exc})") from None
            listed = [ln.split("#", 1)[0].strip() for ln in lines]
            listed = [str(path.parent / p) if not Path(p).is_absolute() else p for p in listed if p]
            if not listed:
                raise AelensError(f"{path}: lists no data paths (one data directory or images file per line)")
            out.extend(listed)
        else:
            out.append(str(item))
    if len(set(out)) != len(out):
        dup = next(p for p in out if out.count(p) > 1)
        raise AelensError(f"--data: {dup} is given twice; each session once")
    return out


def resolve_data_paths(value) -> str | tuple[str, ...]:
    """``--data`` as the run records it: absolute paths (lists from ``.txt`` files expanded), one path as a string."""
    paths = [str(Path(p).resolve()) for p in expand_data_paths(value)]
    return paths[0] if len(paths) == 1 else tuple(paths)


class ConcatFrames:
    """Several image stacks read as one (n, c, h, w) array without copying them (memory maps stay memory maps).

    Supports what :class:`Dataset` needs: ``shape``, ``dtype``, ``ndim``, ``len`` and indexing by an integer, a slice
    or an integer array (rows come back in the order asked)."""

    def __init__(self, parts: list[np.ndarray]):
        self.parts = parts
        self.offsets = np.cumsum([0] + [p.shape[0] for p in parts])
        self.dtype = parts[0].dtype
        self.shape = (int(self.offsets[-1]),) + tuple(parts[0].shape[1:])
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx):
        if isinstance(idx, (int, np.integer)):
            i = int(idx) + (self.shape[0] if idx < 0 else 0)
            if not 0 <= i < self.shape[0]:
                raise IndexError(f"index {idx} out of range for {self.shape[0]} frames")
            k = int(np.searchsorted(self.offsets, i, side="right") - 1)
            return self.parts[k][i - self.offsets[k]]
        rows = np.arange(self.shape[0])[idx] if isinstance(idx, slice) else np.asarray(idx)
        if rows.dtype == bool:
            rows = np.nonzero(rows)[0]
        rows = rows.astype(np.int64).reshape(-1)
        rows = np.where(rows < 0, rows + self.shape[0], rows)
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"index out of range for {self.shape[0]} frames")
        out = np.empty((len(rows),) + self.shape[1:], dtype=self.dtype)
        part = np.searchsorted(self.offsets, rows, side="right") - 1
        for k in np.unique(part):
            sel = np.nonzero(part == k)[0]
            local = rows[sel] - self.offsets[k]
            if len(local) > 1 and np.all(np.diff(local) > 0) and local[-1] - local[0] == len(local) - 1:
                out[sel] = self.parts[k][local[0] : local[-1] + 1]  # one contiguous read
            else:
                out[sel] = self.parts[k][local]
        return out

    def __array__(self, dtype=None, copy=None):
        arr = self[np.arange(self.shape[0])]
        return arr.astype(dtype) if dtype is not None else arr


def session_name(ds: Dataset) -> str:
    """A name for a dataset without a ``session`` column: its directory (or file) name."""
    path = Path(ds.source)
    return path.name if path.is_dir() else path.stem


def concat_conditions(datasets: list[Dataset]) -> Conditions:
    """Conditions of several datasets stacked: the union of their columns (NaN where one lacks a column) and a
    ``session`` column (the one an import wrote, else each input's directory name)."""
    names: list[str] = ["session"]
    angle_columns: set[str] = set()
    for ds in datasets:
        if ds.conditions is not None:
            names += [n for n in ds.conditions.names if n not in names]
            angle_columns |= ds.conditions.angle_columns
    sessions: list[str] = []
    blocks = []
    for ds in datasets:
        block = np.full((ds.n, len(names)), np.nan)
        c = ds.conditions
        if c is not None:
            for j, name in enumerate(c.names):
                block[:, names.index(name)] = c.values[:, j]
        own = c.labels.get("session") if c is not None else None
        if own:  # an imported dataset: keep its session names, renumbered into the joint list
            codes = block[:, 0]
            remap = np.full(len(own), np.nan)
            for code, label in enumerate(own):
                if label not in sessions:
                    sessions.append(label)
                remap[code] = sessions.index(label)
            ok = np.isfinite(codes)
            block[ok, 0] = remap[codes[ok].astype(int)]
        else:
            label = session_name(ds)
            if label in sessions:
                raise AelensError(
                    f"{ds.source}: session name {label!r} is used by another --data input; "
                    "give the inputs distinct directory names or a session column"
                )
            sessions.append(label)
            block[:, 0] = sessions.index(label)
        blocks.append(block)
    source = " + ".join(ds.source for ds in datasets)
    return Conditions(names, np.concatenate(blocks), source, angle_columns, {"session": sessions})


def load_datasets(paths: list[str | Path], **kwargs) -> Dataset:
    """Several datasets (sessions) as one: frames concatenated in the order given, without loading memory-mapped
    inputs; conditions concatenated with a ``session`` column (see :func:`concat_conditions`). All inputs must have
    frames of one shape and one pixel type."""
    datasets = [load_dataset(p, **kwargs) for p in paths]
    first = datasets[0]
    for ds in datasets[1:]:
        if ds.shape != first.shape:
            raise AelensError(
                f"{ds.source}: images are {'x'.join(map(str, ds.shape))} but {first.source} has "
                f"{'x'.join(map(str, first.shape))}; every --data input needs frames of one size"
            )
        if ds.images.dtype != first.images.dtype or ds.scale != first.scale:
            raise AelensError(
                f"{ds.source}: pixels are {ds.images.dtype} (scale {ds.scale:g}) but {first.source} has "
                f"{first.images.dtype} (scale {first.scale:g}); convert them to one type"
            )
    images = ConcatFrames([ds.images for ds in datasets])
    clean = ConcatFrames([ds.clean for ds in datasets]) if all(ds.clean is not None for ds in datasets) else None
    conditions = concat_conditions(datasets)
    digest = hashlib.sha256("|".join(ds.fingerprint for ds in datasets).encode()).hexdigest()[:16]
    return Dataset(images, first.scale, conditions.source, conditions, clean, digest)
