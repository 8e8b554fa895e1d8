import numpy as np
import pytest

from aelens.maps.metrics import (
    angle_metrics,
    angular_error,
    circular_mean_deg,
    gaussian_blur,
    image_metrics,
    psnr_per_image,
    signed_angular_error,
    ssim_per_image,
)


def test_psnr_planted():
    a = np.zeros((2, 1, 8, 8), np.float32)
    b = a + 0.1  # mse 0.01 -> 20 dB
    np.testing.assert_allclose(psnr_per_image(b, a), [20.0, 20.0], rtol=1e-5)


def test_ssim_matches_scikit_image():
    skimage = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 1, 40, 36)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.1, size=x.shape), 0, 1).astype(np.float32)
    ours = ssim_per_image(y, x)
    ref = [
        skimage.structural_similarity(
            y[i, 0], x[i, 0], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
        )
        for i in range(3)
    ]
    np.testing.assert_allclose(ours, ref, rtol=1e-4)
    np.testing.assert_allclose(ssim_per_image(x, x), 1.0, rtol=1e-6)


def test_image_metrics_keys_and_blur_denoises():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:32, 0:32]
    clean = np.broadcast_to(((np.sin(xx / 5) + np.cos(yy / 7)) / 4 + 0.5)[None, None], (4, 1, 32, 32)).astype(
        np.float32
    )
    noisy = clean + rng.normal(0, 0.1, clean.shape).astype(np.float32)
    blurred = gaussian_blur(noisy, 1.0)
    assert blurred.shape == noisy.shape
    assert image_metrics(blurred, clean)["psnr"] > image_metrics(noisy, clean)["psnr"] + 3
    assert set(image_metrics(noisy, clean, "_clean")) == {"mse_clean", "psnr_clean", "ssim_clean"}


def test_angular_error_wraps():
    np.testing.assert_allclose(angular_error([350, 10, 720, 0], [10, 350, 0, 180]), [20, 20, 0, 180])
    np.testing.assert_allclose(signed_angular_error([350, 10], [10, 350]), [-20, 20])
    assert angular_error(370.0, 10.0) == 0.0


def test_circular_mean_and_angle_metrics():
    assert abs(circular_mean_deg([350, 10]) - 0.0) < 1e-9 or abs(circular_mean_deg([350, 10]) - 360) < 1e-9
    assert circular_mean_deg([80, 100]) == pytest.approx(90)
    m = angle_metrics([0, 10, 40, 200], [0, 0, 0, 0])
    assert m == {
        "angle_mae_deg": pytest.approx(52.5),
        "angle_median_deg": pytest.approx(25),
        "within_15deg": 0.5,
        "within_30deg": 0.5,
    }


def test_training_flops_per_image_match_the_analytic_count():
    """One AE training step on a 50 x 50 frame: forward 124.07 MFLOP (the layer sums below), backward twice that
    except conv1's input gradient, which is never needed."""
    from aelens.bench.measures import train_flops_per_image
    from aelens.models.nets import Geometry

    fwd = {
        "conv1": 48 * 48 * 64 * 9 * 1,
        "conv2": 22 * 22 * 64 * 64 * 9,
        "conv3": 9 * 9 * 128 * 64 * 9,
        "fc1": 10368 * 16,
        "fc2": 16 * 10368,
        "deconv1": 81 * 128 * 64 * 9,
        "deconv2": 121 * 64 * 64 * 4,
        "deconv3": 484 * 64 * 64 * 9,
        "deconv4": 576 * 64 * 64 * 4,
        "out": 2304 * 64 * 9,
    }
    forward = 2 * sum(fwd.values())
    assert forward == 124_067_840
    expected = 3 * forward - 2 * fwd["conv1"]
    assert train_flops_per_image(Geometry(1, 50, 50), batch=4) == pytest.approx(expected, rel=0.01)


def test_ssim_in_chunks_equals_ssim_at_once(monkeypatch):
    """SSIM is computed per image: splitting a stack into chunks (to keep memory flat) changes no value."""
    from aelens.maps import metrics

    rng = np.random.default_rng(3)
    a = rng.random((23, 1, 24, 24)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    whole = metrics.ssim_per_image(a, b)
    monkeypatch.setattr(metrics, "SSIM_CHUNK", 5)
    assert np.array_equal(metrics.ssim_per_image(a, b), whole)


def test_display_frames_round_and_clip_and_draw_non_finite_pixels_black():
    """A diverged model's NaN or infinite output is drawn black, without a warning; values round and clip."""
    import warnings

    from aelens.maps.figures import to_uint8

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = to_uint8(np.array([[[[np.nan, np.inf, -np.inf, 0.5, 2.0, -1.0]]]]))
    np.testing.assert_array_equal(img, np.array([[[0, 0, 0, 128, 255, 0]]], dtype=np.uint8))
