"""The one-command study on a tiny synthetic set: every artefact, resume, the report in a real browser."""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from aelens.data import sessions
from aelens.errors import AelensError
from aelens.layout import StudyLayout
from aelens.study.config import load_study_config
from aelens.study.pipeline import run_study
from aelens.synthetic.arena import synthesize, write_dataset

ARTEFACTS = [
    "study.yaml",
    "results.json",
    "report.html",
    "timings.json",
    "runs/ae/model.safetensors",
    "runs/ae/test/results.json",
    "runs/decoder-pca8/test/results.json",
    "runs/decoder-pca2/test/results.json",
    "runs/decoder-umap16/reducer/reducer.safetensors",
    "runs/decoder-umap2/test/results.json",
    "recon/recon_comparison.csv",
    "recon/recon_comparison.md",
    "recon/recon_comparison.png",
    "latent/ae/overview.png",
    "latent/ae/encoding_scores.csv",
    "latent/ae/evolution.gif",
    "latent/ae/evolution.mp4",
    "latent/ae/encoding_vs_epoch.png",
    "latent/tagger/overview.png",
    "sweep/unfreeze_sweep.csv",
    "sweep/unfreeze_sweep.png",
    "sweep/scratch/test/results.json",
    "sweep/unfreeze0/test/results.json",
    "sweep/unfreeze_all/test/results.json",
    "compare/comparison.json",
    "compare/comparison.md",
    "compare/comparison.png",
    "transfer/other_session/transfer.json",
    "transfer/other_session/decoding.csv",
    "transfer/other_session/ae/results.json",
    "transfer/other_session/tagger/results.json",
    "transfer/other_session/unfreeze_all/results.json",
    "transfer/other_session/decoder-umap2/results.json",
]


LOADS: list[Path] = []  # the paths the study fixture's run read, in order


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    data = write_dataset(root / "data", synthesize(300, seed=5, size=32))
    other = write_dataset(root / "other_session", synthesize(120, seed=6, size=32))
    # not the defaults, so that the report must take latent size, target and decoder names from the settings
    cfg = load_study_config(
        None,
        {
            "epochs": 1,
            "max_images": 300,
            "batch_size": 32,
            "transfer": [str(other)],
            "latent_dim": 8,
            "target": "head_angle_deg",
            "decoders": ["pca:8", "pca:2", "umap:16", "umap:2"],
        },
    )
    lines = []
    with pytest.MonkeyPatch.context() as mp:  # every dataset read, by path: the study should read each once
        read = sessions.load_dataset
        mp.setattr(sessions, "load_dataset", lambda path, **kw: LOADS.append(Path(path).resolve()) or read(path, **kw))
        results = run_study(data, root / "out", cfg, echo=lines.append)
    return root, data, cfg, results, lines


def test_a_study_reads_its_data_and_each_transfer_set_once(study):
    """The study loads its training data and each transfer set once and passes them to every step (eleven runs,
    their tests, the latent maps, the comparisons, the transfer scores)."""
    root, data, cfg, results, lines = study
    assert sorted(LOADS) == sorted([Path(data).resolve(), (root / "other_session").resolve()])


