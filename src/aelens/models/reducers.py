"""Dimensionality reduction behind one interface: ``fit(train) -> self``, ``transform(x)``, ``save(dir)``, ``load(dir)``.

Inputs are flattened frames ``(n, c*h*w)`` float32 in [0, 1]. Registered reducers: ``pca`` (scikit-learn, saved as
plain arrays), ``umap`` (umap-learn on the first principal components; new frames placed by their nearest fitted
frames, saved as plain arrays), ``randproj`` (Gaussian random projection) and ``ica`` (FastICA), both
saved as plain arrays. Embeddings are standardised with the training embedding's mean and std before the decoder.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..config import EmbeddingConfig
from ..errors import AelensError
from ..layout import ReducerFiles, RunDir
from ..maps.projection import neighbour_index, place_by_neighbours
from ..storage import load_tensors, read_record, save_tensors, write_text

log = logging.getLogger("aelens")


class Reducer:
    """Base class: subclasses implement ``_fit``, ``_transform`` and the array (de)serialisation."""

    name: ClassVar[str] = ""
    max_dim_is_pixels: ClassVar[bool] = True  # dim must be < number of pixels

    def __init__(self, dim: int, seed: int = 0, **options):
        self.dim = int(dim)
        self.seed = int(seed)
        self.options = options
        self.mean_: np.ndarray | None = None  # standardisation of the embedding (dim,)
        self.std_: np.ndarray | None = None
        self.fit_seconds = 0.0

    # subclasses -----------------------------------------------------------------------------------------
    def _fit(self, x: np.ndarray) -> np.ndarray:
        """Fit on ``x`` and return its (unstandardised) embedding."""
        raise NotImplementedError

    def _transform(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _restore(self, arrays: dict[str, np.ndarray], folder: Path, manifest: dict | None, prefix: str) -> None:
        pass

    def check(self, n_train: int, n_pixels: int) -> None:
        if self.dim < 1:
            raise AelensError(f"--dim must be at least 1, got {self.dim}")
        if self.max_dim_is_pixels and self.dim >= n_pixels:
            raise AelensError(f"--dim {self.dim} must be below the number of pixels per frame ({n_pixels})")

    # public ---------------------------------------------------------------------------------------------
    def fit(self, x: np.ndarray) -> "Reducer":
        """Fit on training frames ``x`` (n, p) float32 and set the standardisation from their embedding."""
        self.check(x.shape[0], x.shape[1])
        t0 = time.perf_counter()
        emb = np.asarray(self._fit(np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float64)
        self.fit_seconds = time.perf_counter() - t0
        self.mean_ = emb.mean(axis=0)
        self.std_ = np.where(emb.std(axis=0) > 1e-12, emb.std(axis=0), 1.0)
        self._fit_embedding = ((emb - self.mean_) / self.std_).astype(np.float32)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(n, p) frames -> (n, dim) standardised embedding, float32."""
        emb = np.asarray(self._transform(np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float64)
        return ((emb - self.mean_) / self.std_).astype(np.float32)

    def save(self, folder: str | Path) -> list[str]:
        """Write the fitted reducer into ``folder``; returns the file names written."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"emb_mean": self.mean_, "emb_std": self.std_, **self._arrays()}
        save_tensors(
            folder / ReducerFiles.ARRAYS, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        )
        info = {
            "name": self.name,
            "dim": self.dim,
            "seed": self.seed,
            "options": self.options,
            "fit_seconds": self.fit_seconds,
        }
        write_text(folder / ReducerFiles.INFO, json.dumps(info, indent=2) + "\n")
        return [ReducerFiles.ARRAYS, ReducerFiles.INFO]

    @staticmethod
    def load(folder: str | Path, manifest: dict | None = None, prefix: str = "reducer/") -> "Reducer":
        """Load a reducer saved by :meth:`save`. ``manifest`` (the run's) carries SHA-256 hashes of pickled files."""
        folder = Path(folder)
        if not (folder / ReducerFiles.INFO).is_file():
            raise AelensError(f"{folder}: no fitted reducer here ({ReducerFiles.INFO} missing); is this a decoder run?")
        where = folder / ReducerFiles.INFO
        info = read_record(where, {"name": str, "dim": int}, {"seed": int, "options": dict, "fit_seconds": float})
        cls = REDUCERS.get(info["name"])
        if cls is None:
            raise AelensError(f"{where}: unknown reducer {info['name']!r}")
        options = info.get("options", {})
        odd = [k for k, v in options.items() if not (v is None or isinstance(v, (int, float, str)))]
        if info["dim"] < 1 or odd:
            raise AelensError(
                f"{where}: dim must be at least 1, got {info['dim']}"
                if info["dim"] < 1
                else f"{where}: option {odd[0]!r} is {type(options[odd[0]]).__name__}; expected a number or a word"
            )
        red = cls(info["dim"], info.get("seed", 0), **options)
        tensors, _ = load_tensors(folder / ReducerFiles.ARRAYS)
        arrays = {k: v.numpy() for k, v in tensors.items()}
        red.mean_, red.std_ = arrays.pop("emb_mean"), arrays.pop("emb_std")
        red.fit_seconds = info.get("fit_seconds", 0.0)
        red._restore(arrays, folder, manifest, prefix)
        return red


class PCAReducer(Reducer):
    """Principal components (scikit-learn). Keeps the explained-variance spectrum up to 256 components."""

    name = "pca"
    spectrum = 256

    def check(self, n_train, n_pixels):
        super().check(n_train, n_pixels)
        if self.dim > n_train:
            raise AelensError(f"--dim {self.dim} for PCA must be at most the number of training images ({n_train})")

    def _fit(self, x):
        from sklearn.decomposition import PCA

        k = min(self.spectrum, x.shape[0], x.shape[1])
        solver = "covariance_eigh" if x.shape[0] >= x.shape[1] else "full"
        try:
            pca = PCA(n_components=k, svd_solver=solver, random_state=self.seed)
        except TypeError:  # scikit-learn < 1.5 has no covariance_eigh
            pca = PCA(n_components=k, svd_solver="full")
        pca.fit(x)
        self.components_ = pca.components_[: self.dim].astype(np.float32)
        self.center_ = pca.mean_.astype(np.float32)
        self.explained_variance_ratio_ = pca.explained_variance_ratio_.astype(np.float64)
        return (x - self.center_) @ self.components_.T

    def _transform(self, x):
        return (x - self.center_) @ self.components_.T

    def inverse(self, emb_std: np.ndarray) -> np.ndarray:
        """Standardised embedding -> frames (n, p): the PCA reconstruction (used as a baseline)."""
        emb = emb_std * self.std_ + self.mean_
        return (emb @ self.components_ + self.center_).astype(np.float32)

    def _arrays(self):
        return {
            "components": self.components_,
            "center": self.center_,
            "explained_variance_ratio": self.explained_variance_ratio_,
        }

    def _restore(self, arrays, folder, manifest, prefix):
        self.components_ = arrays["components"]
        self.center_ = arrays["center"]
        self.explained_variance_ratio_ = arrays["explained_variance_ratio"]

    @property
    def explained_variance(self) -> float:
        """Fraction of the training variance captured by the kept ``dim`` components."""
        return float(self.explained_variance_ratio_[: self.dim].sum())


class RandomProjectionReducer(Reducer):
    """A Gaussian random projection of the centred frames (Johnson-Lindenstrauss): a baseline with no fitting."""

    name = "randproj"

    def _fit(self, x):
        rng = np.random.default_rng(self.seed)
        self.matrix_ = (rng.normal(size=(x.shape[1], self.dim)) / np.sqrt(self.dim)).astype(np.float32)
        self.center_ = x.mean(axis=0).astype(np.float32)
        return self._transform(x)

    def _transform(self, x):
        return (x - self.center_) @ self.matrix_

    def _arrays(self):
        return {"matrix": self.matrix_, "center": self.center_}

    def _restore(self, arrays, folder, manifest, prefix):
        self.matrix_, self.center_ = arrays["matrix"], arrays["center"]


class ICAReducer(Reducer):
    """Independent components (scikit-learn FastICA, whitened by PCA)."""

    name = "ica"

    def _fit(self, x):
        from sklearn.decomposition import FastICA

        ica = FastICA(n_components=self.dim, random_state=self.seed, whiten="unit-variance", max_iter=400)
        ica.fit(x)
        self.unmixing_ = ica.components_.astype(np.float32)
        self.center_ = ica.mean_.astype(np.float32)
        return self._transform(x)

    def _transform(self, x):
        return (x - self.center_) @ self.unmixing_.T

    def _arrays(self):
        return {"unmixing": self.unmixing_, "center": self.center_}

    def _restore(self, arrays, folder, manifest, prefix):
        self.unmixing_, self.center_ = arrays["unmixing"], arrays["center"]


class UMAPReducer(Reducer):
    """UMAP (umap-learn) on the frames' first ``pca`` principal components (default 50; 0: raw pixels), fitted on at
    most ``fit_max`` training frames. Every other frame (the rest of the training set, validation, test, new
    sessions) is placed by its nearest fitted frames: the membership-weighted mean of their embedding, umap-learn's
    own start for ``transform`` (``analysis.projection.place_by_neighbours``).

    Saved as plain arrays (PCA basis, the fitted frames' features and embedding): no pickle. Runs made before this
    kept a pickled ``umap.joblib``: they are refused with a one-line error saying how to retrain them.
    """

    name = "umap"

    def _model(self):
        import umap

        o = self.options
        n_jobs = int(o.get("n_jobs", EmbeddingConfig.umap_n_jobs))
        return umap.UMAP(
            n_components=self.dim,
            n_neighbors=self._neighbors(),
            min_dist=float(o.get("min_dist", EmbeddingConfig.umap_min_dist)),
            n_epochs=o.get("n_epochs"),
            low_memory=bool(o.get("low_memory", EmbeddingConfig.umap_low_memory)),
            n_jobs=n_jobs,
            random_state=self.seed if n_jobs == 1 else None,  # a seed forces umap-learn onto one thread
            verbose=bool(o.get("verbose", False)),  # timestamps and "completed k / n epochs" while fitting
            tqdm_kwds={"disable": True},
            transform_seed=self.seed,
        )

    def _neighbors(self) -> int:
        return int(self.options.get("n_neighbors", EmbeddingConfig.umap_neighbors))

    def _fit_pca(self, x: np.ndarray) -> None:
        k = int(self.options.get("pca", EmbeddingConfig.umap_pca))
        self.components_ = self.center_ = None
        if 0 < k < min(x.shape):
            from sklearn.decomposition import PCA

            pca = PCA(n_components=k, svd_solver="randomized", random_state=self.seed).fit(x)
            self.components_ = pca.components_.astype(np.float32)
            self.center_ = pca.mean_.astype(np.float32)

    def _features(self, x: np.ndarray) -> np.ndarray:
        if self.components_ is None:
            return np.ascontiguousarray(x, dtype=np.float32)
        return ((x - self.center_) @ self.components_.T).astype(np.float32)

    def _fit(self, x):
        fit_max = int(self.options.get("fit_max", EmbeddingConfig.umap_fit_max))
        if x.shape[0] > fit_max:
            rng = np.random.default_rng(self.seed)
            sub = np.sort(rng.choice(x.shape[0], size=fit_max, replace=False))
            log.info("UMAP: fitting on a subsample of %d of %d training frames (--umap-fit-max)", fit_max, x.shape[0])
        else:
            sub = np.arange(x.shape[0])
        self.fit_subset_ = sub
        self._fit_pca(x[sub])
        self.fit_features_ = self._features(x[sub])
        self.fit_positions_ = np.asarray(self._model().fit_transform(self.fit_features_), dtype=np.float32)
        emb = np.empty((x.shape[0], self.dim), dtype=np.float32)
        emb[sub] = self.fit_positions_
        rest = np.setdiff1d(np.arange(x.shape[0]), sub)
        if len(rest):
            emb[rest] = self._transform(x[rest])
        return emb

    def _transform(self, x):
        if getattr(self, "_index", None) is None:
            self._index = neighbour_index(self.fit_features_, self.seed)
        return place_by_neighbours(self._index, self.fit_positions_, self._features(x), self._neighbors())

    def _arrays(self):
        arrays = {"fit_features": self.fit_features_, "fit_positions": self.fit_positions_}
        if self.components_ is not None:
            arrays.update({"pca_components": self.components_, "pca_center": self.center_})
        return arrays

    def _restore(self, arrays, folder, manifest, prefix):
        if "fit_positions" in arrays:
            self.fit_features_, self.fit_positions_ = arrays["fit_features"], arrays["fit_positions"]
            self.components_ = arrays.get("pca_components")
            self.center_ = arrays.get("pca_center")
            return
        _refuse_legacy_umap(Path(folder))


def _refuse_legacy_umap(folder: Path) -> None:
    """Runs made before pickle-free UMAP kept the model in ``umap.joblib``: aelens no longer unpickles anything."""
    raise AelensError(
        f"{folder}: a UMAP decoder saved by an earlier aelens as a pickle ({ReducerFiles.LEGACY_UMAP}), which aelens no longer "
        f"loads (a pickle can run code); retrain it: aelens train decoder --config {folder.parent / RunDir.CONFIG}"
    )


REDUCERS: dict[str, type[Reducer]] = {r.name: r for r in (PCAReducer, UMAPReducer, RandomProjectionReducer, ICAReducer)}


def make_reducer(method: str, dim: int, seed: int = 0, **options) -> Reducer:
    if method not in REDUCERS:
        raise AelensError(f"--embedding: unknown method {method!r}; expected one of {', '.join(REDUCERS)}")
    return REDUCERS[method](dim, seed, **options)
