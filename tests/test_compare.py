"""aelens compare and compare-recon: refuse runs that are not comparable, one row per run."""

import numpy as np
import pytest

import aelens
from aelens.analysis.compare import compare_runs
from aelens.errors import AelensError
from aelens.runs.evaluate import compare_reconstructions
from aelens.synthetic.arena import synthesize, write_dataset
from conftest import quick_config, run_cli


@pytest.fixture(scope="module")
def other_data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("other") / "data", synthesize(120, seed=8, size=32))


def test_compare_refuses_runs_from_other_datasets_or_shapes(tiny_ae, tiny_data, other_data, tmp_path, capsys):
    other = aelens.train(quick_config(other_data), out=tmp_path / "other")
    with pytest.raises(AelensError, match=r"runs were trained on different datasets: .*data \(.*\); .*data \("):
        compare_runs([tiny_ae, other])
    big = write_dataset(tmp_path / "big", synthesize(80, seed=1, size=40))
    wide = aelens.train(quick_config(big), out=tmp_path / "wide")
    code, _, err = run_cli(["compare", tiny_ae, wide, "--out", tmp_path / "c"], capsys)
    assert code == 2 and "runs were trained on different image shapes" in err and "1x32x32" in err and "1x40x40" in err
    code, _, err = run_cli(["compare-recon", tiny_ae, other, "--out", tmp_path / "r"], capsys)
    assert code == 2 and "held out other test frames" in err


def test_compare_two_runs_of_one_dataset(tiny_ae, tiny_data, tmp_path):
    tagger = aelens.train(quick_config(tiny_data, "tagger"), out=tmp_path / "tagger")
    res = compare_runs(
        [tiny_ae, tagger], out=tmp_path / "cmp", color_by=["body_angle_deg", "dist_from_center"], n_boot=20
    )
    assert res["labels"] == ["AE-16", "tagger (scratch)"] and len(res["pairs"]) == 1
    p = res["pairs"][0]
    assert 0 < p["linear_cka"] < 1 and p["linear_cka_ci95"][0] <= p["linear_cka"] <= p["linear_cka_ci95"][1]
    assert set(res["loop"]) == {"AE-16", "tagger (scratch)"}
    for f in ("comparison.json", "comparison.md", "comparison.png"):
        assert (tmp_path / "cmp" / f).stat().st_size > 0
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| AE-16 | tagger (scratch) |" in md and "| body_angle_deg |" in md


def test_compare_recon_one_row_per_run(tiny_ae, tiny_data, tmp_path):
    dec = aelens.train(
        quick_config(tiny_data, "decoder", **{"embedding.method": "pca", "embedding.dim": 2}), out=tmp_path / "pca2"
    )
    res = compare_reconstructions([tiny_ae, dec], out=tmp_path / "recon")
    assert [r["model"] for r in res["rows"]] == ["AE-16", "PCA-2"] and res["n"] == 16
    lines = (tmp_path / "recon" / "recon_comparison.csv").read_text().splitlines()
    assert lines[0].startswith(
        "run,model,latent_source,dim,mse,psnr,ssim,mse_clean,psnr_clean,ssim_clean,train_seconds"
    )
    assert len(lines) == 3
    assert np.isfinite([r["psnr_clean"] for r in res["rows"]]).all()
