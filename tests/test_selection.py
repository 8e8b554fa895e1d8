"""Choosing the training frames (data/selection.py) and stopping when learning stops (training/callbacks.PlateauStop)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from aelens.data.loading import Conditions, Dataset
from aelens.data.selection import choose_frames, evenly, farthest_points, select_split, shares
from aelens.errors import AelensError
from aelens.training.callbacks import PlateauStop


def _dataset(images: np.ndarray, columns: dict[str, np.ndarray] | None = None) -> Dataset:
    columns = columns or {"frame": np.arange(len(images), dtype=np.float64)}
    names = list(columns)
    values = np.stack([columns[n] for n in names], axis=1).astype(np.float64)
    return Dataset(images, 255.0, "planted", Conditions(names, values, "planted"))


def _blob_frames(n: int, rare: list[int], seed: int = 0) -> np.ndarray:
    """(n, 1, 24, 24) uint8: a dim blob drifting slowly left to right (consecutive frames near copies); the ``rare``
    frames also show a bright square in a corner, a pose the animal takes for a few frames only."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:24, :24]
    out = np.empty((n, 1, 24, 24), np.uint8)
    for i in range(n):
        cx = 6 + 12 * i / n
        img = 60 * np.exp(-((xx - cx) ** 2 + (yy - 12) ** 2) / 18.0) + rng.normal(0, 2, (24, 24))
        if i in rare:
            img[1:6, 18:23] = 250
        out[i, 0] = np.clip(img, 0, 255)
    return out


def test_shares_and_evenly():
    assert shares([100, 50, 50], 20) == [10, 5, 5]
    assert shares([3, 1000], 10) == [0, 10] and sum(shares([7, 11, 13], 10)) == 10
    assert shares([5, 5], 100) == [5, 5]
    assert evenly(10, 3).tolist() == [0, 4, 9] and evenly(3, 10).tolist() == [0, 1, 2]


def test_farthest_points_takes_the_outlier_first_and_copies_last():
    x = np.array([[0.0, 0], [0.1, 0], [0.2, 0], [10, 10], [0.1, 0]], dtype=np.float32)
    assert farthest_points(x, np.array([0]), 2).tolist() == [0, 3]
    assert sorted(farthest_points(x, np.array([0]), 5).tolist()) == [0, 1, 2, 3, 4]


def test_diverse_covers_a_rare_pose_that_random_misses_most_of_the_time():
    rare = [1234, 1235, 1236]
    ds = _dataset(_blob_frames(3000, rare))
    pool = np.arange(3000)
    chosen, info = choose_frames(ds, pool, 60, "diverse", seed=0)
    assert len(chosen) == 60 and info["method"] == "diverse" and info["chosen"] == 60
    assert np.isin(rare, chosen).any()
    missed = sum(not np.isin(rare, choose_frames(ds, pool, 60, "random", seed=s)[0]).any() for s in range(20))
    assert missed >= 15  # (1 - 60/3000)^3 = 94% of draws miss all three


def test_selection_is_deterministic_and_never_looks_outside_the_pool():
    """The same seed chooses the same frames; validation and test frames (planted: the only bright ones, which a
    farthest-point search would pick first) are never chosen."""
    rare = list(range(2500, 2600))
    ds = _dataset(_blob_frames(3000, rare))
    pool = np.arange(0, 2400)
    a, _ = choose_frames(ds, pool, 100, "diverse", seed=3)
    b, _ = choose_frames(ds, pool, 100, "diverse", seed=3)
    assert np.array_equal(a, b) and a.dtype == np.int64 and np.all(np.diff(a) > 0)
    for method in ("diverse", "stride", "random"):
        chosen, _ = choose_frames(ds, pool, 100, method, seed=3)
        assert np.isin(chosen, pool).all() and not np.isin(chosen, rare).any()