def test_study_produces_every_artefact(study):
    root, _, _, results, lines = study
    out = root / "out"
    for rel in ARTEFACTS:
        assert (out / rel).is_file(), rel
    assert set(results["answers"]) == {
        "what_ae_encodes",
        "can_embeddings_replace_encoder",
        "how_objective_shapes_latent",
        "transfer",
    }
    assert (
        "PCA-8 reaches" in results["answers"]["can_embeddings_replace_encoder"]
        and "linear CKA" in results["answers"]["how_objective_shapes_latent"]
    )
    assert len(results["reconstruction"]["rows"]) == 5
    assert [r["run"] for r in results["sweep"]["rows"]] == [
        "scratch",
        "unfreeze0",
        "unfreeze1",
        "unfreeze2",
        "unfreeze3",
        "unfreeze_all",
    ]
    pair = results["comparison"]["pairs"][0]
    assert 0 <= pair["linear_cka"] <= 1
    html = (out / "report.html").read_text()
    assert html.count('<img src="data:image/') >= 10 and "http://" not in html and "https://" not in html
    for section in (
        "id='what_ae_encodes'",
        "id='can_embeddings_replace_encoder'",
        "id='how_objective_shapes_latent'",
        "id='transfer'",
        "Does it hold on a new session?",
    ):
        assert section in html
    tr = results["transfer"][0]
    assert tr["name"] == "other_session" and tr["n"] == 120
    labels = [m["label"] for m in tr["models"]]
    assert (
        labels[:5] == ["ae", "decoder-pca8", "decoder-pca2", "decoder-umap16", "decoder-umap2"] and "tagger" in labels
    )
    ae = tr["models"][0]
    on_new = json.loads((out / "transfer" / "other_session" / "ae" / "results.json").read_text())
    assert ae["new"]["value"] == on_new["psnr"] and on_new["n"] == 120  # every frame of the new session
    assert ae["own"]["value"] == json.loads((out / "runs" / "ae" / "test" / "results.json").read_text())["psnr"]
    text = results["answers"]["transfer"]["other_session"]
    assert text[0].startswith("The AE reconstructs other_session at ") and any(
        "tagger (from scratch)" in t for t in text
    )
    assert {r["model"] for r in tr["decoding"]} == {"ae", "tagger"}
    assert json.loads((out / "results.json").read_text())["answers"] == results["answers"]


def test_study_resumes_without_redoing_finished_steps(study):
    root, data, cfg, _, _ = study
    out = root / "out"
    shutil.rmtree(out / "compare")  # as if interrupted before the last step
    before = (out / "runs" / "ae" / "model.safetensors").stat().st_mtime_ns
    lines = []
    run_study(data, out, cfg, echo=lines.append)
    skipped = [line for line in lines if "done earlier, skipped" in line]
    assert len(skipped) == 10  # of 11 steps: only the representation comparison runs again
    assert "[10/11] compare AE and tagger representations ..." in lines
    assert (out / "compare" / "comparison.json").is_file()
    assert (out / "runs" / "ae" / "model.safetensors").stat().st_mtime_ns == before


def test_study_refuses_other_settings_in_the_same_folder(study):
    root, data, cfg, _, _ = study
    other = dataclasses.replace(
        cfg, run=dataclasses.replace(cfg.run, train=dataclasses.replace(cfg.run.train, epochs=2))
    )
    with pytest.raises(AelensError, match=r"holds a study with other settings \(run.train.epochs\)"):
        run_study(data, root / "out", other, echo=lambda s: None)


def test_more_seeds_train_only_the_extra_ae_and_tagger(study, tmp_path):
    """A finished study resumed with --seeds 2 trains the AE and the tagger once more (seed + 1, otherwise the same
    settings), redoes nothing else, and reports each seed's score and the spread."""
    root, data, cfg, first, _ = study
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    lines = []
    res = run_study(data, out, dataclasses.replace(cfg, seeds=2), echo=lines.append)
    ran = [line for line in lines if line.endswith(" ...")]
    assert ran == [
        f"[11/13] train + test AE, seed {cfg.seed + 1} ...",
        f"[12/13] train + test tagger from scratch, seed {cfg.seed + 1} ...",
    ]
    lay = StudyLayout(out)
    for kind, main in (("ae", lay.ae), ("tagger", lay.tagger)):
        extra = lay.seed_run(kind, cfg.seed + 1)
        assert extra.config().seed == cfg.seed + 1
        assert dataclasses.replace(extra.config(), seed=cfg.seed) == main.config()  # only the seed differs
    rows = res["seeds"]["rows"]
    assert [r["seed"] for r in rows] == [cfg.seed, cfg.seed + 1]
    assert rows[0]["ae_psnr"] == first["ae_test"]["psnr_clean"]
    spread = res["seeds"]["spread"]["ae_psnr"]
    assert spread["n"] == 2 and spread["min"] <= spread["mean"] <= spread["max"]
    assert "<h2>Seeds</h2>" in (out / "report.html").read_text()
    assert load_study_config(out / "study.yaml").seeds == 2


