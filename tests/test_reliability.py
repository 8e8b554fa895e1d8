"""Hostile but fair inputs: each gets its one-line error and exit code 2, before any folder is made, and never a
traceback (issue: reliability). Files are planted the way a damaged or edited file would look."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import aelens
from aelens.errors import AelensError, TrainingDiverged
from aelens.storage import read_json
from conftest import quick_config, run_cli


def _npy_with_header_shape(tmp_path: Path, name: str, frames: int, claimed: str) -> Path:
    """A valid .npy of ``frames`` 32 x 32 frames whose header then claims another shape (same header length)."""
    path = tmp_path / name
    np.save(path, np.zeros((frames, 32, 32), np.uint8))
    raw = path.read_bytes()
    old = f"({frames}, 32, 32)".encode()
    new = claimed.encode().ljust(len(old))
    assert old in raw and len(new) == len(old)
    path.write_bytes(raw.replace(old, new))
    return path


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "zero_channels.npy", np.zeros((10, 0, 32, 32), np.uint8))
    _npy_with_header_shape(tmp_path, "fewer.npy", 10, "(5, 32, 32)")
    _npy_with_header_shape(tmp_path, "negative.npy", 10, "(-5, 32, 32)")
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    (tmp_path / "folder.yaml").mkdir()
    np.savez(tmp_path / "config.npz", a=np.zeros(3))
    (tmp_path / "a_file").write_text("not a folder")
    return tmp_path


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "ae", "--data", "{tmp}/zero_channels.npy"], "images have 0 channels (shape (10, 0, 32, 32))"),
        (
            ["train", "ae", "--data", "{tmp}/fewer.npy"],
            "the .npy header describes shape (5, 32, 32) (5248 bytes) but "
            "the file holds 10368 bytes; the file is damaged or its header was edited",
        ),
        (
            ["train", "ae", "--data", "{tmp}/negative.npy"],
            "negative.npy: cannot read (OverflowError: memory mapped length must",
        ),
        (["train", "ae", "--data", "{data}", "--config", "{tmp}/binary.yaml"], "binary.yaml: not a YAML text file"),
        (
            ["train", "ae", "--data", "{data}", "--config", "{tmp}/folder.yaml"],
            "folder.yaml: is a directory, expected a YAML file",
        ),
        (["train", "ae", "--data", "{data}", "--config", "{tmp}/config.npz"], "config.npz: not a YAML text file"),
        (["latent", "{ae}", "--out", "{tmp}/a_file"], "a_file: exists and is not a folder; --out names a folder"),
        (["study", "--data", "{data}", "--out", "{tmp}/a_file"], "a_file: exists and is not a folder"),
        (["data", "synth", "{tmp}/a_file", "--n", "10"], "a_file: exists and is not a folder"),
        (["bench", "--out", "{tmp}/a_file"], "a_file: exists and is not a folder"),
        (["train", "tagger", "--resume", "{ae}", "--epochs", "5"], "an ae run; resume it with aelens train ae"),
    ],
)
def test_bad_files_and_paths_exit_2_with_one_line(files, tiny_data, tiny_ae, capsys, args, message):
    before = sorted(p.name for p in files.iterdir())
    args = [a.format(tmp=files, data=tiny_data, ae=tiny_ae) for a in args]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in files.iterdir()) == before  # nothing made, nothing replaced
    assert (files / "a_file").read_text() == "not a folder"


def test_float_frames_far_above_one_warn_naming_the_option(tmp_path, caplog):
    from aelens.data.loading import load_images

    np.save(tmp_path / "f.npy", (np.random.default_rng(0).random((4, 32, 32)) * 255).astype(np.float32))
    with caplog.at_level("WARNING", logger="aelens"):
        _, scale = load_images(tmp_path / "f.npy")
    assert scale == 1.0 and "--max-pixel-value" in caplog.text and "float pixels reach 25" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="aelens"):
        _, scale = load_images(tmp_path / "f.npy", max_pixel_value=255)
    assert scale == 255.0 and caplog.text == ""


def test_a_manifest_that_is_not_an_object_is_refused(tiny_ae, tmp_path):
    import shutil

    from aelens.layout import RunDir

    run = tmp_path / "run"
    shutil.copytree(tiny_ae, run)
    (run / "manifest.json").write_text(json.dumps(["not", "a", "manifest"]))
    with pytest.raises(AelensError, match=r"manifest.json: the manifest must be a JSON object, got list"):
        RunDir(run).manifest()
    (run / "manifest.json").write_text(json.dumps({"kind": "ae", "image_shape": [1, -32, 32]}))
    with pytest.raises(AelensError, match=r"image_shape must be a list of positive integers, got \[1, -32, 32\]"):
        aelens.load_run(run)


@pytest.mark.parametrize(
    "codes, message",
    [
        (np.zeros((0, 16), np.float32), "holds 0 codes; expected at least one row"),
        (np.zeros((3, 16), np.complex64), "codes must be a real N x D array, got complex64 (3, 16)"),
        (
            np.array([[0.0] * 16, [np.nan] + [0.0] * 15], np.float32),
            "codes contain NaN or infinite values (first in row 1)",
        ),
    ],
)
def test_decode_refuses_codes_it_cannot_decode(tiny_ae, tmp_path, capsys, codes, message):
    np.save(tmp_path / "codes.npy", codes)
    code, _, err = run_cli(["decode", tiny_ae, tmp_path / "codes.npy", "--out", tmp_path / "x.npz"], capsys)
    assert code == 2 and message in err and not (tmp_path / "x.npz").exists(), err


def test_sweep_init_from_a_decoder_run_makes_no_folder(tiny_data, tmp_path, capsys):
    dec = aelens.train(quick_config(tiny_data, "decoder", **{"snapshots.enabled": False}), out=tmp_path / "dec")
    code, _, err = run_cli(
        ["sweep", "unfreeze", "--data", tiny_data, "--init-from", dec, "--out", tmp_path / "sweep"], capsys
    )
    assert code == 2 and "--init-from" in err and "a decoder run, not an ae run" in err, err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    "over, message",
    [
        ({"decoders": ["foo:16"]}, "decoders: 'foo:16': unknown method 'foo'"),
        ({"decoders": ["pca:99999"]}, "decoders: 'pca:99999': 99999 dimensions is more than the frames hold"),
        ({"latent_method": "foo"}, "latent_method: 'foo' is not one of umap, pca, tsne"),
    ],
)
def test_study_settings_that_fail_late_are_refused_before_any_work(tiny_data, tmp_path, over, message):
    from aelens.study.config import load_study_config
    from aelens.study.pipeline import run_study

    cfg = load_study_config(None, {"epochs": 1, **over})
    with pytest.raises(AelensError, match=message.replace("(", r"\(").replace("'", "'")):
        run_study(tiny_data, tmp_path / "study", cfg, echo=lambda s: None)
    assert not (tmp_path / "study").exists()


def test_a_diverging_run_stops_marked_failed_and_keeps_its_last_finite_checkpoint(tiny_data, tmp_path, monkeypatch):
    """The loss becomes NaN in the second epoch: training stops after it, the manifest says failed, no final weights
    are written, and checkpoints/last holds the first epoch's finite weights."""
    import torch

    from aelens.layout import read_manifest
    from aelens.objectives.reconstruction import Reconstruction
    from aelens.storage import load_tree

    real = Reconstruction.loss

    def loss(self, batch, stage):
        value, extras = real(self, batch, stage)
        return (value * float("nan") if self.current_epoch >= 1 and stage == "train" else value), extras

    monkeypatch.setattr(Reconstruction, "loss", loss)
    with pytest.raises(
        TrainingDiverged, match=r"training diverged: the training loss is nan after epoch 2; lower --lr"
    ):
        aelens.train(quick_config(tiny_data, **{"train.epochs": 4}), out=tmp_path / "run")
    run = tmp_path / "run"
    assert read_manifest(run)["status"] == "failed" and not (run / "model.safetensors").exists()
    state = load_tree(run / "checkpoints" / "last.safetensors")
    assert state["epoch"] == 0 and all(torch.isfinite(v).all() for v in state["state_dict"].values())


