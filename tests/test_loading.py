"""Data layer: every bad input named in the foundation issue gets one precise, actionable error."""

import numpy as np
import pytest

from aelens.config import RunConfig
from aelens.data.loading import load_conditions, load_dataset
from aelens.errors import AelensError
from conftest import make_images, run_cli


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def imgs(n=4, h=32, w=32, dtype=np.uint8):
    return (np.random.default_rng(0).uniform(0, 255, size=(n, h, w))).astype(dtype)


def test_reads_npy_memory_mapped_and_scales_uint8(tmp_path):
    path = make_images(tmp_path, "a.npy", imgs())
    ds = load_dataset(path)
    assert isinstance(ds.images, np.memmap)
    assert ds.shape == (1, 32, 32) and ds.scale == 255.0
    batch = ds.batch(np.array([0, 2]))
    assert batch.dtype.is_floating_point and float(batch.max()) <= 1.0
    np.testing.assert_array_equal((batch.numpy() * 255).round().astype(np.uint8)[:, 0], imgs()[[0, 2]])


def test_float_images_left_as_is_unless_max_pixel_value(tmp_path):
    arr = imgs(dtype=np.float32)
    path = make_images(tmp_path, "f.npy", arr)
    assert load_dataset(path).scale == 1.0
    ds = load_dataset(path, max_pixel_value=255.0)
    np.testing.assert_allclose(ds.batch(slice(0, 4)).numpy()[:, 0], arr / 255.0, rtol=1e-6)


def test_multichannel_and_npz_keys(tmp_path):
    arr = np.zeros((3, 2, 30, 30), dtype=np.uint8)
    p = tmp_path / "m.npz"
    np.savez(p, frames=arr, other=np.zeros(3))
    assert load_dataset(p, key="frames").shape == (2, 30, 30)
    np.savez(tmp_path / "one.npz", whatever=arr)
    assert load_dataset(tmp_path / "one.npz").shape == (2, 30, 30)
    np.savez(tmp_path / "named.npz", images=arr, extra=np.zeros(3))
    assert load_dataset(tmp_path / "named.npz").n == 3


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda d: d / "missing.npy", r"missing\.npy: file not found"),
        (lambda d: write(d / "x.png", b"x"), r"unsupported file type '\.png'"),
        (
            lambda d: np.savez(d / "two.npz", a=imgs(), b=imgs()) or d / "two.npz",
            r"holds several arrays \(a, b\); pass --key",
        ),
        (
            lambda d: (
                np.save(d / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True) or d / "obj.npy"
            ),
            r"object \(pickled\) array",
        ),
        (
            lambda d: make_images(d, "r1.npy", np.zeros(10, np.uint8)),
            r"must be N x H x W or N x C x H x W, got shape \(10,\)",
        ),
        (lambda d: make_images(d, "r5.npy", np.zeros((2, 1, 1, 30, 30), np.uint8)), r"got shape \(2, 1, 1, 30, 30\)"),
        (lambda d: make_images(d, "one.npy", imgs(n=1)), r"need at least 2 images, got 1"),
        (lambda d: make_images(d, "small.npy", imgs(h=20, w=40)), r"at least 24 x 24 pixels, got 20 x 40"),
        (
            lambda d: make_images(
                d, "nan.npy", np.where(np.arange(4 * 32 * 32).reshape(4, 32, 32) == 3000, np.nan, 0.5)
            ),
            r"NaN or infinite pixels \(first in image 2\)",
        ),
        (
            lambda d: make_images(d, "str.npy", np.array([["a"] * 30] * 30 * 3).reshape(3, 30, 30)),
            r"dtype <U1; expected uint8 or float",
        ),
        (lambda d: make_images(d, "nhwc.npy", np.zeros((4, 30, 30, 3), np.uint8)), r"look channels-last"),
    ],
    ids=[
        "missing",
        "extension",
        "npz-several",
        "pickled",
        "rank1",
        "rank5",
        "one-image",
        "too-small",
        "nan",
        "strings",
        "nhwc",
    ],
)
def test_bad_images(tmp_path, setup, message):
    path = setup(tmp_path)
    with pytest.raises(AelensError, match=message) as err:
        load_dataset(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_metadata_csv_and_npy_with_names(tmp_path):
    (tmp_path / "m.csv").write_text("a,body_angle_deg\n1,10\n2,\n3,30\n4,40\n")
    c = load_conditions(tmp_path / "m.csv", 4)
    assert c.names == ["a", "body_angle_deg"] and np.isnan(c.values[1, 1])
    assert c.is_angle("body_angle_deg") and not c.is_angle("a")
    np.save(tmp_path / "m.npy", np.arange(12.0).reshape(4, 3))
    c = load_conditions(tmp_path / "m.npy", 4, names={2: "dist_from_center", 0: "heading"}, angle_columns=("heading",))
    assert c.names == ["heading", "dist_from_center"]
    np.testing.assert_array_equal(c.column("dist_from_center"), [2, 5, 8, 11])
    assert c.is_angle("heading")


@pytest.mark.parametrize(
    "content,kwargs,message",
    [
        ("a,b\n1,2\n3,4\n", {}, r"2 metadata rows but 4 images"),
        ("a,b\n1,2\n3,x\n5,6\n7,8\n", {}, r"column 'b' row 3: 'x' is not a number"),
        (
            "a,b\n1,2\n3,4\n5,6\n7,8\n",
            {"angle_columns": ("heading",)},
            r"'heading' is not a column of .*m\.csv \(available: a, b\)",
        ),
        (
            "a,b\n1,2\n3,4\n5,6\n7,8\n",
            {"names": {5: "speed"}},
            r"conditions: column 5 \('speed'\) is not in .*which has 2 columns",
        ),
    ],
    ids=["row-count", "non-numeric", "angle-column-absent", "named-column-absent"],
)
def test_bad_metadata(tmp_path, content, kwargs, message):
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(AelensError, match=message):
        load_conditions(tmp_path / "m.csv", 4, **kwargs)


def test_unknown_condition_lists_available(tiny_data):
    ds = load_dataset(tiny_data)
    with pytest.raises(AelensError, match=r"no condition column 'heading'; available: frame, x, y, body_angle_deg"):
        ds.conditions.column("heading")


def test_data_directory_with_clean_frames(tiny_data):
    ds = load_dataset(tiny_data)
    assert ds.n == 160 and ds.clean is not None and ds.conditions is not None
    assert ds.batch(np.arange(3), clean=True).shape == (3, 1, 32, 32)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--val-fraction", "1.5"], "--val-fraction must be in (0, 1), got 1.5"),
        (["--val-fraction", "0"], "--val-fraction must be in (0, 1), got 0.0"),
        (["--noise", "speckle:0.1"], "--noise: unknown noise 'speckle:0.1'"),
        (["--noise", "gaussian:abc"], "--noise: 'gaussian:abc' needs a number"),
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["--lr-schedule", "linear"], "--lr-schedule must be cosine, none or step:EPOCHS:GAMMA"),
    ],
)
def test_bad_options_exit_2_with_one_line(tiny_data, tmp_path, capsys, args, message):
    code, out, err = run_cli(["train", "ae", "--data", tiny_data, "--out", tmp_path / "r", *args], capsys)
    assert code == 2
    assert err.strip() == f"aelens: error: {message}" or err.strip().startswith(f"aelens: error: {message}")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_missing_data_file_exits_2(tmp_path, capsys):
    code, _, err = run_cli(["train", "ae", "--data", tmp_path / "nope.npz"], capsys)
    assert code == 2 and err.strip() == f"aelens: error: {tmp_path / 'nope.npz'}: file not found"


