"""Readers and validation for image stacks and their per-frame conditions.

Images: ``.npy`` (memory-mapped) or ``.npz`` (one array, the key ``images``/``arr_0``, or ``key=``), shaped
``(n, h, w)`` or ``(n, c, h, w)``, uint8 or float. Conditions: ``.csv`` with a header row, or ``.npy`` ``(n, k)`` with
names from the config. A data directory holds ``images.npz`` (or ``.npy``), optional ``metadata.csv``/``metadata.npy``
and optional ``clean.npz`` (noise-free ground truth, synthetic data only).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import AelensError

if TYPE_CHECKING:  # torch is imported when frames become tensors (the CLI checks data before loading it)
    import torch

MIN_SIZE = 24  # the encoder's three 3x3 convolutions and two 2x poolings need at least 24 px
IMAGE_NAMES = ("images.npz", "images.npy")
METADATA_NAMES = ("metadata.csv", "metadata.npy")
CLEAN_NAMES = ("clean.npz", "clean.npy")
IMPORT_SUMMARY = "import.json"  # what `aelens data import` found and chose, beside the crops
# columns that may hold text (names); their values become integer codes 0, 1, ... in order of first appearance,
# with the names kept in Conditions.labels. Every other column must be numeric.
LABEL_COLUMNS = ("session",)


def is_angle_column(name: str, extra: tuple[str, ...] | set[str] = ()) -> bool:
    """Angles (degrees) are columns named like ``*angle*`` or ``*_deg*``, or listed in the config; rates of turning
    (``*_deg_s``, ``*speed*``, ``*angular*``) are not angles but signed numbers."""
    low = name.lower()
    if name in extra:
        return True
    if low.endswith("_deg_s") or "speed" in low or "angular" in low:
        return False
    return "angle" in low or "_deg" in low


@dataclass
class Conditions:
    """Per-frame conditions: ``values`` (n, k) float64 with NaN for missing entries; ``names`` k column names."""

    names: list[str]
    values: np.ndarray
    source: str = ""
    angle_columns: set[str] = field(default_factory=set)
    labels: dict[str, list[str]] = field(default_factory=dict)  # text columns: code -> name

    def __len__(self) -> int:
        return self.values.shape[0]

    def column(self, name: str) -> np.ndarray:
        """One column by name; an unknown name is an error that lists the available ones."""
        if name not in self.names:
            raise AelensError(
                f"{self.source}: no condition column {name!r}; available: {', '.join(self.names) or '(none)'}"
            )
        return self.values[:, self.names.index(name)]

    def is_angle(self, name: str) -> bool:
        return is_angle_column(name, self.angle_columns)

    def label(self, column: str, code: float) -> str:
        """The name of ``code`` in ``column``: its text for a text column (session names), else the number."""
        names = self.labels.get(column)
        return str(names[int(code)]) if names and 0 <= int(code) < len(names) else f"{code:g}"

    def groups(self, idx: np.ndarray, columns=("session", "track")):
        """Rows ``idx`` split by each of ``columns`` that has two values or more among them: yields (column, label,
        mask over ``idx``), in the columns' order and each column's code order."""
        for column in columns:
            if column not in self.names:
                continue
            codes = self.column(column)[idx]
            found = np.unique(codes[np.isfinite(codes)])
            if len(found) < 2:
                continue
            for code in found:
                yield column, self.label(column, code), codes == code

    def subset(self, idx: np.ndarray) -> "Conditions":
        return Conditions(self.names, self.values[idx], self.source, self.angle_columns, self.labels)


@dataclass
class Dataset:
    """A stack of frames and what is known about each.

    ``images``: (n, c, h, w) raw array (uint8 or float, possibly memory-mapped); divide by ``scale`` for model input.
    ``clean``: the same for noise-free frames when the dataset has them. ``conditions``: per-frame metadata or None.
    """

    images: np.ndarray
    scale: float
    source: str
    conditions: Conditions | None = None
    clean: np.ndarray | None = None
    fingerprint: str = ""
    # per-row (gain, bias) applied after scaling, frames clipped to [0, 1] (data/normalize.py); None: as stored
    levels: np.ndarray | None = None
    level_info: dict = field(default_factory=dict)  # how the levels were made: method and each session's range

    @property
    def n(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(c, h, w)"""
        return tuple(self.images.shape[1:])

    def batch(self, idx: np.ndarray | slice, clean: bool = False) -> torch.Tensor:
        """Frames ``idx`` as float32 (b, c, h, w), scaled to [0, 1] for uint8 data. Sorted ``idx`` reads a
        memory-mapped file in order."""
        src = self.clean if clean else self.images
        if src is None:
            raise AelensError(f"{self.source}: the dataset has no clean (noise-free) images")
        import torch

        arr = src[idx]
        if arr.dtype == np.float32:  # own copy: never hand out (or divide in place) the read-only memory map
            out = torch.from_numpy(np.array(arr))
        else:
            out = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32)
        out = out.div_(self.scale) if self.scale != 1.0 else out
        if self.levels is not None:
            gb = torch.from_numpy(np.ascontiguousarray(self.levels[idx]))
            shape = (-1,) + (1,) * (out.ndim - 1)
            out = out.mul_(gb[:, 0].reshape(shape)).add_(gb[:, 1].reshape(shape)).clamp_(0.0, 1.0)
        return out

    def condition_names(self) -> list[str]:
        return list(self.conditions.names) if self.conditions is not None else []

    def require_conditions(self, what: str) -> Conditions:
        if self.conditions is None:
            raise AelensError(f"{self.source}: {what} needs per-frame conditions (metadata.csv or metadata.npy)")
        return self.conditions


