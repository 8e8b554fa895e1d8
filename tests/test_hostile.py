"""Hostile but fair inputs, one per case, across every command (issue: reliability).

Each case asserts: exit code 2, exactly one line on stderr that starts with ``aelens: error:`` and contains the
expected words, no traceback, and that nothing was written or changed (every file under the test bed, the data and
the run folders keeps its size and modification time; no output folder appears). The planted files are made once per
module; the commands run in-process (same code path as the ``aelens`` script).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import aelens
from aelens.storage import load_state_dict, save_tensors
from conftest import quick_config, run_cli


def _npy_claiming(path: Path, frames: int, claimed: str) -> None:
    np.save(path, np.zeros((frames, 32, 32), np.uint8))
    raw = path.read_bytes()
    old = f"({frames}, 32, 32)".encode()
    path.write_bytes(raw.replace(old, claimed.encode().ljust(len(old))))


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def bed(tiny_data, tiny_ae, tmp_path_factory):
    """Every planted file and folder, made once."""
    root = tmp_path_factory.mktemp("hostile")
    f = root / "files"
    f.mkdir()
    # ---- image files
    np.save(f / "zero_channels.npy", np.zeros((10, 0, 32, 32), np.uint8))
    _npy_claiming(f / "fewer.npy", 10, "(5, 32, 32)")
    np.save(f / "one_d.npy", np.zeros(100, np.uint8))
    np.save(f / "five_d.npy", np.zeros((2, 2, 1, 32, 32), np.uint8))
    np.save(f / "tiny_frames.npy", np.zeros((50, 8, 8), np.uint8))
    np.save(f / "one_frame.npy", np.zeros((1, 32, 32), np.uint8))
    np.save(f / "complex.npy", np.zeros((20, 32, 32), np.complex64))
    np.save(f / "nan.npy", np.full((20, 32, 32), np.nan, np.float32))
    np.save(f / "objects.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    np.savez(f / "two_arrays.npz", a=np.zeros((20, 32, 32), np.uint8), b=np.zeros((20, 32, 32), np.uint8))
    np.savez(f / "empty.npz")
    (f / "text.npy").write_text("these are not frames\n")
    (f / "zero_bytes.npy").write_bytes(b"")
    (f / "truncated.npz").write_bytes((tiny_data / "images.npz").read_bytes()[:200])
    (f / "images.tif").write_bytes(b"II*\x00")
    (f / "empty_dir").mkdir()
    (f / "list_empty.txt").write_text("# nothing here\n")
    (f / "list_missing.txt").write_text("no_such_dir\n")
    # ---- datasets with bad metadata (the images are good)
    for name, meta in {
        "rows": "body_angle_deg\n1\n2\n",
        "text_column": "body_angle_deg,colour\n" + "".join(f"{i},red\n" for i in range(160)),
        "empty_meta": "",
    }.items():
        d = f / f"meta_{name}"
        d.mkdir()
        shutil.copy(tiny_data / "images.npz", d / "images.npz")
        (d / "metadata.csv").write_text(meta)
    # ---- config files
    (f / "binary.yaml").write_bytes(bytes(range(256)))
    (f / "folder.yaml").mkdir()
    np.savez(f / "config.npz", a=np.zeros(3))
    (f / "list.yaml").write_text("- 1\n- 2\n")
    (f / "unknown.yaml").write_text("trian: {epochs: 3}\n")
    (f / "wrong_type.yaml").write_text("train: {epochs: three}\n")
    (f / "bad_yaml.yaml").write_text("train: {epochs: [\n")
    (f / "python.yaml").write_text("train: !!python/object/apply:os.system ['echo hi']\n")
    (f / "study_decoder.yaml").write_text("decoders: [foo:16]\n")
    (f / "study_big.yaml").write_text("decoders: ['pca:99999']\n")
    (f / "study_method.yaml").write_text("latent_method: foo\n")
    (f / "study_run.yaml").write_text("run: {train: {lr: -1}}\n")
    (f / "study_both.yaml").write_text("epochs: 3\nrun: {train: {epochs: 4}}\n")
    (f / "study_unknown.yaml").write_text("epoch: 3\n")
    # ---- codes for decode
    np.save(f / "codes_wrong_dim.npy", np.zeros((4, 3), np.float32))
    np.save(f / "codes_empty.npy", np.zeros((0, 16), np.float32))
    np.save(f / "codes_nan.npy", np.full((4, 16), np.nan, np.float32))
    np.save(f / "codes_complex.npy", np.zeros((4, 16), np.complex64))
    np.save(f / "codes_3d.npy", np.zeros((4, 16, 2), np.float32))
    (f / "codes.txt").write_text("1 2 3\n")
    np.save(f / "codes_ok.npy", np.zeros((4, 16), np.float32))
    # ---- pose files
    (f / "poses.txt").write_text("frame,x,y\n0,1,2\n")
    (f / "poses_empty.csv").write_text("")
    (f / "poses_header.csv").write_text("a,b,c\n1,2,3\n")
    (f / "poses_bad.h5").write_bytes(b"not hdf5 at all")
    # ---- outputs that already exist
    (f / "a_file").write_text("not a folder")
    np.save(f / "existing_codes.npy", np.zeros((2, 16), np.float32))
    np.savez(f / "existing_frames.npz", images=np.zeros((2, 32, 32), np.uint8))
    # ---- run folders, each damaged one way
    runs = root / "runs"
    runs.mkdir()
    decoder = aelens.train(
        quick_config(tiny_data, "decoder", **{"embedding.method": "pca", "embedding.dim": 4}), out=runs / "decoder"
    )
    r = _copy_run(tiny_ae, runs / "no_manifest")
    (r / "manifest.json").unlink()
    r = _copy_run(tiny_ae, runs / "manifest_list")
    (r / "manifest.json").write_text("[1, 2]")
    r = _copy_run(tiny_ae, runs / "manifest_garbage")
    (r / "manifest.json").write_text("{not json")
    r = _copy_run(tiny_ae, runs / "manifest_shape")
    m = json.loads((r / "manifest.json").read_text())
    (r / "manifest.json").write_text(json.dumps({**m, "image_shape": "big"}))
    r = _copy_run(tiny_ae, runs / "manifest_kind")
    (r / "manifest.json").write_text(json.dumps({**m, "kind": "gan"}))
    r = _copy_run(tiny_ae, runs / "no_weights")
    (r / "model.safetensors").unlink()
    r = _copy_run(tiny_ae, runs / "truncated_weights")
    (r / "model.safetensors").write_bytes((tiny_ae / "model.safetensors").read_bytes()[:100])
    r = _copy_run(tiny_ae, runs / "nan_weights")  # NaN planted, the manifest's hash left as it was
    state = load_state_dict(r / "model.safetensors")
    state["encoder.fc1.1.weight"][:] = float("nan")
    save_tensors(r / "model.safetensors", state)
    r = _copy_run(tiny_ae, runs / "split_range")
    np.savez(r / "split.npz", train=np.arange(10), val=np.arange(10, 20), test=np.array([5000, 5001]))
    r = _copy_run(decoder, runs / "reducer_json")
    (r / "reducer" / "reducer.json").write_text("{oops")
    (root / "cwd").mkdir()
    return SimpleNamespace(root=root, data=tiny_data, ae=tiny_ae, decoder=decoder)


def _state(*folders: Path) -> dict:
    """Every path under ``folders``, with each file's size and modification time: a write, a new file or folder, or
    one left behind changes it (a temporary folder made and removed again does not)."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            st = p.stat()
            out[str(p)] = (st.st_size, st.st_mtime_ns) if p.is_file() else "folder"
    return out


