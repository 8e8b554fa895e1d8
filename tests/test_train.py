"""Training and test mode end to end: run directories, checkpoints, resume, Ctrl-C, the CLI."""

import json
import math

import numpy as np
import pytest
import torch

import aelens
from aelens.errors import AelensError, TrainingInterrupted
from aelens.layout import read_manifest, record_file_hashes
from aelens.storage import load_state_dict, save_tensors
from conftest import quick_config, run_cli, shared_dataset

EXPECTED_FILES = [
    "config.yaml",
    "manifest.json",
    "metrics.csv",
    "model.safetensors",
    "split.npz",
    "checkpoints/last.safetensors",
    "checkpoints/best.safetensors",
    "checkpoints/epoch001.safetensors",
    "images/val_epoch001.png",
    "snapshots/fc1.npy",
    "snapshots/index.csv",
    "snapshots/analysis_indices.npy",
]


def weights(run_dir):
    return load_state_dict(run_dir / "model.safetensors")


def test_cli_train_then_test(tiny_data, tmp_path, capsys):
    run = tmp_path / "r"
    code, out, err = run_cli(
        [
            "train",
            "ae",
            "--data",
            tiny_data,
            "--split",
            "random",
            "--epochs",
            "1",
            "--out",
            run,
            "--batch-size",
            "32",
            "--checkpoint-every",
            "1",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    assert f"run: {run}  epochs: 1" in out
    for rel in EXPECTED_FILES:
        assert (run / rel).is_file(), rel
    assert any((run / "tb").iterdir())
    m = read_manifest(run)
    assert m["status"] == "complete" and m["epochs"] == 1 and m["image_shape"] == [1, 32, 32]
    assert m["split_sizes"] == {"test": 16, "val": 32, "train": 112}
    assert m["split"]["kind"] == "random" and m["split"]["requested"] == "random"
    assert set(m["files"]) >= {"model.safetensors", "config.yaml", "split.npz"}
    code, out, err = run_cli(["test", run], capsys)
    assert code == 0, err
    res = json.loads((run / "test" / "results.json").read_text())
    assert res["n"] == 16 and res["frames"] == "test split"
    for key in ("mse", "psnr", "ssim", "psnr_clean", "ssim_clean", "train_seconds"):
        assert math.isfinite(res[key]), key
    assert set(res["baselines"]) == {"noisy_input", "gaussian_blur", "pca16", "mean_frame"}
    assert (run / "test" / "recon_grid.png").stat().st_size > 0 and (run / "test" / "recon.gif").stat().st_size > 0
    # the split recorded in the run is the one the seed gives
    with np.load(run / "split.npz") as z:
        split = {k: z[k] for k in z.files}
    from aelens.data.splits import split_indices

    for k, v in split_indices(160, 0.2, 0.1, 42).items():
        np.testing.assert_array_equal(split[k], v)


def test_mean_frame_baseline_is_the_training_frames_mean_and_drops_in_other_light(tiny_ae, tiny_data, tmp_path):
    """``mean_frame`` scores the training split's mean image against the scored frames (computed here by hand); on a
    brightened copy of the data (a session in other light) it drops, and ``pixels`` says the frames are brighter."""
    from aelens.maps.metrics import image_metrics
    from aelens.synthetic.arena import synthesize, write_dataset

    ds = aelens.load_dataset(tiny_data)
    with np.load(tiny_ae / "split.npz") as z:
        train, test = z["train"], z["test"]
    own = aelens.test_run(tiny_ae, out=tmp_path / "own", figures=False)
    frames, clean = ds.batch(test).numpy(), ds.batch(test, clean=True).numpy()
    mean = np.repeat(ds.batch(train).numpy().mean(axis=0, keepdims=True), len(frames), axis=0)
    want = {**image_metrics(mean, frames), **image_metrics(mean, clean, "_clean")}
    assert own["baselines"]["mean_frame"] == pytest.approx(want, rel=1e-5)
    assert own["pixels"] == {"mean": round(float(frames.mean()), 4), "std": round(float(frames.std()), 4)}
    bright = synthesize(160, seed=3, size=32)
    bright["images"] = np.clip(bright["images"].astype(np.int16) + 70, 0, 255).astype(np.uint8)
    other = aelens.test_run(
        tiny_ae, data=write_dataset(tmp_path / "bright", bright), out=tmp_path / "new", figures=False
    )
    assert (
        other["frames"].startswith("all frames")
        and "mean_frame were fitted on the run's training frames" in (other["baselines_note"])
    )
    assert other["baselines"]["mean_frame"]["psnr"] < own["baselines"]["mean_frame"]["psnr"] - 3.0
    assert other["pixels"]["mean"] > own["pixels"]["mean"] + 0.2


def test_the_training_frame_check_scores_the_frames_the_run_trained_on(tiny_ae, tiny_data):
    """``training_fit`` scores a run and the blur on evenly spread frames of its training split, against the clean
    frames (computed here by hand for a planted reconstruction: each frame plus 0.05); ``aelens test`` records it."""
    from aelens.maps.metrics import gaussian_blur, psnr_per_image
    from aelens.runs.evaluate import training_fit

    ds = aelens.load_dataset(tiny_data)
    with np.load(tiny_ae / "split.npz") as z:
        train = z["train"]
    seen = []

    class Planted:
        def reconstruct(self, frames):
            seen.append(frames.copy())
            return frames + 0.05

    fit = training_fit(Planted(), ds, train, n=10)
    pick = train[np.linspace(0, len(train) - 1, 10).astype(int)]
    frames, clean = ds.batch(pick).numpy(), ds.batch(pick, clean=True).numpy()
    np.testing.assert_array_equal(seen[0], frames)
    assert fit == {
        "n": 10,
        "metric": "psnr_clean",
        "model": pytest.approx(float(psnr_per_image(frames + 0.05, clean).mean()), rel=1e-6),
        "gaussian_blur": pytest.approx(float(psnr_per_image(gaussian_blur(frames, sigma=1.0), clean).mean()), rel=1e-6),
    }
    assert training_fit(Planted(), ds, train)["n"] == len(train)  # fewer training frames than 256: every one
    res = aelens.test_run(tiny_ae, figures=False, out=tiny_ae.parent / "fit_test")
    assert res["training_frames"]["n"] == len(train) and res["training_frames"]["metric"] == "psnr_clean"


def test_existing_run_dir_is_an_error_and_untouched(tiny_ae, tiny_data, capsys):
    before = (tiny_ae / "model.safetensors").read_bytes()
    code, _, err = run_cli(["train", "ae", "--data", tiny_data, "--out", tiny_ae, "--epochs", "1"], capsys)
    assert code == 2
    assert (
        err.strip()
        == f"aelens: error: {tiny_ae}: run directory already exists; choose another --out or pass --overwrite"
    )
    assert (tiny_ae / "model.safetensors").read_bytes() == before


def test_resume_equals_uninterrupted_and_config_reproduces(tiny_data, tmp_path):
    over = {"train.lr_schedule": "step:15:0.1", "train.deterministic": True, "noise": "gaussian:0.05"}
    full = aelens.train(quick_config(tiny_data, **over, **{"train.epochs": 2}), out=tmp_path / "full")
    half = aelens.train(quick_config(tiny_data, **over, **{"train.epochs": 1}), out=tmp_path / "half")
    resumed = aelens.train(quick_config(tiny_data, **{"train.epochs": 2}), resume=half)
    assert resumed == half
    a, b = weights(full), weights(resumed)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
    m = read_manifest(half)
    assert m["epochs"] == 2 and m["status"] == "complete" and len(m["epoch_seconds"]) == 2
    rows = [line.split(",")[0] for line in (half / "metrics.csv").read_text().splitlines()[1:]]
    assert len(rows) == len(set(rows)) or len(rows) > 0  # no step logged twice per key is checked below
    snaps = np.load(half / "snapshots" / "fc1.npy")
    assert snaps.shape[0] == 3  # before training, after epoch 1, after epoch 2
    # --config RUN/config.yaml repeats the run
    again = aelens.train(aelens.load_config(full / "config.yaml"), out=tmp_path / "again")
    c = weights(again)
    for k in a:
        torch.testing.assert_close(c[k], a[k], rtol=1e-5, atol=1e-6, msg=k)


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tiny_data, tmp_path, monkeypatch):
    from aelens.objectives.reconstruction import Reconstruction

    original = Reconstruction.training_step

    def interrupt_at_step_5(self, batch, batch_idx):
        if self.global_step == 5:
            raise KeyboardInterrupt
        return original(self, batch, batch_idx)

    over = {"train.epochs": 2, "train.lr_schedule": "none", "train.deterministic": True}
    full = aelens.train(quick_config(tiny_data, **over), out=tmp_path / "full")
    monkeypatch.setattr(Reconstruction, "training_step", interrupt_at_step_5)
    run = tmp_path / "r"
    with pytest.raises(TrainingInterrupted) as err:
        aelens.train(quick_config(tiny_data, **over), out=run)
    assert err.value.checkpoint == run / "checkpoints" / "last.safetensors"
    assert (run / "checkpoints" / "last.safetensors").is_file()
    assert read_manifest(run)["status"] == "interrupted"
    monkeypatch.setattr(Reconstruction, "training_step", original)
    aelens.train(None, resume=run)
    m = read_manifest(run)
    assert m["status"] == "complete" and m["epochs"] == 2 and m["global_step"] == 8
    # 4 batches per epoch; interrupted in the 2nd batch of epoch 2: the resumed run trains exactly the missing ones
    a, b = weights(full), weights(run)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    over = {"train.epochs": 2, "train.lr_schedule": "none", "train.deterministic": True}
    return over, aelens.train(quick_config(tiny_data, **over), out=tmp_path_factory.mktemp("full") / "run")


def _logged_steps(run_dir) -> list[str]:
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    col = lines[0].split(",").index("step")
    return [line.split(",")[col] for line in lines[1:]]


@pytest.mark.parametrize(
    "where, step",
    [("step start", 5), ("after the forward pass", 5), ("before the optimiser step", 5), ("step start", 4)],
)
def test_ctrl_c_anywhere_inside_a_step_then_resume_is_bit_identical(tiny_data, tmp_path, monkeypatch, where, step,
                                                                    uninterrupted):  # fmt: skip
    """A real SIGINT at three points of step 5 (the 2nd batch of epoch 2) and at the start of step 4 (the first of
    epoch 2): the step finishes, the run stops at the step boundary, and the resumed run ends with exactly the weights
    and BatchNorm statistics of a run that never stopped, with the same steps logged."""
    import os
    import signal

    from aelens.objectives.reconstruction import Reconstruction

    over, full = uninterrupted
    original_step, original_hook = Reconstruction.training_step, Reconstruction.on_before_optimizer_step

    def sigint_if(point):
        def check(module):
            if point == where and module.global_step == step:
                os.kill(os.getpid(), signal.SIGINT)

        return check

    at_start, after_forward, before_opt = (sigint_if(w) for w in
                                           ("step start", "after the forward pass", "before the optimiser step"))  # fmt: skip

    def training_step(self, batch, batch_idx):
        at_start(self)
        loss = original_step(self, batch, batch_idx)
        after_forward(self)
        return loss

    def hook(self, optimizer):
        before_opt(self)
        return original_hook(self, optimizer)

    monkeypatch.setattr(Reconstruction, "training_step", training_step)
    monkeypatch.setattr(Reconstruction, "on_before_optimizer_step", hook)
    run = tmp_path / "r"
    with pytest.raises(TrainingInterrupted):
        aelens.train(quick_config(tiny_data, **over), out=run)
    assert read_manifest(run)["status"] == "interrupted"
    monkeypatch.setattr(Reconstruction, "training_step", original_step)
    monkeypatch.setattr(Reconstruction, "on_before_optimizer_step", original_hook)
    aelens.train(None, resume=run)
    m = read_manifest(run)
    assert m["status"] == "complete" and m["global_step"] == 8
    a, b = weights(full), weights(run)
    assert a.keys() == b.keys() and any("running_mean" in k for k in a)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"differ after resume: {different}"
    assert _logged_steps(run) == _logged_steps(full)


def test_resume_needs_a_checkpoint_and_more_epochs(tiny_ae, tmp_path):
    with pytest.raises(AelensError, match=r"already finished 2 epochs; pass a larger --epochs"):
        aelens.train(None, resume=tiny_ae)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AelensError, match=r"not an aelens run directory \(no manifest.json\)"):
        aelens.train(None, resume=tmp_path / "empty")