@pytest.mark.browser
def test_report_renders_in_headless_chromium(study, tmp_path):
    from conftest import headless_chromium

    driver = headless_chromium(tmp_path)
    try:
        root = study[0]
        driver.get((root / "out" / "report.html").as_uri())
        n_images = driver.execute_script("return document.images.length")
        broken = driver.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)"
        )
        sections = driver.execute_script(
            "return ['what_ae_encodes','can_embeddings_replace_encoder','how_objective_shapes_latent'].map(id => document.getElementById(id) !== null)"
        )
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    assert n_images >= 10
    assert broken == []
    assert sections == [True, True, True]
    assert shot.stat().st_size > 10_000


RAW = Path(__file__).resolve().parents[2] / "shared" / "raw"


def test_report_names_come_from_the_study_settings(study):
    """The fixture's study has an 8-D latent, head angle as the taggers' target and a PCA-8 decoder: the report says
    so everywhere (it used to print "16-D", show body-angle figures and look for decoder-pca16)."""
    root, _, _, results, _ = study
    out = root / "out"
    assert "latent_dim: 8" in (out / "runs" / "ae" / "config.yaml").read_text()
    assert "target: head_angle_deg" in (out / "sweep" / "scratch" / "config.yaml").read_text()
    assert results["answers"]["what_ae_encodes"].startswith("The AE's 8-D latent encodes ")
    assert results["comparison"]["loop_condition"] == "head_angle_deg"
    assert "head_angle_deg is decoded from the tagger latent" in results["answers"]["how_objective_shapes_latent"]
    html = (out / "report.html").read_text()
    assert "16-D" not in html and "body angle" not in html
    assert 'alt="Coloured by head_angle_deg (the taggers&#x27; target)' in html  # the figure is there, embedded
    assert 'alt="The AE latent (UMAP), coloured by each condition' in html
    assert "explained variance of PCA on the training frames (decoder-pca8)" in html


def test_study_on_one_fly_session_transfers_to_the_other(tmp_path):
    """The real pair in ../shared/raw, cut short: import the first 200 frames of each session, train on one, score on
    the other. The README's full-sized numbers come from the same commands without --stop (see README)."""
    slp = RAW / "flies_clip" / "clip.predictions.slp"
    h5 = RAW / "flies_session2" / "predictions.analysis.h5"
    if not (slp.is_file() and h5.is_file()):
        pytest.skip(f"raw sessions in {RAW} are not available")
    pytest.importorskip("sleap_io")
    from aelens.importing.importer import ImportOptions, import_video

    opts = ImportOptions(heading="thorax:head", stop=200)
    a = import_video(None, slp, tmp_path / "flies_clip", options=opts, progress=False)
    b = import_video(
        RAW / "flies_session2" / "20190128_113421.120s.mp4",
        h5,
        tmp_path / "flies_session2",
        options=opts,
        progress=False,
    )
    cfg = load_study_config(
        None,
        {"epochs": 1, "sweep_epochs": 1, "max_images": 400, "decoders": ["pca:16"], "transfer": [str(b)],
         "latent_method": "pca"},  # PCA maps: this test is about splits and transfer, not the maps
    )  # fmt: skip
    results = run_study(a, tmp_path / "study", cfg, echo=lambda s: None)
    assert results["ae_test"]["split"]["kind"] == "blocked"  # video frames: never a random split by default
    tr = results["transfer"][0]
    assert tr["name"] == "flies_session2" and tr["n"] > 150
    tagger = next(m for m in tr["models"] if m["label"] == "tagger")
    assert tagger["new"]["baseline_from"] == "training frames" and 0 <= tagger["new"]["value"] <= 180
    report = (tmp_path / "study" / "report.html").read_text()
    assert "Does it hold on a new session?" in report
    # the first 200 frames of the clip already show one fly's head point beside its head: the report says so
    assert [n.split(": the pose heading")[0] for n in results["data_notes"]] == [f"{a} session clip, track 0"]
    assert "Warning about the data:" in report and "track 0: the pose heading sits +2" in report


