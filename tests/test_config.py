import pytest

from aelens.config import RunConfig, load_config
from aelens.errors import AelensError


def test_yaml_round_trip(tmp_path):
    cfg = RunConfig(kind="tagger").with_overrides(
        {
            "data.path": "x",
            "data.conditions": {7: "body_angle_deg"},
            "train.epochs": 3,
            "tagger.unfreeze": "2",
            "snapshots.layers": "fc1",
        }
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


@pytest.mark.parametrize(
    "args,message",
    [
        (["--seed", "-1"], "--seed must be an integer from 0 to 2^32 - 1, got -1"),
        (["--seed", "99999999999999"], "--seed must be an integer from 0 to 2^32 - 1, got 99999999999999"),
        (["--threads", "-4"], "--threads must be 0 (one per physical core) or more, got -4"),
        (["--lr", "inf"], "--lr must be a positive number up to 10, got inf"),
        (["--lr", "1e6"], "--lr must be a positive number up to 10, got 1000000.0"),
        (["--noise", "gaussian:inf"], "--noise: 'gaussian:inf' is out of range"),
        (["--devices", "abc"], "--devices must be a number of devices (1, 2, ...) or auto, got 'abc'"),
        (["--devices", "0"], "--devices must be a number of devices (1, 2, ...) or auto, got '0'"),
        (["--num-nodes", "0"], "--num-nodes must be at least 1, got 0"),
        (["--accelerator", "tpu"], "--accelerator must be auto, cpu, gpu, cuda or mps, got 'tpu'"),
        (
            ["--strategy", "bogus"],
            "--strategy must be auto or ddp (ddp_spawn, fsdp and deepspeed are passed to Lightning), got 'bogus'",
        ),
    ],
)
def test_options_passed_on_unchecked_before_are_refused(tiny_data, tmp_path, capsys, args, message):
    from conftest import run_cli

    code, _, err = run_cli(["train", "ae", "--data", tiny_data, "--out", tmp_path / "r", *args], capsys)
    assert code == 2 and message in err.strip() and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--umap-neighbors", "0"], "--umap-neighbors must be at least 2, got 0"),
        (["--umap-min-dist", "-1"], "--umap-min-dist must be 0 or more, got -1.0"),
        (["--umap-fit-max", "1"], "--umap-fit-max must be at least 18 frames (dim + 2 and neighbors + 1), got 1"),
    ],
)
def test_umap_options_are_checked(tiny_data, tmp_path, capsys, args, message):
    from conftest import run_cli

    code, _, err = run_cli(
        ["train", "decoder", "--data", tiny_data, "--embedding", "umap", "--out", tmp_path / "r", *args], capsys
    )
    assert code == 2 and message in err, err
    assert not (tmp_path / "r").exists()


def test_a_gpu_accelerator_without_a_gpu_is_refused_before_the_run_folder(tiny_data, tmp_path, capsys):
    import torch

    from conftest import run_cli

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = run_cli(
        ["train", "ae", "--data", tiny_data, "--out", tmp_path / "r", "--accelerator", "gpu"], capsys
    )
    assert code == 2 and "--accelerator gpu: this machine has no CUDA GPU that torch can use" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["data", "synth", "{tmp}/s", "--size", "100000"], "--size must be from 24 to 512 pixels, got 100000"),
        (
            ["data", "synth", "{tmp}/s", "--n", "1000000", "--size", "512"],
            "--n 1000000 --size 512: 488 GiB of frames; at most 8 GiB",
        ),
        (["data", "synth", "{tmp}/s", "--seed", "-1"], "--seed must be an integer from 0 to 2^32 - 1, got -1"),
        (["demo", "--out", "{tmp}/s", "--n", "0"], "--n must be at least 100 frames, got 0"),
        (["demo", "--out", "{tmp}/s", "--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["latent", "{tmp}/run", "--max-images", "1"], "--max-images must be at least 20 frames, got 1"),
        (["compare", "{tmp}/a", "{tmp}/b", "--max-images", "0"], "--max-images must be at least 20 frames, got 0"),
    ],
)
def test_command_numbers_out_of_range_exit_2(tmp_path, capsys, args, message):
    from conftest import run_cli

    code, _, err = run_cli([a.replace("{tmp}", str(tmp_path)) for a in args], capsys)
    assert code == 2 and message in err, err
    assert not (tmp_path / "s").exists()


