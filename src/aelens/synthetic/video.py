"""Full-frame synthetic arena videos with the animals' true poses written as a tracker would (ground truth for
``aelens data import``).

``aelens data synth OUT --video [--animals 2]`` writes ``video.mp4`` (the whole arena, H.264) and the true skeleton of
each animal in SLEAP's analysis ``.h5`` layout, as a SLEAP ``.slp`` (when sleap-io is installed), as DeepLabCut
inference ``.csv`` and ``.h5`` (the latter when pandas and PyTables are installed), as NWB with ndx-pose (when
sleap-io, pynwb and ndx-pose are installed), and ``truth.csv``. Nodes: nose,
head, neck, center, tail_base, tail_tip; ``center`` is the body centre and ``tail_base -> neck`` lies on the body axis,
so the import must give ``body_angle_deg`` back exactly (up to resampling).

Video pixel (row i, column j) has scene coordinates X = j, Y = H - 1 - i (y up); pose files use x = X, y = i.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import AelensError
from ..importing.video import write_video
from ..storage import atomic_path, write_text
from .arena import Arena, _animal, _scene, _Sensor, simulate_trajectory

NODES = ("nose", "head", "neck", "center", "tail_base", "tail_tip")
PATCH = 96  # pixels drawn around each animal at the default scale: body, head and tail fit with room to spare
FPS = 25.0


def node_positions(traj: dict[str, np.ndarray], arena: Arena) -> np.ndarray:
    """(f, k, 2) scene coordinates (x right, y up) of NODES for one trajectory, from the renderer's own geometry."""
    b = np.radians(traj["body_angle_deg"])
    dh = np.radians(traj["head_angle_deg"]) - b
    hl, bl = arena.head_length, arena.body_length
    neck = bl - 2.0
    base_u = -bl + 1.0
    swing = -0.8 * dh
    mid_u = base_u - 0.5 * arena.tail_length * np.cos(swing * 0.5)
    mid_v = -0.5 * arena.tail_length * np.sin(swing * 0.5)
    uv = {
        "nose": (neck + 1.8 * hl * np.cos(dh), 1.8 * hl * np.sin(dh)),
        "head": (neck + 0.8 * hl * np.cos(dh), 0.8 * hl * np.sin(dh)),
        "neck": (np.full_like(b, neck), np.zeros_like(b)),
        "center": (np.zeros_like(b), np.zeros_like(b)),
        "tail_base": (np.full_like(b, base_u), np.zeros_like(b)),
        "tail_tip": (mid_u - 0.5 * arena.tail_length * np.cos(swing), mid_v - 0.5 * arena.tail_length * np.sin(swing)),
    }
    out = np.empty((len(b), len(NODES), 2))
    for k, name in enumerate(NODES):
        u, v = uv[name]
        out[:, k, 0] = traj["x"] + u * np.cos(b) - v * np.sin(b)
        out[:, k, 1] = traj["y"] + u * np.sin(b) + v * np.cos(b)
    return out