def test_study_transfer_bad_inputs_exit_2_before_any_work(tmp_path, capsys):
    from conftest import run_cli

    data = write_dataset(tmp_path / "data", synthesize(60, seed=1, size=32))
    small = write_dataset(tmp_path / "small", synthesize(20, seed=2, size=28))
    out = tmp_path / "study"
    code, _, err = run_cli(["study", "--data", data, "--out", out, "--transfer", small], capsys)
    assert code == 2 and err.strip().endswith(
        f"--transfer {small.resolve()}: images are 1x28x28 but the training data's are 1x32x32"
    )
    code, _, err = run_cli(["study", "--data", data, "--out", out, "--transfer", data], capsys)
    assert code == 2 and "is the training data itself" in err
    code, _, err = run_cli(["study", "--data", data, "--out", out, "--augment", "spin"], capsys)
    assert code == 2 and "--augment must be none, all or a comma-separated list" in err
    assert not out.exists()


def test_the_answers_name_only_conditions_decoded_better_than_chance():
    from aelens.analysis.answers import answer_what_ae_encodes, best_linear_r2

    rows = [
        {"condition": "body_angle_deg", "decoder": "knn", "metric": "mae_deg", "score": 2.0, "chance": 90.0},
        {"condition": "speed", "decoder": "knn", "metric": "r2", "score": -0.02, "chance": 0.0},
        {"condition": "speed", "decoder": "ridge", "metric": "r2", "score": -0.10, "chance": 0.0},
        {"condition": "y", "decoder": "ridge", "metric": "r2", "score": -0.65, "chance": 0.0},
    ]
    text = answer_what_ae_encodes({"encoding_scores": rows, "trustworthiness": 0.99}, 16)
    assert text.startswith("The AE's 16-D latent encodes body_angle_deg (knn: 2.0° (chance 90°)); the least")
    assert "speed" not in text.split(";")[0] and best_linear_r2(rows) is None
    none = answer_what_ae_encodes({"encoding_scores": rows[1:], "trustworthiness": 0.99}, 8)
    assert none.startswith("The AE's 8-D latent encodes none of the conditions better than chance; the least")
    # a constant condition (no crop ever padded) scores NaN: never named as the least decodable one
    constant = {"condition": "pad_fraction", "decoder": "ridge", "metric": "r2", "score": float("nan"), "chance": 0.0}
    text = answer_what_ae_encodes({"encoding_scores": [*rows, constant], "trustworthiness": 0.99}, 16)
    assert "pad_fraction" not in text and "the least decodable condition is y (ridge: R² -0.65)" in text
    only = answer_what_ae_encodes({"encoding_scores": [constant], "trustworthiness": 0.99}, 16)
    assert only == "No condition varies enough to score the AE latent against."


def test_a_reconstruction_that_does_not_hold_says_why():
    """Planted headlines: the AE loses 10 dB on a new session; the training frames' mean image loses 8 (most of it:
    the frames look different), or 2 while a PCA loses 9 (the frames lie outside the training frames' span), or
    both little (the AE's own doing); a transfer that holds, or results without the mean-frame baseline (written
    before it existed), get no such sentence."""
    from aelens.analysis.answers import answer_transfer, why_reconstruction_drops

    own = {"value": 30.0, "mean_frame_psnr": 20.0, "pca_psnr": 31.0, "pixels": {"mean": 0.15, "std": 0.09}}
    new = {"value": 20.0, "mean_frame_psnr": 12.0, "pca_psnr": 29.0, "pixels": {"mean": 0.31, "std": 0.12}}
    why = why_reconstruction_drops(own, new, "s2")
    assert why == (
        "Why: from the own test frames to s2 the AE changes by -10.0 dB; the training frames' mean image, used as a "
        "reconstruction, by -8.0 dB (20.0 -> 12.0 dB), a PCA of as many components -2.0 dB; mean brightness 0.15 -> "
        "0.31, pixel s.d. 0.09 -> 0.12 (0-1 scale): most of the AE's drop is the new frames' other average appearance."
    )
    span = why_reconstruction_drops(own, {**new, "mean_frame_psnr": 18.0, "pca_psnr": 22.0}, "s2")
    assert (
        span.endswith("the drop is in the data, not in how the AE was trained.")
        and "PCA of as many components -9.0" in span
    )
    own_doing = why_reconstruction_drops(own, {**new, "mean_frame_psnr": 18.0}, "s2")
    assert own_doing.endswith(
        "neither explains it: the AE learnt more of the training session than what its frames share with these."
    )
    assert why_reconstruction_drops({"value": 30.0}, {"value": 20.0}, "s2") is None
    tr = {"name": "s2", "models": [{"label": "ae", "kind": "ae", "own": own, "new": new}], "decoding": []}
    assert answer_transfer(tr)[1] == why
    holds = {"name": "s2", "models": [{"label": "ae", "kind": "ae", "own": own, "new": {**new, "value": 29.0}}]}
    assert len(answer_transfer(holds)) == 1 and "it holds" in answer_transfer(holds)[0]