def test_budget_is_shared_over_sessions_and_tracks():
    n = 1200
    session = np.repeat([0.0, 1.0], n // 2)
    track = np.tile([0.0, 1.0], n // 2)
    frame = np.repeat(np.arange(n // 4, dtype=np.float64), 2).tolist() * 2
    ds = _dataset(_blob_frames(n, []), {"session": session, "track": track, "frame": np.array(frame)})
    pool = np.flatnonzero(np.arange(n) % 10 >= 2)  # 960 frames, 240 per session and track
    chosen, info = choose_frames(ds, pool, 100, "diverse", seed=0)
    assert sorted(info["per_group"].values()) == [25, 25, 25, 25]
    assert len(info["per_group"]) == 4 and all("track" in k for k in info["per_group"])
    stride, _ = choose_frames(ds, pool, 100, "stride", seed=0)
    first = pool[(session[pool] == 0) & (track[pool] == 0)]
    picked = np.intersect1d(stride, first)
    assert picked[0] == first[0] and picked[-1] == first[-1]  # evenly in time: the whole session is covered


def test_select_split_keeps_the_test_part_whole_and_thins_validation_evenly():
    ds = _dataset(_blob_frames(400, []))
    split = {"train": np.arange(0, 300), "val": np.arange(300, 360), "test": np.arange(360, 400)}
    out, info = select_split(ds, split, 50, "stride", 10, seed=0)
    assert len(out["train"]) == 50 and np.array_equal(out["test"], split["test"])
    assert len(out["val"]) == 10 and out["val"][0] == 300 and out["val"][-1] == 359
    assert info["val_pool"] == 60 and info["val_chosen"] == 10 and info["pool"] == 300
    whole, info = select_split(ds, split, 0, "diverse", 0, seed=0)
    assert np.array_equal(whole["train"], split["train"]) and np.array_equal(whole["val"], split["val"])
    assert info["method"] == "all"
    with pytest.raises(AelensError, match="--select must be one of diverse, stride, random, got 'kmeans'"):
        choose_frames(ds, split["train"], 10, "kmeans", seed=0)


def _feed(stop: PlateauStop, losses: list[float]) -> int | None:
    """Run the callback over validation losses, one per epoch; the epoch it stops at (1-based), or None."""
    trainer = SimpleNamespace(sanity_checking=False, check_val_every_n_epoch=1, should_stop=False, callback_metrics={})
    for epoch, loss in enumerate(losses):
        trainer.current_epoch, trainer.callback_metrics = epoch, {"val_loss": loss}
        stop.on_train_epoch_end(trainer, None)
        if trainer.should_stop:
            return epoch + 1
    return None


def test_plateau_stop_stops_on_a_planted_plateau_and_not_before():
    # improving by 10% an epoch, then a plateau from epoch 6 on (all within 1% of epoch 5's loss)
    losses = [1.0, 0.9, 0.81, 0.729, 0.656, 0.655, 0.654, 0.6535, 0.653, 0.6528, 0.6527]
    assert _feed(PlateauStop(patience=4, min_delta=0.01), losses) == 9
    assert _feed(PlateauStop(patience=2, min_delta=0.01), losses) == 7
    assert _feed(PlateauStop(patience=4, min_delta=0.001), losses) is None  # 0.1%: each step still counts
    assert _feed(PlateauStop(patience=4, min_delta=0.01), [0.98**i for i in range(40)]) is None  # 2% a step: never
    assert _feed(PlateauStop(patience=0, min_delta=0.01), [1.0] * 20) is None  # patience 0: never stops early


def test_plateau_stop_state_resumes_where_it_left():
    losses = [1.0, 0.9, 0.899, 0.898, 0.8975, 0.897]
    first = PlateauStop(patience=3, min_delta=0.01)
    assert _feed(first, losses[:3]) is None
    second = PlateauStop(patience=3, min_delta=0.01)
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))
    trainer = SimpleNamespace(sanity_checking=False, check_val_every_n_epoch=1, should_stop=False)
    for epoch, loss in enumerate(losses[3:], start=3):
        trainer.current_epoch, trainer.callback_metrics = epoch, {"val_loss": loss}
        second.on_train_epoch_end(trainer, None)
        if trainer.should_stop:
            break
    assert second.stopped_epoch == 5 == _feed(PlateauStop(patience=3, min_delta=0.01), losses)


def test_train_frames_from_the_command_line_are_chosen_recorded_and_kept_on_resume(tiny_data, tmp_path, capsys):
    """`--train-frames 40 --select stride`: 40 of the training frames, recorded in the manifest and in split.npz; a
    resumed run keeps the same frames and validation subset; `--train-frames all` trains on every training frame."""
    from aelens.layout import RunDir
    from conftest import run_cli

    run = tmp_path / "r"
    args = ["train", "ae", "--data", tiny_data, "--out", run, "--epochs", "1", "--batch-size", "16", "--no-progress"]
    code, out, err = run_cli([*args, "--train-frames", "40", "--select", "stride", "--val-frames", "10"], capsys)
    assert code == 0, err
    rd = RunDir(run)
    m, split = rd.manifest(), rd.split()
    sel = m["selection"]
    assert sel["chosen"] == len(split["train"]) == 40 and sel["method"] == "stride" and sel["budget"] == 40
    assert sel["val_chosen"] == len(split["val"]) == 10 and sel["pool"] > 40
    assert m["stopped"]["reason"] == "epochs" and m["stopped"]["epoch"] == 1
    before = {k: v.copy() for k, v in split.items()}
    code, out, err = run_cli(["train", "ae", "--resume", run, "--epochs", "2"], capsys)
    assert code == 0, err
    after = rd.split()
    assert all(np.array_equal(before[k], after[k]) for k in before) and rd.manifest()["selection"] == sel
    args = ["train", "ae", "--data", tiny_data, "--out", tmp_path / "all", "--epochs", "1", "--no-progress"]
    code, out, err = run_cli([*args, "--train-frames", "all"], capsys)
    assert code == 0, err
    m = RunDir(tmp_path / "all").manifest()
    assert m["selection"]["method"] == "all" and m["selection"]["chosen"] == m["selection"]["pool"]


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--train-frames", "-5", "--train-frames must be a number of frames or all, got -5"),
        ("--train-frames", "many", "--train-frames must be a number of frames or all, got 'many'"),
        ("--select", "kmeans", "--select must be diverse, stride or random, got 'kmeans'"),
        ("--val-frames", "-1", "--val-frames must be a number of frames or all, got -1"),
        ("--patience", "-1", "--patience must be 0 (never stop early) or more validations, got -1"),
        ("--min-delta", "1.5", "--min-delta must be a relative improvement in [0, 1), e.g. 0.01 for 1%, got 1.5"),
        ("--budget", "10x", "--budget must be a positive time such as 90s, 10m or 1h, got '10x'"),
    ],
)
def test_bad_budget_options_are_one_line_errors(tiny_data, tmp_path, capsys, flag, value, message):
    from conftest import run_cli

    code, out, err = run_cli(["train", "ae", "--data", tiny_data, "--out", tmp_path / "r", flag, value], capsys)
    assert code == 2 and err.strip() == f"aelens: error: {message}" and not (tmp_path / "r").exists()


