"""2-D maps of latent codes (UMAP, PCA, t-SNE), placing new points into a fitted map, and the fit modes of the
evolution movie.

Placing points into a fitted UMAP / t-SNE map uses UMAP's own ``transform`` initialisation: each new point goes to
the membership-weighted mean of its k nearest fitted points (exact neighbours up to 20,000 fitted points, pynndescent's
approximate ones above, as ``umap.transform`` itself uses). It skips ``transform``'s optimisation epochs, which is
what makes a 40-snapshot x 20,000-point movie take a minute instead of many; docs/guide/latent.md gives the measured agreement
with a full ``umap.transform``.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..config import FIT_MODES, check_fit_mode  # noqa: F401 - the fit modes are defined with the other settings
from ..errors import AelensError
from .scores import KnnIndex, knn_indices, procrustes_align

log = logging.getLogger("aelens")
METHODS = ("umap", "pca", "tsne")


def _umap(n_neighbors: int, min_dist: float, random_state: int | None, **kw):
    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return umap.UMAP(
            n_components=2,
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            random_state=random_state,
            n_jobs=1 if random_state is not None else -1,
            **kw,
        )


EXACT_PLACE_MAX = 20000  # up to the default analysis set: exact neighbours; above: approximate (as umap.transform)


class _ApproxIndex:
    """Approximate nearest neighbours (pynndescent, umap-learn's own index) for large maps: at 80,000 codes an exact
    search costs 15-35 s per snapshot, this about 2 s (plus ~25 s of one-off numba compilation)."""

    def __init__(self, base: np.ndarray, random_state: int | None):
        import pynndescent

        self.index = pynndescent.NNDescent(base, n_neighbors=30, random_state=random_state, n_jobs=-1)
        self.index.prepare()

    def query(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        idx, dist = self.index.query(np.ascontiguousarray(queries, dtype=np.float32), k=k)
        return idx.astype(np.int64), dist.astype(np.float32)


def neighbour_index(base: np.ndarray, random_state: int | None = 0):
    """Exact neighbours up to EXACT_PLACE_MAX points, approximate (pynndescent) above."""
    return KnnIndex(base) if len(base) <= EXACT_PLACE_MAX else _ApproxIndex(base, random_state)


def place_by_neighbours(index, positions: np.ndarray, queries: np.ndarray, n_neighbors: int) -> np.ndarray:
    """New points into a fitted embedding: the membership-weighted mean of the positions of each query's nearest
    fitted points (UMAP's own initialisation of ``transform``, without its extra optimisation epochs).
    ``index``: from :func:`neighbour_index` over the fitted points' features; ``positions``: their embedding."""
    from umap.umap_ import smooth_knn_dist

    k = min(n_neighbors, len(positions))
    out = np.empty((len(queries), positions.shape[1]), dtype=np.float32)
    for start in range(0, len(queries), 8192):  # bounded memory at 100,000s of frames
        idx, dist = index.query(queries[start : start + 8192], k)
        sigma, rho = smooth_knn_dist(dist.astype(np.float32), float(k), local_connectivity=1.0)
        w = np.exp(-np.maximum(dist - rho[:, None], 0) / np.maximum(sigma[:, None], 1e-12))
        w /= w.sum(1, keepdims=True)
        out[start : start + len(idx)] = (w[:, :, None] * positions[idx]).sum(1)
    return out


@dataclass
class Map2D:
    """A fitted 2-D map of codes (n, d): ``xy`` of the fitted points, and :meth:`place` for new points."""

    method: str = "umap"
    n_neighbors: int = 15
    min_dist: float = 0.1
    random_state: int | None = 0
    codes: np.ndarray | None = field(default=None, repr=False)
    xy: np.ndarray | None = field(default=None, repr=False)
    seconds: float = 0.0
    _pca: object = field(default=None, repr=False)
    _index: object = field(default=None, repr=False)

    def fit(self, codes: np.ndarray, init: np.ndarray | None = None, n_epochs: int | None = None) -> np.ndarray:
        """Fit on ``codes`` (n, d); ``init`` (n, 2) warm-starts UMAP from a previous map. Returns xy (n, 2)."""
        t0 = time.perf_counter()
        codes = np.ascontiguousarray(codes, dtype=np.float32)
        if self.method not in METHODS:
            raise AelensError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.method == "pca" or codes.shape[1] <= 2:
            from sklearn.decomposition import PCA

            self._pca = PCA(n_components=min(2, codes.shape[1]), random_state=0).fit(codes)
            xy = self._pca.transform(codes)
            if xy.shape[1] < 2:
                xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
        elif self.method == "umap":
            k = min(self.n_neighbors, len(codes) - 1)
            idx, dist = knn_indices(codes, k)
            # umap-learn expects each point to be its own first neighbour
            idx = np.concatenate([np.arange(len(codes))[:, None], idx], 1)[:, :k]
            dist = np.concatenate([np.zeros((len(codes), 1), np.float32), dist], 1)[:, :k]
            kw = {"precomputed_knn": (idx, dist), "n_neighbors": k}
            if init is not None:
                kw["init"] = np.asarray(init, dtype=np.float64)
            if n_epochs is not None:
                kw["n_epochs"] = n_epochs
            model = _umap(min_dist=self.min_dist, random_state=self.random_state, **kw)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                xy = model.fit_transform(codes)
        else:
            from sklearn.manifold import TSNE

            xy = TSNE(
                n_components=2,
                random_state=self.random_state or 0,
                init="pca" if init is None else init,
                perplexity=min(30.0, (len(codes) - 1) / 3),
            ).fit_transform(codes)
        self.codes, self.xy, self._index = codes, np.asarray(xy, dtype=np.float32), None
        self.seconds = time.perf_counter() - t0
        return self.xy

    @property
    def pca(self):
        """The fitted scikit-learn PCA when this is a PCA map (its exact inverse exists), else None."""
        return self._pca

    def place(self, codes: np.ndarray) -> np.ndarray:
        """Put new codes into the fitted map: PCA projects them; UMAP / t-SNE take the membership-weighted mean of
        the positions of each code's nearest fitted codes (UMAP's transform initialisation)."""
        codes = np.ascontiguousarray(codes, dtype=np.float32)
        if codes.shape[1] != self.codes.shape[1]:
            raise AelensError(
                f"cannot place {codes.shape[1]}-D codes into a map fitted on {self.codes.shape[1]}-D codes"
            )
        if self._pca is not None:
            xy = self._pca.transform(codes)
            return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1]))).astype(np.float32)
        if self._index is None:  # built once, queried for every snapshot
            self._index = neighbour_index(self.codes, self.random_state)
        return place_by_neighbours(self._index, self.xy, codes, self.n_neighbors)


