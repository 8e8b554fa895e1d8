"""Hostile inputs, round 3: output paths that escape or cannot be written, config and run files that are damaged or
built to exhaust the reader, numbers far out of range at the import border, pose files with tracker damage, and a
study folder holding a model the study did not make.

Each case asserts what :mod:`test_hostile` asserts: exit code 2, exactly one line ``aelens: error: ...`` with the
expected words, no traceback, and no file written or changed under the test bed (the data and the runs included).
Cases whose right answer is not an error (a name that must be made safe, a name that is text) are tests below.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

import aelens
from aelens.layout import RunDir
from aelens.storage import load_tensors, save_tensors
from aelens.storage.tensors import TREE_FORMAT
from aelens.synthetic.video import synthesize_video
from conftest import quick_config, run_cli
from test_hostile import assert_refused


def _csv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


def _plain_rows(n: int, planted: dict | None = None) -> list[str]:
    """A plain pose CSV (frame,track,x,y,angle_deg) of one animal walking; ``planted``: {frame: {column: text}}."""
    rows = []
    for f in range(n):
        cells = {"frame": str(f), "track": "0", "x": f"{60 + f:.1f}", "y": "80.0", "angle_deg": "0"}
        cells.update((planted or {}).get(f, {}))
        rows.append(",".join(cells[c] for c in ("frame", "track", "x", "y", "angle_deg")))
    return rows


def _damaged_checkpoint(src: Path, dst: Path, tree: str) -> Path:
    """A run that stopped while training (no final weights) whose last checkpoint's state tree is ``tree``."""
    shutil.copytree(src, dst)
    rd = RunDir(dst)
    (dst / rd.WEIGHTS).unlink()
    m = json.loads((dst / "manifest.json").read_text())
    (dst / "manifest.json").write_text(json.dumps({**m, "status": "running"}))
    tensors, _ = load_tensors(rd.last_checkpoint)
    save_tensors(rd.last_checkpoint, tensors, metadata={"format": TREE_FORMAT, "tree": tree})
    return dst


