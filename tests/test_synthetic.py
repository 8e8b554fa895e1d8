"""The synthetic arena: deterministic, and its metadata agrees with its pixels."""

import numpy as np
import pytest

from aelens.data.loading import load_dataset
from aelens.errors import AelensError
from aelens.maps.metrics import angular_error
from aelens.synthetic.arena import COLUMNS, synthesize, write_dataset


@pytest.fixture(scope="module")
def arena():
    return synthesize(600, seed=11, size=50)


def test_deterministic_from_seed():
    a, b, c = synthesize(40, seed=5), synthesize(40, seed=5), synthesize(40, seed=6)
    for k in ("images", "clean", "metadata"):
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["images"], c["images"])


def test_shapes_types_and_ranges(arena):
    assert arena["images"].shape == (600, 50, 50) and arena["images"].dtype == np.uint8
    assert arena["clean"].shape == (600, 50, 50) and arena["clean"].dtype == np.uint8
    m = dict(zip(COLUMNS, arena["metadata"].T))
    for col in ("body_angle_deg", "head_angle_deg", "location_polar_deg"):
        assert m[col].min() >= 0 and m[col].max() < 360
    assert 0 <= m["dist_from_center"].min() and m["dist_from_center"].max() < 1
    assert set(np.unique(m["nearest_port"])) <= set(range(6))
    np.testing.assert_array_equal(m["frame"], np.arange(600))


def test_trajectory_is_smooth_like_video(arena):
    m = dict(zip(COLUMNS, arena["metadata"].T))
    step = np.hypot(np.diff(m["x"]), np.diff(m["y"]))
    assert step.max() <= 5.01
    np.testing.assert_allclose(step, m["speed"][1:], atol=1e-6)
    assert np.median(angular_error(m["body_angle_deg"][1:], m["body_angle_deg"][:-1])) < 10


def test_brightest_body_pixels_lie_along_body_angle(arena):
    """The principal axis of the bright animal pixels near the centre follows body_angle_deg, and the bright mass
    lies on the head side (the tail is dimmer)."""
    clean = arena["clean"].astype(np.float64) / 255
    angle = arena["metadata"][:, COLUMNS.index("body_angle_deg")]
    s = clean.shape[-1]
    yy, xx = np.mgrid[0:s, 0:s]
    u = xx - (s - 1) / 2  # x right
    v = (s - 1) / 2 - yy  # y up
    near = np.hypot(u, v) < 15
    axial, ahead = [], []
    for img, a in zip(clean, angle):
        w = np.where(near & (img > 0.8), img, 0.0)
        cu, cv = (w * u).sum() / w.sum(), (w * v).sum() / w.sum()
        cov = np.cov(np.stack([u[w > 0], v[w > 0]]), aweights=w[w > 0])
        evals, evecs = np.linalg.eigh(cov)
        axis = np.degrees(np.arctan2(evecs[1, 1], evecs[0, 1]))
        err = angular_error(axis, a)
        axial.append(min(err, 180 - err))
        ahead.append(cu * np.cos(np.radians(a)) + cv * np.sin(np.radians(a)))
    assert np.median(axial) < 6
    assert np.mean(np.array(ahead) > 0) > 0.95


def test_camera_noise_is_present_but_moderate(arena):
    diff = arena["images"].astype(np.float64) - arena["clean"].astype(np.float64)
    assert 5 < diff.std() < 40
    assert abs(diff.mean()) < 5


def test_written_dataset_loads_back(tmp_path, arena):
    data = {k: v[:50] for k, v in arena.items()}
    write_dataset(tmp_path / "d", data)
    ds = load_dataset(tmp_path / "d")
    np.testing.assert_array_equal(ds.images[:, 0], data["images"])
    np.testing.assert_array_equal(ds.clean[:, 0], data["clean"])
    assert ds.conditions.names == list(COLUMNS)
    np.testing.assert_allclose(ds.conditions.values, data["metadata"], rtol=1e-5, atol=1e-4)
    with pytest.raises(AelensError, match="already holds images.npz"):
        write_dataset(tmp_path / "d", data)


def test_bad_synth_arguments():
    with pytest.raises(AelensError, match="--size must be at least 24, got 16"):
        synthesize(10, size=16)
    with pytest.raises(AelensError, match="--n must be at least 2, got 1"):
        synthesize(1)


def test_pose_files_without_a_video_are_the_video_s_own(tmp_path):
    """`write_pose_files` (what the bench reads at hour scale) writes byte for byte the pose files that
    `synthesize_video` writes beside its video, for the same frames, animals and seed."""
    from aelens.synthetic.video import synthesize_video, write_pose_files

    with_video = synthesize_video(tmp_path / "v", n=40, animals=2, seed=4)
    alone = write_pose_files(tmp_path / "p", n=40, animals=2, seed=4)
    assert "video" not in alone and set(alone) == set(with_video) - {"video"}
    for fmt in ("truth", "deeplabcut-csv", "sleap-analysis-h5"):
        a, b = with_video[fmt], alone[fmt]
        if fmt == "sleap-analysis-h5":
            import h5py

            with h5py.File(a) as x, h5py.File(b) as y:
                assert np.array_equal(x["tracks"][()], y["tracks"][()])
        else:
            assert a.read_bytes() == b.read_bytes()