T, D, AE = ["train", "ae", "--data", "{data}", "--out", "{out}"], "{data}", "{ae}"
DEC = ["train", "decoder", "--data", "{data}", "--out", "{out}", "--embedding", "pca", "--dim", "4"]
TAG = ["train", "tagger", "--data", "{data}", "--out", "{out}"]
F = "{files}"

CASES: list[tuple[str, list[str], str]] = [
    # ------------------------------------------------------------------ training options, checked before any work
    ("epochs-0", T + ["--epochs", "0"], "--epochs must be at least 1, got 0"),
    ("epochs-negative", T + ["--epochs", "-3"], "--epochs must be at least 1, got -3"),
    ("epochs-text", T + ["--epochs", "abc"], "Invalid value for '--epochs'"),
    ("batch-0", T + ["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    ("lr-0", T + ["--lr", "0"], "--lr must be a positive number up to 10, got 0.0"),
    ("lr-negative", T + ["--lr", "-1"], "--lr must be a positive number up to 10, got -1.0"),
    ("lr-inf", T + ["--lr", "inf"], "--lr must be a positive number up to 10, got inf"),
    ("lr-nan", T + ["--lr", "nan"], "--lr must be a positive number up to 10, got nan"),
    ("lr-huge", T + ["--lr", "1e6"], "--lr must be a positive number up to 10, got 1000000.0"),
    ("lr-schedule-word", T + ["--lr-schedule", "bogus"], "--lr-schedule must be cosine, none or step:EPOCHS:GAMMA"),
    ("lr-schedule-step-0", T + ["--lr-schedule", "step:0:0.1"], "--lr-schedule must be cosine, none or step"),
    ("lr-schedule-gamma-2", T + ["--lr-schedule", "step:5:2"], "--lr-schedule must be cosine, none or step"),
    ("latent-0", T + ["--latent-dim", "0"], "--latent-dim must be at least 1, got 0"),
    ("val-0", T + ["--val-fraction", "0"], "--val-fraction must be in (0, 1), got 0.0"),
    ("val-1", T + ["--val-fraction", "1"], "--val-fraction must be in (0, 1), got 1.0"),
    ("test-negative", T + ["--test-fraction", "-0.1"], "--test-fraction must be in [0, 1), got -0.1"),
    ("fractions-sum", T + ["--val-fraction", "0.6", "--test-fraction", "0.5"], "--test-fraction must be below 1"),
    ("seed-negative", T + ["--seed", "-1"], "--seed must be an integer from 0 to 2^32 - 1, got -1"),
    ("seed-huge", T + ["--seed", "99999999999999"], "--seed must be an integer from 0 to 2^32 - 1"),
    ("split-word", T + ["--split", "bogus"], "--split must be auto, random, blocked or group:COLUMN, got 'bogus'"),
    ("split-group-empty", T + ["--split", "group:"], "--split must be auto, random, blocked or group:COLUMN"),
    ("split-group-missing", T + ["--split", "group:nosuch"], "nosuch"),
    ("purge-negative", T + ["--purge", "-1"], "--purge must be 0 or more frames, got -1"),
    ("checkpoint-every-0", T + ["--checkpoint-every", "0"], "--checkpoint-every must be at least 1, got 0"),
    ("val-every-0", T + ["--val-every", "0"], "--val-every must be at least 1, got 0"),
    ("noise-word", T + ["--noise", "bogus"], "--noise"),
    ("noise-gaussian-negative", T + ["--noise", "gaussian:-1"], "--noise"),
    ("noise-gaussian-inf", T + ["--noise", "gaussian:inf"], "--noise: 'gaussian:inf' is out of range"),
    ("noise-poisson-0", T + ["--noise", "poisson:0"], "--noise"),
    ("noise-poisson-inf", T + ["--noise", "poisson:inf"], "--noise: 'poisson:inf' is out of range"),
    ("noise-saltpepper-2", T + ["--noise", "saltpepper:2"], "--noise"),
    ("noise-no-value", T + ["--noise", "gaussian:"], "--noise"),
    ("precision", T + ["--precision", "fp16"], "--precision must be auto, bf16 or fp32, got 'fp16'"),
    ("threads-negative", T + ["--threads", "-4"], "--threads must be 0 (one per physical core) or more, got -4"),
    ("accelerator-tpu", T + ["--accelerator", "tpu"], "--accelerator must be auto, cpu, gpu, cuda or mps, got 'tpu'"),
    ("devices-word", T + ["--devices", "abc"], "--devices must be a number of devices (1, 2, ...) or auto"),
    ("devices-0", T + ["--devices", "0"], "--devices must be a number of devices (1, 2, ...) or auto, got '0'"),
    ("num-nodes-0", T + ["--num-nodes", "0"], "--num-nodes must be at least 1, got 0"),
    ("strategy", T + ["--strategy", "bogus"], "--strategy must be auto or ddp"),
    ("snapshots-per-epoch-0", T + ["--snapshots-per-epoch", "0"], "--snapshots-per-epoch must be at least 1, got 0"),
    ("snapshot-max-images-1", T + ["--snapshot-max-images", "1"], "--snapshot-max-images must be at least 2, got 1"),
    ("snapshot-layers", T + ["--snapshot-layers", "fc3"], "snapshots.layers must be fc1 or fc2, got 'fc3'"),
    ("snapshot-schedule", T + ["--snapshot-schedule", "sometimes"], "--snapshot-schedule must be early or every"),
    ("unknown-option", T + ["--bogus"], "No such option: --bogus"),
    ("extra-argument", T + ["extra"], "unexpected extra argument"),
    ("no-data", ["train", "ae", "--out", "{out}"], "--data is required"),
    ("resume-missing", ["train", "ae", "--resume", "{root}/nope"], "nope"),
    ("resume-not-a-run", ["train", "ae", "--resume", F + "/empty_dir"], "empty_dir"),
    ("resume-decoder-as-ae", ["train", "ae", "--resume", "{decoder}"], "a decoder run; resume it with aelens train"),
    ("resume-ae-as-tagger", ["train", "tagger", "--resume", AE], "an ae run; resume it with aelens train ae"),
    ("resume-no-more-epochs", ["train", "ae", "--resume", AE], "already finished"),
    ("out-existing-run", T[:4] + ["--out", AE], "already"),
    # ------------------------------------------------------------------ decoder and tagger options
    ("embedding-word", DEC + ["--embedding", "foo"], "foo"),
    ("dim-0", DEC + ["--dim", "0"], "--dim must be at least 1, got 0"),
    ("dim-too-big", DEC + ["--dim", "99999"], "99999"),
    ("umap-neighbors-0", DEC + ["--embedding", "umap", "--umap-neighbors", "0"], "--umap-neighbors must be at least 2"),
    ("umap-neighbors-1", DEC + ["--embedding", "umap", "--umap-neighbors", "1"], "--umap-neighbors must be at least 2"),
    ("umap-min-dist", DEC + ["--embedding", "umap", "--umap-min-dist", "-1"], "--umap-min-dist must be 0 or more"),
    ("umap-min-dist-nan", DEC + ["--embedding", "umap", "--umap-min-dist", "nan"], "--umap-min-dist must be 0 or more"),
    ("umap-fit-max-1", DEC + ["--embedding", "umap", "--umap-fit-max", "1"], "--umap-fit-max must be at least"),
    (
        "umap-pca-negative",
        DEC + ["--embedding", "umap", "--umap-pca", "-1"],
        "--umap-pca must be 0 (raw pixels) or more",
    ),
    ("tagger-target-missing", TAG + ["--target", "nosuch"], "nosuch"),
    ("tagger-kind", TAG + ["--kind", "foo"], "--kind must be angle or linear, got 'foo'"),
    ("tagger-target-vector-3", TAG + ["--target-vector", "x,y,z"], "--target-vector must be 2 columns"),
    ("tagger-unfreeze", TAG + ["--unfreeze", "some"], "--unfreeze must be a number of layers"),
    ("tagger-augment", TAG + ["--augment", "bogus"], "--augment"),
    ("tagger-augment-part", TAG + ["--augment", "rotate,bogus"], "bogus"),
    ("tagger-init-missing", TAG + ["--init-from", "{root}/nope"], "nope"),
    ("tagger-init-not-a-run", TAG + ["--init-from", F + "/empty_dir"], "empty_dir"),
    ("tagger-init-decoder", TAG + ["--init-from", "{decoder}"], "decoder"),
    ("tagger-init-damaged", TAG + ["--init-from", "{runs}/truncated_weights"], "truncated_weights"),
    # ------------------------------------------------------------------ data files
    ("data-missing", ["train", "ae", "--data", "{root}/nope", "--out", "{out}"], "nope"),
    ("data-empty-dir", ["train", "ae", "--data", F + "/empty_dir", "--out", "{out}"], "empty_dir"),
    ("data-text-npy", ["train", "ae", "--data", F + "/text.npy", "--out", "{out}"], "text.npy"),
    ("data-zero-bytes", ["train", "ae", "--data", F + "/zero_bytes.npy", "--out", "{out}"], "zero_bytes.npy"),
    ("data-one-d", ["train", "ae", "--data", F + "/one_d.npy", "--out", "{out}"], "one_d.npy"),
    ("data-five-d", ["train", "ae", "--data", F + "/five_d.npy", "--out", "{out}"], "five_d.npy"),
    ("data-zero-channels", ["train", "ae", "--data", F + "/zero_channels.npy", "--out", "{out}"], "0 channels"),
    ("data-header-lies", ["train", "ae", "--data", F + "/fewer.npy", "--out", "{out}"], "header was edited"),
    ("data-tiny-frames", ["train", "ae", "--data", F + "/tiny_frames.npy", "--out", "{out}"], "tiny_frames.npy"),
    ("data-one-frame", ["train", "ae", "--data", F + "/one_frame.npy", "--out", "{out}"], "one_frame.npy"),
    ("data-complex", ["train", "ae", "--data", F + "/complex.npy", "--out", "{out}"], "complex.npy"),
    ("data-nan", ["train", "ae", "--data", F + "/nan.npy", "--out", "{out}"], "nan.npy"),
    ("data-pickled-objects", ["train", "ae", "--data", F + "/objects.npy", "--out", "{out}"], "objects.npy"),
    ("data-two-arrays", ["train", "ae", "--data", F + "/two_arrays.npz", "--out", "{out}"], "--key"),
    ("data-key-missing", ["train", "ae", "--data", F + "/two_arrays.npz", "--key", "c", "--out", "{out}"], "'c'"),
    ("data-empty-npz", ["train", "ae", "--data", F + "/empty.npz", "--out", "{out}"], "empty.npz"),
    ("data-truncated-npz", ["train", "ae", "--data", F + "/truncated.npz", "--out", "{out}"], "truncated.npz"),
    ("data-tif", ["train", "ae", "--data", F + "/images.tif", "--out", "{out}"], "images.tif"),
    ("data-list-empty", ["train", "ae", "--data", F + "/list_empty.txt", "--out", "{out}"], "lists no data paths"),
    ("data-list-missing", ["train", "ae", "--data", F + "/list_missing.txt", "--out", "{out}"], "no_such_dir"),
    ("data-twice", ["train", "ae", "--data", D, "--data", D, "--out", "{out}"], "is given twice"),
    ("data-shapes-differ", ["train", "ae", "--data", D, "--data", F + "/tiny_frames.npy", "--out", "{out}"], "8"),
    ("metadata-rows", TAG[:2] + ["--data", F + "/meta_rows", "--out", "{out}"], "metadata.csv"),
    ("metadata-text", TAG[:2] + ["--data", F + "/meta_text_column", "--out", "{out}"], "colour"),
    ("metadata-empty", TAG[:2] + ["--data", F + "/meta_empty_meta", "--out", "{out}"], "metadata.csv"),
    ("metadata-option-missing", T + ["--metadata", "{root}/nope.csv"], "nope.csv"),
    ("max-pixel-0", T + ["--max-pixel-value", "0"], "--max-pixel-value"),
    # ------------------------------------------------------------------ config files
    ("config-binary", T + ["--config", F + "/binary.yaml"], "binary.yaml: not a YAML text file"),
    ("config-folder", T + ["--config", F + "/folder.yaml"], "folder.yaml: is a directory, expected a YAML file"),
    ("config-npz", T + ["--config", F + "/config.npz"], "config.npz: not a YAML text file"),
    ("config-list", T + ["--config", F + "/list.yaml"], "list.yaml"),
    ("config-unknown", T + ["--config", F + "/unknown.yaml"], "unknown key(s) trian"),
    ("config-wrong-type", T + ["--config", F + "/wrong_type.yaml"], "three"),
    ("config-bad-yaml", T + ["--config", F + "/bad_yaml.yaml"], "not valid YAML"),
    ("config-python-tag", T + ["--config", F + "/python.yaml"], "python.yaml"),
    ("config-missing", T + ["--config", "{root}/nope.yaml"], "nope.yaml"),
    # ------------------------------------------------------------------ run folders, damaged or foreign
    ("test-not-a-folder", ["test", "{root}/nope"], "nope"),
    ("test-empty-folder", ["test", F + "/empty_dir"], "empty_dir"),
    ("test-no-manifest", ["test", "{runs}/no_manifest"], "no_manifest"),
    ("test-manifest-list", ["test", "{runs}/manifest_list"], "manifest_list"),
    ("test-manifest-garbage", ["test", "{runs}/manifest_garbage"], "not valid JSON"),
    ("test-manifest-shape", ["test", "{runs}/manifest_shape"], "image_shape"),
    ("test-manifest-kind", ["test", "{runs}/manifest_kind"], "gan"),
    ("test-no-weights", ["test", "{runs}/no_weights"], "model.safetensors: missing, though the run finished"),
    ("test-truncated-weights", ["test", "{runs}/truncated_weights"], "its SHA-256 differs from the one manifest"),
    ("test-nan-weights", ["test", "{runs}/nan_weights"], "its SHA-256 differs from the one manifest.json recorded"),
    ("encode-nan-weights", ["encode", "{runs}/nan_weights", "--out", "{out}.npy"], "SHA-256 differs"),
    ("test-split-range", ["test", "{runs}/split_range"], "split.npz"),
    ("test-reducer-json", ["test", "{runs}/reducer_json"], "reducer.json"),
    ("test-foreign-data", ["test", AE, "--data", F + "/tiny_frames.npy"], "tiny_frames.npy"),
    ("latent-not-a-run", ["latent", F + "/empty_dir", "--out", "{out}"], "empty_dir"),
    ("latent-manifest-list", ["latent", "{runs}/manifest_list", "--out", "{out}"], "manifest_list"),
    ("encode-no-weights", ["encode", "{runs}/no_weights", "--out", "{out}.npy"], "model.safetensors"),
    ("compare-damaged", ["compare", AE, "{runs}/truncated_weights", "--out", "{out}"], "model.safetensors"),
    ("compare-recon-damaged", ["compare-recon", AE, "{runs}/manifest_garbage", "--out", "{out}"], "not valid JSON"),
    # ------------------------------------------------------------------ output paths
    ("out-file-train", T[:4] + ["--out", F + "/a_file"], "a_file"),
    ("out-file-decoder", DEC[:4] + ["--out", F + "/a_file", "--embedding", "pca", "--dim", "4"], "a_file"),
    ("out-file-latent", ["latent", AE, "--out", F + "/a_file"], "a_file: exists and is not a folder"),
    ("out-file-compare", ["compare", AE, "{decoder}", "--out", F + "/a_file"], "a_file: exists and is not a folder"),
    ("out-file-recon", ["compare-recon", AE, "--out", F + "/a_file"], "a_file: exists and is not a folder"),
    ("out-file-study", ["study", "--data", D, "--out", F + "/a_file"], "a_file: exists and is not a folder"),
    ("out-file-demo", ["demo", "--out", F + "/a_file"], "a_file: exists and is not a folder"),
    ("out-file-bench", ["bench", "--out", F + "/a_file"], "a_file: exists and is not a folder"),
    ("out-file-synth", ["data", "synth", F + "/a_file"], "a_file: exists and is not a folder"),
    ("out-file-sweep", ["sweep", "unfreeze", "--data", D, "--init-from", AE, "--out", F + "/a_file"], "a_file"),
    ("encode-existing", ["encode", AE, "--out", F + "/existing_codes.npy"], "already exists"),
    ("encode-not-npy", ["encode", AE, "--out", "{out}.txt"], "name the file *.npy"),
    ("decode-existing", ["decode", AE, F + "/codes_ok.npy", "--out", F + "/existing_frames.npz"], "already exists"),
    ("decode-not-npz", ["decode", AE, F + "/codes_ok.npy", "--out", "{out}.png"], "name the file *.npz"),
    # ------------------------------------------------------------------ other commands' options
    ("latent-max-images-0", ["latent", AE, "--max-images", "0", "--out", "{out}"], "--max-images must be at least"),
    ("latent-max-images-neg", ["latent", AE, "--max-images", "-5", "--out", "{out}"], "--max-images must be at"),
    ("latent-max-images-1", ["latent", AE, "--max-images", "1", "--out", "{out}"], "--max-images must be at least"),
    ("latent-layer", ["latent", AE, "--layer", "fc9", "--out", "{out}"], "fc9"),
    ("latent-method", ["latent", AE, "--method", "foo", "--out", "{out}"], "foo"),
    ("latent-fit", ["latent", AE, "--evolution", "--fit", "bogus", "--out", "{out}"], "bogus"),
    ("latent-color-by", ["latent", AE, "--color-by", "nosuch", "--out", "{out}"], "nosuch"),
    ("compare-one-run", ["compare", AE, "--out", "{out}"], "at least two run directories"),
    ("compare-max-images-0", ["compare", AE, "{decoder}", "--max-images", "0", "--out", "{out}"], "--max-images"),
    ("compare-layer", ["compare", AE, AE, "--layer", "fc9", "--out", "{out}"], "fc9"),
    ("encode-layer", ["encode", AE, "--layer", "fc9", "--out", "{out}.npy"], "fc9"),
    ("decode-wrong-dim", ["decode", AE, F + "/codes_wrong_dim.npy", "--out", "{out}.npz"], "codes_wrong_dim.npy"),
    ("decode-no-rows", ["decode", AE, F + "/codes_empty.npy", "--out", "{out}.npz"], "holds 0 codes"),
    ("decode-nan", ["decode", AE, F + "/codes_nan.npy", "--out", "{out}.npz"], "NaN or infinite"),
    ("decode-complex", ["decode", AE, F + "/codes_complex.npy", "--out", "{out}.npz"], "a real N x D array"),
    ("decode-3d", ["decode", AE, F + "/codes_3d.npy", "--out", "{out}.npz"], "codes_3d.npy"),
    ("decode-text", ["decode", AE, F + "/codes.txt", "--out", "{out}.npz"], "codes.txt"),
    ("decode-missing", ["decode", AE, "{root}/nope.npy", "--out", "{out}.npz"], "nope.npy"),
    ("decode-tagger-less", ["decode", "{runs}/manifest_kind", F + "/codes_ok.npy", "--out", "{out}.npz"], "gan"),
    ("synth-n-0", ["data", "synth", "{out}", "--n", "0"], "--n must be at least 2 frames, got 0"),
    ("synth-n-1", ["data", "synth", "{out}", "--n", "1"], "--n must be at least 2 frames, got 1"),
    ("synth-size-8", ["data", "synth", "{out}", "--size", "8"], "--size must be from 24 to 512 pixels, got 8"),
    ("synth-size-huge", ["data", "synth", "{out}", "--size", "100000"], "--size must be from 24 to 512 pixels"),
    ("synth-too-many", ["data", "synth", "{out}", "--n", "10000000", "--size", "512"], "GiB of frames"),
    ("synth-seed", ["data", "synth", "{out}", "--seed", "-1"], "--seed must be an integer from 0 to 2^32 - 1"),
    ("synth-animals", ["data", "synth", "{out}", "--video", "--animals", "0"], "--animals must be at least 1"),
    ("demo-n-0", ["demo", "--out", "{out}", "--n", "0"], "--n must be at least 100 frames, got 0"),
    ("demo-epochs-0", ["demo", "--out", "{out}", "--epochs", "0"], "--epochs must be at least 1, got 0"),
    ("sweep-no-init", ["sweep", "unfreeze", "--data", D, "--out", "{out}"], "--init-from AE_RUN_DIR is required"),
    ("sweep-init-decoder", ["sweep", "unfreeze", "--data", D, "--init-from", "{decoder}", "--out", "{out}"], "decoder"),
    ("sweep-init-missing", ["sweep", "unfreeze", "--data", D, "--init-from", "{root}/nope", "--out", "{out}"], "nope"),
    (
        "sweep-epochs-0",
        ["sweep", "unfreeze", "--data", D, "--init-from", AE, "--epochs", "0", "--out", "{out}"],
        "--epochs",
    ),
    # ------------------------------------------------------------------ study settings, all checked before any work
    ("study-no-data", ["study", "--out", "{out}"], "--data is required"),
    ("study-epochs-0", ["study", "--data", D, "--out", "{out}", "--epochs", "0"], "--epochs must be at least 1, got 0"),
    ("study-split", ["study", "--data", D, "--out", "{out}", "--split", "bogus"], "--split must be auto, random"),
    (
        "study-latent-0",
        ["study", "--data", D, "--out", "{out}", "--latent-dim", "0"],
        "--latent-dim must be at least 1",
    ),
    ("study-augment", ["study", "--data", D, "--out", "{out}", "--augment", "bogus"], "--augment"),
    ("study-purge", ["study", "--data", D, "--out", "{out}", "--purge", "-2"], "--purge must be 0 or more frames"),
    ("study-decoder-method", ["study", "--data", D, "--out", "{out}", "--config", F + "/study_decoder.yaml"], "foo"),
    ("study-decoder-dim", ["study", "--data", D, "--out", "{out}", "--config", F + "/study_big.yaml"], "99999"),
    ("study-latent-method", ["study", "--data", D, "--out", "{out}", "--config", F + "/study_method.yaml"], "foo"),
    ("study-run-section", ["study", "--data", D, "--out", "{out}", "--config", F + "/study_run.yaml"], "--lr must be"),
    ("study-shorthand-twice", ["study", "--data", D, "--out", "{out}", "--config", F + "/study_both.yaml"], "both"),
    ("study-unknown-key", ["study", "--data", D, "--out", "{out}", "--config", F + "/study_unknown.yaml"], "epoch"),
    ("study-transfer-missing", ["study", "--data", D, "--out", "{out}", "--transfer", "{root}/nope"], "nope"),
    ("study-transfer-shape", ["study", "--data", D, "--out", "{out}", "--transfer", F + "/tiny_frames.npy"], "8"),
    ("study-bad-data", ["study", "--data", F + "/zero_bytes.npy", "--out", "{out}"], "zero_bytes.npy"),
    # ------------------------------------------------------------------ import from video + poses
    ("import-poses-missing", ["data", "import", "--out", "{out}", "--poses", "{root}/nope.slp"], "nope.slp"),
    ("import-poses-type", ["data", "import", "--out", "{out}", "--poses", F + "/poses.txt"], "unsupported pose file"),
    ("import-poses-empty", ["data", "import", "--out", "{out}", "--poses", F + "/poses_empty.csv"], "poses_empty"),
    ("import-poses-header", ["data", "import", "--out", "{out}", "--poses", F + "/poses_header.csv"], "frame,x,y"),
    ("import-poses-h5", ["data", "import", "--out", "{out}", "--poses", F + "/poses_bad.h5"], "poses_bad.h5"),
    (
        "import-video-count",
        ["data", "import", "--out", "{out}", "--poses", F + "/poses_header.csv", "--video", "a", "--video", "b"],
        "--video given 2 times",
    ),  # fmt: skip
    ("import-size", ["data", "import", "--out", "{out}", "--poses", F + "/poses.txt", "--size", "8"], "--size"),
    (
        "import-channels",
        ["data", "import", "--out", "{out}", "--poses", F + "/poses.txt", "--channels", "2"],
        "--channels must be 1 or 3, got 2",
    ),  # fmt: skip
    ("import-every", ["data", "import", "--out", "{out}", "--poses", F + "/poses.txt", "--every", "0"], "--every"),
    (
        "import-start-stop",
        ["data", "import", "--out", "{out}", "--poses", F + "/poses.txt", "--start", "5", "--stop", "3"],
        "--start/--stop",
    ),  # fmt: skip
    ("import-arena", ["data", "import", "--out", "{out}", "--poses", F + "/poses.txt", "--arena", "1,2"], "--arena"),
    ("import-fps", ["data", "import", "--out", "{out}", "--poses", F + "/poses.txt", "--fps", "0"], "--fps"),
    ("import-jobs", ["data", "import", "--out", "{out}", "--poses", F + "/poses.txt", "--jobs", "0"], "--jobs"),
    ("import-window", ["data", "import", "--out", "{out}", "--poses", F + "/poses.txt", "--window", "1"], "--window"),
    (
        "import-min-score",
        ["data", "import", "--out", "{out}", "--poses", F + "/poses.txt", "--min-score", "nan"],
        "--min-score",
    ),  # fmt: skip
    ("import-out-file", ["data", "import", "--out", F + "/a_file", "--poses", F + "/poses.txt"], "a_file"),
]


def assert_refused(bed, capsys, monkeypatch, name: str, args: list[str], message: str, **more) -> None:
    """Run ``args`` (``{root}``, ``{files}``, ``{runs}``, ``{data}``, ``{ae}``, ``{decoder}``, ``{out}`` and ``more``
    filled in) and check the refusal: exit 2, one line ``aelens: error: ...`` holding ``message``, no traceback,
    no file of the bed, the data or the AE written or changed."""
    monkeypatch.chdir(bed.root / "cwd")  # commands with a default output folder would write here
    names = {"root": bed.root, "files": bed.root / "files", "runs": bed.root / "runs", "data": bed.data}
    names.update(ae=bed.ae, decoder=bed.decoder, out=bed.root / "out" / name, **more)
    argv = [a.format(**names) for a in args]
    watched = (bed.root, bed.data, bed.ae)
    before = _state(*watched)
    code, stdout, err = run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}: {err or stdout}"
    assert len(lines) == 1 and "Traceback" not in err + stdout, err
    assert lines[0].startswith("aelens: error: "), lines[0]
    assert message.format(**names) in lines[0]
    assert _state(*watched) == before, "files were written or changed"


@pytest.mark.parametrize("name, args, message", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(bed, capsys, monkeypatch, name, args, message):
    assert_refused(bed, capsys, monkeypatch, name, args, message)


def test_there_are_at_least_150_cases_in_every_category():
    assert len(CASES) >= 150 and len({c[0] for c in CASES}) == len(CASES)
