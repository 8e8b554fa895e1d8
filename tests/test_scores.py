"""Scores on planted answers: CKA, k-NN overlap, Procrustes, decoding, circular statistics."""

import numpy as np
import pytest
from scipy.stats import ortho_group

from aelens.maps import scores as S


@pytest.fixture(scope="module")
def rep():
    rng = np.random.default_rng(0)
    return rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12))


def test_cka_identity_invariances(rep):
    q = ortho_group.rvs(12, random_state=1)
    assert S.linear_cka(rep, rep) == pytest.approx(1.0)
    assert S.linear_cka(rep, 3.7 * rep @ q + 5.0) == pytest.approx(1.0)
    assert S.debiased_cka(rep, rep) == pytest.approx(1.0)
    assert S.debiased_cka(rep, 0.2 * rep @ q) == pytest.approx(1.0)


def test_unbiased_hsic_matches_the_n_squared_formula():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 3))
    x, y = x - x.mean(0), y - y.mean(0)
    k, lm = x @ x.T, y @ y.T
    np.fill_diagonal(k, 0)
    np.fill_diagonal(lm, 0)
    n = 30
    one = np.ones(n)
    ref = (
        np.trace(k @ lm) + (one @ k @ one) * (one @ lm @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * (one @ k @ lm @ one)
    ) / (n * (n - 3))
    assert S._hsic_unbiased_linear(x, y) == pytest.approx(ref, rel=1e-10)


def test_cka_of_independent_features_is_within_the_permutation_interval():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(3000, 16)), rng.normal(size=(3000, 16))
    res = S.cka_with_intervals(x, y, n_boot=50, n_perm=50, random_state=0)
    assert res["linear_cka"] < 0.02
    assert res["linear_cka"] <= res["permutation_95"] * 1.5
    assert abs(res["debiased_cka"]) < 0.01
    assert res["p_value"] > 0.05


def test_cka_interval_brackets_the_estimate(rep):
    rng = np.random.default_rng(4)
    y = rep[:, :6] + rng.normal(size=(400, 6))
    res = S.cka_with_intervals(rep, y, n_boot=100, n_perm=50)
    lo, hi = res["linear_cka_ci95"]
    assert lo < res["linear_cka"] < hi
    assert res["linear_cka"] > res["permutation_95"] and res["p_value"] < 0.05


def test_mutual_knn_overlap(rep):
    assert S.mutual_knn_overlap(rep, rep, 10) == 1.0
    rng = np.random.default_rng(5)
    shuffled = S.mutual_knn_overlap(rep, rep[rng.permutation(len(rep))], 10)
    assert shuffled < 5 * 10 / (len(rep) - 1)


def test_knn_matches_scikit_learn(rep):
    from sklearn.neighbors import NearestNeighbors

    idx, dist = S.knn_indices(rep, 5)
    ref_d, ref_i = NearestNeighbors(n_neighbors=6).fit(rep).kneighbors(rep)
    np.testing.assert_array_equal(idx, ref_i[:, 1:])
    np.testing.assert_allclose(dist, ref_d[:, 1:], rtol=1e-3)


def test_procrustes_removes_planted_rotation_and_reflection():
    rng = np.random.default_rng(6)
    xy = rng.normal(size=(200, 2))
    a = 1.1
    rot_reflect = np.array([[np.cos(a), np.sin(a)], [np.sin(a), -np.cos(a)]])
    moved = xy @ rot_reflect + [3.0, -2.0]
    np.testing.assert_allclose(S.procrustes_align(moved, xy), xy, atol=1e-10)
    assert S.procrustes_distance(xy, 4 * moved) == pytest.approx(0.0, abs=1e-6)
    assert S.procrustes_distance(xy, rng.normal(size=(200, 2))) > 0.5


def test_decoding_recovers_a_planted_code_and_not_a_shuffled_one():
    rng = np.random.default_rng(7)
    n = 2000
    angle = rng.uniform(0, 360, n)
    dist = rng.uniform(0, 1, n)
    latent = np.stack([np.cos(np.radians(angle)), np.sin(np.radians(angle)), 2 * dist], 1)
    latent = np.concatenate([latent, rng.normal(size=(n, 5))], 1) + 0.05 * rng.normal(size=(n, 8))
    a = S.decoding_score(latent, angle, True, "ridge")
    d = S.decoding_score(latent, dist, False, "ridge")
    k = S.decoding_score(latent, angle, True, "knn")
    assert a["metric"] == "mae_deg" and a["score"] < 5 and a["chance"] > 75
    assert k["score"] < 10
    assert d["metric"] == "r2" and d["score"] > 0.95 and abs(d["chance"]) < 0.05
    shuffled = S.decoding_score(latent, rng.permutation(dist), False, "ridge")
    assert abs(shuffled["score"]) < 0.05
    shuffled_angle = S.decoding_score(latent, rng.permutation(angle), True, "knn")
    assert shuffled_angle["score"] > 75


