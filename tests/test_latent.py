"""Latent snapshots, maps, scores, the evolution movie, and encode/decode."""

import csv
import json

import imageio.v3 as iio
import lightning as L
import numpy as np
import pytest
import torch

import aelens
from aelens.analysis.snapshots import capture_points, load_snapshots
from aelens.maps.projection import Map2D, evolution_maps
from aelens.models.inference import inference_copy
from aelens.models.nets import Geometry
from aelens.objectives import Reconstruction
from conftest import quick_config, run_cli


@pytest.fixture(scope="module")
def snap_run(tiny_data, tmp_path_factory):
    """2 epochs x 2 snapshots per epoch: 5 snapshots (one before training)."""
    cfg = quick_config(tiny_data, **{"train.epochs": 2, "snapshots.per_epoch": 2, "snapshots.layers": "fc1,fc2"})
    return aelens.train(cfg, out=tmp_path_factory.mktemp("snap") / "run")


def test_capture_points():
    assert capture_points(10, 1) == {9}
    assert capture_points(10, 3) == {2, 6, 9}
    assert capture_points(2, 5) == {0, 1}


def test_snapshot_schedule_and_files(snap_run):
    snaps, index, idx = load_snapshots(snap_run, "fc1")
    assert snaps.shape == (5, 160, 16) and snaps.dtype == np.float16
    assert [r["global_step"] for r in index] == [0, 2, 4, 6, 8]  # 4 batches per epoch
    assert [r["epoch"] for r in index] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert np.isnan(index[0]["train_loss"]) and all(np.isfinite(r["train_loss"]) for r in index[1:])
    np.testing.assert_array_equal(idx, np.arange(160))
    fc2, _, _ = load_snapshots(snap_run, "fc2")
    assert fc2.shape == (5, 160, 128 * 4 * 4)
    m = aelens.layout.read_manifest(snap_run)
    assert m["snapshot_seconds"] > 0 and 0 < m["snapshot_overhead"]
    # the last snapshot is the final model's latent of those frames
    final = aelens.load_run(snap_run).encode(
        aelens.load_dataset(aelens.load_config(snap_run / "config.yaml").data.path)
    )
    np.testing.assert_allclose(snaps[-1].astype(np.float32), final, rtol=0.05, atol=0.05)


