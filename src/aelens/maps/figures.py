"""Figures: image grids, GIFs, scatter maps. Every file is written atomically; nothing here computes a metric."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..storage import atomic_path
from .metrics import signed_angular_error

GREEN = (46, 204, 64)
RED = (255, 65, 54)


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    # names in titles and labels are user data (conditions, sessions): "$x$" is text, never mathtext to parse
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """(n, c, h, w) float in [0, 1] -> (n, h, w) or (n, h, w, 3) uint8 for display (first channel unless c == 3);
    non-finite pixels (a diverged model's output) are drawn black."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim == 3:
        frames = frames[:, None]
    img = frames.transpose(0, 2, 3, 1) if frames.shape[1] == 3 else frames[:, 0]
    return (np.clip(np.nan_to_num(img, nan=0.0, posinf=0.0, neginf=0.0), 0, 1) * 255 + 0.5).astype(np.uint8)


def tile(rows: Sequence[np.ndarray], scale: int = 3, gap: int = 2) -> Image.Image:
    """Rows of uint8 frames (each (n, h, w) or (n, h, w, 3)) -> one RGB image, frames enlarged ``scale`` x."""
    n = max(len(r) for r in rows)
    h, w = rows[0].shape[1:3]
    H, W = h * scale, w * scale
    canvas = Image.new("RGB", (n * (W + gap) + gap, len(rows) * (H + gap) + gap), (255, 255, 255))
    for i, row in enumerate(rows):
        for j, frame in enumerate(row):
            img = Image.fromarray(frame).convert("RGB").resize((W, H), Image.NEAREST)
            canvas.paste(img, (gap + j * (W + gap), gap + i * (H + gap)))
    return canvas


def _with_title(img: Image.Image, title: str | None) -> Image.Image:
    if not title:
        return img
    out = Image.new("RGB", (img.width, img.height + 16), (255, 255, 255))
    out.paste(img, (0, 16))
    ImageDraw.Draw(out).text((4, 2), title, fill=(0, 0, 0))
    return out


def save_png(img: Image.Image, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", optimize=True)
    return Path(path)


def save_recon_grid(
    inputs: np.ndarray, outputs: np.ndarray, path: str | Path, title: str | None = None, clean: np.ndarray | None = None
) -> Path:
    """Inputs (top row) over outputs (bottom row); a third row of clean frames when given."""
    rows = [to_uint8(inputs), to_uint8(outputs)] + ([to_uint8(clean)] if clean is not None else [])
    return save_png(_with_title(tile(rows), title), path)


def save_side_by_side_gif(
    inputs: np.ndarray, outputs: np.ndarray, path: str | Path, fps: int = 10, scale: int = 4
) -> Path:
    """An animated GIF: each frame shows input | output side by side."""
    import imageio.v3 as iio

    a, b = to_uint8(inputs), to_uint8(outputs)
    frames = [np.asarray(tile([np.stack([x, y])], scale=scale)) for x, y in zip(a, b)]
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=int(1000 / fps), loop=0)
    return Path(path)


def save_variance_plot(cumulative: np.ndarray, dim: int, path: str | Path) -> Path:
    """Cumulative explained variance vs number of components, the chosen ``dim`` marked."""
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    k = np.arange(1, len(cumulative) + 1)
    ax.plot(k, cumulative * 100, color="#1f77b4")
    ax.axvline(dim, color="#d62728", ls="--", lw=1)
    ax.annotate(
        f"{dim} PCs: {cumulative[dim - 1] * 100:.1f}%",
        (dim, cumulative[dim - 1] * 100),
        xytext=(8, -14),
        textcoords="offset points",
        fontsize=8,
        color="#d62728",
    )
    ax.set_xscale("log")
    ax.set_xlabel("principal components")
    ax.set_ylabel("cumulative explained variance (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_fig(fig, path)


def save_fig(fig, path: str | Path, dpi: int = 110) -> Path:
    plt = _mpl()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return Path(path)


# --------------------------------------------------------------------------------------------- tagger figures


def save_angle_scatter(true_deg: np.ndarray, pred_deg: np.ndarray, path: str | Path) -> Path:
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(true_deg, pred_deg, s=4, alpha=0.5, color="#1f77b4", rasterized=True)
    ax.plot([0, 360], [0, 360], color="#2ca02c", lw=1)
    ax.set_xlim(0, 360)
    ax.set_ylim(0, 360)
    ax.set_xticks(range(0, 361, 90))
    ax.set_yticks(range(0, 361, 90))
    ax.set_xlabel("true angle (deg)")
    ax.set_ylabel("predicted angle (deg)")
    ax.set_aspect("equal")
    fig.tight_layout()
    return save_fig(fig, path)


def save_error_polar(true_deg: np.ndarray, pred_deg: np.ndarray, path: str | Path) -> Path:
    """Polar histogram of the signed errors (predicted - true)."""

    plt = _mpl()
    err = np.radians(signed_angular_error(pred_deg, true_deg))
    fig = plt.figure(figsize=(4, 4))
    ax = fig.add_subplot(projection="polar")
    bins = np.linspace(-np.pi, np.pi, 37)
    counts, _ = np.histogram(err, bins)
    ax.bar(bins[:-1], counts, width=np.diff(bins), align="edge", color="#ff7f0e", edgecolor="white")
    ax.set_title("angle error (predicted - true)", fontsize=9)
    fig.tight_layout()
    return save_fig(fig, path)


def draw_arrow(draw: ImageDraw.ImageDraw, cx: float, cy: float, angle_deg: float, length: float, color, width: int = 2):
    """An arrow from (cx, cy) towards ``angle_deg`` (counter-clockwise, y up) on a y-down image."""
    a = np.radians(angle_deg)
    ex, ey = cx + length * np.cos(a), cy - length * np.sin(a)
    draw.line([(cx, cy), (ex, ey)], fill=color, width=width)
    for side in (-1, 1):
        b = a + np.pi + side * 0.45
        draw.line([(ex, ey), (ex + 0.3 * length * np.cos(b), ey - 0.3 * length * np.sin(b))], fill=color, width=width)


def save_angle_arrows(
    frames: np.ndarray, true_deg: np.ndarray, pred_deg: np.ndarray, path: str | Path, cols: int = 8, scale: int = 3
) -> Path:
    """Frames with the true (green) and predicted (red) directions drawn from their centre."""
    imgs = to_uint8(frames)
    h, w = imgs.shape[1:3]
    H, W, gap = h * scale, w * scale, 2
    rows = -(-len(imgs) // cols)
    canvas = Image.new("RGB", (cols * (W + gap) + gap, rows * (H + gap) + gap + 16), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), "true direction (green), predicted (red)", fill=(0, 0, 0))
    for i, img in enumerate(imgs):
        x0, y0 = gap + (i % cols) * (W + gap), 16 + gap + (i // cols) * (H + gap)
        canvas.paste(Image.fromarray(img).convert("RGB").resize((W, H), Image.NEAREST), (x0, y0))
        cx, cy = x0 + W / 2, y0 + H / 2
        draw_arrow(draw, cx, cy, true_deg[i], 0.4 * W, GREEN)
        draw_arrow(draw, cx, cy, pred_deg[i], 0.4 * W, RED)
    return save_png(canvas, path)


def save_score_curves(rows: list[dict], path: str | Path) -> Path:
    """Decodability of each condition over training (from snapshots): angles (MAE, degrees) and others (R^2)."""
    plt = _mpl()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, metric, ylabel in (
        (axes[0], "mae_deg", "angle error (deg), lower is better"),
        (axes[1], "r2", "R², higher is better"),
    ):
        names = sorted({r["condition"] for r in rows if r["metric"] == metric})
        for name in names:
            rr = [r for r in rows if r["condition"] == name and r["metric"] == metric]
            ax.plot([r["epoch"] for r in rr], [r["score"] for r in rr], marker="o", ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
        if names:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no such conditions", ha="center", transform=ax.transAxes, fontsize=8)
    fig.suptitle("How decodable each condition is from the latent during training (ridge, 5-fold CV)", fontsize=9)
    fig.tight_layout()
    return save_fig(fig, path)


def save_sweep_plot(rows: list[dict], chance: float | None, path) -> Path:
    """Test angle error vs the number of trainable encoder layers; from-scratch and chance as reference lines."""
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ae = [r for r in rows if r["init"] == "ae"]
    labels = [r["unfreeze"] for r in ae]
    ax.plot(range(len(ae)), [r["angle_mae_deg"] for r in ae], "o-", color="#1f77b4", label="from the AE encoder")
    scratch = [r for r in rows if r["init"] == "scratch"]
    if scratch:
        ax.axhline(scratch[0]["angle_mae_deg"], color="#d62728", ls="--", label="from scratch")
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", label="circular-mean baseline")
    ax.set_xticks(range(len(ae)))
    ax.set_xticklabels(labels)
    ax.set_xlabel("trainable encoder layers from the top (0 = linear probe)")
    ax.set_ylabel("test angle error, MAE (deg)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_fig(fig, path)
