"""Image and angle metrics: pure functions on arrays, no I/O.

Images are (n, c, h, w) float in [0, 1] (``data_range`` = 1). Angles are degrees.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def mse_per_image(pred, target) -> np.ndarray:
    """(n,) mean squared error of each image."""
    p, t = _t(pred), _t(target)
    return ((p - t) ** 2).flatten(1).mean(1).double().numpy()


def psnr_per_image(pred, target, data_range: float = 1.0) -> np.ndarray:
    """(n,) peak signal-to-noise ratio in dB (capped at 100 dB for identical images)."""
    mse = np.maximum(mse_per_image(pred, target), 1e-10)
    return 10.0 * np.log10(data_range**2 / mse)


def _gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


SSIM_CHUNK = 512  # images per pass: a dozen float64 maps of 512 x 50 x 50 are ~100 MB; 10,000 at once were 2.6 GB


def ssim_per_image(pred, target, data_range: float = 1.0, sigma: float = 1.5) -> np.ndarray:
    """(n,) structural similarity (Wang et al. 2004): Gaussian window (sigma 1.5, 11 x 11), K1 = 0.01, K2 = 0.03,
    population covariances, mean over the valid (unpadded) region and the channels.

    Equals ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)`` up to float rounding.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if len(pred) > SSIM_CHUNK:  # per image: chunks give the same values, and memory stays flat in the frame count
        return np.concatenate(
            [
                ssim_per_image(pred[i : i + SSIM_CHUNK], target[i : i + SSIM_CHUNK], data_range, sigma)
                for i in range(0, len(pred), SSIM_CHUNK)
            ]
        )
    p, t = _t(pred).double(), _t(target).double()
    n, c, h, w = p.shape
    g = _gaussian_window(sigma).double()
    k = len(g)
    kh = g.view(1, 1, 1, k).repeat(c, 1, 1, 1)
    kv = g.view(1, 1, k, 1).repeat(c, 1, 1, 1)

    def blur(x):
        return F.conv2d(F.conv2d(x, kh, groups=c), kv, groups=c)

    mu_p, mu_t = blur(p), blur(t)
    s_pp = blur(p * p) - mu_p**2
    s_tt = blur(t * t) - mu_t**2
    s_pt = blur(p * t) - mu_p * mu_t
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    num = (2 * mu_p * mu_t + c1) * (2 * s_pt + c2)
    den = (mu_p**2 + mu_t**2 + c1) * (s_pp + s_tt + c2)
    return (num / den).flatten(1).mean(1).numpy()


def image_metrics(pred, target, prefix: str = "") -> dict[str, float]:
    """Mean MSE, PSNR (dB) and SSIM of ``pred`` against ``target`` over all images."""
    return {
        f"mse{prefix}": float(mse_per_image(pred, target).mean()),
        f"psnr{prefix}": float(psnr_per_image(pred, target).mean()),
        f"ssim{prefix}": float(ssim_per_image(pred, target).mean()),
    }


def gaussian_blur(images, sigma: float = 1.0) -> np.ndarray:
    """Blur (n, c, h, w) frames with a Gaussian (reflect padding): the simplest denoising baseline."""
    x = _t(images)
    g = _gaussian_window(sigma, truncate=2.5)
    k = len(g)
    c = x.shape[1]
    pad = k // 2
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, k).repeat(c, 1, 1, 1), groups=c)
    x = F.conv2d(x, g.view(1, 1, k, 1).repeat(c, 1, 1, 1), groups=c)
    return x.numpy()


# --------------------------------------------------------------------------------------------- angles


def angular_error(pred_deg, true_deg) -> np.ndarray:
    """Absolute angular difference in degrees, in [0, 180]. Adding 360 to either side changes nothing."""
    d = np.mod(np.asarray(pred_deg, dtype=np.float64) - np.asarray(true_deg, dtype=np.float64), 360.0)
    return np.minimum(d, 360.0 - d)


def signed_angular_error(pred_deg, true_deg) -> np.ndarray:
    """Signed difference pred - true in degrees, in [-180, 180)."""
    return (
        np.mod(np.asarray(pred_deg, dtype=np.float64) - np.asarray(true_deg, dtype=np.float64) + 180.0, 360.0) - 180.0
    )


def circular_mean_deg(angles_deg) -> float:
    """The mean direction of angles (degrees, in [0, 360))."""
    a = np.radians(np.asarray(angles_deg, dtype=np.float64))
    return float(np.mod(np.degrees(math.atan2(np.sin(a).mean(), np.cos(a).mean())), 360.0))


def angle_metrics(pred_deg, true_deg) -> dict[str, float]:
    """MAE and median absolute error (degrees) and the fractions within 15 and 30 degrees."""
    err = angular_error(pred_deg, true_deg)
    return {
        "angle_mae_deg": float(err.mean()),
        "angle_median_deg": float(np.median(err)),
        "within_15deg": float((err <= 15).mean()),
        "within_30deg": float((err <= 30).mean()),
    }


def regression_metrics(pred, true) -> dict[str, float]:
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    resid = pred - true
    ss_tot = float(((true - true.mean()) ** 2).sum())
    return {
        "mae": float(np.abs(resid).mean()),
        "rmse": float(np.sqrt((resid**2).mean())),
        "r2": float(1 - (resid**2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
    }