def test_config_files_say_all_for_every_frame():
    from aelens.config import from_dict

    cfg = from_dict({"select": {"frames": "all", "val_frames": "all", "method": "random"}})
    assert cfg.select.frames == 0 and cfg.select.val_frames == 0 and cfg.select.method == "random"


def test_plan_only_prints_the_plan_and_writes_nothing(tiny_data, tmp_path, capsys):
    from conftest import run_cli

    out = tmp_path / "study"
    code, stdout, err = run_cli(["study", "--data", tiny_data, "--out", out, "--plan-only", "--epochs", "3"], capsys)
    assert code == 0, err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert "train + test AE" in stdout and "tagger from scratch + unfreeze sweep" in stdout
    assert "ms/step of 64" in stdout and "estimated:" in stdout and "3 epochs at most" in stdout


def test_the_plan_counts_the_scoring_of_every_test_frame(tiny_data, monkeypatch):
    """Testing a reconstruction scores it and three baselines (blur, PCA, mean frame) on every test frame, against the
    frames and, where there are clean frames, against those too (with the noisy input): 9 passes with clean frames,
    4 without. Training and inference planted as free, scoring at 100 frames/s: the AE's step is exactly that."""
    import dataclasses

    from aelens.data.loading import load_dataset
    from aelens.study import plan as P
    from aelens.study.config import load_study_config

    assert 0 < P.score_rate(load_dataset(tiny_data), n=8) < float("inf")
    free = {"step_seconds": 0.0, "batch_size": 64, "infer_frames_per_s": float("inf")}
    monkeypatch.setattr(P, "measure", lambda cfg, ds: free)
    monkeypatch.setattr(P, "score_rate", lambda ds: 100.0)
    cfg = load_study_config(None, {"epochs": 2})
    ds = load_dataset(tiny_data)
    for dataset, passes in ((ds, 9), (dataclasses.replace(ds, clean=None), 4)):
        plan = P.plan_study(cfg, dataset, has_target=True, transfer={})
        steps = {s.name: s.seconds for s in plan.steps}
        assert steps["train + test AE"] == pytest.approx(passes * plan.test_frames / 100.0)
        assert steps["train + test decoder pca:16"] == pytest.approx(1.0 + passes * plan.test_frames / 100.0)
        assert steps["tagger from scratch + unfreeze sweep"] == 0.0  # a tagger's test scores angles, not images


def test_a_run_that_stops_early_says_why_and_ends_its_movie_where_it_stopped(tiny_data, tmp_path):
    """A 99% improvement a validation is never reached: with patience 3 the run stops after epoch 4 of a 12-epoch
    ceiling (snapshot epochs 1, 2, 3, 6, 12), records why, and takes a last snapshot at epoch 4."""
    import aelens
    from aelens.analysis.snapshots import load_snapshots
    from conftest import quick_config

    cfg = quick_config(tiny_data, **{"train.epochs": 12, "train.patience": 3, "train.min_delta": 0.99})
    run = aelens.train(cfg, out=tmp_path / "r")
    m = aelens.layout.read_manifest(run)
    assert m["epochs"] == 4 and m["stopped"]["reason"] == "plateau" and m["stopped"]["epoch"] == 4
    assert "less than 99% in 3 validations" in m["stopped"]["detail"]
    _, index, _ = load_snapshots(run, "fc1")
    assert [r["epoch"] for r in index] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_patience_by_objective_unless_set():
    """train.patience None (the default): the AE and decoders stop on a plateau after 4 validations, taggers train to
    --epochs (their validation loss is too noisy to read a plateau from); a number given is used for every kind."""
    from aelens.config import AUTO_PATIENCE, RunConfig, effective_patience

    assert RunConfig().train.patience is None
    got = {k: effective_patience(RunConfig(kind=k)) for k in ("ae", "decoder", "tagger")}
    assert got == AUTO_PATIENCE == {"ae": 4, "decoder": 4, "tagger": 0}
    for k in got:
        assert effective_patience(RunConfig(kind=k).with_overrides({"train.patience": 2})) == 2
