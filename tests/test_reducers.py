"""Reducers: one interface, exact save/load round-trips, no leakage, pickles only behind a hash check."""

import numpy as np
import pytest

import aelens
from aelens.errors import AelensError
from aelens.layout import read_manifest
from aelens.models.reducers import REDUCERS, Reducer, make_reducer
from conftest import quick_config, run_cli


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    base = rng.uniform(size=(6, 30 * 30))
    return (rng.uniform(size=(200, 6)) @ base + 0.05 * rng.normal(size=(200, 900))).astype(np.float32)


@pytest.mark.parametrize("name", sorted(REDUCERS))
def test_every_reducer_round_trips_exactly(name, frames, tmp_path):
    opts = {"n_epochs": 30, "n_neighbors": 10} if name == "umap" else {}
    red = make_reducer(name, 3, seed=1, **opts).fit(frames[:150])
    red.save(tmp_path / "reducer")
    back = Reducer.load(tmp_path / "reducer")
    assert not list((tmp_path / "reducer").glob("*.joblib"))  # no reducer is pickled
    a, b = red.transform(frames[150:]), back.transform(frames[150:])
    assert a.shape == (50, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    emb = red.transform(frames[:150])
    if name != "umap":  # standardised on the training embedding
        np.testing.assert_allclose(emb.mean(0), 0, atol=1e-4)
        np.testing.assert_allclose(emb.std(0), 1, atol=1e-3)


def test_pca_explained_variance_and_inverse(frames):
    pca = make_reducer("pca", 6).fit(frames)
    assert pca.explained_variance > 0.95  # six planted directions
    recon = pca.inverse(pca.transform(frames))
    assert np.abs(recon - frames).mean() < 0.06


def test_umap_is_saved_without_pickle_and_places_new_frames_by_neighbours(frames, tmp_path):
    red = make_reducer("umap", 2, n_epochs=20, n_neighbors=10, pca=5).fit(frames[:150])
    files = red.save(tmp_path / "reducer")
    assert sorted(files) == ["reducer.json", "reducer.safetensors"] and not list(tmp_path.rglob("*.joblib"))
    # a fitted frame placed again lands on (almost) its own position: its nearest neighbour is itself
    again = red.transform(frames[:150])
    fitted = red._fit_embedding
    spread = np.linalg.norm(fitted.max(0) - fitted.min(0))
    assert np.median(np.linalg.norm(again - fitted, axis=1)) < 0.05 * spread
    assert red.components_.shape == (5, 900)  # UMAP ran on 5 principal components


def test_umap_is_repeatable_for_a_seed_by_default(frames):
    """The default (one thread, seeded) fits the same embedding twice; another seed fits another one."""

    def placed(seed: int) -> np.ndarray:
        red = make_reducer("umap", 2, seed=seed, n_epochs=20, n_neighbors=10, pca=5).fit(frames[:150])
        return red.transform(frames[150:])

    np.testing.assert_array_equal(placed(3), placed(3))
    assert not np.array_equal(placed(3), placed(4))


def test_a_legacy_umap_pickle_is_refused_not_unpickled(tmp_path):
    """Runs made before pickle-free UMAP kept the model in umap.joblib: refused in one line, never unpickled (the
    planted pickle would raise if it were loaded)."""
    import pickle

    import torch

    from aelens.storage import save_tensors, write_text

    class Boom:
        def __reduce__(self):
            return (exec, ("raise RuntimeError('unpickled')",))

    folder = tmp_path / "run" / "reducer"
    folder.mkdir(parents=True)
    save_tensors(folder / "reducer.safetensors", {"emb_mean": torch.zeros(2), "emb_std": torch.ones(2)})
    write_text(folder / "reducer.json", '{"name": "umap", "dim": 2, "seed": 0, "options": {}}')
    (folder / "umap.joblib").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(
        AelensError,
        match=r"a UMAP decoder saved by an earlier aelens as a pickle \(umap.joblib\), "
        r"which aelens no longer loads .*retrain it: aelens train decoder --config .*run/config.yaml",
    ):
        Reducer.load(folder, {"files": {}})


@pytest.mark.parametrize(
    "method,dim,n_train,message",
    [
        ("tsne", 2, 100, r"--embedding: unknown method 'tsne'; expected one of pca, umap, randproj, ica"),
        ("pca", 0, 100, r"--dim must be at least 1, got 0"),
        ("pca", 900, 1000, r"--dim 900 must be below the number of pixels per frame \(900\)"),
        ("pca", 150, 100, r"--dim 150 for PCA must be at most the number of training images \(100\)"),
    ],
)
def test_bad_reducer_settings(method, dim, n_train, message):
    with pytest.raises(AelensError, match=message):
        make_reducer(method, dim).check(n_train, 900)


def test_decoder_run_fits_on_training_frames_only_and_tests(tiny_data, tmp_path, capsys):
    run = aelens.train(
        quick_config(tiny_data, "decoder", **{"embedding.method": "pca", "embedding.dim": 4}), out=tmp_path / "pca"
    )
    with np.load(run / "split.npz") as z:
        train_idx = z["train"]
    np.testing.assert_array_equal(np.load(run / "reducer" / "fit_indices.npy"), train_idx)
    m = read_manifest(run)
    assert (
        0 < m["explained_variance"] < 1
        and (run / "pca_variance.csv").is_file()
        and (run / "pca_variance.png").is_file()
    )
    lines = (run / "pca_variance.csv").read_text().splitlines()
    assert lines[0] == "component,explained_variance_ratio,cumulative"
    res = aelens.test_run(run)
    assert res["kind"] == "decoder" and np.isfinite(res["psnr_clean"]) and res["epochs"] == 1
    # decoder runs have the embedding as their latent
    r = aelens.load_run(run)
    assert r.encode(aelens.load_dataset(tiny_data)).shape == (160, 4)


def test_decoder_test_refuses_missing_reducer_and_other_shapes(tiny_data, tmp_path, capsys):
    import shutil

    run = aelens.train(
        quick_config(tiny_data, "decoder", **{"embedding.method": "randproj", "embedding.dim": 3}), out=tmp_path / "rp"
    )
    before = sorted(p.name for p in run.iterdir())
    np.save(tmp_path / "big.npy", np.zeros((4, 40, 40), np.uint8))
    code, _, err = run_cli(["test", run, "--data", tmp_path / "big.npy"], capsys)
    assert code == 2 and "images are 1x40x40 but" in err and "was trained on 1x32x32" in err
    assert sorted(p.name for p in run.iterdir()) == before
    shutil.rmtree(run / "reducer")
    code, _, err = run_cli(["test", run], capsys)
    assert code == 2 and err.strip().endswith("no fitted reducer here (reducer.json missing); is this a decoder run?")


def test_decoder_cli_bad_embedding(tiny_data, tmp_path, capsys):
    code, _, err = run_cli(
        ["train", "decoder", "--data", tiny_data, "--embedding", "lle", "--out", tmp_path / "x"], capsys
    )
    assert code == 2 and "--embedding: unknown method 'lle'" in err
    code, _, err = run_cli(["train", "decoder", "--data", tiny_data, "--dim", "5000", "--out", tmp_path / "y"], capsys)
    assert code == 2 and "--dim 5000 must be below the number of pixels per frame (1024)" in err
    assert not (tmp_path / "y").exists()  # refused before a run directory was made
