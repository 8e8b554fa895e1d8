"""Safe, atomic storage: exact round-trips, no pickles, corrupted files refused."""

import math
import os

import numpy as np
import pytest
import torch

from aelens.errors import AelensError
from aelens.layout import create_run_dir, write_manifest
from aelens.storage import atomic_path, load_tree, save_tree, write_json


def test_tree_round_trip_is_exact(tmp_path):
    tree = {
        "epoch": 3,
        "global_step": 120,
        "state_dict": {"w": torch.randn(3, 4), "b": torch.arange(5, dtype=torch.int64), "h": torch.randn(2).bfloat16()},
        "optimizer_states": [
            {
                "state": {0: {"step": torch.tensor(7.0), "exp_avg": torch.randn(3)}},
                "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1], "foreach": None}],
            }
        ],
        "callbacks": {"RunCheckpoints": {"best_score": float("inf"), "best_epoch": -1, "nan": float("nan")}},
        "flags": [True, False, None, "text"],
        "__weird_key": {"a": 1},
        "np": np.arange(3.0),
    }
    path = tmp_path / "c.safetensors"
    save_tree(path, tree)
    back = load_tree(path)
    assert back["epoch"] == 3 and back["flags"] == [True, False, None, "text"]
    assert back["optimizer_states"][0]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert isinstance(back["optimizer_states"][0]["param_groups"][0]["betas"], tuple)
    assert list(back["optimizer_states"][0]["state"].keys()) == [0]
    for k in ("w", "b", "h"):
        assert (
            torch.equal(back["state_dict"][k], tree["state_dict"][k])
            and back["state_dict"][k].dtype == tree["state_dict"][k].dtype
        )
    assert back["callbacks"]["RunCheckpoints"]["best_score"] == math.inf
    assert math.isnan(back["callbacks"]["RunCheckpoints"]["nan"])
    assert back["__weird_key"] == {"a": 1}
    np.testing.assert_array_equal(back["np"].numpy(), np.arange(3.0))


def test_tree_refuses_arbitrary_objects(tmp_path):
    with pytest.raises(TypeError, match=r"cannot store object at checkpoint\.x"):
        save_tree(tmp_path / "c.safetensors", {"x": object()})
    assert not (tmp_path / "c.safetensors").exists()


def test_atomic_write_keeps_previous_file_when_interrupted(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save_tree(path, {"v": torch.ones(3)})
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half a file")
            raise RuntimeError("killed mid-write")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]  # no temp file left behind
    assert torch.equal(load_tree(path)["v"], torch.ones(3))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupted_checkpoint_is_a_clear_error(tmp_path, damage):
    path = tmp_path / "c.safetensors"
    save_tree(path, {"v": torch.randn(100)})
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(200), "empty": b""}[damage])
    with pytest.raises(AelensError, match=r"c\.safetensors: corrupted or truncated safetensors file"):
        load_tree(path)


def test_plain_safetensors_without_header_is_not_a_checkpoint(tmp_path):
    from aelens.storage import save_tensors

    save_tensors(tmp_path / "w.safetensors", {"a": torch.ones(2)})
    with pytest.raises(AelensError, match="not an aelens checkpoint"):
        load_tree(tmp_path / "w.safetensors")


def test_run_dir_never_overwritten_without_consent(tmp_path):
    run = create_run_dir(tmp_path / "run")
    write_manifest(run, "ae", 1)
    with pytest.raises(
        AelensError, match=r"run: run directory already exists; choose another --out or pass --overwrite"
    ):
        create_run_dir(run)
    mine = tmp_path / "my_folder"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(AelensError, match="not an aelens run directory .* refusing to overwrite"):
        create_run_dir(mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "precious"
    assert create_run_dir(run, overwrite=True).is_dir() and not (run / "manifest.json").exists()


def test_json_handles_numpy(tmp_path):
    write_json(tmp_path / "a.json", {"x": np.float32(1.5), "y": np.arange(2), "t": (1, 2)})
    assert (tmp_path / "a.json").read_text().split() == [
        "{",
        '"x":',
        "1.5,",
        '"y":',
        "[",
        "0,",
        "1",
        "],",
        '"t":',
        "[",
        "1,",
        "2",
        "]",
        "}",
    ]