def test_the_ae_against_the_baselines_in_words_with_the_warning_and_the_training_frames():
    """Planted paired rows: the words group the baselines by the interval's verb; an AE that does not beat the noisy
    input is called under-trained; where it is worse than the blur on its test frames, its own training frames say
    whether it falls short there too or only on new frames; a blur it beats, or results without the training-frame
    scores (written before them), get no such sentence."""
    from aelens.analysis.answers import answer_can_embeddings_replace_encoder, fit_sentence

    def pair(b, d, lo, hi, word):
        return {"a": "AE-16", "b": b, "difference": d, "ci95": [lo, hi], "word": word}

    rows = [
        {"model": "AE-16", "latent_source": "ae", "psnr_clean": 22.0, "train_seconds": 10.0},
        {"model": "PCA-16", "latent_source": "pca", "psnr_clean": 22.0, "train_seconds": 5.0},
    ]
    recon = {
        "rows": rows,
        "pairs": [
            {"a": "PCA-16", "b": "AE-16", "difference": 0.0, "ci95": [-0.2, 0.2], "word": "cannot be told apart from"}
        ],
        "baselines": [
            pair("noisy input", 0.4, -0.1, 0.9, "cannot be told apart from"),
            pair("Gaussian blur", -5.0, -6.0, -4.0, "is worse than"),
            pair("mean training frame", 7.0, 6.0, 8.0, "beats"),
        ],
        "ae_training_frames": {"n": 256, "metric": "psnr_clean", "model": 24.0, "gaussian_blur": 28.0},
    }
    text = answer_can_embeddings_replace_encoder(recon)
    assert (
        " On the same frames the AE-16 cannot be told apart from noisy input (+0.4 dB, 95% CI -0.1 to +0.9 dB); is "
        "worse than Gaussian blur (-5.0 dB, 95% CI -6.0 to -4.0 dB); beats mean training frame (+7.0 dB, 95% CI +6.0 "
        "to +8.0 dB). On 256 of its own training frames the AE-16 scores 24.0 dB and the blur 28.0 dB: it falls short "
        "on frames it learnt from too, so the gap is in how sharply it draws, not over-fitting. Warning: the AE-16 does "
        "not beat the noisy input on its test frames (+0.4 dB, 95% CI -0.1 to +0.9 dB): under-trained or "
        "mis-configured (train longer, raise --patience, or check --noise and the frames)."
    ) in text
    overfit = {**recon, "ae_training_frames": {**recon["ae_training_frames"], "model": 31.0}}
    assert fit_sentence(overfit) == (
        " On 256 of its own training frames the AE-16 scores 31.0 dB and the blur 28.0 dB: it beats the blur on "
        "frames it learnt from but not on new ones (over-fitting to its training frames)."
    )
    beaten = {**recon, "baselines": [pair("Gaussian blur", 1.0, 0.5, 1.5, "beats")]}
    assert fit_sentence(beaten) == "" and "Warning" not in answer_can_embeddings_replace_encoder(beaten)
    assert fit_sentence({k: v for k, v in recon.items() if k != "ae_training_frames"}) == ""


