"""The direction tagger: circular loss, targets, transfer with frozen layers, augmentation, test mode."""

import json
import math

import numpy as np
import pytest
import torch

import aelens
from aelens.config import TaggerConfig
from aelens.data.loading import Conditions
from aelens.errors import AelensError
from aelens.models.nets import Encoder, Geometry
from aelens.objectives.tagger import DirectionTagger, angle_loss, rotate_batch, tagger_targets, trainable_layers
from aelens.storage import load_state_dict
from conftest import quick_config, run_cli


def vec(deg):
    r = np.radians(np.asarray(deg, dtype=np.float64))
    return torch.tensor(np.stack([np.cos(r), np.sin(r)], 1), dtype=torch.float32)


def test_loss_is_zero_for_perfect_predictions_and_blind_to_whole_turns():
    a = np.array([0.0, 45.0, 359.0, 180.0])
    assert float(angle_loss(vec(a), vec(a))) == pytest.approx(0.0, abs=1e-7)
    assert float(angle_loss(vec(a + 360), vec(a))) == pytest.approx(0.0, abs=1e-6)
    assert float(angle_loss(vec(a + 180), vec(a))) == pytest.approx(2.0, abs=1e-6)
    c = Conditions(["body_angle_deg"], np.array([[10.0], [370.0], [-350.0], [np.nan]]), "m.csv")
    values, valid, notes = tagger_targets(TaggerConfig(), c)
    np.testing.assert_allclose(values[0], values[1], atol=1e-6)
    np.testing.assert_allclose(values[0], values[2], atol=1e-6)
    assert valid.tolist() == [True, True, True, False]
    assert notes == [
        "target 'body_angle_deg': dropped 1 of 4 rows with a missing value",
        "target 'body_angle_deg': wrapped 2 angles outside [0, 360) into that range",
    ]


def test_target_vectors_and_linear_targets():
    c = Conditions(["x1", "y1", "x2", "y2", "dist"], np.array([[1, 1, 0, 0, 3.0], [0, 0, 0, 2, 4.0]]), "m.csv")
    v, _, _ = tagger_targets(TaggerConfig(target_vector=("x1", "y1", "x2", "y2")), c)
    np.testing.assert_allclose(np.degrees(np.arctan2(v[:, 1], v[:, 0])), [45, -90], atol=1e-5)
    v, _, _ = tagger_targets(TaggerConfig(target_vector=("x1", "y1")), c)
    np.testing.assert_allclose(v[0], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)
    v, _, _ = tagger_targets(TaggerConfig(target="dist", kind="linear"), c)
    np.testing.assert_array_equal(v[:, 0], [3.0, 4.0])
    with pytest.raises(AelensError, match=r"m\.csv: no condition column 'heading'; available: x1, y1, x2, y2, dist"):
        tagger_targets(TaggerConfig(target="heading"), c)
    with pytest.raises(AelensError, match=r"target 'a' has no finite values"):
        tagger_targets(TaggerConfig(target="a"), Conditions(["a"], np.full((3, 1), np.nan), "m.csv"))


@pytest.mark.parametrize(
    "k,expected",
    [("0", ()), ("1", ("fc1",)), ("2", ("fc1", "conv3")), ("3", ("fc1", "conv3", "conv2")), ("all", Encoder.LAYERS)],
)
def test_unfreeze_k_trains_exactly_the_top_k_layers(k, expected):
    cfg = aelens.RunConfig(kind="tagger").with_overrides({"tagger.unfreeze": k})
    model = DirectionTagger(cfg, Geometry(1, 32, 32))
    trainable = {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad and n.startswith("encoder.")}
    assert trainable == set(expected)
    assert all(p.requires_grad for p in model.readout.parameters())
    model.train()
    for name in Encoder.LAYERS:
        bn = getattr(model.encoder, name)[-2 if name == "fc1" else 1]
        assert bn.training == (name in expected), name


def test_unfreeze_larger_than_layers_is_an_error():
    with pytest.raises(
        AelensError,
        match=r"--unfreeze must be at most 4 \(the encoder has 4 layers: fc1, conv3, conv2, conv1\) or all, got 5",
    ):
        trainable_layers("5")


