"""Pose headings against the animal's visible long axis: planted offsets are found, consistent ones reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aelens.importing.heading_check import (
    agreement_warnings,
    axial_offset,
    heading_agreement,
    heading_reversals,
    image_axis,
    image_mass_side,
    reversal_warnings,
    side_consistent_heading,
    visible_heading,
)
from aelens.synthetic.arena import COLUMNS, synthesize


@pytest.fixture(scope="module")
def arena():
    s = synthesize(400, seed=0, size=50)
    return s["images"], s["metadata"][:, COLUMNS.index("body_angle_deg")]


def test_synthetic_headings_lie_on_the_visible_axis(arena):
    """The renderer draws each animal along its body angle: offset ~0, bright animal or dark (inverted), one
    channel or three."""
    images, heading = arena
    for crops in (images, 255 - images, np.repeat(images[:, None], 3, axis=1)):
        axis, elongation = image_axis(crops)
        a = heading_agreement(heading, axis, elongation, np.zeros(len(heading), int))["0"]
        assert a["frames"] == 400 and abs(a["offset_deg"]) < 1.0
        assert -3.0 < a["iqr_deg"][0] <= a["iqr_deg"][1] < 3.0
    assert agreement_warnings({"0": a}, "arena") == []


def test_a_planted_label_offset_on_one_track_is_found_and_named(arena):
    """Track b's headings are turned by +25 deg (a head point placed beside the head): found to within a degree,
    reported in one sentence naming the track; track a, and a track turned by a scattered amount, are not reported."""
    images, heading = arena
    axis, elongation = image_axis(images)
    tracks = np.array(["a", "b", "c", "d"] * 100)
    rng = np.random.default_rng(0)
    planted = heading + np.where(tracks == "b", 25.0, 0.0) + np.where(tracks == "c", rng.uniform(-90, 90, 400), 0.0)
    planted = np.where(tracks == "d", planted + 180.0, planted)  # head and tail swapped: the same axis
    a = heading_agreement(planted, axis, elongation, tracks)
    assert (
        abs(a["b"]["offset_deg"] - 25.0) < 1.0 and abs(a["a"]["offset_deg"]) < 1.0 and abs(a["d"]["offset_deg"]) < 1.0
    )
    notes = agreement_warnings(a, "session s1")
    assert len(notes) == 1 and notes[0].startswith("session s1, track b: the pose heading sits +25.")


def test_offsets_near_a_right_angle_are_not_split():
    """Offsets of +89 and -89 deg are 2 deg apart on the axis: the typical offset is ~+-90, its spread small."""
    axis = np.zeros(40)
    heading = np.where(np.arange(40) % 2 == 0, 89.0, -89.0)
    a = heading_agreement(heading, axis, np.ones(40), np.zeros(40, int))["0"]
    assert abs(abs(a["offset_deg"]) - 90.0) <= 1.0
    assert a["iqr_deg"][1] - a["iqr_deg"][0] <= 2.0
    assert np.allclose(axial_offset([10.0, 190.0, -170.0, 95.0], 0.0), [10.0, 10.0, 10.0, -85.0])


def test_round_blobs_and_missing_headings_are_left_out():
    """A disk has no axis (elongation ~0) and a NaN heading none either: neither counts; a track with fewer than
    10 usable crops is not summarised."""
    yy, xx = np.mgrid[:32, :32]
    disk = (((yy - 15.5) ** 2 + (xx - 15.5) ** 2) < 36).astype(np.uint8) * 200
    crops = np.repeat(disk[None], 12, axis=0)
    axis, elongation = image_axis(crops)
    assert elongation.max() < 0.05
    assert heading_agreement(np.zeros(12), axis, elongation, np.zeros(12, int)) == {}
    assert heading_agreement(np.full(12, np.nan), axis, np.ones(12), np.zeros(12, int)) == {}


def test_import_records_the_agreement_per_track(tmp_path):
    """``aelens data import`` writes each session's per-track agreement into import.json (a synthetic video drawn
    along its poses: near 0, no warning)."""
    from aelens.importing.importer import import_video
    from aelens.synthetic.video import synthesize_video

    written = synthesize_video(tmp_path / "v", n=24, animals=2, seed=5)
    out = import_video(written["video"], written["deeplabcut-csv"], tmp_path / "d", progress=False)
    info = json.loads((out / "import.json").read_text())
    agreement = info["sessions"][0]["heading_vs_image_axis"]
    assert set(agreement) == {"0", "1"} and all(abs(a["offset_deg"]) < 5.0 for a in agreement.values())
    swaps = info["sessions"][0]["head_tail_swaps"]
    assert set(swaps) == {"0", "1"} and all(s["jumps"] == 0 and s["frame_pairs"] == 23 for s in swaps.values())
    assert not any("pose heading" in w for w in info["warnings"])


def test_visible_heading_takes_its_front_from_the_label():
    axis = np.array([10.0, 10.0, 170.0, 0.0])
    heading = np.array([30.0, 200.0, 350.0, 269.0])
    assert np.allclose(visible_heading(axis, heading), [10.0, 190.0, 350.0, 180.0])


def test_planted_head_tail_swaps_are_counted_located_and_undone(arena):
    """Track a's headings are turned by 180 deg on frames 60-79 and 150-159 (a tracker that swapped head and tail
    twice): 4 turns round between consecutive frames, the 30 reversed crops found against the animal's mass and
    named in one sentence, and undone exactly; track b (clean) has none and is not reported."""
    images, heading = arena
    side, shift = image_mass_side(images)
    assert np.mean(shift >= 0.02) > 0.99  # the rendered animal's mass lies off its centre point: a side to read
    tracks = np.array(["a"] * 200 + ["b"] * 200)
    frames = np.r_[np.arange(200), np.arange(200)]
    swapped = np.zeros(400, bool)
    swapped[60:80] = swapped[150:160] = True
    planted = np.where(swapped, np.mod(heading + 180.0, 360.0), heading)
    r = heading_reversals(planted, side, shift, tracks, frames)
    assert r["a"] == {
        "frame_pairs": 199,
        "jumps": 4,
        "readable_crops": int((shift[:200] >= 0.02).sum()),
        "mass_side": "ahead",
        "reversed": 30,
        "reversed_frames": [60, 159],
    }
    assert r["b"]["jumps"] == 0 and r["b"]["reversed"] == 0 and r["b"]["reversed_frames"] is None
    notes = reversal_warnings(r, "session s1")
    assert len(notes) == 1 and notes[0].startswith(
        "session s1, track a: the pose heading turns by more than 135 deg from one frame to the next 4 times in 199 "
        "frame pairs; on 30 of its"
    )
    fixed = side_consistent_heading(planted, side, shift, tracks)
    assert np.allclose(np.mod(fixed - heading + 180.0, 360.0) - 180.0, 0.0, atol=1e-9)


def test_turns_need_consecutive_frames_and_a_side_needs_a_majority(arena):
    """Headings 180 deg apart on frames 2 apart are not a jump (the animal had two frames); a track whose headings
    point either way at random has no usual side, so nothing is called reversed or undone; two jumps are not
    reported (a real fast turn can make one or two)."""
    images, heading = arena
    side, shift = image_mass_side(images[:100])
    rng = np.random.default_rng(3)
    coin = np.mod(heading[:100] + 180.0 * (rng.random(100) < 0.5), 360.0)
    r = heading_reversals(coin, side, shift, np.zeros(100, int), np.arange(0, 200, 2))
    assert r["0"]["frame_pairs"] == 0 and r["0"]["jumps"] == 0
    assert r["0"]["mass_side"] is None and r["0"]["reversed"] == 0
    assert np.array_equal(side_consistent_heading(coin, side, shift, np.zeros(100, int)), coin)
    two = heading[:100].copy()
    two[40:50] += 180.0
    assert heading_reversals(two, side, shift, np.zeros(100, int), np.arange(100))["0"]["jumps"] == 2
    assert reversal_warnings(heading_reversals(two, side, shift, np.zeros(100, int), np.arange(100)), "s") == []