def test_command_line_help_shows_the_config_defaults(capsys):
    """Defaults are defined once, in the config fields; the help text is generated from them."""
    import dataclasses

    from aelens.cli import TAGGER_OPTIONS, TRAIN_OPTIONS, config_default, option_help
    from aelens.config import RunConfig
    from aelens.study.config import StudyConfig
    from conftest import run_cli

    assert option_help("Training epochs.", "train.epochs") == f"Training epochs. [{RunConfig().train.epochs}]"
    assert option_help("Adam learning rate.", "train.lr") == "Adam learning rate. [0.001]"
    assert option_help("Latent snapshots during training.", "snapshots.enabled").endswith("[on]")
    assert option_help("x.", "split.purge") == "x."  # None: the help itself says what happens
    alt = dataclasses.replace(RunConfig(), seed=7)
    assert config_default("seed") == RunConfig().seed != alt.seed
    for _, _, flag, help_, key in TRAIN_OPTIONS + TAGGER_OPTIONS:  # no default restated by hand
        if key and config_default(key) is not None:
            assert "[" not in help_, f"{flag}: the help restates a default"
    code, out, _ = run_cli(["study", "--help"], capsys)
    assert code == 0 and f"[{StudyConfig().epochs}]" in out and "[body_angle_deg]" in out


def test_a_config_with_a_retired_field_still_loads(tmp_path):
    """Runs written when train.compile existed keep loading (the field was never used)."""
    from aelens.config import RunConfig, load_config

    path = tmp_path / "config.yaml"
    RunConfig(kind="ae").save(path)
    text = path.read_text().replace("train:\n", "train:\n  compile: false\n")
    path.write_text(text)
    assert load_config(path) == RunConfig(kind="ae")


def test_the_command_line_answers_without_importing_torch(tmp_path):
    """`aelens --help` and one-line errors on a wrong path come before torch and Lightning are imported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from aelens.cli import main\n"
        "codes = [main(['--help']), main(['test', sys.argv[1]]), main(['train', 'ae', '--data', sys.argv[2]])]\n"
        "print(codes, 'torch' in sys.modules, 'lightning' in sys.modules)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "no_run"), str(tmp_path / "missing.npy")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.stdout.strip().splitlines()[-1] == "[0, 2, 2] False False", res.stdout + res.stderr
    assert f"{tmp_path / 'no_run'}: not an aelens run directory (no manifest.json)" in res.stderr
    assert f"{tmp_path / 'missing.npy'}: file not found" in res.stderr


def test_study_config_nests_the_run_settings(tmp_path):
    """study.yaml's `run:` section takes any run setting; the flat shorthands (and study.yaml files written before
    `run:` existed) mean the same; the command line wins; a saved study.yaml reads back equal."""
    from aelens.study.config import STUDY_RUN, load_study_config
    from aelens.study.pipeline import _decoder_config, _run_config

    flat = tmp_path / "flat.yaml"
    flat.write_text("epochs: 5\ntarget: head_angle_deg\nsplit: random\nlatent_dim: 8\ndecoders: [pca:4]\n")
    nested = tmp_path / "nested.yaml"
    nested.write_text(
        "run:\n  train: {epochs: 5}\n  tagger: {target: head_angle_deg}\n  split: {kind: random}\n"
        "  model: {latent_dim: 8}\ndecoders: [pca:4]\n"
    )
    cfg = load_study_config(flat)
    assert cfg == load_study_config(nested)
    assert (cfg.epochs, cfg.target, cfg.split, cfg.latent_dim) == (5, "head_angle_deg", "random", 8)
    cfg.save(tmp_path / "saved.yaml")
    assert load_study_config(tmp_path / "saved.yaml") == cfg
    assert load_study_config(nested, {"epochs": 3}).epochs == 3  # the command line over the file
    over = load_study_config(nested, {"run.embedding.umap_epochs": 200, "run.train.lr": 0.01})  # any run field
    assert (over.run.embedding.umap_epochs, over.run.train.lr, over.epochs) == (200, 0.01, 5)

    more = tmp_path / "more.yaml"
    more.write_text("run:\n  train: {lr: 0.003}\n  noise: gaussian:0.1\n")
    cfg = load_study_config(more)
    ae = _run_config(cfg, "/data", "ae")
    assert (ae.kind, ae.train.lr, ae.noise, ae.train.epochs) == ("ae", 0.003, "gaussian:0.1", STUDY_RUN["train.epochs"])
    assert ae.snapshots.max_images == cfg.run.snapshots.max_images and ae.data.path == "/data"
    dec = _decoder_config(cfg, "/data", "umap:2")
    assert (dec.embedding.method, dec.embedding.dim, dec.snapshots.enabled, dec.train.lr) == ("umap", 2, False, 0.003)


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochs: 5\nrun: {train: {epochs: 6}}\n", "{p}: epochs and run.train.epochs both given; keep one"),
        ("run: {train: {lr: -1}}\n", "--lr must be a positive number up to 10, got -1.0"),
        ("run: [1]\n", "{p}: run: expected a mapping of run settings (as in a run's config.yaml)"),
        ("run: {noise: 'gaussian:x'}\n", "--noise"),
        ("sweep_epochs: 0\n", "sweep_epochs must be at least 1, got 0"),
    ],
)
def test_study_config_errors(tmp_path, text, message):
    from aelens.errors import AelensError
    from aelens.study.config import load_study_config

    path = tmp_path / "study.yaml"
    path.write_text(text)
    with pytest.raises(AelensError) as err:
        load_study_config(path)
    assert str(err.value).startswith(message.format(p=path))
