"""Shared fixtures: tiny synthetic datasets (fixed seeds) and one small trained AE run reused by several tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import aelens  # noqa: E402
from aelens.config import RunConfig  # noqa: E402
from aelens.synthetic.arena import synthesize, write_dataset  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def quick_config(data: Path | str, kind: str = "ae", **overrides) -> RunConfig:
    """A config for seconds-long test runs: few epochs, no progress bar."""
    base = {
        "kind": kind,
        "data.path": str(data),
        "train.epochs": 1,
        "train.batch_size": 32,
        "train.progress": False,
        "train.checkpoint_every": 1,
        "train.log_every": 2,
        "train.patience": 0,  # the fixtures' tests plant epoch counts; early stopping is tested in test_selection.py
        # the fixtures' tests plant sizes and steps of a random split; split kinds are tested in test_splits.py
        "split.kind": "random",
    }
    base.update(overrides)
    return RunConfig(kind=kind).with_overrides(base)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """160 synthetic frames of 32 x 32 with clean frames and metadata."""
    out = tmp_path_factory.mktemp("tiny") / "data"
    write_dataset(out, synthesize(160, seed=3, size=32))
    return out


@pytest.fixture(scope="session")
def tiny_ae(tiny_data, tmp_path_factory) -> Path:
    """A 2-epoch AE run on ``tiny_data``."""
    out = tmp_path_factory.mktemp("runs") / "ae"
    return aelens.train(quick_config(tiny_data, **{"train.epochs": 2}), out=out)


def shared_dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not (path / "images.npz").is_file():
        pytest.skip(f"real dataset {path} is not available")
    return path


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from aelens.cli import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def make_images(tmp_path: Path, name: str, array: np.ndarray) -> Path:
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, images=array)
    else:
        np.save(path, array)
    return path


def headless_chromium(tmp_path: Path):
    """A headless Chromium driven by Selenium, or a skip that says what is missing (Debian: chromium,
    chromium-driver)."""
    import shutil

    browser = next(
        (
            b
            for b in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium"))
            if b and Path(b).exists()
        ),
        None,
    )
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if browser is None or not Path(driver_path).exists():
        pytest.skip("Chromium and chromedriver are not installed (Debian packages chromium, chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = browser
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2000",
    ):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=opts)
