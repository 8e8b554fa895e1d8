"""Scale-out through Lightning's DDP: two CPU processes (gloo) write one ordinary run directory."""

import math
import os
import subprocess
import sys

import numpy as np

import aelens
from aelens.layout import read_manifest
from aelens.storage import load_tree
from aelens.training.callbacks import read_metrics


def test_ddp_two_cpu_processes(tiny_data, tmp_path):
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "aelens",
        "train",
        "ae",
        "--data",
        str(tiny_data),
        "--split",
        "random",
        "--epochs",
        "1",
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--accelerator",
        "cpu",
        "--out",
        str(run),
        "--no-progress",
        "--batch-size",
        "16",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "AELENS_RUN_DIR")}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    m = read_manifest(run)
    assert m["status"] == "complete" and m["world_size"] == 2
    # 112 training frames, 16 per device and step, 2 devices: 4 steps per epoch
    assert m["global_step"] == 4
    ckpt = load_tree(run / "checkpoints" / "last.safetensors")
    assert ckpt["global_step"] == 4
    losses = [r["train_loss_epoch"] for r in read_metrics(run / "metrics.csv") if "train_loss_epoch" in r]
    assert losses and all(math.isfinite(v) for v in losses)
    assert math.isfinite(m["best_val_loss"])
    # written once, by rank 0, in the single-process format
    assert (run / "snapshots" / "index.csv").read_text().count("\n") == 3  # header + before training + epoch 1
    assert np.load(run / "snapshots" / "fc1.npy").shape == (2, 160, 16)
    codes = aelens.load_run(run).encode(aelens.load_dataset(tiny_data))
    assert codes.shape == (160, 16) and np.isfinite(codes).all()
