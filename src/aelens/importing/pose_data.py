"""The arrays every pose reader produces (:class:`Poses`) and the checks every reader applies."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import AelensError

MAX_COORD = 1e7  # video pixels: no video is ten million pixels wide; larger values are a unit or file error
MAX_ANGLE = 1e6  # degrees: a heading written as degrees never grows this large (1e30 is a broken file)


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


def check_points(poses: Poses) -> Poses:
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
    far = np.abs(np.nan_to_num(poses.points)) > MAX_COORD
    if far.any():
        f_i, t_i = np.argwhere(far)[0][:2]
        raise AelensError(
            f"{poses.source}: frame {int(poses.frames[f_i])}, track {poses.tracks[t_i]}: a coordinate beyond "
            f"{MAX_COORD:.0e} pixels ({float(poses.points[far][0]):g}); positions must be video pixels"
        )
    if poses.angles is not None:
        a = poses.angles[~np.isnan(poses.angles)]
        if not np.isfinite(a).all() or (np.abs(a) > MAX_ANGLE).any():
            bad_a = a[~np.isfinite(a) | (np.abs(a) > MAX_ANGLE)][0]
            raise AelensError(
                f"{poses.source}: column 'angle_deg' holds {float(bad_a):g}; expected degrees (-{MAX_ANGLE:g} to {MAX_ANGLE:g})"
            )
    zero = (poses.points == 0).all(axis=-1) & (poses.scores == 0)
    if zero.any():  # DeepLabCut (multi-animal) writes a point it did not find as (0, 0) with likelihood 0
        poses.points[zero] = np.nan
        poses.notes["zero_points_read_as_missing"] = int(zero.sum())
    return poses


def h5_floats(ds, where: str) -> np.ndarray:
    """An HDF5 dataset of numbers as float64, or a one-line error naming it (text, compound or object data)."""
    kind = getattr(getattr(ds, "dtype", None), "kind", None)
    if kind not in ("f", "i", "u", "b"):
        raise AelensError(
            f"{where}: holds {'text' if kind in ('S', 'U', 'O') else 'non-numeric'} values; expected numbers"
        )
    return np.asarray(ds, dtype=np.float64)


def h5_strings(ds) -> list[str]:
    """An HDF5 dataset of names (bytes or str) as a list of str."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(ds).ravel()]


def open_h5(path, what: str = "HDF5"):
    """An HDF5 pose file opened for reading; a file that is not HDF5 is a one-line error naming ``what`` was
    expected."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise AelensError(f"{path}: cannot read as {what} ({exc})") from None