def test_answers_are_read_by_question_name_and_old_numbered_keys_still_read():
    """results.json names the questions; a file written when they were numbered (q1..q3) reads the same."""
    from aelens.analysis.answers import QUESTIONS, read_answers

    new = {
        "answers": {"what_ae_encodes": "a", "can_embeddings_replace_encoder": "b", "how_objective_shapes_latent": "c"}
    }
    old = {"answers": {"q1": "a", "q2": "b", "q3": "c", "transfer": {}}}
    assert list(read_answers(new)) == list(QUESTIONS)
    assert read_answers(old) == {**read_answers(new), "transfer": {}}
    assert read_answers({}) == {}


def _normalised(folder: Path) -> dict:
    """Every results file of a study folder, with its own path and the timings taken out."""
    out = {}
    for path in sorted(folder.rglob("*.json")):
        if path.name in ("timings.json", "manifest.json", "evolution.json"):
            continue
        text = path.read_text().replace(str(folder), "OUT")
        out[str(path.relative_to(folder))] = _drop_times(json.loads(text))
    return out


def _drop_times(value):
    if isinstance(value, dict):
        timed = ("seconds", "created", "per_s", "_s")
        return {k: _drop_times(v) for k, v in value.items() if not any(t in k for t in timed)}
    if isinstance(value, list):
        return [_drop_times(v) for v in value]
    if isinstance(value, str):  # the answers quote training-time ratios
        return re.sub(r"\d+\.\d+x its training time", "Nx its training time", value)
    return value


def test_jobs_2_gives_the_results_of_jobs_1(tmp_path):
    """The decoders and the sweep's taggers trained two at a time in worker processes give the same results files
    as one after another (same seeds, one thread per run in both)."""
    data = write_dataset(tmp_path / "data", synthesize(200, seed=8, size=32))
    over = {"epochs": 1, "max_images": 200, "batch_size": 32, "decoders": ["pca:4", "pca:2"], "run.train.threads": 1}
    one = run_study(data, tmp_path / "one", load_study_config(None, dict(over)), echo=lambda s: None)
    lines = []
    two = run_study(data, tmp_path / "two", load_study_config(None, dict(over)), echo=lines.append, jobs=2)
    assert any("side by side" in line for line in lines)
    assert not any("done earlier" in line for line in lines)  # trained in the group, not found finished
    assert one["answers"]["what_ae_encodes"] == two["answers"]["what_ae_encodes"]
    assert _normalised(tmp_path / "one") == _normalised(tmp_path / "two")


def test_a_submitit_executor_runs_the_independent_steps(tmp_path):
    """The executor a SLURM cluster would use (submitit; here its local one, which starts each job as a process the
    same way) trains the decoders, and the study finishes with them (no target column: no taggers, to stay short)."""
    submitit = pytest.importorskip("submitit")
    data = write_dataset(tmp_path / "data", synthesize(160, seed=9, size=32))
    over = {"epochs": 1, "max_images": 160, "batch_size": 32, "decoders": ["pca:2", "pca:4"], "target": "none_here"}
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(timeout_min=10)
    results = run_study(data, tmp_path / "study", load_study_config(None, over), echo=lambda s: None, executor=executor)
    assert [r["model"] for r in results["reconstruction"]["rows"]][1:] == ["PCA-2", "PCA-4"]
    assert len(list((tmp_path / "jobs").glob("*_result.pkl"))) == 2  # each decoder was a submitit job


def test_a_session_far_off_the_others_is_named():
    from aelens.analysis.report import far_off

    rows = [
        {"group": "a", "n": 10, "psnr": 25.0, "ci95": [24.0, 26.0]},
        {"group": "b", "n": 10, "psnr": 25.5, "ci95": [24.5, 26.5]},
        {"group": "c", "n": 10, "psnr": 19.0, "ci95": [18.0, 20.0]},
    ]
    assert far_off(rows, "psnr") == ["c (19.0)"]
    assert far_off(rows[:2], "psnr") == []
