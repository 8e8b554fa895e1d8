"""``aelens data import``: ground truth round trips on synthetic videos, every pose format, bad inputs with their exact
one-line errors (and nothing written), gaps, fragments, and the real SLEAP sessions in ../shared/raw when present."""

from __future__ import annotations

import csv
import json
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from aelens.data.loading import load_dataset
from aelens.errors import AelensError
from aelens.importing import kinematics as kin
from aelens.importing.importer import ImportOptions, crop, import_notes, import_video
from aelens.importing.poses import plain_pickle_labels, read_poses
from aelens.storage import NpyAppender
from aelens.synthetic.arena import Arena, render, simulate_trajectory
from aelens.synthetic.video import synthesize_video
from conftest import run_cli

RAW = Path(__file__).resolve().parents[2] / "shared" / "raw"
N = 48  # frames per synthetic video: seconds to render, encode and import
FORMATS = ["sleap-analysis-h5", "sleap-slp", "deeplabcut-csv", "deeplabcut-h5", "nwb"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[int, tuple[Path, dict]]:
    """{animals: (folder, written files)} for one and two animals."""
    out = {}
    for animals in (1, 2):
        folder = tmp_path_factory.mktemp(f"video{animals}")
        out[animals] = (folder, synthesize_video(folder, n=N, animals=animals, seed=5))
    return out


def truth_rows(folder: Path) -> np.ndarray:
    t = np.genfromtxt(folder / "truth.csv", delimiter=",", names=True)
    return t[np.lexsort((t["track"], t["frame"]))]


def angle_diff(a, b):
    return np.abs((np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0)


@pytest.mark.parametrize("animals", [1, 2])
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_matches_truth(videos, tmp_path, fmt, animals):
    folder, written = videos[animals]
    if fmt not in written:
        pytest.skip(
            f"{fmt} needs optional packages (sleap-io; pandas + tables; pynwb + ndx-pose) that are not installed"
        )
    out = import_video(written["video"], written[fmt], tmp_path / "data", progress=False)
    ds = load_dataset(out)
    c, t = ds.conditions, truth_rows(folder)
    assert ds.images.shape == (N * animals, 1, 50, 50)
    # rows line up with (frame, track) exactly, in frame order
    assert np.array_equal(c.column("frame"), t["frame"]) and np.array_equal(c.column("track"), t["track"])
    assert np.hypot(c.column("x") - t["x"], c.column("y") - t["y"]).max() < 1.0
    assert angle_diff(c.column("body_angle_deg"), t["body_angle_deg"]).max() < 2.0
    assert angle_diff(c.column("head_angle_deg"), t["head_angle_deg"]).max() < 2.0
    assert c.labels["session"] == ["video"]
    assert np.array_equal(c.column("time_s"), t["frame"] / 25.0)


def test_crops_are_centred_on_the_animal_in_the_pixels(videos, tmp_path):
    """At 1:1 scale the imported crops must match crops rendered straight from the true trajectory: the best
    whole-pixel shift between them is zero, so the centre is right to under a pixel."""
    folder, written = videos[1]
    out = import_video(
        written["video"],
        written["deeplabcut-csv"],
        tmp_path / "d",
        options=ImportOptions(window=50, size=50),
        progress=False,
    )
    got = load_dataset(out).images[:, 0].astype(np.float64)
    traj = simulate_trajectory(N, 5, Arena())
    _, clean = render(traj, 50, Arena(), seed=0)
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
    best = []
    for i in range(0, N, 6):
        ref = clean[i].astype(np.float64)
        err = [
            np.mean((np.roll(got[i], (dy, dx), axis=(0, 1))[3:-3, 3:-3] - ref[3:-3, 3:-3]) ** 2) for dy, dx in shifts
        ]
        best.append(shifts[int(np.argmin(err))])
    assert best == [(0, 0)] * len(best)


def test_egocentric_crops_point_up(videos, tmp_path):
    folder, written = videos[1]
    out = import_video(
        written["video"],
        written["sleap-analysis-h5"],
        tmp_path / "ego",
        options=ImportOptions(egocentric=True, window=60),
        progress=False,
    )
    imgs = load_dataset(out).images[:, 0].astype(np.float64)
    mean = imgs.mean(axis=0)
    mask = mean > np.percentile(mean, 90)  # the animal's body
    ys, xs = np.nonzero(mask)
    cov = np.cov(np.stack([xs, -ys]))
    w, v = np.linalg.eigh(cov)
    axis = np.degrees(np.arctan2(v[1, -1], v[0, -1])) % 180
    assert abs(axis - 90) < 5  # the long axis is vertical
    half = imgs.shape[1] // 2
    assert (
        imgs[:, : half - 2].mean() > imgs[:, half + 2 :].mean()
    )  # the head (brighter, fuller) is up, the thin tail down


def test_crop_pads_at_the_border_without_shifting():
    frame = np.zeros((40, 40), dtype=np.uint8)
    frame[0, 0] = 255  # a bright pixel in the corner, cropped with the corner as the centre
    out, pad = crop(frame, 0.0, 0.0, 10.0, 10)
    assert pad == pytest.approx(1 - 5.5 * 5.5 / 100)
    assert np.unravel_index(np.argmax(out[0]), out[0].shape) == (4, 4) or out[0, 5, 5] == out[0].max()
    inside, pad_in = crop(frame, 20.0, 20.0, 10.0, 10)
    assert pad_in == 0.0 and inside.max() == 0


def test_two_sessions_keep_rows_and_names(videos, tmp_path):
    (_, w1), (_, w2) = videos[1], videos[2]
    out = import_video(
        [w1["video"], w2["video"]],
        [w1["deeplabcut-csv"], w2["sleap-analysis-h5"]],
        tmp_path / "both",
        sessions=["one", "two"],
        jobs=2,
        progress=False,
    )
    ds = load_dataset(out)
    c = ds.conditions
    assert c.labels["session"] == ["one", "two"]
    assert np.array_equal(c.column("session"), np.r_[np.zeros(N), np.ones(2 * N)])
    single = load_dataset(import_video(w2["video"], w2["sleap-analysis-h5"], tmp_path / "two", progress=False))
    assert np.array_equal(ds.images[N:], single.images)  # the second session's crops, byte for byte


# --------------------------------------------------------------------------------------------- bad inputs


def plain_csv(path: Path, rows: list[tuple], header=("frame", "x", "y", "angle_deg")) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _bad_cases(folder: Path, w: dict, tmp: Path) -> dict:
    video = w["video"]
    beyond = plain_csv(tmp / "beyond.csv", [(0, 100, 100, 10), (999, 100, 100, 10)])
    short = tmp / "short_dlc.csv"
    short.write_text("".join(open(w["deeplabcut-csv"]).readlines()[: 3 + 40]))
    bad_video = tmp / "broken.mp4"
    bad_video.write_text("not a video\n")
    early = plain_csv(tmp / "early.csv", [(i, 100, 100, 10) for i in range(10)])
    nodes = "nose, head, neck, center, tail_base, tail_tip"
    labelled = tmp / "labelled.csv"
    lines = open(w["deeplabcut-csv"]).readlines()
    labelled.write_text("".join(lines[:3] + ["labeled-data/v/img0001.png" + ln[ln.index(",") :] for ln in lines[3:6]]))
    nohead = plain_csv(tmp / "nohead.csv", [(i, 100, 100) for i in range(5)], header=("frame", "x", "y"))
    return {
        "frame beyond the video": (
            ["--video", video, "--poses", beyond],
            f"{beyond}: refers to frame 999 but the video has {N} frames (0..{N - 1})",
        ),
        "row count differs": (
            ["--video", video, "--poses", short],
            f"{short}: 40 rows but the video has {N} frames; a deeplabcut-csv file has one row per video frame: is it the right video?",
        ),
        "unknown node": (
            ["--video", video, "--poses", w["sleap-analysis-h5"], "--heading", "tail:neck"],
            f"--heading: {w['sleap-analysis-h5']} has no node 'tail'; its nodes are: {nodes}",
        ),
        "unknown centre node": (
            ["--video", video, "--poses", w["sleap-analysis-h5"], "--center", "thorax"],
            f"--center: {w['sleap-analysis-h5']} has no node 'thorax'; its nodes are: {nodes}",
        ),
        "every point under the threshold": (
            ["--video", video, "--poses", w["deeplabcut-csv"], "--min-score", "1.5"],
            f"{w['deeplabcut-csv']}: every point scores under --min-score 1.5",
        ),
        "empty result": (
            ["--video", video, "--poses", early, "--start", "20"],
            f"{early}: no frame has a usable pose (skipped: none)",
        ),
        "cannot tell the heading": (
            ["--video", video, "--poses", nohead],
            f"--heading auto: cannot tell back from front in {nohead} (nodes: center); pass --heading BACK:FRONT, "
            "e.g. --heading tail_base:nose or --heading abdomen,thorax:head",
        ),
        "labelled-data file": (
            ["--video", video, "--poses", labelled],
            f"{labelled}: the row labels are not frame numbers (found 'labeled-data/v/img0001.png'): this looks like a "
            "labelled-data file of image paths; import the tracker's inference output for the video instead",
        ),
        "video count": (
            ["--video", video, "--video", video, "--poses", early],
            "--video given 2 times but --poses 1 times: give one --video per --poses, or none when every pose file names its video",
        ),
        "missing pose file": (
            ["--video", video, "--poses", tmp / "nope.h5"],
            f"{tmp / 'nope.h5'}: pose file not found",
        ),
        "missing video": (["--video", tmp / "nope.mp4", "--poses", early], f"{tmp / 'nope.mp4'}: video not found"),
        "bad size": (["--video", video, "--poses", early, "--size", "8"], "--size must be 24..1024 pixels, got 8"),
        "bad arena": (
            ["--video", video, "--poses", early, "--arena", "1,2"],
            "--arena: expected cx,cy,r in video pixels, got '1,2'",
        ),
        "bad heading spec": (
            ["--video", video, "--poses", w["sleap-analysis-h5"], "--heading", "neck"],
            "--heading: expected BACK:FRONT (node names, comma-separated groups), got 'neck'",
        ),
        "session names": (
            ["--video", video, "--poses", early, "--session", "a", "--session", "b"],
            "--session given 2 times for 1 pose files; give one per pose file",
        ),
    }


CASES = [
    "frame beyond the video",
    "row count differs",
    "unknown node",
    "unknown centre node",
    "every point under the threshold",
    "empty result",
    "cannot tell the heading",
    "labelled-data file",
    "video count",
    "missing pose file",
    "missing video",
    "bad size",
    "bad arena",
    "bad heading spec",
    "session names",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_one_line_exit_2_nothing_written(videos, tmp_path, capsys, case):
    folder, w = videos[1]
    args, message = _bad_cases(folder, w, tmp_path)[case]
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run_cli(["data", "import", *args, "--out", out, "--no-progress"], capsys)
    assert code == 2
    assert err == f"aelens: error: {message}\n"
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no half-made or temporary folder left


def test_unreadable_video_is_one_line(videos, tmp_path, capsys):
    folder, w = videos[1]
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 1000)
    code, _, err = run_cli(
        ["data", "import", "--video", bad, "--poses", w["sleap-analysis-h5"], "--out", tmp_path / "o"], capsys
    )
    assert code == 2 and err.startswith(f"aelens: error: {bad}: cannot read as a video (") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_existing_output_is_never_overwritten(videos, tmp_path, capsys):
    folder, w = videos[1]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my data")
    args = ["data", "import", "--video", w["video"], "--poses", w["deeplabcut-csv"], "--out", mine, "--no-progress"]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and err == f"aelens: error: {mine}: already exists; choose another --out or pass --overwrite\n"
    code, _, err = run_cli(args + ["--overwrite"], capsys)
    assert (
        code == 2
        and err
        == f"aelens: error: {mine}: exists and was not written by aelens (no import.json); refusing to overwrite\n"
    )
    assert (mine / "notes.txt").read_text() == "my data"


def test_overwrite_never_deletes_the_commands_own_inputs(videos, tmp_path, capsys):
    """--overwrite replaces an earlier import, but not when the video or pose file it reads lies inside that folder:
    one line, exit 2, every file there unchanged."""
    import shutil

    folder, w = videos[1]
    out = tmp_path / "data"
    args = ["data", "import", "--video", w["video"], "--poses", w["deeplabcut-csv"], "--out", out, "--no-progress"]
    assert run_cli(args, capsys)[0] == 0
    video, poses = out / "video.mp4", out / "poses_dlc.csv"
    shutil.copy(w["video"], video)
    shutil.copy(w["deeplabcut-csv"], poses)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    again = ["data", "import", "--video", video, "--poses", poses, "--out", out, "--overwrite", "--no-progress"]
    code, _, err = run_cli(again, capsys)
    assert code == 2 and err == (
        f"aelens: error: {out}: holds {poses}, which this command reads; --overwrite would delete it: move it out of "
        "the folder or choose another --out\n"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # inputs elsewhere: --overwrite replaces the earlier import as before
    assert run_cli(args + ["--overwrite"], capsys)[0] == 0


def test_pickled_objects_in_dlc_labels_are_refused(videos, tmp_path):
    folder, w = videos[1]
    if "deeplabcut-h5" not in w:
        pytest.skip("needs pandas + tables to write a DeepLabCut .h5")
    bad = tmp_path / "evil.h5"
    shutil.copy(w["deeplabcut-h5"], bad)
    with h5py.File(bad, "a") as f:
        f["df_with_missing/table"].attrs["values_block_0_kind"] = np.void(pickle.dumps(Path("x"), protocol=0))
    with pytest.raises(AelensError, match=r"column labels hold pickled objects \(GLOBAL\)"):
        read_poses(bad)


def test_plain_pickle_labels_decodes_lists_of_tuples():
    value = [("scorer", "ind1", "nose", "x"), ("scorer", "ind1", "nose", "likelihood"), ("s", 1, 2.5, None)]
    for proto in (0, 2, 4):
        assert plain_pickle_labels(pickle.dumps(value, protocol=proto), "t") == value
    with pytest.raises(AelensError, match=r"pickled objects \(STACK_GLOBAL\)"):  # a class: never looked up
        plain_pickle_labels(pickle.dumps(Path("x"), protocol=4), "t")
    with pytest.raises(AelensError, match=r"pickled objects \(EMPTY_DICT\)"):  # anything but lists and tuples
        plain_pickle_labels(pickle.dumps({1: 2}, protocol=4), "t")


# --------------------------------------------------------------------------------------------- gaps, fragments


def test_interpolation_fills_short_gaps_only():
    x = np.array([0.0, 1, np.nan, np.nan, 4, np.nan, np.nan, np.nan, np.nan, 9, np.nan])
    filled, mask = kin.interpolate_gaps(x[:, None], 3)
    assert np.array_equal(filled[:5, 0], [0, 1, 2, 3, 4])
    assert np.isnan(filled[5:9, 0]).all() and np.isnan(filled[10, 0])  # the 4-frame gap and the end stay empty
    assert mask[:, 0].tolist() == [False, False, True, True] + [False] * 7


def test_interpolate_and_fragments_in_an_import(videos, tmp_path):
    folder, w = videos[1]
    rows = [(f, 50 + f, 60, 30.0, 0, 1.0) for f in range(40) if f not in (10, 11, 20, 21, 22, 23, 24)]
    rows += [(f, 200, 200, 90.0, 1, 1.0) for f in range(5)]  # a 5-frame fragment of another track
    path = plain_csv(tmp_path / "p.csv", rows, header=("frame", "x", "y", "angle_deg", "track", "score"))
    out = import_video(
        w["video"],
        path,
        tmp_path / "d",
        progress=False,
        options=ImportOptions(interpolate=3, min_track_frames=10, window=40),
    )
    c = load_dataset(out).conditions
    frames = c.column("frame").astype(int).tolist()
    assert frames == [f for f in range(40) if f not in range(20, 25)]
    assert set(c.column("track")) == {0}
    interp = c.column("interpolated")
    assert [f for f, i in zip(frames, interp) if i] == [10, 11]
    assert np.allclose(c.column("x")[frames.index(10)], 60.0) and np.allclose(c.column("x")[frames.index(11)], 61.0)
    import json

    s = json.loads((out / "import.json").read_text())["sessions"][0]
    assert s["skipped"] == {"missing_center": 5, "short_track": 5}
    assert s["crops_written"] == 35 and s["interpolated_crops"] == 2


def test_heading_groups_and_plain_csv_angles(videos, tmp_path):
    folder, w = videos[1]
    p = read_poses(w["sleap-analysis-h5"])
    choice = kin.choose_nodes(p.nodes, "auto", "tail_base,center:neck,head", p.source)
    assert choice.back == (4, 3) and choice.front == (2, 1) and choice.center == (3,)
    t = truth_rows(folder)
    path = plain_csv(tmp_path / "p.csv", [(int(r["frame"]), r["x"], r["y"], r["body_angle_deg"]) for r in t])
    c = load_dataset(
        import_video(w["video"], path, tmp_path / "d", options=ImportOptions(window=60), progress=False)
    ).conditions
    assert np.allclose(c.column("body_angle_deg"), t["body_angle_deg"])


def test_speed_of_a_planted_walk():
    f = 50
    center = np.zeros((f, 1, 2))
    center[:, 0, 0] = np.arange(f) * 2.0  # 2 px per frame along x
    angle = (np.arange(f) * 3.0)[:, None]  # 3 deg per frame counter-clockwise
    speed, ang = kin.speeds(center, angle, fps=10.0, width=5)
    assert np.allclose(speed[5:-5], 20.0) and np.allclose(ang[5:-5], 30.0)
    assert np.isnan(speed[0])


def test_heading_convention_is_counter_clockwise_with_y_up():
    back = np.array([[10.0, 10.0]] * 4)
    front = np.array([[11.0, 10.0], [10.0, 9.0], [9.0, 10.0], [10.0, 11.0]])  # right, up (y down), left, down
    assert np.allclose(kin.heading_deg(back, front), [0, 90, 180, 270])


def test_turn_rates_are_not_angles():
    from aelens.data.loading import is_angle_column

    assert (
        is_angle_column("body_angle_deg")
        and is_angle_column("location_polar_deg")
        and is_angle_column("head_angle_deg")
    )
    assert not is_angle_column("angular_speed_deg_s") and not is_angle_column("speed") and not is_angle_column("x")
    assert is_angle_column("angular_speed_deg_s", {"angular_speed_deg_s"})  # the config can still say so


def test_metadata_session_names_are_labels(tmp_path):
    np.save(tmp_path / "images.npy", np.zeros((3, 24, 24), dtype=np.uint8))
    (tmp_path / "metadata.csv").write_text("session,x\nday 1,1\nday 2,2\nday 1,3\n")
    c = load_dataset(tmp_path).conditions
    assert c.labels == {"session": ["day 1", "day 2"]} and c.column("session").tolist() == [0, 1, 0]
    (tmp_path / "metadata.csv").write_text("animal,x\nA,1\nB,2\nA,3\n")
    with pytest.raises(AelensError, match="column 'animal' row 2: 'A' is not a number"):
        load_dataset(tmp_path)


def test_npy_appender_round_trip(tmp_path):
    a = np.random.default_rng(0).integers(0, 255, size=(7, 3, 5, 5), dtype=np.uint8)
    with NpyAppender(tmp_path / "x.npy", (3, 5, 5)) as out:
        out.append(a[:3])
        out.append(a[3:])
    assert np.array_equal(np.load(tmp_path / "x.npy", allow_pickle=False), a)
    assert np.load(tmp_path / "x.npy", mmap_mode="r").shape == (7, 3, 5, 5)


# --------------------------------------------------------------------------------------------- command line, real files


def test_cli_synth_import_then_train(tmp_path, capsys):
    code, out, _ = run_cli(["data", "synth", tmp_path / "v", "--video", "--n", "40", "--animals", "2"], capsys)
    assert code == 0 and "video.mp4" in out
    code, out, err = run_cli(
        [
            "data",
            "import",
            "--video",
            tmp_path / "v" / "video.mp4",
            "--poses",
            tmp_path / "v" / "poses_dlc.csv",
            "--out",
            tmp_path / "d",
            "--preview",
            "--channels",
            "3",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    assert out.startswith(
        "video: 40 frames read, 80 crops of 2 track(s), skipped 0 (none); centre center; heading tail_base -> neck"
    )
    assert (tmp_path / "d" / "preview.mp4").stat().st_size > 0 and (tmp_path / "d" / "preview_crops.png").exists()
    assert load_dataset(tmp_path / "d").images.shape == (80, 3, 50, 50)
    train = ["train", "ae", "--data", tmp_path / "d", "--epochs", "1", "--out", tmp_path / "run", "--no-progress",
             "--no-snapshots"]  # fmt: skip
    code, _, err = run_cli(train, capsys)
    # 40 frames cannot hold a blocked split with a 1-second (25-frame) purge: said in one line
    assert code == 2 and err.startswith("aelens: error: blocked split left no train frames")
    code, _, err = run_cli(
        [*train, "--purge", "2"],
        capsys,
    )
    assert code == 0, err


@pytest.mark.realdata
def test_real_sleap_sessions_import(tmp_path):
    slp = RAW / "flies_clip" / "clip.predictions.slp"
    h5 = RAW / "flies_session2" / "predictions.analysis.h5"
    if not slp.is_file() or not h5.is_file():
        pytest.skip(f"raw sessions in {RAW} are not available")
    pytest.importorskip("sleap_io")
    out = import_video(None, slp, tmp_path / "clip", progress=False)  # the .slp names its video: found beside it
    c = load_dataset(out).conditions
    # in this clip one fly sits still with its tracked head point beside the head: its headings are a constant
    # ~24 deg off the body seen in the crops; the import says so (track 0 only)
    agreement = json.loads((out / "import.json").read_text())["sessions"][0]["heading_vs_image_axis"]
    assert 20.0 < agreement["0"]["offset_deg"] < 27.0 and abs(agreement["1"]["offset_deg"]) < 12.0
    # in the last third of the clip the flies walk and meet, and the tracker swaps head and tail on both
    swaps = json.loads((out / "import.json").read_text())["sessions"][0]["head_tail_swaps"]
    assert all(s["jumps"] >= 10 and s["mass_side"] == "ahead" and s["reversed_frames"][0] > 900 for s in swaps.values())
    notes = [
        " ".join(n.split(": the pose heading ")[0:1] + n.split(": the pose heading ")[1].split()[:1])
        for n in import_notes(out)
        if ": the pose heading " in n
    ]
    assert notes == [f"{out} session clip, track {t} {w}" for t, w in (("0", "sits"), ("0", "turns"), ("1", "turns"))]
    # ... and puts fly 0's head point on the other fly (its head 140-170 px from its thorax, usually 56): the one
    # tracking-check note of a clip whose poses are in step with the video (offset 0) and never frozen
    checks = json.loads((out / "import.json").read_text())["sessions"][0]["tracking_checks"]
    assert checks["frame_offset"]["estimate"] == 0 and checks["frame_offset"]["readable"]
    assert all(v["frames"] == 0 for v in checks["frozen"].values())
    assert (
        checks["parts_off_body"]["0"]["on_another_animal"] >= 1
        and checks["parts_off_body"]["0"]["first_frames"][0] > 1000
    )
    assert [n.split(": ")[0] for n in import_notes(out) if "off the body" in n] == [
        f"{out} session clip, track 0",
        f"{out} session clip, track 1",
    ]
    # ../shared/data/flies_clip was cut from the same predictions, heading thorax -> head: the angles must agree
    ref_dir = RAW.parent / "data" / "flies_clip"
    if (ref_dir / "metadata.csv").is_file():
        ref = np.genfromtxt(ref_dir / "metadata.csv", delimiter=",", names=True)
        got = {(int(f), int(t)): a for f, t, a in zip(c.column("frame"), c.column("track"), c.column("body_angle_deg"))}
        want = {(int(f), int(t)): a for f, t, a in zip(ref["frame"], ref["track"], ref["body_angle_deg"])}
        assert got.keys() == want.keys()
        assert max(angle_diff(got[k], want[k]) for k in got) < 1e-3
    # an old analysis file without point_scores: scores unknown, not zero; the video is given
    out2 = import_video(
        RAW / "flies_session2" / "20190128_113421.120s.mp4",
        h5,
        tmp_path / "s2",
        progress=False,
        options=ImportOptions(stop=300),
    )
    c2 = load_dataset(out2).conditions
    assert np.isnan(c2.column("pose_score")).all() and c2.column("frame").max() < 300
    assert import_notes(out2) == []  # no false alarm on a session tracked well


def test_transfer_sets_cut_on_another_body_axis_are_named(tmp_path):
    """A transfer set imported with another body axis shows the animals at another scale: the study warns."""
    from aelens.importing.importer import crop_mismatches
    from aelens.storage import write_json

    def fake(name, heading, window=None):
        write_json(
            tmp_path / name / "import.json",
            {
                "options": {"window": window, "egocentric": False},
                "sessions": [
                    {
                        "session": name,
                        "nodes_used": f"centre thorax; heading {heading}",
                        "window_rule": "4.0 x median body length",
                    }
                ],
            },
        )
        return tmp_path / name

    a, b, c = fake("a", "thorax -> head"), fake("b", "thorax -> head"), fake("c", "abdomen -> head")
    assert crop_mismatches([a], b) == []
    assert crop_mismatches([a], c) == [
        f"{c}: crops cut with body axis heading abdomen -> head, the training data's with heading thorax -> head; "
        "the animals may appear at another scale or orientation (import both with the same --heading / --window)"
    ]
    d = fake("d", "thorax -> head", window=120)
    assert "window 120 px" in crop_mismatches([a], d)[0]
    assert crop_mismatches([a], tmp_path / "not_imported") == []


def test_one_import_whose_sessions_use_different_body_axes_warns():
    from aelens.importing.importer import _axis_warnings

    same = [
        {"session": "a", "nodes_used": "centre thorax; heading thorax -> head"},
        {"session": "b", "nodes_used": "centre thorax; heading thorax -> head; head thorax -> head"},
    ]
    assert _axis_warnings(same) == []
    other = [same[0], {"session": "b", "nodes_used": "centre thorax; heading abdomen -> head"}]
    assert _axis_warnings(other) == [
        "the sessions' body axes differ (a: heading thorax -> head; b: heading abdomen -> head), so their crops show "
        "the animals at different scales; pass one --heading BACK:FRONT that every skeleton has"
    ]