def embed(codes: np.ndarray, method: str = "umap", random_state: int | None = 0, **kw) -> tuple[np.ndarray, Map2D]:
    """Fit a 2-D map: returns (xy (n, 2) float32, the fitted :class:`Map2D`)."""
    m = Map2D(method=method, random_state=random_state, **kw)
    return m.fit(codes), m


def evolution_maps(
    snapshots: np.ndarray,
    mode: str = "last",
    method: str = "umap",
    reference_codes: np.ndarray | None = None,
    random_state: int | None = 0,
    warm_epochs: int = 40,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, dict]:
    """2-D maps of every snapshot (S, N, D) -> (S, N, 2), with a dict of timings.

    ``last`` / ``first`` / ``reference``: fit one map (on the last snapshot, the first, or ``reference_codes``) and
    place every snapshot into it (the reference study's modes). ``every``: fit each snapshot on its own and align it
    to the previous map by orthogonal Procrustes. ``aligned``: fit the last snapshot, then walk back in time, fitting
    each snapshot with UMAP warm-started from its successor's map for ``warm_epochs`` epochs, Procrustes-aligned:
    each frame is a real map of that snapshot, and consecutive frames stay comparable.
    """
    if mode not in FIT_MODES:
        raise AelensError(f"--fit must be one of last, first, every, aligned, reference:RUN_DIR; got {mode!r}")
    snaps = np.asarray(snapshots, dtype=np.float32)
    s_count = len(snaps)
    out = np.empty((s_count, snaps.shape[1], 2), dtype=np.float32)
    t0 = time.perf_counter()
    timings: dict = {"mode": mode, "method": method, "snapshots": s_count, "points": int(snaps.shape[1])}
    if mode in ("last", "first", "reference"):
        fit_on = {"last": snaps[-1], "first": snaps[0], "reference": reference_codes}[mode]
        if fit_on is None:
            raise AelensError("--fit reference:RUN_DIR needs the reference run's codes")
        m = Map2D(method=method, random_state=random_state)
        m.fit(fit_on)
        timings["fit_seconds"] = round(m.seconds, 3)
        for s in range(s_count):
            out[s] = m.place(snaps[s])
            if progress:
                progress(s + 1, s_count)
    elif mode == "every":
        prev = None
        for s in range(s_count):
            xy = Map2D(method=method, random_state=random_state).fit(snaps[s])
            out[s] = xy if prev is None else procrustes_align(xy, prev)
            prev = out[s]
            if progress:
                progress(s + 1, s_count)
    else:  # aligned
        m = Map2D(method=method, random_state=random_state)
        out[-1] = m.fit(snaps[-1])
        for s in range(s_count - 2, -1, -1):
            warm = Map2D(method=method, random_state=random_state)
            xy = warm.fit(
                snaps[s],
                init=out[s + 1] if method == "umap" else None,
                n_epochs=warm_epochs if method == "umap" else None,
            )
            out[s] = procrustes_align(xy, out[s + 1])
            if progress:
                progress(s_count - s, s_count)
    timings["seconds"] = round(time.perf_counter() - t0, 3)
    return out, timings
