"""Train / val / test splits of video frames: random splits leak through near-duplicate neighbours, blocked ones with
a purge gap do not; group splits never put a group on two sides."""

from __future__ import annotations

import numpy as np
import pytest

from aelens.data.loading import Conditions, Dataset
from aelens.data.splits import make_split
from aelens.errors import AelensError
from aelens.storage import save_split, split_info


def dataset(n: int, columns: dict[str, np.ndarray], labels: dict | None = None, images=None) -> Dataset:
    names = list(columns)
    values = np.stack([np.asarray(columns[c], dtype=np.float64) for c in names], axis=1) if names else np.zeros((n, 0))
    conds = Conditions(names, values, "planted.csv", set(), labels or {}) if names else None
    imgs = images if images is not None else np.zeros((n, 1, 24, 24), dtype=np.uint8)
    return Dataset(imgs, 255.0, "planted", conds)


def smooth_noise(rng, n, dims, sigma=3.0):
    """Signals that change over a few frames: neighbours alike, frames 10+ apart unrelated (like video)."""
    k = np.exp(-0.5 * (np.arange(-12, 13) / sigma) ** 2)
    raw = rng.normal(size=(n + 24, dims))
    return np.stack([np.convolve(raw[:, j], k / k.sum(), mode="valid") for j in range(dims)], axis=1)


def one_nn_r2(x, y, split):
    """A model that memorises: predict each test frame's target from its nearest training frame."""
    tr, te = split["train"], split["test"]
    d = ((x[te, None, :] - x[None, tr, :]) ** 2).sum(-1)
    pred = y[tr][d.argmin(axis=1)]
    return 1 - np.mean((pred - y[te]) ** 2) / np.var(y[te])


def test_random_split_leaks_and_blocked_does_not():
    rng = np.random.default_rng(0)
    n = 1500
    x = smooth_noise(rng, n, 8)  # frames: each much like the previous one
    y = smooth_noise(rng, n, 1)[:, 0]  # a signal the frames know nothing about, just as smooth in time
    ds = dataset(n, {"frame": np.arange(n)})
    random_split, _ = make_split(ds, 0.2, 0.2, seed=1, kind="random")
    blocked, info = make_split(ds, 0.2, 0.2, seed=1, kind="auto")
    assert info["kind"] == "blocked" and info["requested"] == "auto"
    assert one_nn_r2(x, y, random_split) > 0.7  # memory of neighbours looks like skill
    assert one_nn_r2(x, y, blocked) < 0.2  # ... and is seen for what it is


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_blocked_split_keeps_the_purge_gap_within_each_session(seed):
    rng = np.random.default_rng(seed)
    sessions = np.repeat([0, 1, 2], [700, 400, 900])
    frames = np.concatenate([np.arange(700), np.arange(400), np.arange(900)])
    tracks = np.zeros_like(frames)
    # two animals in session 2: each frame twice, once per track
    sessions = np.concatenate([sessions, np.full(900, 2)])
    frames = np.concatenate([frames, np.arange(900)])
    tracks = np.concatenate([tracks, np.ones(900)])
    perm = rng.permutation(len(frames))  # rows in any order
    ds = dataset(len(frames), {"session": sessions[perm], "frame": frames[perm], "track": tracks[perm]})
    split, info = make_split(ds, 0.2, 0.1, seed=seed, kind="blocked", purge=12)
    part = np.full(len(frames), -1)
    for code, name in enumerate(("train", "val", "test")):
        part[split[name]] = code
    s, f = sessions[perm], frames[perm]
    for sess in range(3):
        for a, b in ((0, 1), (0, 2), (1, 2)):
            fa = f[(s == sess) & (part == a)]
            fb = f[(s == sess) & (part == b)]
            assert len(fa) and len(fb)
            assert np.abs(fa[:, None] - fb[None, :]).min() > 12
        # validation blocks are spread over the session, not bunched at one end
        held = f[(s == sess) & (part == 1)]
        assert held.max() - held.min() >= 0.4 * (f[s == sess].max() + 1)
    # both animals of one frame always fall on the same side
    key = {}
    for si, fi, p in zip(s, f, part):
        assert key.setdefault((si, fi), p) == p
    assert info["dropped"] == int((part < 0).sum()) and info["purge"] == 12


@pytest.mark.parametrize("seed", range(5))
def test_group_split_never_puts_a_group_on_two_sides(seed):
    rng = np.random.default_rng(seed)
    animal = rng.integers(0, 7, size=600)
    ds = dataset(600, {"animal": animal, "frame": np.arange(600)})
    split, info = make_split(ds, 0.2, 0.2, seed=seed, kind="group:animal")
    sides = [set(animal[split[k]].tolist()) for k in ("train", "val", "test")]
    assert all(sides) and not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert sum(len(v) for v in split.values()) == 600
    assert sorted(sum(info["groups"].values(), [])) == sorted(set(animal.astype(float).tolist()))


def test_group_split_names_sessions_and_needs_enough_groups():
    ds = dataset(90, {"session": np.repeat([0, 1, 2], 30)}, labels={"session": ["mon", "tue", "wed"]})
    split, info = make_split(ds, 0.3, 0.3, seed=0, kind="group:session")
    assert sorted(sum(info["groups"].values(), [])) == ["mon", "tue", "wed"]
    two = dataset(60, {"session": np.repeat([0, 1], 30)})
    with pytest.raises(
        AelensError,
        match=r"^--split group:session: 2 group\(s\) in planted.csv; need at least 3 \(train, validation, test\)$",
    ):
        make_split(two, 0.2, 0.1, 0, "group:session")
    split, _ = make_split(
        two, 0.5, 0.0, 0, "group:session"
    )  # no test part: train on one session, validate on the other
    assert len(split["test"]) == 0 and len(split["train"]) == len(split["val"]) == 30


def test_auto_is_random_without_a_time_column_and_old_splits_read_as_random(tmp_path):
    split, info = make_split(dataset(100, {"x": np.arange(100)}), 0.2, 0.1, 0)
    assert info["kind"] == "random"
    np.savez(tmp_path / "old.npz", **split)  # a split.npz from before split kinds
    assert split_info(tmp_path / "old.npz") == {"kind": "random", "purge": 0}
    save_split(tmp_path / "new.npz", split, {"kind": "blocked", "purge": 7})
    assert split_info(tmp_path / "new.npz") == {"kind": "blocked", "purge": 7}


def test_bad_split_settings():
    ds = dataset(40, {"frame": np.arange(40)})
    with pytest.raises(AelensError, match="^--split must be auto, random, blocked or group:COLUMN, got 'time'$"):
        make_split(ds, 0.2, 0.1, 0, "time")
    with pytest.raises(AelensError, match="too few for blocked"):
        make_split(ds, 0.5, 0.4, 0, "blocked", purge=5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--split", "time"], "--split must be auto, random, blocked or group:COLUMN, got 'time'"),
        (["--purge", "-3"], "--purge must be 0 or more frames, got -3"),
        (["--split", "group:animal"], "no condition column 'animal'"),
    ],
)
def test_bad_split_options_exit_2(tiny_data, tmp_path, capsys, args, message):
    from conftest import run_cli

    code, _, err = run_cli(["train", "ae", "--data", tiny_data, "--out", tmp_path / "run", *args], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
