"""Numbers beside the pictures: pure functions on arrays, each with an explicit ``random_state``.

- decoding: how well a condition can be read out of a latent (cross-validated ridge and k-nearest-neighbours);
  angles are decoded as (cos, sin) and scored as mean absolute angular error in degrees, other conditions as R^2;
  every score comes with the same pipeline's score on shuffled targets (chance).
- representation similarity: linear CKA (and the debiased estimator), mutual k-NN overlap, orthogonal Procrustes
  distance, with bootstrap intervals and permutation baselines.
- geometry: Procrustes alignment of 2-D maps, circular correlation, trustworthiness.
- intervals: bootstrap over blocks of time (frames of a video are not independent samples; the held-out blocks are
  treated as the independent units), paired differences between two models on the same frames, and the word an
  interval allows ("beats", "is worse than", "cannot be told apart from").
"""

from __future__ import annotations

import math

import numpy as np
import torch

# --------------------------------------------------------------------------------------------- decoding


def autocorrelation_time(x: np.ndarray, max_lag: int = 2000) -> int:
    """Frames until the mean autocorrelation of the columns of ``x`` (rows in temporal order) drops below 1/e."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    x = (x - x.mean(0)) / (x.std(0) + 1e-12)
    n = len(x)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(x, size, axis=0)
    acf = np.fft.irfft(spec * np.conj(spec), size, axis=0)[: min(max_lag, n // 2)].mean(1)
    acf /= acf[0] if acf[0] > 0 else 1.0
    below = np.nonzero(acf < np.exp(-1))[0]
    return int(below[0]) if len(below) else len(acf)


def _folds(n: int, k: int, tau: int = 1, blocks_per_fold: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices for k-fold cross-validation of rows in temporal order (a purged, blocked split).

    Frames of a video are strongly correlated with their neighbours in time: with random folds, k-NN "decodes" any
    slowly varying condition by finding the same moment one frame later. So the rows are cut into contiguous blocks
    (at least 4 gaps long), fold f tests blocks f, f + k, f + 2k, ... (spread over the whole recording, so train and
    test cover the same range of behaviour), and the ``gap`` = 3 ``tau`` rows (``tau``: the autocorrelation time)
    on either side of each test block are left out of training.
    """
    gap = max(2, min(3 * tau, n // (8 * k)))
    n_blocks = max(k, min(k * blocks_per_fold, n // (4 * gap)))
    blocks = np.array_split(np.arange(n), n_blocks)
    folds = []
    for f in range(k):
        test = np.concatenate(blocks[f::k])
        banned = np.zeros(n, dtype=bool)
        for b in blocks[f::k]:
            banned[max(0, b[0] - gap) : b[-1] + gap + 1] = True
        folds.append((np.nonzero(~banned)[0], test))
    return folds


def _cv_predict(x: np.ndarray, y: np.ndarray, method: str, folds, n_neighbors: int) -> np.ndarray:
    from sklearn.linear_model import RidgeCV
    from sklearn.neighbors import KNeighborsRegressor

    pred = np.empty_like(y)
    for train, test in folds:
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-8
        xtr, xte = (x[train] - mu) / sd, (x[test] - mu) / sd
        if method == "ridge":
            model = RidgeCV(alphas=np.logspace(-3, 3, 7))
        elif method == "knn":
            model = KNeighborsRegressor(n_neighbors=min(n_neighbors, len(train)))
        else:
            raise ValueError(f"unknown decoder {method!r}")
        model.fit(xtr, y[train])
        pred[test] = model.predict(xte)
    return pred


def _score(y: np.ndarray, pred: np.ndarray, is_angle: bool) -> float:
    if is_angle:
        a_true = np.arctan2(y[:, 1], y[:, 0])
        a_pred = np.arctan2(pred[:, 1], pred[:, 0])
        d = np.abs(np.mod(a_pred - a_true + np.pi, 2 * np.pi) - np.pi)
        return float(np.degrees(d).mean())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return float(1 - ((y - pred) ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan")


def decoding_score(
    latent: np.ndarray,
    values: np.ndarray,
    is_angle: bool,
    method: str = "ridge",
    folds: int = 5,
    n_neighbors: int = 15,
    max_points: int | None = 5000,
    random_state: int = 0,
) -> dict[str, float]:
    """Cross-validated decoding of one condition from ``latent`` (n, d), rows in temporal order (purged, blocked
    folds: see :func:`_folds`).

    Returns ``{"metric", "score", "chance", "n", "fold_range"}``: for angles (degrees) ``metric="mae_deg"`` (lower
    is better; chance ~90 for uniform angles), else ``metric="r2"`` (higher is better; chance ~0). ``chance`` is the
    same pipeline on shuffled targets; ``fold_range`` the lowest and highest score of the single folds (each a
    different set of blocks of time: how much the score depends on which stretch of the recording is held out).
    Rows with a missing value are dropped; at most ``max_points`` rows are used.

    Example: ``decoding_score(z, body_angle_deg, is_angle=True)["score"]`` -> 12.3 (degrees)
    """
    rng = np.random.default_rng(random_state)
    latent = np.asarray(latent, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values) & np.isfinite(latent).all(axis=1)
    idx = np.nonzero(keep)[0]
    if max_points is not None and len(idx) > max_points:
        idx = np.sort(rng.choice(idx, max_points, replace=False))
    x, v = latent[idx], values[idx]
    y = np.stack([np.cos(np.radians(v)), np.sin(np.radians(v))], 1) if is_angle else v
    if len(idx) < 2 * folds:
        return {
            "metric": "mae_deg" if is_angle else "r2",
            "score": float("nan"),
            "chance": float("nan"),
            "n": int(len(idx)),
            "fold_range": [float("nan"), float("nan")],
        }
    tau = max(autocorrelation_time(x), autocorrelation_time(y))
    f = _folds(len(idx), folds, tau)
    pred = _cv_predict(x, y, method, f, n_neighbors)
    score = _score(y, pred, is_angle)
    per_fold = [v for v in (_score(y[test], pred[test], is_angle) for _, test in f) if np.isfinite(v)]
    y_shuf = y[rng.permutation(len(y))]
    chance = _score(y_shuf, _cv_predict(x, y_shuf, method, f, n_neighbors), is_angle)
    return {
        "metric": "mae_deg" if is_angle else "r2",
        "score": score,
        "chance": chance,
        "n": int(len(idx)),
        "fold_range": [float(min(per_fold)), float(max(per_fold))] if per_fold else [float("nan")] * 2,
    }


def transfer_decoding_score(
    latent_fit: np.ndarray,
    values_fit: np.ndarray,
    latent_new: np.ndarray,
    values_new: np.ndarray,
    is_angle: bool,
    method: str = "ridge",
    n_neighbors: int = 15,
    max_points: int | None = 5000,
    random_state: int = 0,
) -> dict[str, float]:
    """Decoding across sessions: fit on (``latent_fit``, ``values_fit``) of one session, score on another's.

    No frame of the new session is used for fitting, so no neighbour in time can leak. The latent is standardised
    with the fitting session's mean and std. ``chance`` fits on shuffled targets. Same metrics as
    :func:`decoding_score` (angles: MAE in degrees; others: R^2 on the new session).
    """
    rng = np.random.default_rng(random_state)
    metric = "mae_deg" if is_angle else "r2"

    def rows(latent, values):
        latent = np.asarray(latent, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        idx = np.nonzero(np.isfinite(values) & np.isfinite(latent).all(axis=1))[0]
        if max_points is not None and len(idx) > max_points:
            idx = np.sort(rng.choice(idx, max_points, replace=False))
        v = values[idx]
        y = np.stack([np.cos(np.radians(v)), np.sin(np.radians(v))], 1) if is_angle else v
        return latent[idx], y

    xa, ya = rows(latent_fit, values_fit)
    xb, yb = rows(latent_new, values_new)
    if len(xa) < 2 or len(xb) < 2:
        return {
            "metric": metric,
            "score": float("nan"),
            "chance": float("nan"),
            "n_fit": int(len(xa)),
            "n": int(len(xb)),
        }
    folds = [(np.arange(len(xa)), np.arange(len(xa), len(xa) + len(xb)))]
    x = np.concatenate([xa, xb])
    score = _score(yb, _cv_predict(x, np.concatenate([ya, yb]), method, folds, n_neighbors)[len(xa) :], is_angle)
    ya_shuf = ya[rng.permutation(len(ya))]
    chance = _score(yb, _cv_predict(x, np.concatenate([ya_shuf, yb]), method, folds, n_neighbors)[len(xa) :], is_angle)
    return {"metric": metric, "score": score, "chance": chance, "n_fit": int(len(xa)), "n": int(len(xb))}


# --------------------------------------------------------------------------------------------- similarity


def _center(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0, keepdims=True)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) of representations (n, p) and (n, q), computed in feature space.
    1 for identical representations; invariant to orthogonal transforms and isotropic scaling."""
    x, y = _center(x), _center(y)
    xy = np.linalg.norm(x.T @ y) ** 2
    xx = np.linalg.norm(x.T @ x)
    yy = np.linalg.norm(y.T @ y)
    return float(xy / (xx * yy)) if xx > 0 and yy > 0 else float("nan")


def _hsic_unbiased_linear(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased HSIC (Song et al. 2012) with linear kernels, in O(n p q) without forming n x n matrices."""
    n = x.shape[0]
    kx = (x * x).sum(1)  # diagonal of K = x x^T
    ly = (y * y).sum(1)
    tr_kl = np.linalg.norm(x.T @ y) ** 2 - (kx * ly).sum()  # tr(K~ L~), zero-diagonal kernels
    k1 = x @ x.sum(0) - kx  # K~ 1
    l1 = y @ y.sum(0) - ly
    return float((tr_kl + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (k1 @ l1)) / (n * (n - 3)))


def debiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA from unbiased HSIC estimates (less biased upwards at small n / high dimension)."""
    x, y = _center(x), _center(y)
    xy = _hsic_unbiased_linear(x, y)
    xx = _hsic_unbiased_linear(x, x)
    yy = _hsic_unbiased_linear(y, y)
    return float(xy / math.sqrt(xx * yy)) if xx > 0 and yy > 0 else float("nan")


def cka_with_intervals(
    x: np.ndarray, y: np.ndarray, n_boot: int = 200, n_perm: int = 200, random_state: int = 0
) -> dict[str, float]:
    """Linear and debiased CKA with a bootstrap 95% interval (resampling frames) and a permutation baseline
    (frames of ``y`` shuffled: what unrelated representations of these marginals score)."""
    rng = np.random.default_rng(random_state)
    n = len(x)
    out = {"linear_cka": linear_cka(x, y), "debiased_cka": debiased_cka(x, y)}
    boot = [linear_cka(x[i], y[i]) for i in (rng.integers(0, n, n) for _ in range(n_boot))]
    perm = [linear_cka(x, y[rng.permutation(n)]) for _ in range(n_perm)]
    out.update(
        {
            "linear_cka_ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "permutation_mean": float(np.mean(perm)),
            "permutation_95": float(np.percentile(perm, 95)),
            "p_value": float((1 + sum(p >= out["linear_cka"] for p in perm)) / (1 + n_perm)),
        }
    )
    return out


class KnnIndex:
    """Exact Euclidean nearest neighbours among ``base`` (n, d): a k-d tree for d <= 32 (fast for latent codes:
    0.7 s for 20,000 queries among 20,000 16-D codes on 2 cores, 6 s at 80,000, where a chunked brute-force search
    takes 2 s and 34 s), chunked matrix products above that."""

    def __init__(self, base: np.ndarray):
        self.base = np.ascontiguousarray(base, dtype=np.float32)
        self.tree = None
        if self.base.shape[1] <= 32:
            from sklearn.neighbors import KDTree

            self.tree = KDTree(self.base)

    def query(self, queries: np.ndarray, k: int, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(indices (m, k) int64, distances (m, k) float32), nearest first; ``exclude_self`` when ``queries`` is
        ``base`` (row i is not its own neighbour)."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        kk = min(k + int(exclude_self), len(self.base))
        if self.tree is not None:
            dist, idx = self.tree.query(q, k=kk)
        else:
            idx, dist = self._brute(q, kk, exclude_self)
        if exclude_self and self.tree is not None:
            idx, dist = _drop_self(idx, dist)
        return idx[:, :k].astype(np.int64), dist[:, :k].astype(np.float32)

    def _brute(self, q: np.ndarray, k: int, exclude_self: bool, chunk: int = 2048):
        base = torch.from_numpy(self.base)
        base_sq = (base * base).sum(1)
        idx_out, dist_out = [], []
        for start in range(0, len(q), chunk):
            qq = torch.from_numpy(q[start : start + chunk])
            d2 = (qq * qq).sum(1, keepdim=True) - 2 * qq @ base.T + base_sq
            if exclude_self:
                d2[torch.arange(len(qq)), torch.arange(start, start + len(qq))] = float("inf")
            vals, ids = torch.topk(d2, k, dim=1, largest=False)
            idx_out.append(ids)
            dist_out.append(vals.clamp_min(0).sqrt())
        idx, dist = torch.cat(idx_out).numpy(), torch.cat(dist_out).numpy()
        return (idx[:, :-1], dist[:, :-1]) if exclude_self else (idx, dist)


def _drop_self(idx: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index (row i of a self-query); where duplicates hid it, drop the farthest instead."""
    rows = np.arange(len(idx))[:, None]
    is_self = idx == rows
    keep = ~is_self
    keep[~is_self.any(1), -1] = False
    width = idx.shape[1] - 1
    return idx[keep].reshape(-1, width), dist[keep].reshape(-1, width)


def knn_indices(x: np.ndarray, k: int, queries: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (Euclidean) of ``queries`` (default: ``x`` itself, self excluded) among ``x``.
    Returns (indices (m, k) int64, distances (m, k) float32)."""
    index = KnnIndex(x)
    if queries is None:
        return index.query(x, k, exclude_self=True)
    return index.query(queries, k)


def mutual_knn_overlap(x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each frame's k nearest neighbours shared by representations x and y: 1 for identical
    neighbourhoods, about k / (n - 1) for unrelated ones."""
    a, _ = knn_indices(x, k)
    b, _ = knn_indices(y, k)
    shared = [len(np.intersect1d(ra, rb, assume_unique=True)) for ra, rb in zip(a, b)]
    return float(np.mean(shared) / k)


def procrustes_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Orthogonal Procrustes distance between centred, unit-Frobenius-norm representations (zero-padded to equal
    width): sqrt(2 - 2 * nuclear_norm(x^T y)); 0 when y is a rotation/reflection/scaling of x, at most sqrt(2)."""
    x, y = _center(x), _center(y)
    d = max(x.shape[1], y.shape[1])
    x = np.pad(x, ((0, 0), (0, d - x.shape[1])))
    y = np.pad(y, ((0, 0), (0, d - y.shape[1])))
    x /= np.linalg.norm(x)
    y /= np.linalg.norm(y)
    nuc = np.linalg.svd(x.T @ y, compute_uv=False).sum()
    return float(math.sqrt(max(0.0, 2 - 2 * nuc)))


# --------------------------------------------------------------------------------------------- geometry


def procrustes_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotate/reflect and translate ``source`` (n, d) onto ``target`` (n, d) (orthogonal Procrustes, no scaling)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    u, _, vt = np.linalg.svd((source - mu_s).T @ (target - mu_t))
    return (source - mu_s) @ (u @ vt) + mu_t


def circular_correlation(a_deg: np.ndarray, b_deg: np.ndarray) -> float:
    """Jammalamadaka-SenGupta circular correlation of two angle arrays (degrees): in [-1, 1]; the sign flips when
    one circle runs the other way round."""
    a, b = np.radians(np.asarray(a_deg, dtype=np.float64)), np.radians(np.asarray(b_deg, dtype=np.float64))
    ma = math.atan2(np.sin(a).mean(), np.cos(a).mean())
    mb = math.atan2(np.sin(b).mean(), np.cos(b).mean())
    sa, sb = np.sin(a - ma), np.sin(b - mb)
    den = math.sqrt((sa**2).sum() * (sb**2).sum())
    return float((sa * sb).sum() / den) if den > 0 else float("nan")


def loop_score(angles_deg: np.ndarray, xy: np.ndarray, n_perm: int = 200, random_state: int = 0) -> dict[str, float]:
    """Is a 2-D map a loop ordered by angle? |circular correlation| between the angle and each point's angular
    coordinate around the map's centroid, with a permutation baseline (angles shuffled)."""
    keep = np.isfinite(angles_deg) & np.isfinite(xy).all(1)
    a, p = np.asarray(angles_deg)[keep], np.asarray(xy)[keep]
    c = p - p.mean(0)
    phi = np.degrees(np.arctan2(c[:, 1], c[:, 0]))
    r = abs(circular_correlation(a, phi))
    rng = np.random.default_rng(random_state)
    perm = [abs(circular_correlation(a[rng.permutation(len(a))], phi)) for _ in range(n_perm)]
    return {
        "circular_corr": r,
        "permutation_95": float(np.percentile(perm, 95)),
        "p_value": float((1 + sum(q >= r for q in perm)) / (1 + n_perm)),
        "n": int(len(a)),
    }


def trustworthiness(
    high: np.ndarray, low: np.ndarray, n_neighbors: int = 10, max_points: int = 3000, random_state: int = 0
) -> float:
    """scikit-learn's trustworthiness of a 2-D map (1 = every map neighbour is a true neighbour) on a subsample."""
    from sklearn.manifold import trustworthiness as tw

    n = len(high)
    idx = np.arange(n)
    if n > max_points:
        idx = np.sort(np.random.default_rng(random_state).choice(n, max_points, replace=False))
    return float(tw(np.asarray(high)[idx], np.asarray(low)[idx], n_neighbors=min(n_neighbors, len(idx) // 2 - 1)))


# --------------------------------------------------------------------------------------------- intervals


def time_blocks(idx: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Block number of each frame of the increasing frame indices ``idx``: a block ends where the index jumps (a
    held-out block of time ended) or ``groups`` (e.g. the session of each frame) changes. A random split gives
    (nearly) one block per frame, the right unit when frames are independent."""
    idx = np.asarray(idx)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.r_[True, np.diff(idx) != 1]
    if groups is not None:
        g = np.asarray(groups)
        new |= np.r_[True, g[1:] != g[:-1]]
    return np.cumsum(new) - 1


def block_bootstrap_means(
    values: np.ndarray, blocks: np.ndarray, n_boot: int = 2000, random_state: int = 0
) -> np.ndarray:
    """Means of ``values`` (n,) or (n, m) over ``n_boot`` resamples of whole blocks (with replacement): (n_boot, m).
    Every column is resampled with the same blocks, so differences between columns are paired."""
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    blocks = np.asarray(blocks)
    ids, inv = np.unique(blocks, return_inverse=True)
    k = len(ids)
    sums = np.zeros((k, v.shape[1]))
    np.add.at(sums, inv, v)
    counts = np.bincount(inv, minlength=k).astype(np.float64)
    rng = np.random.default_rng(random_state)
    draws = rng.integers(0, k, size=(n_boot, k))
    weights = np.zeros((n_boot, k))
    np.add.at(weights, (np.repeat(np.arange(n_boot), k), draws.ravel()), 1.0)
    return (weights @ sums) / (weights @ counts)[:, None]


def mean_interval(
    values: np.ndarray, blocks: np.ndarray, level: float = 0.95, n_boot: int = 2000, random_state: int = 0
) -> list[float]:
    """Percentile interval of the mean of per-frame ``values``, bootstrapped over blocks; [nan, nan] with fewer
    than two blocks (one block says nothing about how blocks vary)."""
    if len(np.unique(blocks)) < 2:
        return [float("nan"), float("nan")]
    means = block_bootstrap_means(values, blocks, n_boot, random_state)[:, 0]
    a = (1 - level) / 2
    return [float(np.quantile(means, a)), float(np.quantile(means, 1 - a))]


def paired_difference(
    a: np.ndarray, b: np.ndarray, blocks: np.ndarray, level: float = 0.95, n_boot: int = 2000, random_state: int = 0
) -> dict:
    """Mean of ``a - b`` over the same frames (two models' per-frame scores) with its block-bootstrap interval."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return {
        "difference": float(d.mean()),
        "ci95": mean_interval(d, blocks, level, n_boot, random_state),
        "blocks": int(len(np.unique(blocks))),
    }


BEATS, WORSE, UNTOLD = "beats", "is worse than", "cannot be told apart from"


def comparison_word(ci: list[float], higher_is_better: bool = True) -> str:
    """The verb an interval of ``a - b`` allows: "beats" / "is worse than" only when it excludes zero."""
    lo, hi = ci
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 <= hi:
        return UNTOLD
    better = lo > 0 if higher_is_better else hi < 0
    return BEATS if better else WORSE
