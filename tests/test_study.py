"""The one-command study on a tiny synthetic set: every artefact, resume, the report in a real browser."""

import json
import shutil
from pathlib import Path

import pytest

from aelens.config import load_study_config
from aelens.data.synthetic import synthesize, write_dataset
from aelens.errors import AelensError
from aelens.study import run_study

ARTEFACTS = [
    "study.yaml", "results.json", "report.html", "timings.json",
    "runs/ae/model.safetensors", "runs/ae/test/results.json",
    "runs/decoder-pca16/test/results.json", "runs/decoder-pca2/test/results.json",
    "runs/decoder-umap16/reducer/umap.joblib", "runs/decoder-umap2/test/results.json",
    "recon/recon_comparison.csv", "recon/recon_comparison.md", "recon/recon_comparison.png",
    "latent/ae/overview.png", "latent/ae/encoding_scores.csv", "latent/ae/evolution.gif", "latent/ae/evolution.mp4",
    "latent/ae/encoding_vs_epoch.png", "latent/tagger/overview.png",
    "sweep/unfreeze_sweep.csv", "sweep/unfreeze_sweep.png", "sweep/scratch/test/results.json",
    "sweep/unfreeze0/test/results.json", "sweep/unfreeze_all/test/results.json",
    "compare/comparison.json", "compare/comparison.md", "compare/comparison.png",
]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    data = write_dataset(root / "data", synthesize(300, seed=5, size=32))
    cfg = load_study_config(None, {"epochs": 1, "max_images": 300, "batch_size": 32})
    lines = []
    results = run_study(data, root / "out", cfg, echo=lines.append)
    return root, data, cfg, results, lines


def test_study_produces_every_artefact(study):
    root, _, _, results, lines = study
    out = root / "out"
    for rel in ARTEFACTS:
        assert (out / rel).is_file(), rel
    assert set(results["answers"]) == {"q1", "q2", "q3"}
    assert "PCA-16 reaches" in results["answers"]["q2"] and "linear CKA" in results["answers"]["q3"]
    assert len(results["reconstruction"]["rows"]) == 5
    assert [r["run"] for r in results["sweep"]["rows"]] == ["scratch", "unfreeze0", "unfreeze1", "unfreeze2",
                                                            "unfreeze3", "unfreeze_all"]
    pair = results["comparison"]["pairs"][0]
    assert 0 <= pair["linear_cka"] <= 1
    html = (out / "report.html").read_text()
    assert html.count("<img src=\"data:image/") >= 10 and "http://" not in html and "https://" not in html
    for section in ("id='q1'", "id='q2'", "id='q3'"):
        assert section in html
    assert json.loads((out / "results.json").read_text())["answers"] == results["answers"]


def test_study_resumes_without_redoing_finished_steps(study):
    root, data, cfg, _, _ = study
    out = root / "out"
    shutil.rmtree(out / "compare")  # as if interrupted before the last step
    before = (out / "runs" / "ae" / "model.safetensors").stat().st_mtime_ns
    lines = []
    run_study(data, out, cfg, echo=lines.append)
    skipped = [line for line in lines if "done earlier, skipped" in line]
    assert len(skipped) == 9  # of 10 steps: only the representation comparison runs again
    assert "[10/10] compare AE and tagger representations ..." in lines
    assert (out / "compare" / "comparison.json").is_file()
    assert (out / "runs" / "ae" / "model.safetensors").stat().st_mtime_ns == before


def test_study_refuses_other_settings_in_the_same_folder(study):
    root, data, cfg, _, _ = study
    other = load_study_config(None, {"epochs": 2, "max_images": 300, "batch_size": 32})
    with pytest.raises(AelensError, match=r"holds a study with other settings \(epochs\)"):
        run_study(data, root / "out", other, echo=lambda s: None)


def _chromium() -> tuple[str, str] | None:
    for browser in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium") or ""):
        driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
        if browser and Path(browser).exists() and Path(driver).exists():
            return browser, driver
    return None


@pytest.mark.browser
def test_report_renders_in_headless_chromium(study, tmp_path):
    found = _chromium()
    if found is None:
        pytest.skip("Chromium and chromedriver are not installed (Debian packages chromium, chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = found
    opts = Options()
    opts.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                 "--window-size=1280,2000"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        root = study[0]
        driver.get((root / "out" / "report.html").as_uri())
        n_images = driver.execute_script("return document.images.length")
        broken = driver.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)")
        sections = driver.execute_script("return ['q1','q2','q3'].map(id => document.getElementById(id) !== null)")
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    assert n_images >= 10
    assert broken == []
    assert sections == [True, True, True]
    assert shot.stat().st_size > 10_000