@pytest.fixture(scope="module")
def bed(tiny_data, tiny_ae, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile3")
    f = root / "files"
    f.mkdir()
    # ---- a video with its true poses; pose files damaged one way each
    video_dir = root / "video"
    written = synthesize_video(video_dir, n=24, animals=2, seed=4)
    n = 24
    hdr = "frame,track,x,y,angle_deg"
    _csv(f / "walk.csv", hdr, _plain_rows(n))
    _csv(f / "coord_1e30.csv", hdr, _plain_rows(n, {3: {"x": "1e30"}}))
    _csv(f / "coord_inf.csv", hdr, _plain_rows(n, {3: {"y": "-inf"}}))
    _csv(f / "angle_inf.csv", hdr, _plain_rows(n, {3: {"angle_deg": "inf"}}))
    _csv(f / "angle_1e30.csv", hdr, _plain_rows(n, {3: {"angle_deg": "1e30"}}))
    _csv(f / "track_inf.csv", hdr, _plain_rows(n, {3: {"track": "inf"}}))
    _csv(f / "track_half.csv", hdr, _plain_rows(n, {3: {"track": "0.5"}}))
    _csv(f / "frame_inf.csv", hdr, _plain_rows(n, {3: {"frame": "1e300"}}))
    _csv(f / "outside.csv", hdr, [f"{i},0,{5000 + i},{-3000},0" for i in range(n)])
    _csv(f / "column_twice.csv", "frame,track,x,x,y,angle_deg", [f"{i},0,60,60,80,0" for i in range(n)])
    dlc = Path(written["deeplabcut-csv"]).read_text().splitlines()
    head, body = [r.split(",") for r in dlc[:4]], dlc[4:]
    (f / "dlc_short_header.csv").write_text("\n".join([",".join(head[0][:7])] + dlc[1:]) + "\n")
    same = [list(r) for r in head]
    same[1] = [same[1][0]] + ["animal0"] * (len(same[1]) - 1)  # the second animal's columns named as the first
    (f / "dlc_same_animal.csv").write_text("\n".join([",".join(r) for r in same] + body) + "\n")
    few = [("s", "animal0", "nose", c) for c in ("x", "y", "likelihood")]  # 3 labels for the file's 36 columns
    for name, labels in {"numbers": [(1, 2, 3)] * 36, "lists": [["s", "a", "x"]] * 36, "few": few}.items():
        dst = f / f"dlc_labels_{name}.h5"
        shutil.copy(written["deeplabcut-h5"], dst)
        with h5py.File(dst, "r+") as h5:
            table = h5["df_with_missing/table"]
            table.attrs["values_block_0_kind"] = np.void(pickle.dumps(labels, protocol=2))
    dst = f / "analysis_text.h5"
    shutil.copy(written["sleap-analysis-h5"], dst)
    with h5py.File(dst, "r+") as h5:
        shape = h5["tracks"].shape
        del h5["tracks"]
        h5.create_dataset("tracks", data=np.full(shape, b"fly", dtype="S3"))
    # ---- study settings that once gave tracebacks
    (f / "s_int_key.yaml").write_text("1: 2\nepochs: 3\n")
    (f / "s_null_key.yaml").write_text("~: 2\n")
    (f / "s_mixed_keys.yaml").write_text("run:\n  train: {epochs: 2, 3: 4}\n")
    (f / "s_deep.yaml").write_text("epochs: " + "[" * 3000 + "]" * 3000 + "\n")
    bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    bomb += [f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]" for i in range(1, 9)]
    (f / "s_alias_bomb.yaml").write_text("\n".join(bomb) + "\n")
    (f / "s_max_steps.yaml").write_text("run: {train: {max_steps: -5}}\n")
    (f / "s_max_images_0.yaml").write_text("max_images: 0\n")
    (f / "s_max_images_neg.yaml").write_text("max_images: -1\n")
    (f / "s_evolution_fit.yaml").write_text("evolution_fit: sideways\n")
    (f / "s_big.yaml").write_text("epochs: 3\n" + "#" * (2 << 20) + "\n")
    (f / "a_file").write_text("not a folder")
    np.save(f / "codes.npy", np.zeros((4, 16), np.float32))
    np.save(f / "three.npy", np.zeros((3, 32, 32), np.uint8))
    # ---- run folders damaged one way each
    runs = root / "runs"
    runs.mkdir()
    decoder = aelens.train(
        quick_config(tiny_data, "decoder", **{"embedding.method": "pca", "embedding.dim": 4}), out=runs / "decoder"
    )
    for name, info in {
        "no_dim": {"name": "pca", "seed": 0},
        "dim_text": {"name": "pca", "dim": "four"},
        "options_list": {"name": "pca", "dim": 4, "options": [1, 2]},
        "dim_zero": {"name": "pca", "dim": 0},
        "option_object": {"name": "pca", "dim": 4, "options": {"k": {"a": 1}}},
    }.items():
        r = runs / f"reducer_{name}"
        shutil.copytree(decoder, r)
        (r / "reducer" / "reducer.json").write_text(json.dumps(info))
    for name, tree in {
        "list": "[1, 2]",
        "pairs": json.dumps({"state_dict": {"__dict__": [[1, 2, 3]]}}),
        "deep": "[" * 5000 + "]" * 5000,
        "epoch_text": json.dumps({"epoch": "x", "state_dict": {}}),
        "missing_tensor": json.dumps({"state_dict": {"w": {"__t__": "nope"}}}),
    }.items():
        _damaged_checkpoint(tiny_ae, runs / f"ckpt_{name}", tree)
    for name, data in {
        "huge_pid": json.dumps({"pid": 10**30, "host": os.uname().nodename}).encode(),
        "negative_pid": json.dumps({"pid": -1, "host": os.uname().nodename}).encode(),
        "binary": bytes(range(256)),
    }.items():
        r = runs / f"lock_{name}"
        shutil.copytree(tiny_ae, r)
        (r / ".aelens.lock").write_bytes(data)
    r = runs / "data_moved"  # a run whose data has moved since it trained
    shutil.copytree(tiny_ae, r)
    config = (r / "config.yaml").read_text()
    (r / "config.yaml").write_text(config.replace(str(tiny_data), str(root / "moved_away")))
    outside = root / "outside"
    outside.mkdir()
    for folder in ("test", "latent"):
        r = runs / f"linked_{folder}"
        shutil.copytree(tiny_ae, r)
        shutil.rmtree(r / folder, ignore_errors=True)
        (r / folder).symlink_to(outside, target_is_directory=True)
    loops = tmp_path_factory.mktemp("loops")  # outside the watched bed: walking it would meet the loop
    (loops / "loop").symlink_to(loops / "loop")
    # ---- study folders: one holding an AE it did not train (2 epochs, tested), one with damaged timings
    foreign = root / "studies" / "foreign"
    shutil.copytree(tiny_ae, foreign / "runs" / "ae")
    aelens.test_run(foreign / "runs" / "ae")
    timed = root / "studies" / "timed"
    timed.mkdir(parents=True)
    (timed / "timings.json").write_text('{"train + test AE": "slow"}')
    (root / "cwd").mkdir()
    return SimpleNamespace(
        root=root, data=tiny_data, ae=tiny_ae, decoder=decoder, video=written["video"], loop=loops / "loop"
    )


F, R, D = "{files}", "{runs}", "{data}"
IMP = ["data", "import", "--video", "{video}", "--out", "{out}", "--window", "40", "--poses"]
LONG = "x" * 300
S = ["study", "--data", D, "--out", "{out}", "--config"]

CASES: list[tuple[str, list[str], str]] = [
    # ------------------------------------------------------------------ numbers at the import border
    ("coord-1e30", IMP + [F + "/coord_1e30.csv"], "a coordinate beyond 1e+07 pixels (1e+30)"),
    ("coord-inf", IMP + [F + "/coord_inf.csv"], "coord_inf.csv: holds infinite coordinates"),
    ("angle-inf", IMP + [F + "/angle_inf.csv"], "column 'angle_deg' holds inf; expected degrees"),
    ("angle-1e30", IMP + [F + "/angle_1e30.csv"], "column 'angle_deg' holds 1e+30; expected degrees"),
    ("track-inf", IMP + [F + "/track_inf.csv"], "column 'track' holds inf; expected whole-number track ids"),
    ("track-half", IMP + [F + "/track_half.csv"], "column 'track' holds 0.5; expected whole-number track ids"),
    ("frame-1e300", IMP + [F + "/frame_inf.csv"], "column 'frame' holds non-integer values or values beyond"),
    ("poses-outside-video", IMP + [F + "/outside.csv"], "no frame has a usable pose (skipped: center_outside_video"),
    ("column-twice", IMP + [F + "/column_twice.csv"], "column 'x' appears 2 times in the header"),
    ("dlc-short-header", IMP + [F + "/dlc_short_header.csv"], "header rows of [7, 37, 37, 37] fields"),
    ("dlc-same-animal-twice", IMP + [F + "/dlc_same_animal.csv"], "appears twice (animal 'animal0', body part 'nose'"),
    ("dlc-h5-number-labels", IMP + [F + "/dlc_labels_numbers.h5"], "column labels are not (scorer, [individual,]"),
    ("dlc-h5-list-labels", IMP + [F + "/dlc_labels_lists.h5"], "column labels are not (scorer, [individual,]"),
    ("dlc-h5-too-few-labels", IMP + [F + "/dlc_labels_few.h5"], "3 column labels for 36 columns of values"),
    ("analysis-text-tracks", IMP + [F + "/analysis_text.h5"], "dataset 'tracks': holds text values; expected numbers"),
    (
        "window-1e9",
        ["data", "import", "--video", "{video}", "--poses", F + "/coord_inf.csv", "--out", "{out}", "--window", "1e9"],
        "--window must be 4 to 100000 video pixels, got 1e+09",
    ),  # fmt: skip
    (
        "window-over-video",
        ["data", "import", "--video", "{video}", "--poses", F + "/walk.csv", "--out", "{out}", "--window", "5e4"],
        "--window 50000: over twice the video's larger side",
    ),  # fmt: skip
    (
        "fps-1e300",
        IMP + [F + "/coord_inf.csv", "--fps", "1e300"],
        "--fps must be a frame rate above 0 and up to 100000",
    ),
    ("frame-offset-word", IMP + [F + "/coord_inf.csv", "--frame-offset", "late"], "--frame-offset: expected auto"),
    ("frame-offset-huge", IMP + [F + "/coord_inf.csv", "--frame-offset", "1e9"], "--frame-offset: expected auto"),
    # ------------------------------------------------------------------ outputs that cannot be written
    (
        "out-under-file-train",
        ["train", "ae", "--data", D, "--out", F + "/a_file/run"],
        "a_file is a file, not a folder",
    ),
    ("out-under-file-test", ["test", "{ae}", "--out", F + "/a_file/t"], "a_file is a file, not a folder"),
    ("out-under-file-latent", ["latent", "{ae}", "--out", F + "/a_file/l"], "a_file is a file, not a folder"),
    ("out-under-file-compare", ["compare", "{ae}", "{ae}", "--out", F + "/a_file/c"], "a_file is a file, not a folder"),
    (
        "out-under-file-compare-recon",
        ["compare-recon", "{ae}", "{decoder}", "--out", F + "/a_file/c"],
        "a_file is a file, not a folder",
    ),  # fmt: skip
    ("out-under-file-study", ["study", "--data", D, "--out", F + "/a_file/s"], "a_file is a file, not a folder"),
    ("out-under-file-demo", ["demo", "--out", F + "/a_file/d"], "a_file is a file, not a folder"),
    ("out-under-file-synth", ["data", "synth", F + "/a_file/d", "--n", "10"], "a_file is a file, not a folder"),
    (
        "out-under-file-import",
        ["data", "import", "--video", "{video}", "--poses", F + "/coord_inf.csv", "--out", F + "/a_file/d"],
        "a_file is a file, not a folder",
    ),  # fmt: skip
    ("out-under-file-encode", ["encode", "{ae}", "--out", F + "/a_file/c.npy"], "a_file is a file, not a folder"),
    ("out-under-file-decode", ["decode", "{ae}", F + "/codes.npy", "--out", F + "/a_file/f.npz"], "a_file is a file"),
    ("out-under-file-bench", ["bench", "--quick", "--out", F + "/a_file/b"], "a_file is a file, not a folder"),
    (
        "out-under-file-sweep",
        ["sweep", "unfreeze", "--data", D, "--init-from", "{ae}", "--out", F + "/a_file/s"],
        "a_file",
    ),
    (
        "out-too-long-train",
        ["train", "ae", "--data", D, "--out", "{root}/" + LONG],
        "is 300 bytes; file systems allow 255",
    ),
    ("out-too-long-study", ["study", "--data", D, "--out", "{root}/" + LONG], "is 300 bytes; file systems allow 255"),
    ("out-too-long-import", IMP[:4] + ["--out", "{root}/" + LONG, "--poses", F + "/coord_inf.csv"], "is 300 bytes"),
    ("out-link-loop", ["train", "ae", "--data", D, "--out", "{loop}"], "a symbolic-link loop"),
    ("test-out-linked-away", ["test", R + "/linked_test"], "a symbolic link out of the run folder"),
    ("latent-out-linked-away", ["latent", R + "/linked_latent"], "a symbolic link out of the run folder"),
    # ------------------------------------------------------------------ study settings files
    ("study-int-key", S + [F + "/s_int_key.yaml"], "key 1 at the top is int; keys must be names"),
    ("study-null-key", S + [F + "/s_null_key.yaml"], "key None at the top is NoneType; keys must be names"),
    ("study-mixed-keys", S + [F + "/s_mixed_keys.yaml"], "key 3 at run.train is int; keys must be names"),
    ("study-deep", S + [F + "/s_deep.yaml"], "nested too deeply (over 32 levels)"),
    ("study-alias-bomb", S + [F + "/s_alias_bomb.yaml"], "an alias (*name) at line 2: aelens reads YAML without"),
    ("study-max-steps", S + [F + "/s_max_steps.yaml"], "--max-steps must be -1 (every epoch) or at least 1 step"),
    ("study-max-images-0", S + [F + "/s_max_images_0.yaml"], "max_images must be at least 20 frames, got 0"),
    ("study-max-images-negative", S + [F + "/s_max_images_neg.yaml"], "max_images must be at least 20 frames, got -1"),
    ("study-evolution-fit", S + [F + "/s_evolution_fit.yaml"], "evolution_fit: must be one of last, first, every"),
    ("study-config-huge", S + [F + "/s_big.yaml"], "a YAML file aelens reads is under 1,048,576"),
    (
        "study-adopts-foreign-ae",
        ["study", "--data", D, "--out", "{root}/studies/foreign", "--epochs", "1"],
        "train.epochs, train.patience); the study does not adopt it: move it away, or use another --out",
    ),  # fmt: skip
    (
        "study-damaged-timings",
        ["study", "--data", D, "--out", "{root}/studies/timed", "--epochs", "1"],
        "timings.json: expected step names with seconds",
    ),  # fmt: skip
    # ------------------------------------------------------------------ damaged run files
    ("reducer-no-dim", ["test", R + "/reducer_no_dim"], "reducer.json: field 'dim' is missing"),
    ("reducer-dim-text", ["test", R + "/reducer_dim_text"], "field 'dim' is str (four); expected int"),
    ("reducer-options-list", ["test", R + "/reducer_options_list"], "field 'options' is list ([1, 2]); expected dict"),
    ("reducer-dim-0", ["test", R + "/reducer_dim_zero"], "reducer.json: dim must be at least 1, got 0"),
    ("reducer-option-object", ["test", R + "/reducer_option_object"], "option 'k' is dict; expected a number"),
    ("checkpoint-list", ["test", R + "/ckpt_list"], "the checkpoint holds list; expected a map of training state"),
    ("checkpoint-pairs", ["test", R + "/ckpt_pairs"], "corrupted checkpoint header (ValueError: a __dict__ entry"),
    ("checkpoint-deep", ["test", R + "/ckpt_deep"], "corrupted checkpoint header (nested too deeply)"),
    ("checkpoint-text-epoch", ["test", R + "/ckpt_epoch_text"], "checkpoint field 'epoch' is str; expected int"),
    ("checkpoint-missing-tensor", ["test", R + "/ckpt_missing_tensor"], "tensor 'nope' is not in the file"),
    ("lock-huge-pid", ["test", R + "/lock_huge_pid"], "being written by an unknown process"),
    ("lock-negative-pid", ["test", R + "/lock_negative_pid"], "being written by an unknown process"),
    ("lock-binary", ["test", R + "/lock_binary"], "being written by an unknown process"),
    # ------------------------------------------------------------------ refused resumes change no file
    (
        "resume-data-moved",
        ["train", "ae", "--resume", R + "/data_moved", "--epochs", "3"],
        "moved_away: file not found",
    ),
    ("resume-new-lr", ["train", "ae", "--resume", "{ae}", "--lr", "5"], "--lr would change it"),
    ("resume-fewer-epochs", ["train", "ae", "--resume", "{ae}", "--epochs", "1"], "the run already finished 2 epochs"),
    # ------------------------------------------------------------------ too few frames to train
    ("three-frames", ["train", "ae", "--data", F + "/three.npy", "--out", "{out}"], "3 frames leave 1 for training"),
]


@pytest.mark.parametrize("name, args, message", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_round3(bed, capsys, monkeypatch, name, args, message):
    assert_refused(bed, capsys, monkeypatch, name, args, message, video=bed.video, loop=bed.loop)
    assert not any((bed.root / "outside").iterdir()), "a write left the output folder"


def test_there_are_at_least_60_new_cases():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


# ---------------------------------------------------------------------- right answers that are not errors


def test_condition_names_become_safe_file_names_and_plain_text(tiny_data, tiny_ae, tmp_path, capsys):
    """A metadata column named like a path or like mathtext: its figure lands inside --out, under a safe name, and
    its title is drawn as the text it is."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    meta = (data / "metadata.csv").read_text().splitlines()
    cols = meta[0].split(",")
    cols[cols.index("speed")] = "a/../../../ESCAPED"
    cols[cols.index("x")] = "$\\bogus$"
    (data / "metadata.csv").write_text("\n".join([",".join(cols)] + meta[1:]) + "\n")
    for p in data.glob("metadata.npy"):
        p.unlink()
    out = tmp_path / "deep" / "er" / "latent"
    code, _, err = run_cli(["latent", tiny_ae, "--data", data, "--out", out, "--method", "pca"], capsys)
    assert code == 0, err
    assert (out / "scatter_a_.._.._.._ESCAPED.png").is_file() and (out / "scatter___bogus_.png").is_file()
    assert not list(tmp_path.rglob("ESCAPED*")) and not (tmp_path / "ESCAPED").exists()


def test_session_names_with_slashes_stay_inside_the_output(bed, tmp_path, capsys):
    """Two sessions named like paths, with previews: the preview files are named safely, inside --out."""
    poses = str(bed.root / "video" / "poses.csv")
    out = tmp_path / "imported"
    args = ["data", "import", "--out", out, "--window", "40", "--preview", "--no-progress"]
    for name in ("../../up", "a/b"):
        args += ["--video", bed.video, "--poses", poses, "--session", name]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.glob("preview*")) == [
        "preview_.._.._up.mp4",
        "preview_a_b.mp4",
        "preview_crops_.._.._up.png",
        "preview_crops_a_b.png",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imported"]
