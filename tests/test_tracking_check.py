"""Trackers' mistakes caught at import, planted in a synthetic video whose true poses are known: a pose file out of
step with its video, frozen poses, one animal's body part given to the other, and DeepLabCut's (0, 0, 0) for a
point it did not find. Also the estimator alone, on planted walks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aelens.importing.importer import ImportOptions, import_notes, import_video
from aelens.importing.tracking_check import frame_offset
from aelens.synthetic.video import synthesize_video
from conftest import run_cli

N = 240  # frames: the animals walk, stop and turn, so steps differ enough for a lag to show
WINDOW = 76.0  # video pixels: one window for every import here, so crops of the same pose are equal byte for byte


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracked")
    files = synthesize_video(folder, n=N, animals=2, seed=2)
    lines = Path(files["deeplabcut-csv"]).read_text().splitlines()
    return folder, files["video"], lines[:4], [r.split(",") for r in lines[4:]]


def _write(folder: Path, name: str, head: list[str], rows: list[list[str]]) -> Path:
    path = folder / name
    path.write_text("\n".join(head + [",".join(r) for r in rows]) + "\n")
    return path


def _shifted(rows: list[list[str]], lag: int) -> list[list[str]]:
    """Row f holds the true pose of frame f - lag (the first or last rows repeat the nearest true one)."""
    n = len(rows)
    return [[str(f)] + rows[min(max(f - lag, 0), n - 1)][1:] for f in range(n)]


def _import(session, tmp_path, rows, name, **opts):
    folder, video, head, _ = session
    poses = _write(tmp_path, f"{name}.csv", head, rows)
    out = import_video(video, poses, tmp_path / name, progress=False, options=ImportOptions(window=WINDOW, **opts))
    summary = json.loads((out / "import.json").read_text())
    return out, summary["sessions"][0]["tracking_checks"], summary["warnings"]


def test_true_poses_raise_no_alarm(session, tmp_path):
    _, checks, warnings = _import(session, tmp_path, session[3], "truth")
    assert checks["frame_offset"]["estimate"] == 0 and checks["frame_offset"]["readable"]
    assert all(v["frames"] == 0 for v in checks["frozen"].values())
    assert all(v["frames"] == 0 for v in checks["parts_off_body"].values())
    assert warnings == []


@pytest.mark.parametrize("lag", [2, -3])
def test_a_planted_frame_offset_is_found_within_one_frame(session, tmp_path, lag):
    out, checks, warnings = _import(session, tmp_path, _shifted(session[3], lag), f"lag{lag}")
    est = checks["frame_offset"]["estimate"]
    assert abs(est - lag) <= 1 and est != 0
    assert checks["frame_offset"]["applied"] == 0  # found and said, never applied unless asked
    assert [w for w in warnings if "frames off the video" in w] == [w for w in warnings]
    assert f"--frame-offset {est}" in warnings[0] and import_notes(out)[0].endswith(warnings[0].split(": ", 1)[1])


def test_frame_offset_auto_realigns_the_crops(session, tmp_path):
    truth, _, _ = _import(session, tmp_path, session[3], "truth")
    fixed, checks, warnings = _import(session, tmp_path, _shifted(session[3], 2), "auto", frame_offset="auto")
    assert checks["frame_offset"]["applied"] == 2 and "was applied" in warnings[0]
    assert checks["frame_offset"]["after"]["0"] < checks["frame_offset"]["residual_px"]["0"]
    a, b = np.load(truth / "images.npy"), np.load(fixed / "images.npy")
    ma = np.genfromtxt(truth / "metadata.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    mb = np.genfromtxt(fixed / "metadata.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    row = {(f, t): i for i, (f, t) in enumerate(zip(ma["frame"], ma["track"]))}
    # row f + 2 of the lagged file is the true pose of frame f: after the shift, every crop equals the true one
    assert mb["frame"].max() == N - 3 and len(mb) == 2 * (N - 2)
    assert all(np.array_equal(b[j], a[row[(f, t)]]) for j, (f, t) in enumerate(zip(mb["frame"], mb["track"])))
    # the same shift, asked for by number, gives the same crops
    given, _, _ = _import(session, tmp_path, _shifted(session[3], 2), "given", frame_offset=2)
    assert np.array_equal(np.load(given / "images.npy"), b)


def test_frozen_poses_are_found_where_they_are(session, tmp_path):
    rows = [list(r) for r in session[3]]
    for f in range(100, 161):
        rows[f][1:19] = session[3][100][1:19]  # animal 0's pose stops at frame 100 while it walks on
    _, checks, warnings = _import(session, tmp_path, rows, "frozen")
    assert checks["frozen"]["0"]["stretches"] == [[100, 160]] and checks["frozen"]["1"]["frames"] == 0
    assert len(warnings) == 1 and "track 0: the pose stays still on 61 frames (e.g. 100-160)" in warnings[0]


def test_a_body_part_given_to_the_other_animal_is_found(session, tmp_path):
    rows = [list(r) for r in session[3]]
    for f in range(200, 216):  # the noses swapped between the animals
        rows[f][1:4], rows[f][19:22] = session[3][f][19:22], session[3][f][1:4]
    _, checks, warnings = _import(session, tmp_path, rows, "swap")
    for track in ("0", "1"):
        p = checks["parts_off_body"][track]
        assert p["frames"] == 16 and p["on_another_animal"] == 16 and p["first_frames"][0] == 200
    assert sorted(w.split(": ")[0] for w in warnings) == ["session video, track 0", "session video, track 1"]


def test_zero_points_with_zero_likelihood_are_missing(session, tmp_path):
    rows = [list(r) for r in session[3]]
    for f in range(50, 60):  # DeepLabCut's multi-animal "not found": x = y = likelihood = 0, for animal 0's centre
        rows[f][10:13] = ["0", "0", "0"]
    out, _, _ = _import(session, tmp_path, rows, "zeros")
    s = json.loads((out / "import.json").read_text())["sessions"][0]
    assert s["notes"]["zero_points_read_as_missing"] == 10 and s["skipped"] == {"missing_center": 10}
    meta = np.genfromtxt(out / "metadata.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert len(meta) == 2 * N - 10 and meta["x"].min() > 10  # no crop cut at (0, 0)


@pytest.mark.parametrize(
    "value, message",
    [
        ("abc", "--frame-offset: expected auto or a whole number of frames, got 'abc'"),
        ("1000000", "--frame-offset must be auto or a whole number of frames from -100000 to 100000, got 1000000"),
        ("-100000", "--frame-offset -100000 moves every pose outside the video"),
    ],
)
def test_bad_frame_offsets_are_one_line(session, tmp_path, capsys, value, message):
    _, video, head, rows = session
    poses = _write(tmp_path, "p.csv", head, rows)
    code, _, err = run_cli(
        ["data", "import", "--video", video, "--poses", poses, "--out", tmp_path / "o", "--frame-offset", value], capsys
    )
    assert code == 2 and err.strip().splitlines() == [f"aelens: error: {err.split('error: ', 1)[1].strip()}"]
    assert message in err and not (tmp_path / "o").exists()


def _walk(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A walk that starts, stops and turns: speed and direction change smoothly."""
    rng = np.random.default_rng(seed)
    speed = 2.0 + 1.5 * np.sin(np.arange(n) / 3.0) + rng.normal(0, 0.3, n)  # stop and go, as animals walk
    heading = np.cumsum(rng.normal(0, 0.15, n))
    return 100 + np.cumsum(speed * np.cos(heading)), 100 + np.cumsum(speed * np.sin(heading))


@pytest.mark.parametrize("lag", [-4, -1, 0, 1, 3, 6])
def test_frame_offset_recovers_a_planted_lag_despite_a_body_offset(lag):
    x, y = _walk(600, seed=lag + 10)
    frames = np.arange(600)
    # the image's mass centre is the true position plus a steady offset along the body and pixel noise; the pose
    # row f shows the animal of frame f - lag
    rng = np.random.default_rng(1)
    heading = np.arctan2(np.gradient(y), np.gradient(x))
    mx = x + 4 * np.cos(heading) + rng.normal(0, 0.2, 600)
    my = y + 4 * np.sin(heading) + rng.normal(0, 0.2, 600)
    px, py = np.roll(x, lag), np.roll(y, lag)
    keep = slice(10, 590)  # away from the rolled ends
    got = frame_offset(frames[keep], np.zeros(580), px[keep], py[keep], mx[keep], my[keep])
    assert got["estimate"] == lag and got["readable"]


def test_frame_offset_of_a_still_animal_is_unreadable():
    frames = np.arange(100)
    x = np.full(100, 50.0)
    got = frame_offset(frames, np.zeros(100), x, x, x + 1.0, x)
    assert got == {"estimate": 0, "frames": 0, "residual_px": {}, "readable": False}