def test_init_from_copies_the_encoder_and_frozen_weights_stay_bit_identical(tiny_ae, tiny_data, tmp_path):
    run = aelens.train(
        quick_config(tiny_data, "tagger", **{"tagger.init_from": str(tiny_ae), "tagger.unfreeze": "1"}),
        out=tmp_path / "t",
    )
    ae, tagger = load_state_dict(tiny_ae / "model.safetensors"), load_state_dict(run / "model.safetensors")
    for key, value in ae.items():
        if not key.startswith("encoder."):
            continue
        if key.startswith("encoder.fc1."):
            if key.endswith(("weight", "bias")):
                assert not torch.equal(tagger[key], value), key  # trained
        else:
            assert torch.equal(tagger[key], value), key  # frozen: weights and BatchNorm statistics untouched
    m = aelens.layout.read_manifest(run)
    assert m["trainable_layers"] == ["fc1"] and m["frozen_layers"] == ["conv3", "conv2", "conv1"]


def test_init_from_errors(tiny_ae, tiny_data, tmp_path, capsys):
    base = ["train", "tagger", "--data", tiny_data, "--epochs", "1", "--no-progress"]
    code, _, err = run_cli(base + ["--init-from", tiny_ae, "--latent-dim", "8", "--out", tmp_path / "a"], capsys)
    assert code == 2 and "the AE's latent dim is 16, the tagger's 8 (set --latent-dim)" in err
    dec = aelens.train(
        quick_config(tiny_data, "decoder", **{"embedding.method": "randproj", "embedding.dim": 2}), out=tmp_path / "dec"
    )
    code, _, err = run_cli(base + ["--init-from", dec, "--out", tmp_path / "b"], capsys)
    assert code == 2 and f"--init-from {dec}: a decoder run, not an AE run" in err
    code, _, err = run_cli(base + ["--unfreeze", "7", "--out", tmp_path / "c"], capsys)
    assert code == 2 and "--unfreeze must be at most 4" in err
    code, _, err = run_cli(base + ["--target", "heading", "--out", tmp_path / "d"], capsys)
    assert code == 2 and "no condition column 'heading'" in err
    assert not any((tmp_path / x).exists() for x in "abcd")


def test_rotation_augmentation_turns_the_animal_by_the_angle():
    from aelens.synthetic.arena import synthesize

    d = synthesize(40, seed=4, size=48)
    x = torch.tensor(d["clean"][:, None] / 255.0, dtype=torch.float32)
    alpha = torch.full((40,), math.radians(70.0))
    rotated = rotate_batch(x, alpha)

    def axis_angle(img):
        s = img.shape[-1]
        yy, xx = np.mgrid[0:s, 0:s]
        u, v = xx - (s - 1) / 2, (s - 1) / 2 - yy
        w = np.where((np.hypot(u, v) < 14) & (img > 0.8), img, 0)
        u0, v0 = (w * u).sum() / w.sum(), (w * v).sum() / w.sum()  # bright mass lies towards the head
        return np.degrees(np.arctan2(v0, u0))

    before = np.array([axis_angle(img[0].numpy()) for img in x])
    after = np.array([axis_angle(img[0].numpy()) for img in rotated])
    turn = np.mod(after - before + 180, 360) - 180
    assert np.median(np.abs(turn - 70)) < 8


