"""Per-session intensity normalisation: each session's statistics come from its own pixels (no labels), a brightened
or darkened copy of a session gives the same normalised frames, and a run applies it the same way at training,
test and transfer time."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

import aelens
from aelens.data.normalize import TARGET, normalized, session_levels
from aelens.data.sessions import load_datasets, load_with_options
from aelens.errors import AelensError
from aelens.synthetic.arena import synthesize, write_dataset
from conftest import quick_config, run_cli


def _relit(src, dst, gain: float, offset: float):
    """A copy of the dataset at ``src`` whose pixels are ``gain * x + offset`` (uint8, clipped), as another day's
    lighting would give."""
    shutil.copytree(src, dst)
    with np.load(src / "images.npz", allow_pickle=False) as z:
        x = z["images"].astype(np.float64)
    np.savez(dst / "images.npz", images=np.clip(np.round(gain * x + offset), 0, 255).astype(np.uint8))
    return dst


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp("norm")
    base = root / "base"
    ds = synthesize(200, seed=11, size=32)
    for key in ("images", "clean"):  # room to brighten without clipping
        ds[key][:] = (ds[key].astype(np.float64) * 0.6 + 40).astype(np.uint8)
    write_dataset(base, ds)
    return base, _relit(base, root / "dark", 0.5, 10.0), _relit(base, root / "bright", 1.3, 0.0)


def test_a_relit_copy_normalises_to_the_same_frames(sessions):
    base, dark, bright = sessions
    cfg = aelens.RunConfig().data
    frames = {}
    for name, path in zip(("base", "dark", "bright"), sessions):
        ds = load_with_options(cfg.__class__(path=str(path), normalize="session"))
        frames[name] = ds.batch(np.arange(ds.n)).numpy()
    raw = load_with_options(cfg.__class__(path=str(dark))).batch(np.arange(200)).numpy()
    base_raw = load_with_options(cfg.__class__(path=str(base))).batch(np.arange(200)).numpy()
    assert np.abs(raw - base_raw).mean() > 0.1  # the copies differ as stored ...
    for name in ("dark", "bright"):  # ... and agree once normalised (up to uint8 rounding of the copies)
        assert np.abs(frames[name] - frames["base"]).mean() < 0.005, name
        assert np.abs(frames[name] - frames["base"]).max() < 0.05, name
    lo, hi = np.percentile(frames["base"], [0.5, 99.5])
    assert abs(lo - TARGET[0]) < 0.01 and abs(hi - TARGET[1]) < 0.01


def test_each_session_is_normalised_by_its_own_pixels(sessions):
    base, dark, bright = sessions
    both = load_datasets([str(dark), str(bright)], conditions={}, angle_columns=())
    levels = session_levels(both)
    alone = {
        p.name: next(iter(session_levels(load_datasets([str(p)], conditions={}, angle_columns=())).values()))
        for p in (dark, bright)
    }
    assert list(levels.values()) == [alone["dark"], alone["bright"]]  # pooling changes neither session's levels
    normed = normalized(both, "session")
    x = normed.batch(np.arange(both.n)).numpy()
    assert np.abs(x[:200] - x[200:]).mean() < 0.005  # the two lightings of one session meet
    assert normed.level_info == {"method": "session", "sessions": levels}


def test_labels_play_no_part(sessions):
    """The levels come from pixels only: shuffling every condition of a one-session dataset leaves them as they were."""
    cfg = aelens.RunConfig().data.__class__(path=str(sessions[0]), normalize="session")
    ds = load_with_options(cfg)
    shuffled = ds.conditions.values.copy()
    np.random.default_rng(0).shuffle(shuffled)
    raw = dataclasses.replace(
        ds, levels=None, level_info={}, conditions=dataclasses.replace(ds.conditions, values=shuffled)
    )
    assert np.array_equal(normalized(raw, "session").levels, ds.levels)


def test_a_run_applies_its_normalisation_at_test_and_transfer_time(sessions, tmp_path):
    base, dark, _ = sessions
    run = aelens.train(quick_config(base, **{"data.normalize": "session"}), out=tmp_path / "ae")
    m = json.loads((run / "manifest.json").read_text())
    assert m["data"]["normalize"]["method"] == "session" and len(m["data"]["normalize"]["sessions"]) == 1
    r = aelens.load_run(run)
    own, new = r.dataset(), r.dataset(str(dark))
    assert own.levels is not None and new.levels is not None  # the new session by its own pixels
    z_own = r.encode(own.batch(np.arange(50)).numpy())
    z_new = r.encode(new.batch(np.arange(50)).numpy())
    assert np.abs(z_own - z_new).mean() < 0.05 * np.abs(z_own).mean()  # the relit session looks the same to it
    plain = aelens.load_dataset(dark)  # a Dataset handed to the run is normalised the run's way
    assert np.allclose(r.encode(plain)[:50], z_new, atol=1e-5)
    res = aelens.test_run(run, data=str(dark))
    assert np.isfinite(res["psnr"]) and np.isfinite(res["psnr_stored"])  # scores in the stored pixels too


def test_unknown_normalisation_is_one_line(sessions, tmp_path, capsys):
    code, _, err = run_cli(
        ["train", "ae", "--data", sessions[0], "--out", tmp_path / "x", "--normalize", "zscore"], capsys
    )
    assert code == 2 and "--normalize must be none or session, got 'zscore'" in err and not (tmp_path / "x").exists()
    with pytest.raises(AelensError, match="--normalize must be none or session"):
        normalized(load_with_options(aelens.RunConfig().data.__class__(path=str(sessions[0]))), "zscore")
