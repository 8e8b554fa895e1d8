import pytest

from aelens.config import RunConfig, load_config
from aelens.errors import AelensError


def test_yaml_round_trip(tmp_path):
    cfg = RunConfig(kind="tagger").with_overrides(
        {"data.path": "x", "data.conditions": {7: "body_angle_deg"}, "train.epochs": 3, "tagger.unfreeze": "2",
         "snapshots.layers": "fc1"}
    )
    cfg.save(tmp_path / "c.yaml")
    back = load_config(tmp_path / "c.yaml")
    assert back == cfg
    assert back.data.conditions == {7: "body_angle_deg"} and back.snapshots.layers == ("fc1",)


def test_sections_of_other_kinds_are_not_written(tmp_path):
    RunConfig(kind="ae").save(tmp_path / "c.yaml")
    text = (tmp_path / "c.yaml").read_text()
    assert "embedding" not in text and "tagger" not in text and "latent_dim: 16" in text


@pytest.mark.parametrize(
    "text,message",
    [
        ("trian: {epochs: 3}\n", r"unknown key\(s\) trian"),
        ("train: {epocs: 3}\n", r"train: unknown key\(s\) epocs; known: accelerator"),
        ("train: {epochs: many}\n", r"train\.epochs: expected an integer, got 'many'"),
        ("train: {channels_last: 1}\n", r"train\.channels_last: expected true or false, got 1"),
        ("split: {val_fraction: 2}\n", r"--val-fraction must be in \(0, 1\), got 2\.0"),
        ("kind: gan\n", r"kind must be one of ae, decoder, tagger, got 'gan'"),
        ("[1, 2\n", r"not valid YAML"),
    ],
)
def test_bad_config_files(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(AelensError, match=message) as err:
        load_config(tmp_path / "c.yaml")
    assert str(tmp_path / "c.yaml") in str(err.value)