def test_a_split_file_with_indices_outside_the_data_is_refused(tiny_ae, tmp_path, capsys):
    import shutil

    from aelens.storage import load_split, save_split

    run = tmp_path / "run"
    shutil.copytree(tiny_ae, run)
    split = load_split(run / "split.npz")
    split["test"] = np.append(split["test"], 10_000)  # the tiny dataset has 160 frames
    save_split(run / "split.npz", split)
    code, _, err = run_cli(["test", run], capsys)
    assert code == 2 and "split.npz: the test indices must be frame numbers 0 to 159 of the run's data, got" in err
    assert "to 10000; the file was edited or belongs to another run" in err


def _lock(run: Path, pid: int) -> None:
    import platform

    (run / ".aelens.lock").write_text(
        json.dumps({"pid": pid, "host": platform.node(), "since": "2026-01-01T00:00:00", "command": "aelens train ae"})
    )


def test_one_writer_per_run_folder(tiny_ae, tiny_data, tmp_path, capsys):
    """A live lock stops a second writer (resume, or --overwrite of the folder) with a line naming the holder, and
    changes nothing; a lock whose process is gone is taken over; leftovers of killed writes are removed."""
    import os
    import shutil
    import subprocess

    run = tmp_path / "run"
    shutil.copytree(tiny_ae, run)
    _lock(run, os.getpid())  # this very process: alive
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for args in (
        ["train", "ae", "--resume", run, "--epochs", "3"],
        ["train", "ae", "--data", tiny_data, "--out", run, "--overwrite"],
        ["test", run],
        ["latent", run],
    ):
        code, _, err = run_cli(args, capsys)
        assert code == 2 and err.strip() == (
            f"aelens: error: {run}: being written by process {os.getpid()} on {__import__('platform').node()} "
            f"(since 2026-01-01T00:00:00: aelens train ae); wait for it to finish, or, if that process is gone, "
            f"delete {run / '.aelens.lock'}"
        ), err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before

    gone = subprocess.Popen(["true"])
    gone.wait()
    _lock(run, gone.pid)  # a process that no longer exists
    (run / "checkpoints" / ".last.tmp-999999.safetensors").write_bytes(b"half a write")
    code, out, err = run_cli(["train", "ae", "--resume", run, "--epochs", "3"], capsys)
    assert code == 0, err
    assert not (run / ".aelens.lock").exists() and not list(run.rglob(".*.tmp-*"))
    assert read_json(run / "manifest.json")["epochs"] == 3