def render_frames(trajs: list[dict[str, np.ndarray]], arena: Arena, seed: int):
    """Yield uint8 (H, W) frames of the whole arena with every animal, camera noise included."""
    size = arena.frame
    rng = np.random.default_rng((seed, 2))
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    sensor = _Sensor(arena, rng)
    X = torch.arange(size, dtype=torch.float32).view(1, size).expand(size, size)
    Y = (size - 1 - torch.arange(size, dtype=torch.float32)).view(size, 1).expand(size, size)
    scene = _scene(X - arena.center, Y - arena.center, range(arena.n_ports), arena).clamp(0, 1)
    pattern = sensor.pattern(X, Y)
    patch_size = int(PATCH * max(1.0, arena.body_length / Arena().body_length))
    offs = torch.arange(patch_size, dtype=torch.float32) - patch_size // 2
    for t in range(len(trajs[0]["x"])):
        img = scene.clone()
        for tr in trajs:
            x, y = float(tr["x"][t]), float(tr["y"][t])
            c0, r0 = int(round(x)) - patch_size // 2, int(round(size - 1 - y)) - patch_size // 2
            cols = (c0 + patch_size // 2 + offs).clamp(0, size - 1).long()
            rows = (r0 + patch_size // 2 + offs).clamp(0, size - 1).long()
            gu = (c0 + patch_size // 2 + offs).view(1, patch_size) - x
            gv = (size - 1 - (r0 + patch_size // 2 + offs)).view(patch_size, 1) - y
            body = torch.tensor(math.radians(tr["body_angle_deg"][t]))
            head = torch.tensor(math.radians(tr["head_angle_deg"][t]))
            animal, level = _animal(gu, gv, body, head, arena)
            inside = ((c0 + patch_size // 2 + offs) >= 0) & ((c0 + patch_size // 2 + offs) < size)
            inside_r = ((r0 + patch_size // 2 + offs) >= 0) & ((r0 + patch_size // 2 + offs) < size)
            mask = inside_r.view(patch_size, 1) & inside.view(1, patch_size)
            patch = img[rows][:, cols]
            patch = torch.where(mask, patch * (1 - animal) + level * animal, patch)
            img[rows.view(patch_size, 1), cols.view(1, patch_size)] = patch
        signal = img.clamp(0, 1) * arena.full_well
        electrons = signal + torch.sqrt(signal + arena.read_noise**2) * torch.randn(signal.shape, generator=gen)
        out = electrons / arena.full_well + pattern
        yield (out.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def lab_arena(frame: int = 1024) -> Arena:
    """A lab-sized scene: a ``frame`` x ``frame`` video, the arena filling most of it, an animal about as many pixels
    long as a fly in a 1024 x 1024 SLEAP video (the benchmark's video)."""
    k = frame / 320.0 * 0.6
    # a lab camera at this size: far less noise per pixel than the crop renderer's, so H.264 compresses it about
    # as well as a real recording (the decode rate depends on that)
    return Arena(
        frame=frame,
        radius=140.0 * frame / 320.0,
        wall=7.0 * k,
        port_radius=5.5 * k,
        body_length=11.0 * k,
        body_width=6.0 * k,
        head_length=5.5 * k,
        head_width=4.0 * k,
        tail_length=20.0 * k,
        tail_width=1.1 * k,
        full_well=20000.0,
        read_noise=20.0,
        stripes=0.005,
        hot_fraction=1e-5,
    )


def synthesize_video(
    out_dir: str | Path,
    n: int = 300,
    animals: int = 1,
    seed: int = 0,
    overwrite: bool = False,
    arena: Arena = Arena(),
    crf: int = 10,
) -> dict[str, Path]:
    """Write ``video.mp4`` and the true poses in every format available; returns {format: path}. ``crf``: H.264
    quality (10: nearly lossless, for ground truth; 23: a typical lab recording)."""

    if n < 2:
        raise AelensError(f"--n must be at least 2, got {n}")
    if not 1 <= animals <= 6:
        raise AelensError(f"--animals must be 1..6, got {animals}")
    out = Path(out_dir)
    names = [
        "video.mp4",
        "truth.csv",
        "poses.csv",
        "poses.analysis.h5",
        "poses.slp",
        "poses.nwb",
        "poses_dlc.csv",
        "poses_dlc.h5",
    ]
    existing = [nm for nm in names if (out / nm).exists()]
    if existing and not overwrite:
        raise AelensError(f"{out}: already holds {', '.join(existing)}; choose another folder or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    trajs = [simulate_trajectory(n, seed + 1000 * a, arena) for a in range(animals)]
    size = arena.frame
    with atomic_path(out / "video.mp4") as tmp:
        write_video(tmp, render_frames(trajs, arena, seed), (size, size), FPS, crf=crf)
    return {"video": out / "video.mp4", **_write_poses(out, trajs, arena)}


def write_pose_files(out_dir: str | Path, n: int, animals: int = 1, seed: int = 0, arena: Arena = Arena()) -> dict:
    """The true poses of ``synthesize_video``'s animals in every format, without the video (what the pose readers'
    cost is measured on: ``aelens bench``); returns {format: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _write_poses(out, [simulate_trajectory(n, seed + 1000 * a, arena) for a in range(animals)], arena)


def _write_poses(out: Path, trajs: list[dict], arena: Arena) -> dict[str, Path]:
    # (f, t, k, 2) in video pixels, y down
    pts = np.stack([node_positions(tr, arena) for tr in trajs], axis=1)
    pts[..., 1] = arena.frame - 1 - pts[..., 1]
    written = {"truth": out / "truth.csv"}
    _write_truth(out / "truth.csv", trajs, pts)
    written["plain-csv"] = _write_plain_csv(out / "poses.csv", trajs, pts)
    written["sleap-analysis-h5"] = _write_sleap_analysis(out / "poses.analysis.h5", pts)
    written["deeplabcut-csv"] = _write_dlc_csv(out / "poses_dlc.csv", pts)
    for fmt, fn in (("sleap-slp", _write_slp), ("deeplabcut-h5", _write_dlc_h5)):
        path = fn(out, pts)
        if path is not None:
            written[fmt] = path
    if (out / "poses.nwb").is_file():
        written["nwb"] = out / "poses.nwb"
    return written


def _write_truth(path: Path, trajs, pts) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["frame", "track", "x", "y", "body_angle_deg", "head_angle_deg"])
    for t in range(pts.shape[0]):
        for a, tr in enumerate(trajs):
            c = pts[t, a, NODES.index("center")]
            w.writerow(
                [t, a, f"{c[0]:.4f}", f"{c[1]:.4f}", f"{tr['body_angle_deg'][t]:.4f}", f"{tr['head_angle_deg'][t]:.4f}"]
            )
    write_text(path, buf.getvalue())


def _write_plain_csv(path: Path, trajs, pts) -> Path:
    """The poses as any tracker could write them: frame, track, centre and heading (aelens's plain CSV format)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["frame", "track", "x", "y", "angle_deg"])
    for t in range(pts.shape[0]):
        for a, tr in enumerate(trajs):
            c = pts[t, a, NODES.index("center")]
            w.writerow([t, a, f"{c[0]:.3f}", f"{c[1]:.3f}", f"{tr['body_angle_deg'][t]:.3f}"])
    write_text(path, buf.getvalue())
    return path


def _write_sleap_analysis(path: Path, pts: np.ndarray) -> Path:
    import h5py

    f, t, k, _ = pts.shape
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h:
            h["tracks"] = pts.transpose(1, 3, 2, 0)  # SLEAP's layout: (tracks, 2, nodes, frames)
            h["point_scores"] = np.ones((t, k, f))
            h["track_occupancy"] = np.ones((f, t), dtype=np.uint8)
            h["node_names"] = np.array([n.encode() for n in NODES])
            h["track_names"] = np.array([f"track_{i}".encode() for i in range(t)])
            h["video_path"] = "video.mp4"
    return path


def _dlc_columns(t: int) -> list[tuple[str, ...]]:
    cols = []
    for a in range(t):
        for n in NODES:
            for c in ("x", "y", "likelihood"):
                cols.append(("DLC_synthetic", f"animal{a}", n, c) if t > 1 else ("DLC_synthetic", n, c))
    return cols


def _dlc_values(pts: np.ndarray) -> np.ndarray:
    f, t, k, _ = pts.shape
    vals = np.ones((f, t, k, 3))
    vals[..., :2] = pts
    return vals.reshape(f, -1)


def _write_dlc_csv(path: Path, pts: np.ndarray) -> Path:
    cols = _dlc_columns(pts.shape[1])
    levels = ["scorer", "individuals", "bodyparts", "coords"] if pts.shape[1] > 1 else ["scorer", "bodyparts", "coords"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for li, name in enumerate(levels):
        w.writerow([name] + [c[li] for c in cols])
    for i, row in enumerate(_dlc_values(pts)):
        w.writerow([i] + [f"{v:.4f}" for v in row])
    write_text(path, buf.getvalue())
    return path


def _write_dlc_h5(out: Path, pts: np.ndarray) -> Path | None:
    try:
        import pandas as pd
        import tables  # noqa: F401 - pandas needs it for to_hdf
    except ImportError:
        return None
    t = pts.shape[1]
    names = ["scorer", "individuals", "bodyparts", "coords"] if t > 1 else ["scorer", "bodyparts", "coords"]
    df = pd.DataFrame(_dlc_values(pts), columns=pd.MultiIndex.from_tuples(_dlc_columns(t), names=names))
    with atomic_path(out / "poses_dlc.h5") as tmp:
        df.to_hdf(tmp, key="df_with_missing", format="table", mode="w")  # what DeepLabCut itself writes
    return out / "poses_dlc.h5"


def _write_slp(out: Path, pts: np.ndarray) -> Path | None:
    try:
        import sleap_io as sio
    except ImportError:
        return None
    f, t, k, _ = pts.shape
    video = sio.Video(filename="video.mp4", open_backend=False)
    skel = sio.Skeleton(list(NODES), name="synthetic")
    arr = np.concatenate([pts, np.ones((f, t, k, 1))], axis=-1)
    labels = sio.Labels.from_numpy(
        arr, videos=[video], skeletons=skel, tracks=[sio.Track(f"track_{i}") for i in range(t)], return_confidence=True
    )
    with atomic_path(out / "poses.slp") as tmp:
        sio.save_slp(labels, str(tmp))
    try:  # NWB with ndx-pose as well, where pynwb is installed
        import ndx_pose  # noqa: F401
        import pynwb  # noqa: F401
    except ImportError:
        return out / "poses.slp"
    with atomic_path(out / "poses.nwb") as tmp:
        sio.save_nwb(labels, str(tmp))
    return out / "poses.slp"