# --------------------------------------------------------------------------------------------- images


def _read_array(path: Path, key: str | None, what: str) -> np.ndarray:
    suffix = path.suffix.lower()
    if not path.exists():
        raise AelensError(f"{path}: file not found")
    if path.is_dir():
        raise AelensError(f"{path}: is a directory without {' or '.join(IMAGE_NAMES)}")
    if suffix not in (".npy", ".npz"):
        raise AelensError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; expected .npy, .npz or a data directory holding images.npz"
        )
    try:
        if suffix == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            _check_npy_size(path, arr)
            return arr
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            if key is not None:
                if key not in names:
                    raise AelensError(f"{path}: no array named {key!r} (found: {', '.join(names) or 'none'})")
                chosen = key
            elif len(names) == 1:
                chosen = names[0]
            elif "images" in names and what == "images":
                chosen = "images"
            elif "arr_0" in names:
                chosen = "arr_0"
            elif not names:
                raise AelensError(f"{path}: the .npz file holds no arrays")
            else:
                raise AelensError(
                    f"{path}: holds several arrays ({', '.join(names)}); pass --key NAME or name the {what} array 'images'"
                )
            return npz[chosen]
    except AelensError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "python objects" in str(exc).lower():
            raise AelensError(f"{path}: holds an object (pickled) array; aelens reads only numeric arrays") from None
        raise AelensError(f"{path}: cannot read as a NumPy array ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError, OverflowError) as exc:  # OverflowError: a negative shape
        raise AelensError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None


def _check_npy_size(path: Path, arr: np.ndarray) -> None:
    """A .npy header that describes fewer frames than the file holds (or more) is an error, not a silent crop."""
    offset = getattr(arr, "offset", None)
    if offset is None:
        return
    size, expected = path.stat().st_size, offset + arr.nbytes
    if size != expected:
        raise AelensError(
            f"{path}: the .npy header describes shape {tuple(arr.shape)} ({expected} bytes) but the file holds "
            f"{size} bytes; the file is damaged or its header was edited"
        )


FLOAT_RANGE_WARNING = 1.5  # float pixels above this look like 0..255 data read as 0..1


def _warn_float_range(arr: np.ndarray, path: Path) -> None:
    idx = np.unique(np.linspace(0, arr.shape[0] - 1, num=min(64, arr.shape[0])).astype(int))
    top = float(np.max(arr[idx]))
    if top > FLOAT_RANGE_WARNING:
        logging.getLogger("aelens").warning(
            "%s: float pixels reach %.4g but are read as 0..1; pass --max-pixel-value (e.g. 255) to scale them",
            path,
            top,
        )


def _scale_for(arr: np.ndarray, path: Path, max_pixel_value: float | None) -> float:
    if arr.dtype == np.uint8:
        return 255.0
    if max_pixel_value is not None:
        if not (max_pixel_value > 0 and math.isfinite(max_pixel_value)):
            raise AelensError(f"--max-pixel-value must be a positive number, got {max_pixel_value!r}")
        return float(max_pixel_value)
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        return float(np.iinfo(arr.dtype).max)
    _warn_float_range(arr, path)
    return 1.0


def validate_images(arr: np.ndarray, path: Path | str, what: str = "images") -> np.ndarray:
    """Check dtype, rank, count, size and finiteness; return (n, c, h, w) (a view, no copy)."""
    if arr.dtype == object:
        raise AelensError(f"{path}: holds an object (pickled) array; aelens reads only numeric arrays")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise AelensError(f"{path}: {what} have dtype {arr.dtype}; expected uint8 or float")
    if np.issubdtype(arr.dtype, np.signedinteger):
        raise AelensError(f"{path}: {what} have dtype {arr.dtype}; expected uint8, an unsigned integer or float")
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    elif arr.ndim == 4:
        if arr.shape[-1] in (1, 3, 4) and arr.shape[1] > 4:
            raise AelensError(
                f"{path}: {what} shaped {tuple(arr.shape)} look channels-last; expected N x C x H x W (use np.moveaxis(a, -1, 1))"
            )
    else:
        raise AelensError(f"{path}: {what} must be N x H x W or N x C x H x W, got shape {tuple(arr.shape)}")
    n, c, h, w = arr.shape
    if c < 1:
        raise AelensError(f"{path}: {what} have 0 channels (shape {tuple(arr.shape)}); expected N x C x H x W, C >= 1")
    if n < 2:
        raise AelensError(f"{path}: need at least 2 images, got {n}")
    if h < MIN_SIZE or w < MIN_SIZE:
        raise AelensError(f"{path}: images must be at least {MIN_SIZE} x {MIN_SIZE} pixels, got {h} x {w}")
    if np.issubdtype(arr.dtype, np.floating):
        step = max(1, (1 << 24) // max(1, c * h * w))
        for start in range(0, n, step):
            block = np.asarray(arr[start : start + step])
            if not np.isfinite(block).all():
                first = start + int(np.nonzero(~np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1))[0][0])
                raise AelensError(f"{path}: {what} contain NaN or infinite pixels (first in image {first})")
    return arr


def fingerprint(arr: np.ndarray) -> str:
    """A cheap identity for an image stack: shape, dtype and the bytes of up to 64 evenly spaced frames."""
    h = hashlib.sha256(f"{arr.shape}|{arr.dtype}".encode())
    for i in np.unique(np.linspace(0, arr.shape[0] - 1, num=min(64, arr.shape[0])).astype(int)):
        h.update(np.ascontiguousarray(arr[i]).tobytes())
    return h.hexdigest()[:16]


def load_images(
    path: str | Path, key: str | None = None, max_pixel_value: float | None = None, what: str = "images"
) -> tuple[np.ndarray, float]:
    """Read and validate an image stack: returns ((n, c, h, w) raw array, scale)."""
    path = Path(path)
    arr = _read_array(path, key, what)
    arr = validate_images(arr, path, what)
    return arr, _scale_for(arr, path, max_pixel_value)


# --------------------------------------------------------------------------------------------- conditions


def _read_csv(path: Path) -> tuple[list[str], np.ndarray, dict[str, list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise AelensError(f"{path}: file not found") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AelensError(f"{path}: cannot read as CSV ({exc})") from None
    rows = [r for r in rows if r]
    if not rows:
        raise AelensError(f"{path}: empty; expected a header row naming the conditions")
    header = [h.strip() for h in rows[0]]
    if any(not h for h in header) or len(set(header)) != len(header):
        raise AelensError(f"{path}: header must name every column once, got {header}")
    values = np.empty((len(rows) - 1, len(header)), dtype=np.float64)
    labels: dict[str, list[str]] = {h: [] for h in header if h in LABEL_COLUMNS}
    for i, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise AelensError(f"{path}: row {i + 2} has {len(row)} fields; the header has {len(header)}")
        for j, cell in enumerate(row):
            cell = cell.strip()
            if header[j] in labels:
                names = labels[header[j]]
                if cell not in names:
                    names.append(cell)
                values[i, j] = names.index(cell)
                continue
            if cell == "" or cell.lower() in ("nan", "na"):
                values[i, j] = np.nan
                continue
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise AelensError(
                    f"{path}: column {header[j]!r} row {i + 2}: {cell!r} is not a number (metadata must be numeric)"
                ) from None
    return header, values, labels


def load_conditions(
    path: str | Path,
    n_images: int,
    names: dict[int, str] | None = None,
    angle_columns: tuple[str, ...] = (),
) -> Conditions:
    """Read per-frame conditions from .csv (header row) or .npy (n, k); ``names`` maps column index -> name and
    selects those columns (required to name .npy columns; optional for CSV, where it selects and renames)."""
    path = Path(path)
    suffix = path.suffix.lower()
    names = dict(names or {})
    labels: dict[str, list[str]] = {}
    if suffix == ".csv":
        header, values, labels = _read_csv(path)
    elif suffix == ".npy":
        values = _read_array(path, None, "metadata")
        if values.dtype == object or not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
            raise AelensError(f"{path}: metadata has dtype {values.dtype}; expected numbers")
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise AelensError(f"{path}: metadata must be N x K, got shape {tuple(values.shape)}")
        values = np.asarray(values, dtype=np.float64)
        header = [f"c{j}" for j in range(values.shape[1])]
    else:
        raise AelensError(f"{path}: unsupported metadata type {suffix or '(none)'!r}; expected .csv or .npy")
    if values.shape[0] != n_images:
        raise AelensError(f"{path}: {values.shape[0]} metadata rows but {n_images} images")
    if names:
        k = values.shape[1]
        missing = {i: nm for i, nm in names.items() if not 0 <= int(i) < k}
        if missing:
            i, nm = next(iter(missing.items()))
            raise AelensError(f"conditions: column {i} ({nm!r}) is not in {path}, which has {k} columns (0..{k - 1})")
        order = sorted(names)
        values = values[:, order]
        labels = {names[i]: labels[header[i]] for i in order if header[i] in labels}
        header = [names[i] for i in order]
    for col in angle_columns:
        if col not in header:
            raise AelensError(f"data.angle_columns: {col!r} is not a column of {path} (available: {', '.join(header)})")
    return Conditions(header, values, str(path), set(angle_columns), labels)


# --------------------------------------------------------------------------------------------- datasets


def _find(folder: Path, candidates: tuple[str, ...]) -> Path | None:
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    return None


def load_dataset(
    path: str | Path,
    key: str | None = None,
    max_pixel_value: float | None = None,
    metadata: str | Path | None = None,
    conditions: dict[int, str] | None = None,
    angle_columns: tuple[str, ...] = (),
) -> Dataset:
    """Load a dataset from an images file or a data directory.

    Example::

        ds = aelens.load_dataset("../shared/data/mouse_openfield")
        ds.images.shape        # (2330, 1, 50, 50) uint8
        ds.batch(np.arange(8)) # float32 tensor in [0, 1]
    """
    if path is None:
        raise AelensError("--data is required: an images file (.npy/.npz) or a data directory holding images.npz")
    path = Path(path)
    clean_path = None
    if path.is_dir():
        images_path = _find(path, IMAGE_NAMES)
        if images_path is None:
            raise AelensError(f"{path}: data directory has no {' or '.join(IMAGE_NAMES)}")
        if metadata is None:
            metadata = _find(path, METADATA_NAMES)
        clean_path = _find(path, CLEAN_NAMES)
    else:
        images_path = path
    images, scale = load_images(images_path, key, max_pixel_value)
    conds = None
    if metadata is not None:
        conds = load_conditions(metadata, images.shape[0], conditions, angle_columns)
    elif conditions or angle_columns:
        raise AelensError(f"{path}: conditions are named in the config but the dataset has no metadata file")
    clean = None
    if clean_path is not None:
        clean, _ = load_images(clean_path, None, max_pixel_value, what="clean images")
        if clean.shape != images.shape:
            raise AelensError(
                f"{clean_path}: shape {tuple(clean.shape)} differs from the images' {tuple(images.shape)}"
            )
    return Dataset(images, scale, str(path), conds, clean, fingerprint(images))