def test_checkpoint_of_another_architecture_is_refused(tiny_ae, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_ae, other)
    state = weights(tiny_ae)
    state["encoder.fc1.1.weight"] = torch.zeros(8, state["encoder.fc1.1.weight"].shape[1])
    save_tensors(other / "model.safetensors", state)
    record_file_hashes(other, ["model.safetensors"])  # a consistent folder (else the changed hash is refused first)
    with pytest.raises(
        AelensError,
        match=r"model\.safetensors: checkpoint does not match the model \(encoder\.fc1\.1\.weight: file has \(8, 2048\), model expects \(16, 2048\)\)",
    ):
        aelens.load_run(other)
    (other / "model.safetensors").write_bytes((tiny_ae / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(
        AelensError, match=r"model\.safetensors: its SHA-256 differs from the one manifest.json recorded"
    ):
        aelens.load_run(other)
    record_file_hashes(other, ["model.safetensors"])
    with pytest.raises(AelensError, match=r"model\.safetensors: corrupted or truncated safetensors file"):
        aelens.load_run(other)


def test_python_api(tiny_ae, tiny_data):
    ds = aelens.load_dataset(tiny_data)
    run = aelens.load_run(tiny_ae)
    codes = run.encode(ds)
    assert codes.shape == (160, 16) and codes.dtype == np.float32 and (codes >= 0).all()  # fc1 ends in a ReLU
    assert run.decode(codes[:5]).shape == (5, 1, 32, 32)
    assert run.reconstruct(ds.images[:7, 0]).shape == (7, 1, 32, 32)
    assert run.encode(ds, layer="fc2").shape == (160, 128 * 4 * 4)
    with pytest.raises(AelensError, match=r"images are 1x40x40 but .* was trained on 1x32x32"):
        run.encode(np.zeros((2, 40, 40), np.uint8))
    with pytest.raises(AelensError, match=r"only tagger runs predict"):
        run.predict(ds)


@pytest.mark.realdata
def test_real_mouse_openfield_end_to_end(tmp_path, capsys):
    data = shared_dataset("mouse_openfield")
    run = tmp_path / "mouse"
    code, _, err = run_cli(
        ["train", "ae", "--data", data, "--epochs", "1", "--out", run, "--no-progress", "--snapshot-max-images", "500"],
        capsys,
    )
    assert code == 0, err
    code, out, err = run_cli(["test", run], capsys)
    assert code == 0, err
    res = json.loads((run / "test" / "results.json").read_text())
    # video frames: the default split is blocked in time (the conditions have a frame column), with a purge gap
    m = json.loads((run / "manifest.json").read_text())
    assert m["split"]["kind"] == "blocked" and m["split"]["purge"] == 10 and res["split"]["kind"] == "blocked"
    assert res["n"] == m["split_sizes"]["test"] and "psnr_clean" not in res  # real frames: no clean ground truth
    assert all(math.isfinite(res[k]) for k in ("mse", "psnr", "ssim"))


@pytest.mark.slow
def test_short_run_denoises_better_than_the_noisy_input(tmp_path):
    """After a short run the AE's reconstructions are closer to the clean frames than the noisy frames it saw."""
    from aelens.synthetic.arena import synthesize, write_dataset

    data = write_dataset(tmp_path / "data", synthesize(1500, seed=21, size=32))
    run = aelens.train(quick_config(data, **{"train.epochs": 8, "snapshots.enabled": False}), out=tmp_path / "ae")
    res = aelens.test_run(run, figures=False)
    assert res["psnr_clean"] > res["baselines"]["noisy_input"]["psnr_clean"] + 1.0, res
    assert res["ssim_clean"] > res["baselines"]["noisy_input"]["ssim_clean"] + 0.2


def test_a_last_training_batch_of_one_frame_joins_the_previous_one(tiny_data, tmp_path):
    """BatchNorm cannot train on one frame: 112 training frames at batch size 111 give one batch of 112, not 111 + 1
    (which crashed), every frame still seen once per epoch; validation batches are left as they are."""
    from aelens.data.batches import IndexBatchSampler

    sampler = IndexBatchSampler(np.arange(112), 111, shuffle=True, seed=0)
    batches = list(sampler)
    assert [len(b) for b in batches] == [112] and len(sampler) == 1
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(112))
    assert [len(b) for b in IndexBatchSampler(np.arange(112), 111, shuffle=False)] == [111, 1]
    assert [len(b) for b in IndexBatchSampler(np.arange(7), 3, shuffle=True)] == [3, 4]
    run = aelens.train(
        quick_config(tiny_data, **{"train.batch_size": 111, "snapshots.enabled": False}), out=tmp_path / "one"
    )
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


def test_per_session_and_track_rows_average_back_to_the_pooled_number():
    """Test scores per session (by name) and per track: each row's mean over its frames, with an interval over its
    own blocks; the frame-weighted mean of the rows is the pooled mean."""
    from types import SimpleNamespace

    from aelens.data.loading import Conditions
    from aelens.maps.scores import time_blocks
    from aelens.runs.evaluate import group_rows

    rng = np.random.default_rng(0)
    n = 300
    session = np.repeat([0.0, 1.0], [120, 180])
    track = np.tile([0.0, 1.0], n // 2)
    cond = Conditions(["session", "track"], np.c_[session, track], "planted", [], {"session": ["fly_a", "fly_b"]})
    ds = SimpleNamespace(conditions=cond)
    idx = np.r_[np.arange(0, 60), np.arange(80, 140), np.arange(150, 330)]  # held-out stretches
    idx = idx[idx < n]
    values = rng.normal(25, 2, len(idx)) + 3 * (session[idx] == 1)  # session b reconstructs 3 dB better
    blocks = time_blocks(idx, session[idx])
    groups = group_rows(values, idx, ds, "psnr", blocks)
    rows = groups["session"]
    assert [r["group"] for r in rows] == ["fly_a", "fly_b"]
    assert sum(r["n"] for r in rows) == len(idx)
    pooled = sum(r["n"] * r["psnr"] for r in rows) / len(idx)
    assert pooled == pytest.approx(values.mean(), abs=1e-12)
    assert rows[1]["psnr"] - rows[0]["psnr"] > 2
    assert [r["group"] for r in groups["track"]] == ["0", "1"]
    one = group_rows(values, idx[idx < 100], SimpleNamespace(conditions=None), "psnr", blocks)
    assert one == {}  # no session or track column: no breakdown