@pytest.mark.slow
def test_tagger_end_to_end_beats_the_circular_mean(tmp_path, capsys):
    from aelens.synthetic.arena import synthesize, write_dataset

    data = write_dataset(tmp_path / "data", synthesize(600, seed=9, size=32))
    run = tmp_path / "tagger"
    code, _, err = run_cli(
        [
            "train",
            "tagger",
            "--data",
            data,
            "--epochs",
            "6",
            "--out",
            run,
            "--no-progress",
            "--batch-size",
            "32",
            "--snapshots-per-epoch",
            "2",
        ],
        capsys,
    )
    assert code == 0, err
    code, out, err = run_cli(["test", run], capsys)
    assert code == 0, err
    res = json.loads((run / "test" / "results.json").read_text())
    for key in ("angle_mae_deg", "angle_median_deg", "within_15deg", "within_30deg", "n"):
        assert key in res
    assert res["n"] == len(np.load(run / "split.npz")["test"]) and res["split"]["kind"] == "blocked"
    chance = res["baselines"]["circular_mean"]["angle_mae_deg"]
    assert res["angle_mae_deg"] < 0.6 * chance, (res["angle_mae_deg"], chance)
    for f in ("angle_scatter.png", "angle_errors_polar.png", "angle_arrows.png"):
        assert (run / "test" / f).stat().st_size > 0
    snaps = np.load(run / "snapshots" / "fc1.npy")
    from aelens.training.snapshotting import snapshot_epochs

    assert snaps.shape == (1 + 2 * len(snapshot_epochs(6)), 600, 16)  # before training + 2 in each scheduled epoch


def test_linear_target_regression(tiny_data, tmp_path):
    run = aelens.train(
        quick_config(
            tiny_data, "tagger", **{"tagger.target": "dist_from_center", "tagger.kind": "linear", "train.epochs": 2}
        ),
        out=tmp_path / "lin",
    )
    res = aelens.test_run(run)
    assert {"mae", "rmse", "r2"} <= set(res) and "training_mean" in res["baselines"]
    pred = aelens.load_run(run).predict(aelens.load_dataset(tiny_data))
    assert pred.shape == (160,) and 0 < np.median(pred) < 1.5  # in the target's units, not standardised


def test_linear_probe_starts_from_the_least_squares_readout(tiny_ae, tiny_data, tmp_path):
    """unfreeze 0 with no training (1 step at a tiny learning rate) already beats the circular mean: the readout
    is initialised by ridge regression on the AE latent."""
    run = aelens.train(
        quick_config(
            tiny_data,
            "tagger",
            **{"tagger.init_from": str(tiny_ae), "tagger.unfreeze": "0", "train.lr": 1e-8, "train.max_steps": 1},
        ),
        out=tmp_path / "p",
    )
    res = aelens.test_run(run, figures=False)
    assert res["angle_mae_deg"] < 0.9 * res["baselines"]["circular_mean"]["angle_mae_deg"]


# --------------------------------------------------------------------------------------------- augmentation recipes


def test_augment_recipes_parse_to_canonical_parts_and_bad_ones_are_named():
    from aelens.config import AUGMENT_PARTS as PARTS
    from aelens.config import parse_augment

    assert parse_augment("none") == () and parse_augment(False) == ()
    assert parse_augment(True) == ("rotate", "flip") == parse_augment("true")  # runs made when --augment was on/off
    assert parse_augment("photometric, flip,rotate") == ("rotate", "flip", "photometric")
    assert parse_augment("all") == PARTS
    with pytest.raises(AelensError) as e:
        parse_augment("rotate,blurr")
    assert str(e.value) == (
        "--augment must be none, all or a comma-separated list of rotate, flip, shift, scale, "
        "photometric; got 'rotate,blurr'"
    )


def _arrow_frames(angles_deg, size=41):
    """White bar from the centre towards each angle (counter-clockwise, y up) on black: the angle is planted."""
    yy, xx = np.mgrid[0:size, 0:size]
    u, v = xx - (size - 1) / 2, (size - 1) / 2 - yy
    frames = []
    for a in np.radians(angles_deg):
        along = u * np.cos(a) + v * np.sin(a)
        across = -u * np.sin(a) + v * np.cos(a)
        frames.append(((along > 2) & (along < 15) & (np.abs(across) < 2.5)).astype(np.float32))
    return torch.tensor(np.stack(frames)[:, None])


def _bar_angle(img):
    s = img.shape[-1]
    yy, xx = np.mgrid[0:s, 0:s]
    u, v = xx - (s - 1) / 2, (s - 1) / 2 - yy
    w = img * (np.hypot(u, v) > 1)
    return np.degrees(np.arctan2((w * v).sum(), (w * u).sum()))


