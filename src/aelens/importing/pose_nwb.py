"""NWB files with ndx-pose poses, read with ``h5py`` as the HDF5 groups they are.

ndx-pose stores each tracked animal as a ``PoseEstimation`` group (in a processing module) holding one
``PoseEstimationSeries`` per body part: ``data`` (samples x 2, x and y in pixels), ``confidence`` (optional) and the
samples' times as ``timestamps`` or ``starting_time`` with a ``rate``. DeepLabCut (through DLC2NWB) writes one
``PoseEstimation`` per individual and names its series ``INDIVIDUAL_BODYPART``; SLEAP (through sleap-io) writes one
per track, named ``track=NAME``. Reading the groups directly works for both, whichever ndx-pose version wrote them
(pynwb refuses files whose cached ndx-pose namespace differs from the installed one), and takes seconds for an hour of
video instead of building an object per instance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import AelensError
from .pose_data import Poses, check_points, h5_floats, h5_strings, open_h5

MAX_FRAME = 10**8  # a frame index beyond ~40 days of video at 30 frames/s: a damaged time axis


def _type(obj) -> str:
    t = obj.attrs.get("neurodata_type", b"")
    return t.decode() if isinstance(t, bytes) else str(t)


def _frames(series, n: int, path: Path, name: str) -> np.ndarray:
    """Video frame of each sample: timestamps (or starting_time + rate) in seconds, at the rate they imply."""
    if "timestamps" in series:
        ts = h5_floats(series["timestamps"], f"{path}: series {name}/timestamps").ravel()
        if ts.size != n:
            raise AelensError(f"{path}: series {name} has {n} samples but {ts.size} timestamps")
        if not np.all(np.isfinite(ts)):
            raise AelensError(f"{path}: series {name} has timestamps that are not finite numbers")
        steps = np.diff(ts)
        if n > 1 and (steps <= 0).any():
            raise AelensError(f"{path}: series {name}: timestamps are not strictly increasing")
        step = float(np.median(steps)) if n > 1 else 1.0
        frames = np.rint(ts / step)
    elif "starting_time" in series:
        start = series["starting_time"]
        rate = float(start.attrs.get("rate", 0.0))
        if not np.isfinite(rate) or rate <= 0:
            raise AelensError(f"{path}: series {name}: starting_time has no positive rate")
        frames = np.rint(float(start[()]) * rate) + np.arange(n)
    else:
        frames = np.arange(n, dtype=np.float64)
    if n and (frames.min() < 0 or frames.max() > MAX_FRAME):
        raise AelensError(f"{path}: series {name}: its times give frame {frames.min():.0f}..{frames.max():.0f}")
    return frames.astype(np.int64)


def _node_names(series_names: list[str], track: str) -> list[str]:
    """Body-part names without the individual's prefix DeepLabCut puts before each (``ind1_snout`` -> ``snout``)."""
    prefix = track + "_"
    if track and all(s.startswith(prefix) and len(s) > len(prefix) for s in series_names):
        return [s[len(prefix) :] for s in series_names]
    return list(series_names)


def read_nwb(path: Path) -> Poses:
    try:
        return _read_nwb(path)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:  # an unexpected inner layout
        raise AelensError(f"{path}: not laid out as ndx-pose writes it ({exc.__class__.__name__}: {exc})") from None


def _read_nwb(path: Path) -> Poses:
    with open_h5(path, "NWB (an HDF5 file)") as fh:
        groups: list = []
        fh.visititems(lambda _, obj: groups.append(obj) if _type(obj) == "PoseEstimation" else None)
        if not groups:
            raise AelensError(
                f"{path}: holds no ndx-pose PoseEstimation; expected poses written by DeepLabCut or SLEAP"
            )
        animals = []  # (track name, node names, frames, points (n, k, 2), scores (n, k))
        for group in groups:
            gname = group.name.rsplit("/", 1)[-1]
            series = [(k, v) for k, v in group.items() if _type(v) == "PoseEstimationSeries"]
            if not series:
                continue
            # DeepLabCut names the individual in the series' descriptions and prefixes; SLEAP in the group's name
            track = gname.split("=", 1)[1] if gname.startswith("track=") else ""
            if not track:
                heads = {k.split("_", 1)[0] for k, _ in series if "_" in k}
                track = heads.pop() if len(heads) == 1 and all("_" in k for k, _ in series) else gname
            nodes = _node_names([k for k, _ in series], track)
            frames = None
            pts, scs = [], []
            for name, s in series:
                data = h5_floats(s["data"], f"{path}: series {name}/data")
                if data.ndim != 2 or data.shape[1] < 2:
                    raise AelensError(f"{path}: series {name}: data has shape {data.shape}; expected (samples, 2)")
                f = _frames(s, data.shape[0], path, name)
                if frames is None:
                    frames = f
                elif not np.array_equal(f, frames):
                    raise AelensError(f"{path}: the body parts of {track} are sampled at different times ({name})")
                conf = np.asarray(s["confidence"], dtype=np.float64).ravel() if "confidence" in s else None
                if conf is not None and conf.size != data.shape[0]:
                    raise AelensError(f"{path}: series {name} has {data.shape[0]} samples but {conf.size} confidences")
                pts.append(data[:, :2])
                scs.append(conf if conf is not None else np.full(data.shape[0], np.nan))
            animals.append((track, nodes, frames, np.stack(pts, axis=1), np.stack(scs, axis=1)))
        video = None
        for group in groups:
            for key in ("original_videos", "labeled_videos"):
                if key in group and video is None:
                    names = h5_strings(group[key])
                    video = names[0] if names and Path(names[0]).is_file() else None
    if not animals:
        raise AelensError(f"{path}: its PoseEstimation groups hold no PoseEstimationSeries")
    nodes = animals[0][1]
    for track, other, *_ in animals[1:]:
        if sorted(other) != sorted(nodes):
            raise AelensError(f"{path}: {track} has body parts {other}, the first animal {nodes}; expected the same")
    frames = np.unique(np.concatenate([a[2] for a in animals]))
    f, t, k = frames.size, len(animals), len(nodes)
    points = np.full((f, t, k, 2), np.nan)
    scores = np.full((f, t, k), np.nan)
    for i, (_, names, fr, p, s) in enumerate(animals):
        order = [names.index(n) for n in nodes]
        rows = np.searchsorted(frames, fr)
        if np.unique(fr).size != fr.size:
            raise AelensError(f"{path}: {animals[i][0]} lists a frame twice")
        points[rows, i] = p[:, order]
        scores[rows, i] = s[:, order]
    return check_points(
        Poses(
            points=points,
            scores=scores,
            frames=frames,
            nodes=nodes,
            tracks=[a[0] for a in animals],
            source=str(path),
            format="nwb",
            video=video,
        )
    )