def test_decoding_drops_missing_values():
    rng = np.random.default_rng(8)
    values = rng.uniform(size=100)
    values[:10] = np.nan
    res = S.decoding_score(np.c_[values, rng.normal(size=100)], values, False)
    assert res["n"] == 90


def test_circular_correlation_and_loop():
    rng = np.random.default_rng(9)
    a = rng.uniform(0, 360, 500)
    assert S.circular_correlation(a, a) == pytest.approx(1.0)
    assert S.circular_correlation(a, -a) == pytest.approx(-1.0)
    circle = np.stack([np.cos(np.radians(a + 40)), np.sin(np.radians(a + 40))], 1) * 3 + 1
    loop = S.loop_score(a, circle, n_perm=50)
    assert loop["circular_corr"] > 0.99 and loop["p_value"] < 0.05
    blob = rng.normal(size=(500, 2))
    assert S.loop_score(a, blob, n_perm=50)["circular_corr"] < 0.2


def test_trustworthiness_of_a_faithful_and_a_random_map():
    rng = np.random.default_rng(10)
    high = np.c_[rng.normal(size=(500, 2)), 0.01 * rng.normal(size=(500, 6))]
    assert S.trustworthiness(high, high[:, :2]) > 0.95
    assert S.trustworthiness(high, rng.normal(size=(500, 2))) < 0.7


def _ou(n, d, tau, rng):
    """Ornstein-Uhlenbeck processes (stationary, correlation time ``tau`` frames)."""
    a = np.exp(-1 / tau)
    x = np.zeros((n, d))
    noise = rng.normal(size=(n, d)) * np.sqrt(1 - a * a)
    for t in range(1, n):
        x[t] = a * x[t - 1] + noise[t]
    return x


def test_blocked_folds_do_not_decode_an_unrelated_slow_signal():
    """Independent slow signals: random folds would 'decode' one from the other through temporal neighbours
    (the next frame is almost the same frame); purged, blocked folds must not."""
    rng = np.random.default_rng(11)
    latent, condition = _ou(4000, 8, 25, rng), _ou(4000, 1, 25, rng)[:, 0]
    assert 15 <= S.autocorrelation_time(latent) <= 40
    res = S.decoding_score(latent, condition, False, "knn")
    assert res["score"] < 0.1, res
    # the leak this prevents: with random folds the same data look decodable
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.neighbors import KNeighborsRegressor

    leaky = cross_val_predict(KNeighborsRegressor(15), latent, condition, cv=KFold(5, shuffle=True, random_state=0))
    assert 1 - ((leaky - condition) ** 2).sum() / ((condition - condition.mean()) ** 2).sum() > 0.5
    folds = S._folds(1000, 5, tau=10)
    tests = np.sort(np.concatenate([t for _, t in folds]))
    np.testing.assert_array_equal(tests, np.arange(1000))  # every row tested once
    for train, test in folds:
        assert np.min(np.abs(train[:, None] - test[None, :])) > 20  # a 3-tau gap between training and test rows


def test_debiased_cka_removes_the_small_sample_bias():
    """Few frames, many features, no relation: linear CKA is biased far above 0, the debiased estimate is not."""
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(40, 60)), rng.normal(size=(40, 60))
    assert S.linear_cka(x, y) > 0.5
    assert abs(S.debiased_cka(x, y)) < 0.1


def test_knn_tree_and_brute_force_agree_and_exclude_self():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(500, 8)).astype(np.float32)
    x[10] = x[11]  # a duplicate: both are each other's nearest neighbour at distance 0
    tree = S.KnnIndex(x)
    brute = S.KnnIndex(x)
    brute.tree = None
    a, da = tree.query(x, 5, exclude_self=True)
    b, db = brute.query(x, 5, exclude_self=True)
    assert a.shape == (500, 5) and not (a == np.arange(500)[:, None]).any()
    same = lambda m: np.where(m == 11, 10, m)  # noqa: E731 (10 and 11 are tied everywhere)
    np.testing.assert_array_equal(same(a[20:]), same(b[20:]))
    np.testing.assert_allclose(da, db, atol=1e-4)
    assert a[10, 0] == 11 and a[11, 0] == 10


