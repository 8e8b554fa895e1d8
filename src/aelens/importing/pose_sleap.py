"""SLEAP ``.slp`` (through sleap-io) and SLEAP analysis ``.h5`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import AelensError
from .pose_data import Poses, check_points, h5_floats, h5_strings


def read_with_sleap_io(path: Path, fmt: str = "sleap-slp") -> Poses:
    try:
        import sleap_io as sio
    except ImportError:
        raise AelensError(f"{path}: reading SLEAP .slp files needs sleap-io: pip install 'aelens[pose]'") from None
    try:
        labels = sio.load_slp(str(path), open_videos=False)
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
    return check_points(
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


def read_sleap_analysis(path: Path, fh) -> Poses:
    nodes = h5_strings(fh["node_names"])
    tracks_arr = h5_floats(fh["tracks"], f"{path}: dataset 'tracks'")
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
        sc = h5_floats(fh["point_scores"], f"{path}: dataset 'point_scores'")
        scores = sc.transpose(1, 0, 2) if transposed else sc.transpose(2, 0, 1)
        if scores.shape != (f, t, k):
            raise AelensError(f"{path}: point_scores shape {sc.shape} does not match tracks {tracks_arr.shape}")
    else:
        scores = np.full((f, t, k), np.nan)
    names = h5_strings(fh["track_names"]) if "track_names" in fh else []
    if len(names) != t:
        names = [f"track_{i}" for i in range(t)]
    video = None
    if "video_path" in fh:
        v = np.asarray(fh["video_path"][()]).ravel()
        video = (v[0].decode() if isinstance(v[0], bytes) else str(v[0])) if v.size else None
    return check_points(
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