def test_debug_shows_traceback(tmp_path, capsys):
    code, _, err = run_cli(["--debug", "train", "ae", "--data", tmp_path / "nope.npz"], capsys)
    assert code == 2 and "Traceback" in err


# --------------------------------------------------------------------------------------------- several inputs


def _session(folder, n, offset, size=28, npy=True, extra_col=None, session=None):
    """A data folder whose frame i carries its own id (offset + i) in pixel (0, 0) and in the `val` column."""
    folder.mkdir(parents=True)
    imgs = np.zeros((n, size, size), np.uint8)
    vals = offset + np.arange(n)
    imgs[:, 0, 0] = vals
    if npy:
        np.save(folder / "images.npy", imgs)
    else:
        np.savez(folder / "images.npz", images=imgs)
    header = ["frame", "val"] + ([extra_col] if extra_col else []) + (["session"] if session else [])
    lines = [",".join(header)]
    for i, v in enumerate(vals):
        row = [str(i), str(v)] + (["1.5"] if extra_col else []) + ([session] if session else [])
        lines.append(",".join(row))
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_several_inputs_keep_rows_aligned_with_their_conditions(tmp_path):
    from aelens.data.sessions import ConcatFrames, load_with_options

    a = _session(tmp_path / "day1", 30, 0, extra_col="speed")
    b = _session(tmp_path / "day2", 45, 100, npy=False)
    c = _session(tmp_path / "imported", 20, 200, session="mouse7")
    cfg = RunConfig().with_overrides({"data.path": [str(a), str(b), str(c)]})
    ds = load_with_options(cfg.data)
    assert isinstance(ds.images, ConcatFrames) and isinstance(ds.images.parts[0], np.memmap)  # nothing loaded
    assert ds.n == 95 and ds.conditions.names == ["session", "frame", "val", "speed"]
    assert ds.conditions.labels["session"] == ["day1", "day2", "mouse7"]  # directory names, or the import's names
    rng = np.random.default_rng(0)
    for idx in (rng.permutation(95)[:40], np.arange(25, 80), np.array([94, 0, 30, 29])):
        pixel = np.rint(ds.batch(idx).numpy()[:, 0, 0, 0] * 255)
        np.testing.assert_array_equal(pixel, ds.conditions.column("val")[idx])
    session = ds.conditions.column("session")
    np.testing.assert_array_equal(session, [0] * 30 + [1] * 45 + [2] * 20)
    speed = ds.conditions.column("speed")
    assert np.all(speed[:30] == 1.5) and np.isnan(speed[30:]).all()  # a column one session lacks is missing there