def test_snapshots_are_dense_early_and_end_at_the_last_epoch():
    from aelens.training.snapshotting import snapshot_epochs

    assert sorted(snapshot_epochs(150)) == [1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 31, 39, 49, 61, 76, 95, 119, 149,
                                            150]  # fmt: skip
    # short runs: thinned to at most 40% of the epochs (at least 5), still dense early, always the last
    assert sorted(snapshot_epochs(12)) == [1, 2, 3, 6, 12]
    assert sorted(snapshot_epochs(6)) == [1, 2, 4, 6]
    assert sorted(snapshot_epochs(30)) == [1, 2, 3, 5, 6, 8, 13, 16, 20, 30]
    for e in range(1, 60):
        s = snapshot_epochs(e)
        assert 1 in s and e in s and len(s) <= max(5, -(-2 * e // 5)), (e, sorted(s))
    assert sorted(snapshot_epochs(3)) == [1, 2, 3] and snapshot_epochs(1) == {1}
    assert snapshot_epochs(7, "every") == set(range(1, 8))


def test_an_early_schedule_skips_middle_epochs(tiny_data, tmp_path):
    """Nine epochs with the default (early) schedule, thinned for a short run: 1, 2, 3, 5 and the last."""
    from conftest import quick_config

    run = aelens.train(quick_config(tiny_data, **{"train.epochs": 9, "snapshots.per_epoch": 1}), out=tmp_path / "r")
    _, index, _ = load_snapshots(run, "fc1")
    assert [r["epoch"] for r in index] == [0.0, 1.0, 2.0, 3.0, 5.0, 9.0]


def test_snapshot_zero_is_the_latent_of_the_initial_weights(snap_run, tiny_data):
    cfg = aelens.load_config(snap_run / "config.yaml")
    L.seed_everything(cfg.seed, verbose=False)
    initial = Reconstruction(cfg, Geometry(1, 32, 32))  # train() builds the model right after seeding
    nets = inference_copy(initial.networks())
    x = aelens.load_dataset(tiny_data).batch(np.arange(160)).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        z0 = nets.latent(x).float().numpy()
    snaps, _, _ = load_snapshots(snap_run, "fc1")
    np.testing.assert_allclose(snaps[0].astype(np.float32), z0, rtol=0.02, atol=0.02)
    assert not np.allclose(snaps[0], snaps[-1], atol=0.05)


def test_latent_command_with_evolution(snap_run, capsys):
    out = snap_run / "latent_test"
    code, stdout, err = run_cli(
        [
            "latent",
            snap_run,
            "--evolution",
            "--fit",
            "aligned",
            "--out",
            out,
            "--color-by",
            "body_angle_deg,dist_from_center",
        ],
        capsys,
    )
    assert code == 0, err
    for f in (
        "scatter_body_angle_deg.png",
        "scatter_dist_from_center.png",
        "overview.png",
        "encoding_scores.csv",
        "encoding_vs_epoch.csv",
        "encoding_vs_epoch.png",
        "summary.json",
        "evolution.gif",
        "evolution.mp4",
    ):
        assert (out / f).stat().st_size > 0, f
    assert len(iio.imread(out / "evolution.gif", index=None)) == 5
    assert _mp4_frames(out / "evolution.mp4") == 5
    rows = list(csv.DictReader(open(out / "encoding_scores.csv")))
    assert {(r["condition"], r["decoder"]) for r in rows} == {
        (c, d) for c in ("body_angle_deg", "dist_from_center") for d in ("ridge", "knn")
    }
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["trustworthiness"] <= 1 and summary["evolution"]["frames"] == 5
    assert "evolution: 5 frames (aligned)" in stdout


def _mp4_frames(path) -> int:
    import imageio.v2 as imageio

    with imageio.get_reader(path, format="FFMPEG") as r:
        return sum(1 for _ in r)


@pytest.mark.parametrize("mode", ["last", "first", "every"])
def test_evolution_modes_shapes(mode):
    rng = np.random.default_rng(0)
    snaps = rng.normal(size=(4, 300, 6)).astype(np.float32)
    maps, timing = evolution_maps(snaps, mode, "pca")
    assert maps.shape == (4, 300, 2) and timing["mode"] == mode


def test_every_mode_aligns_consecutive_maps():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(300, 2)) * [3, 1]
    # the same structure, rotated and reflected from snapshot to snapshot: aligned maps must agree
    snaps = np.stack(
        [np.c_[base @ np.array([[0, 1], [1, 0]]) if s % 2 else base, np.zeros((300, 1))] for s in range(3)]
    )
    maps, _ = evolution_maps(snaps.astype(np.float32), "every", "pca")
    np.testing.assert_allclose(maps[1], maps[0], atol=1e-4)
    np.testing.assert_allclose(maps[2], maps[0], atol=1e-4)


def test_placing_fitted_points_into_a_umap_map_lands_near_them():
    rng = np.random.default_rng(2)
    centers = rng.normal(size=(5, 8)) * 6
    codes = (centers[rng.integers(0, 5, 600)] + rng.normal(size=(600, 8))).astype(np.float32)
    m = Map2D("umap", random_state=0)
    xy = m.fit(codes)
    placed = m.place(codes + 0.01)
    spread = np.linalg.norm(xy.max(0) - xy.min(0))
    assert np.median(np.linalg.norm(placed - xy, axis=1)) < 0.05 * spread


def test_latent_errors(snap_run, tiny_ae, tmp_path, capsys):
    code, _, err = run_cli(["latent", snap_run, "--color-by", "heading", "--out", tmp_path / "a"], capsys)
    assert code == 2 and "--color-by: unknown column 'heading'; available: frame, x, y, body_angle_deg" in err
    import shutil

    no_snap = tmp_path / "nosnap"
    shutil.copytree(tiny_ae, no_snap)
    shutil.rmtree(no_snap / "snapshots")
    code, _, err = run_cli(["latent", no_snap, "--evolution", "--out", tmp_path / "b"], capsys)
    assert code == 2 and "no latent snapshots of fc1 to make a movie from (train with --snapshots" in err


def test_encode_decode_round_trip(tiny_ae, tiny_data, tmp_path, capsys):
    codes = tmp_path / "codes.npy"
    code, out, err = run_cli(["encode", tiny_ae, "--data", tiny_data, "--out", codes], capsys)
    assert code == 0, err
    z = np.load(codes)
    assert z.shape == (160, 16) and z.dtype == np.float32
    assert "(16.0x smaller)" in out and "reconstruction PSNR" in out  # 32*32 bytes vs 16 float32
    np.testing.assert_array_equal(z, aelens.load_run(tiny_ae).encode(aelens.load_dataset(tiny_data)))
    frames = tmp_path / "frames.npz"
    code, out, err = run_cli(["decode", tiny_ae, codes, "--out", frames], capsys)
    assert code == 0, err
    with np.load(frames) as f:
        assert f["images"].shape == (160, 32, 32) and f["images"].dtype == np.uint8
    code, _, err = run_cli(["encode", tiny_ae, "--out", codes], capsys)
    assert code == 2 and "already exists; choose another --out or pass --overwrite" in err


def test_decoding_within_each_session_is_scored_on_its_own_frames():
    """Two sessions whose code carries the angle in only one: pooled decoding averages them; within each session the
    rows say which one."""
    from aelens.analysis.latent import group_encoding_scores
    from aelens.data.loading import Conditions, Dataset

    rng = np.random.default_rng(0)
    n = 1200
    angle = np.mod(np.cumsum(rng.normal(0, 6, n)), 360)
    session = np.repeat([0.0, 1.0], n // 2)
    rad = np.radians(angle)
    codes = np.stack([np.cos(rad), np.sin(rad)], 1) + rng.normal(0, 0.05, (n, 2))
    codes[session == 1] = rng.normal(0, 1, (n // 2, 2))  # session 1: the code holds no angle
    cond = Conditions(
        ["session", "body_angle_deg"], np.stack([session, angle], 1), "planted", labels={"session": ["day1", "day2"]}
    )
    ds = Dataset(np.zeros((n, 1, 4, 4), np.uint8), 255.0, "planted", cond)
    rows = group_encoding_scores(codes, ds, np.arange(n), ["body_angle_deg"])
    got = {r["group"]: r["score"] for r in rows}
    assert [r["by"] for r in rows] == ["session", "session"] and got["day1"] < 10 and got["day2"] > 60