def test_resume_refuses_options_that_would_change_the_run(tiny_ae, capsys):
    code, _, err = run_cli(["train", "ae", "--resume", tiny_ae, "--epochs", "3", "--lr", "0.01", "--batch-size", "8"],
                           capsys)  # fmt: skip
    assert code == 2 and err.strip() == (
        f"aelens: error: --resume continues a run with its own settings (only --epochs can grow); --batch-size, --lr "
        f"would change it: start a new run with --config {tiny_ae}/config.yaml --batch-size, --lr instead"
    )


def test_resume_starts_from_the_newest_checkpoint_when_last_was_never_written(tiny_data, tmp_path):
    """A kill during the very first write of checkpoints/last leaves best (written just before it): resume uses it."""
    import torch

    from aelens.storage import load_state_dict

    over = {"train.lr_schedule": "none", "train.deterministic": True}
    full = aelens.train(quick_config(tiny_data, **over, **{"train.epochs": 2}), out=tmp_path / "full")
    half = aelens.train(quick_config(tiny_data, **over, **{"train.epochs": 1}), out=tmp_path / "half")
    (half / "checkpoints" / "last.safetensors").unlink()
    aelens.train(quick_config(tiny_data, **{"train.epochs": 2}), resume=half)
    a, b = load_state_dict(full / "model.safetensors"), load_state_dict(half / "model.safetensors")
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_a_full_disk_is_one_line_and_keeps_the_checkpoints(tiny_ae, tmp_path, capsys, monkeypatch):
    """The disk fills up while a resumed run writes its next checkpoint: exit 2, one line naming the file and the
    cause, and the checkpoints already on disk stay exactly as they were."""
    import errno
    import os
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_ae, run)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    replace = os.replace

    def full_disk(src, dst):
        if str(dst).endswith(".safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    code, _, err = run_cli(["train", "ae", "--resume", run, "--epochs", "3"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"aelens: error: {run / 'checkpoints'}") and lines[0].endswith(
        ": No space left on device (the disk is full: free some space and run the command again)"
    ), lines[0]
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == before
    assert not (run / ".aelens.lock").exists()