def test_a_text_file_lists_the_sessions(tmp_path):
    from aelens.data.sessions import expand_data_paths, load_with_options, resolve_data_paths

    _session(tmp_path / "s" / "a", 10, 0)
    _session(tmp_path / "s" / "b", 12, 50)
    listing = tmp_path / "s" / "sessions.txt"
    listing.write_text("# two days\na\n\nb  # the second\n")
    assert expand_data_paths(str(listing)) == [str(tmp_path / "s" / "a"), str(tmp_path / "s" / "b")]
    assert resolve_data_paths(str(listing)) == (str(tmp_path / "s" / "a"), str(tmp_path / "s" / "b"))
    ds = load_with_options(RunConfig().with_overrides({"data.path": str(listing)}).data)
    assert ds.n == 22 and ds.conditions.labels["session"] == ["a", "b"]


def test_several_inputs_bad_combinations(tmp_path):
    from aelens.data.sessions import expand_data_paths, load_datasets

    a = _session(tmp_path / "a", 10, 0)
    b = _session(tmp_path / "b", 10, 0, size=32)
    with pytest.raises(AelensError) as e:
        load_datasets([a, b])
    assert str(e.value) == f"{b}: images are 1x32x32 but {a} has 1x28x28; every --data input needs frames of one size"
    with pytest.raises(AelensError) as e:
        expand_data_paths([str(a), str(a)])
    assert str(e.value) == f"--data: {a} is given twice; each session once"
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(AelensError) as e:
        expand_data_paths(str(tmp_path / "empty.txt"))
    assert "lists no data paths" in str(e.value)
    twin = _session(tmp_path / "x" / "a", 10, 0)
    with pytest.raises(AelensError) as e:
        load_datasets([a, twin])
    assert str(e.value) == (
        f"{twin}: session name 'a' is used by another --data input; give the inputs distinct "
        "directory names or a session column"
    )


def test_train_with_repeated_data_records_every_session(tmp_path, capsys):
    a = _session(tmp_path / "a", 40, 0)
    b = _session(tmp_path / "b", 40, 100)
    out = tmp_path / "run"
    code, _, err = run_cli(
        [
            "train",
            "ae",
            "--data",
            a,
            "--data",
            b,
            "--epochs",
            "1",
            "--no-progress",
            "--out",
            out,
            "--no-snapshots",
            "--split",
            "group:session",
            "--val-fraction",
            "0.5",
            "--test-fraction",
            "0",
        ],
        capsys,
    )
    assert code == 0, err
    import yaml

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["data"]["path"] == [str(a.resolve()), str(b.resolve())]
    split = np.load(out / "split.npz")
    sides = [set(np.asarray(split[k]) // 40) for k in ("train", "val")]
    assert sides[0].isdisjoint(sides[1]) and sides[0] | sides[1] == {0, 1}  # one whole session each
    code, out_text, err = run_cli(["test", out], capsys)
    assert code == 0, err


def test_load_with_options_reads_own_and_other_data_the_same_way(tmp_path):
    """One function reads data the way a run does: its own data and another dataset (a transfer set, `aelens test
    --data`) get the same condition handling. No names ({} or None) keep every column; names select and rename."""
    import dataclasses

    from aelens.data.sessions import load_with_options
    from aelens.synthetic.arena import COLUMNS, synthesize, write_dataset

    own = write_dataset(tmp_path / "own", synthesize(40, seed=1, size=32))
    other = write_dataset(tmp_path / "other", synthesize(30, seed=2, size=32))
    data = RunConfig().with_overrides({"data.path": str(own)}).data
    assert data.conditions == {}
    for cfg in (data, dataclasses.replace(data, conditions=None)):
        assert load_with_options(cfg).condition_names() == list(COLUMNS)
        assert load_with_options(cfg, other).condition_names() == list(COLUMNS)
    named = dataclasses.replace(data, conditions={2: "second", 0: "first"})
    everything = load_with_options(data, other)
    picked = load_with_options(named, other)
    assert picked.condition_names() == ["first", "second"] == load_with_options(named).condition_names()
    np.testing.assert_array_equal(picked.conditions.column("first"), everything.conditions.column(COLUMNS[0]))
    np.testing.assert_array_equal(picked.conditions.column("second"), everything.conditions.column(COLUMNS[2]))
    assert load_with_options(data, other).n == 30 and load_with_options(data).n == 40
