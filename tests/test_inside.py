"""Looking inside the map, with planted answers: a PCA atlas reproduces PCA reconstructions exactly, a linear
decoder's traversals are known in closed form, a rotation-invariant model explains no variance by rotation and an
equivariant tagger turns with the image (slope 1)."""

from __future__ import annotations

import numpy as np
import pytest

from aelens.maps import inside
from aelens.maps.projection import embed


def test_pca_atlas_is_the_exact_inverse_and_reproduces_pca_reconstructions():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(300, 8)).astype(np.float32) * np.linspace(3, 0.2, 8)
    xy, fitted = embed(codes, "pca")
    at, how = inside.atlas_codes(xy, codes, xy[:20], pca=fitted.pca)
    assert how == "the PCA map's exact inverse"
    expected = fitted.pca.inverse_transform(fitted.pca.transform(codes[:20]))  # the PCA reconstruction
    np.testing.assert_allclose(at, expected, rtol=0, atol=1e-5)
    rank2 = (rng.normal(size=(300, 2)) @ rng.normal(size=(2, 8))).astype(np.float32) + 1.5
    xy2, fitted2 = embed(rank2, "pca")
    np.testing.assert_allclose(inside.atlas_codes(xy2, rank2, xy2, pca=fitted2.pca)[0], rank2, atol=1e-4)


def test_neighbour_atlas_gives_a_frame_its_own_code_and_the_grid_covers_only_occupied_cells():
    rng = np.random.default_rng(1)
    xy = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(10, 1, (200, 2))]).astype(np.float32)
    codes = rng.normal(size=(400, 5)).astype(np.float32)
    at, how = inside.atlas_codes(xy, codes, xy[[3, 250]])
    np.testing.assert_array_equal(at, codes[[3, 250]])
    assert how.startswith("the mean code of the 10 nearest frames")
    centres, cells, (w, h) = inside.atlas_grid(xy, 12)
    assert 0 < len(centres) < 12 * 12  # the empty middle between the two clusters has no cells
    d = np.abs(centres[:, None, :] - xy[None, :, :])
    assert ((d[..., 0] <= w / 2 + 1e-6) & (d[..., 1] <= h / 2 + 1e-6)).any(1).all()  # every cell holds a frame
    frames = rng.random((400, 1, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(inside.atlas_frames(xy, frames, xy[[0]], k=1)[0], frames[0])


def test_linear_decoder_traversals_are_known():
    rng = np.random.default_rng(2)
    d, steps = 4, 7
    codes = rng.normal(size=(500, d)) * np.array([1.0, 2.0, 0.5, 1.5])
    weights = np.stack([np.full(16, s) for s in (1.0, 3.0, 0.5, 2.0)])  # dimension j paints every pixel by w_j

    def decode(z):
        return (z @ weights).reshape(len(z), 1, 4, 4)

    trav = inside.traversal_codes(codes, steps, 2.0)
    assert trav.shape == (d, steps, d)
    images = decode(trav.reshape(-1, d)).reshape(d, steps, 1, 4, 4)
    med, sd = np.median(codes, 0), codes.std(0)
    for j in range(d):
        for s, t in enumerate(np.linspace(-2, 2, steps)):
            z = med.copy()
            z[j] += t * sd[j]
            np.testing.assert_allclose(images[j, s], decode(z[None])[0], rtol=1e-5, atol=1e-5)
    change = inside.traversal_change(images)
    np.testing.assert_allclose(change, 4 * sd * np.array([1.0, 3.0, 0.5, 2.0]), rtol=1e-5)  # 4 sd * |w_j|
    assert list(np.argsort(-change)) == [1, 3, 0, 2]


def test_dimension_correlations_find_the_planted_dimension():
    rng = np.random.default_rng(3)
    angle = rng.uniform(0, 360, 2000)
    speed = rng.random(2000)
    codes = np.stack([np.cos(np.radians(angle)), speed * 3 + 1, rng.normal(size=2000)], 1)
    r = inside.dimension_correlations(codes, [("angle", angle, True), ("speed", speed, False)])
    assert r[0, 0] > 0.99 and r[1, 1] > 0.99
    assert r[2, 0] < 0.1 and abs(r[2, 1]) < 0.1 and r[1, 0] < 0.1


def _dots(n: int, size: int = 32, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Frames with one Gaussian dot at a random angle (degrees, y up), 4 to 11 px from the centre, of random
    brightness: the frames differ in what a rotation keeps (radius, brightness) and in what it changes (angle)."""
    rng = np.random.default_rng(seed)
    phi, radius, peak = rng.uniform(0, 360, n), rng.uniform(4, 11, n), rng.uniform(0.3, 1.0, n)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    cx, cy = radius * np.cos(np.radians(phi)), -radius * np.sin(np.radians(phi))
    d2 = (xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2
    img = peak[:, None, None] * np.exp(-d2 / (2 * 1.5**2))
    return img[:, None].astype(np.float32), phi


def _centroid(x: np.ndarray) -> np.ndarray:
    size = x.shape[-1]
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    w = x[:, 0]
    total = w.sum((1, 2))
    return np.stack([(w * xx).sum((1, 2)) / total, -(w * yy).sum((1, 2)) / total], 1)


def _rings(x: np.ndarray) -> np.ndarray:
    size = x.shape[-1]
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(xx, yy)
    return np.stack([x[:, 0][:, (r >= a) & (r < a + 3)].mean(1) for a in range(0, 15, 3)], 1)


def test_rotation_probe_tells_invariant_from_equivariant():
    frames, phi = _dots(40)
    invariant = inside.rotation_probe(frames, _rings)
    assert invariant["variance_explained"] < 0.02
    equivariant = inside.rotation_probe(
        frames, _centroid, predict=lambda x: np.degrees(np.arctan2(_centroid(x)[:, 1], _centroid(x)[:, 0]))
    )
    assert equivariant["variance_explained"] > 0.7  # most of the centroid's spread is the dot's angle
    assert equivariant["loop"] > 0.99 and equivariant["winding"] == 1

    def head_or_tail(x):  # a code that cannot tell a direction from its opposite: round twice per turn
        a = 2 * np.arctan2(_centroid(x)[:, 1], _centroid(x)[:, 0])
        return np.stack([np.cos(a), np.sin(a)], 1)

    twice = inside.rotation_probe(frames, head_or_tail)
    assert twice["loop"] > 0.99 and twice["winding"] == 2
    assert equivariant["slope"] == pytest.approx(1.0, abs=0.01) and equivariant["turn_error_deg"] < 1.0
    deaf = inside.rotation_probe(frames, _rings, predict=lambda x: np.full(len(x), 42.0))
    assert deaf["slope"] == 0.0 and deaf["turn_error_deg"] == pytest.approx(90.0)  # the mean |turn| round a circle


def test_rotation_turns_counter_clockwise_with_y_up():
    frames, phi = _dots(1)
    turned, angles = inside.rotated(frames, 4)
    got = np.degrees(np.arctan2(_centroid(turned[0])[:, 1], _centroid(turned[0])[:, 0])) % 360
    np.testing.assert_allclose((got - phi[0] - angles + 180) % 360 - 180, 0, atol=0.5)