def test_transfer_decoding_fits_on_one_session_and_scores_on_the_other():
    """Planted: the same code->angle map in both sessions decodes across them; a map that differs in the new
    session (the code's axes swapped) does not, and no frame of the new session helps the fit."""
    from aelens.maps.scores import transfer_decoding_score

    rng = np.random.default_rng(0)
    a_deg, b_deg = rng.uniform(0, 360, 800), rng.uniform(0, 360, 500)

    def code(deg, swap=False):
        r = np.radians(deg)
        z = np.stack([np.cos(r), np.sin(r)], 1)
        z = z[:, ::-1] if swap else z
        return np.concatenate([z, rng.normal(size=(len(deg), 3))], 1) + 0.01 * rng.normal(size=(len(deg), 5))

    same = transfer_decoding_score(code(a_deg), a_deg, code(b_deg), b_deg, is_angle=True)
    assert same["score"] < 5 and same["chance"] > 60 and same["n_fit"] == 800 and same["n"] == 500
    moved = transfer_decoding_score(code(a_deg), a_deg, code(b_deg, swap=True), b_deg, is_angle=True)
    assert moved["score"] > 60
    lin = transfer_decoding_score(
        code(a_deg), np.cos(np.radians(a_deg)), code(b_deg), np.cos(np.radians(b_deg)), is_angle=False
    )
    assert lin["metric"] == "r2" and lin["score"] > 0.95 and abs(lin["chance"]) < 0.1


# ---- intervals over blocks of time, paired comparisons, and the words they allow ----


def test_time_blocks_follow_the_held_out_stretches_and_sessions():
    from aelens.maps.scores import time_blocks

    idx = np.array([3, 4, 5, 9, 10, 20, 21, 22])
    assert time_blocks(idx).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    sessions = np.array([0, 0, 1, 1, 1, 1, 1, 1])  # a session change inside a run of indices starts a block
    assert time_blocks(idx, sessions).tolist() == [0, 0, 1, 2, 2, 3, 3, 3]


def _blocky(rng, n_blocks=30, per_block=40, effect_sd=1.0, noise_sd=1.0):
    """Frames in blocks of time: each block shares a random offset (frames within a block are not independent)."""
    offsets = rng.normal(0, effect_sd, n_blocks)
    values = np.repeat(offsets, per_block) + rng.normal(0, noise_sd, n_blocks * per_block)
    return values, np.repeat(np.arange(n_blocks), per_block)


def test_block_intervals_cover_the_truth_at_about_their_nominal_rate():
    """A statistic of known mean (0) and strong within-block correlation: the block bootstrap's 95% interval covers
    it in about 95% of repeats; treating every frame as independent covers it far less often."""
    from aelens.maps.scores import mean_interval

    rng = np.random.default_rng(0)
    block_hits = frame_hits = 0
    repeats = 200
    for r in range(repeats):
        values, blocks = _blocky(rng)
        lo, hi = mean_interval(values, blocks, n_boot=500, random_state=r)
        block_hits += lo <= 0 <= hi
        lo, hi = mean_interval(values, np.arange(len(values)), n_boot=500, random_state=r)
        frame_hits += lo <= 0 <= hi
    assert 0.88 <= block_hits / repeats <= 0.99, block_hits
    assert frame_hits / repeats < 0.6, frame_hits


def test_planted_equal_models_cannot_be_told_apart_and_different_ones_can():
    from aelens.maps.scores import comparison_word, paired_difference

    rng = np.random.default_rng(1)
    scene, blocks = _blocky(rng, effect_sd=3.0)  # hard and easy stretches move both models alike
    a = 25 + scene + rng.normal(0, 0.5, len(scene))
    b_same = 25 + scene + rng.normal(0, 0.5, len(scene))
    b_worse = 24 + scene + rng.normal(0, 0.5, len(scene))
    same = paired_difference(a, b_same, blocks)
    worse = paired_difference(a, b_worse, blocks)
    assert comparison_word(same["ci95"]) == "cannot be told apart from"
    assert comparison_word(worse["ci95"]) == "beats" and 0.8 < worse["difference"] < 1.2
    assert comparison_word(paired_difference(b_worse, a, blocks)["ci95"]) == "is worse than"
    # lower is better (an angle error): the same interval reads the other way round
    assert comparison_word(worse["ci95"], higher_is_better=False) == "is worse than"
    # one block of frames cannot say how blocks vary: no interval, no verdict
    one = paired_difference(a[:40], b_worse[:40], blocks[:40])
    assert np.isnan(one["ci95"]).all() and comparison_word(one["ci95"]) == "cannot be told apart from"


def test_decoding_scores_carry_the_range_of_their_folds():
    """The MAE pooled over the folds is their frame-weighted mean, so it lies within the folds' range; a cleaner
    planted code gives a lower score and a tighter range."""
    from aelens.maps.scores import decoding_score

    rng = np.random.default_rng(3)
    angle = np.mod(np.cumsum(rng.normal(0, 5, 3000)), 360)
    rad = np.radians(angle)
    out = {}
    for noise in (0.05, 0.6):
        z = np.stack([np.cos(rad), np.sin(rad)], 1) + rng.normal(0, noise, (3000, 2))
        out[noise] = decoding_score(z, angle, is_angle=True)
        lo, hi = out[noise]["fold_range"]
        assert lo <= out[noise]["score"] <= hi
    assert out[0.05]["score"] < out[0.6]["score"]
    assert np.diff(out[0.05]["fold_range"])[0] < np.diff(out[0.6]["fold_range"])[0]