@pytest.mark.parametrize("recipe", ["rotate", "flip", "rotate,flip", "rotate,flip,scale"])
def test_every_recipe_turns_the_target_with_the_picture(recipe):
    """After any augmentation, the target vector still points where the bar in the augmented frame points."""
    from aelens.config import parse_augment
    from aelens.data.augment import augment_batch

    angles = np.arange(0, 360, 15.0)
    x = _arrow_frames(angles)
    gen = torch.Generator().manual_seed(3)
    xa, ya = augment_batch(x, vec(angles), parse_augment(recipe), gen)
    seen = np.array([_bar_angle(im[0].numpy()) for im in xa])
    target = np.degrees(np.arctan2(ya[:, 1].numpy(), ya[:, 0].numpy()))
    err = np.abs(np.mod(seen - target + 180, 360) - 180)
    assert np.median(err) < 4 and err.max() < 15, (recipe, err)
    assert not torch.equal(xa, x)  # it did change the frames
    if recipe != "flip":
        assert xa.min() >= 0 and xa.max() <= 1.0 + 1e-6


def test_photometric_and_shift_scale_leave_the_target_alone():
    from aelens.data.augment import augment_batch

    angles = np.arange(0, 360, 30.0)
    x, y = _arrow_frames(angles), vec(angles)
    xa, ya = augment_batch(x, y, ("shift", "scale", "photometric"), torch.Generator().manual_seed(0))
    assert torch.equal(ya, y) and xa.shape == x.shape and 0 <= float(xa.min()) and float(xa.max()) <= 1
    assert float((xa - x).abs().mean()) > 0.01


def test_a_rotation_trained_encoder_cannot_see_the_corners(tiny_data):
    """With rotate in the recipe the encoder looks through a circular mask: corners (which a rotation blanks) do
    not change its code; without it they do. The mask is part of the run's config, so inference applies it too."""
    g = Geometry(1, 32, 32)
    cfg = quick_config(tiny_data, "tagger", **{"tagger.augment": "rotate"})
    masked = DirectionTagger(cfg, g).eval()
    plain = DirectionTagger(quick_config(tiny_data, "tagger", **{"tagger.augment": "flip,photometric"}), g).eval()
    x = torch.rand(4, 1, 32, 32)
    corners = x.clone()
    corners[:, :, :4, :4] = 1.0 - corners[:, :, :4, :4]
    assert torch.equal(masked.encoder(x), masked.encoder(corners))
    assert not torch.equal(plain.encoder(x), plain.encoder(corners))
    assert "input_mask" not in masked.state_dict()  # weights stay interchangeable with unmasked runs


def test_transfer_baseline_comes_from_the_training_frames(tiny_data, tmp_path):
    """Scored on another dataset, the tagger's mean-direction baseline is the *training* frames' mean direction."""
    from aelens.maps.metrics import circular_mean_deg
    from aelens.synthetic.arena import COLUMNS, synthesize, write_dataset

    other = synthesize(80, seed=11, size=32)
    other["metadata"][:, COLUMNS.index("body_angle_deg")] = 90.0  # all face up: their own mean would be perfect
    other_dir = write_dataset(tmp_path / "other", other)
    run = aelens.train(quick_config(tiny_data, "tagger"), out=tmp_path / "t")
    own = aelens.test_run(run, figures=False)
    own_bytes = (run / "test" / "results.json").read_bytes()
    res = aelens.test_run(run, data=other_dir, figures=False)
    # another dataset's scores go to test-other/, beside the run's own test results, which stay as they were
    assert json.loads((run / "test-other" / "results.json").read_text()) == res and res != own
    assert (run / "test" / "results.json").read_bytes() == own_bytes
    ds = aelens.load_dataset(tiny_data)
    train_idx = np.load(run / "split.npz")["train"]
    expected = circular_mean_deg(ds.conditions.column("body_angle_deg")[train_idx])
    base = res["baselines"]["circular_mean"]
    assert base["direction_deg"] == pytest.approx(expected, abs=1e-3) and base["from"] == "training frames"
    assert base["angle_mae_deg"] == pytest.approx(abs(((expected - 90) + 180) % 360 - 180), abs=1e-4)
