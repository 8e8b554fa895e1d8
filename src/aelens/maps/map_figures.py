"""Latent maps and the evolution movie: colour scales for conditions, scatter maps with example frames, the overview
grid, and the movie of the map over training. Every file is written atomically; nothing here computes a metric."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from ..storage import atomic_path
from .figures import _mpl, save_fig, to_uint8


def colormap_for(is_angle: bool):
    """Cyclic map for angles (0 and 360 degrees get the same colour), sequential otherwise."""
    import matplotlib

    return matplotlib.colormaps["twilight_shifted" if is_angle else "viridis"]


def color_values(values: np.ndarray, is_angle: bool) -> tuple[np.ndarray, tuple[float, float]]:
    """Values -> (n, 3) RGB floats and the (vmin, vmax) used; NaN values are grey."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if is_angle:
        lo, hi = 0.0, 360.0
        t = np.mod(v, 360.0) / 360.0
    else:
        lo, hi = np.percentile(v[finite], [1, 99]) if finite.any() else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1.0
        t = np.clip((v - lo) / (hi - lo), 0, 1)
    rgb = colormap_for(is_angle)(np.where(finite, t, 0.0))[:, :3]
    rgb[~finite] = 0.75
    return rgb, (float(lo), float(hi))


def map_extent(xy: np.ndarray, pad: float = 0.05) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) covering 99.8% of the points plus a margin: fixed axes for a whole movie."""
    flat = np.asarray(xy).reshape(-1, 2)
    flat = flat[np.isfinite(flat).all(1)]
    lo, hi = np.percentile(flat, 0.1, axis=0), np.percentile(flat, 99.9, axis=0)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - pad * span, hi + pad * span
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def raster(xy: np.ndarray, rgb: np.ndarray, extent, size: int = 400, dot: int = 2) -> np.ndarray:
    """Draw points as ``dot`` x ``dot`` pixel squares, fast for any N: each pixel shows the mean colour of its
    points, more opaque where more points fall. Returns (size, size, 3) float in [0, 1] on white (row 0 at the
    top, y up)."""
    x0, x1, y0, y1 = extent
    col = ((xy[:, 0] - x0) / (x1 - x0) * (size - dot)).round().astype(np.int64)
    row = ((y1 - xy[:, 1]) / (y1 - y0) * (size - dot)).round().astype(np.int64)
    ok = (col >= 0) & (col <= size - dot) & (row >= 0) & (row <= size - dot)
    count = np.zeros(size * size)
    sums = np.zeros((3, size * size))
    for dr in range(dot):
        for dc in range(dot):
            flat = (row[ok] + dr) * size + col[ok] + dc
            count += np.bincount(flat, minlength=size * size)
            for c in range(3):
                sums[c] += np.bincount(flat, weights=rgb[ok, c], minlength=size * size)
    img = np.ones((size * size, 3))
    hit = count > 0
    alpha = np.minimum(1.0, 0.5 + 0.15 * count[hit])
    for c in range(3):
        img[hit, c] = alpha * sums[c, hit] / count[hit] + (1 - alpha)
    return img.reshape(size, size, 3)


def spread_examples(xy: np.ndarray, k: int = 3, random_state: int = 0) -> np.ndarray:
    """Indices of ``k`` points far apart in the map (farthest-point sampling from the densest region's edge)."""
    rng = np.random.default_rng(random_state)
    cand = rng.choice(len(xy), size=min(len(xy), 4000), replace=False)
    pts = xy[cand]
    center = np.median(pts, 0)
    chosen = [int(np.argmax(((pts - center) ** 2).sum(1)))]
    d = ((pts - pts[chosen[0]]) ** 2).sum(1)
    while len(chosen) < k:
        nxt = int(np.argmax(d))
        chosen.append(nxt)
        d = np.minimum(d, ((pts - pts[nxt]) ** 2).sum(1))
    return cand[chosen]


def _draw_map(ax, xy, values, is_angle, extent, size=400, cbar=True, label=""):
    plt = _mpl()
    rgb, (lo, hi) = (
        color_values(values, is_angle) if values is not None else (np.tile([[0.2, 0.3, 0.6]], (len(xy), 1)), (0, 1))
    )
    ax.imshow(raster(xy, rgb, extent, size), extent=extent, origin="upper", interpolation="nearest", aspect="auto")
    ax.set_xticks([])
    ax.set_yticks([])
    if cbar and values is not None:
        sm = plt.cm.ScalarMappable(cmap=colormap_for(is_angle), norm=plt.Normalize(lo, hi))
        cb = plt.colorbar(sm, ax=ax, fraction=0.046, pad=0.02)
        cb.set_label(label, fontsize=8)
        cb.ax.tick_params(labelsize=7)


def save_latent_scatter(xy, values, name, is_angle, frames, recon, examples, path, title="", method="umap") -> Path:
    """The reference figure: the 2-D map coloured by one condition, three example frames (with the model's
    reconstruction beside each, for AE runs) inset around it and linked to their points."""
    plt = _mpl()
    from matplotlib.patches import ConnectionPatch

    fig = plt.figure(figsize=(8.2, 6.2))
    ax = fig.add_axes([0.25, 0.08, 0.62, 0.84])
    extent = map_extent(xy)
    _draw_map(ax, xy, values, is_angle, extent, label=name)
    ax.set_title(title or f"{method.upper()} of the latent, coloured by {name}", fontsize=10)
    ax.set_xlabel(f"{method} 1", fontsize=8)
    ax.set_ylabel(f"{method} 2", fontsize=8)
    slots = [[0.02, 0.66, 0.2, 0.22], [0.02, 0.37, 0.2, 0.22], [0.02, 0.08, 0.2, 0.22]]
    examples = sorted(examples, key=lambda i: -xy[i, 1])  # top inset for the highest point: lines do not cross
    for slot, i in zip(slots, examples):
        inset = fig.add_axes(slot)
        img = to_uint8(frames[i : i + 1])[0]
        if recon is not None:
            img = np.concatenate(
                [img, np.full((img.shape[0], 2) + img.shape[2:], 255, np.uint8), to_uint8(recon[i : i + 1])[0]], 1
            )
        inset.imshow(img, cmap="gray", vmin=0, vmax=255)
        inset.set_xticks([])
        inset.set_yticks([])
        v = "" if values is None else f"{name} = {values[i]:.3g}"
        inset.set_title(("frame | reconstruction\n" if recon is not None else "") + v, fontsize=7)
        ax.plot(*xy[i], "o", ms=7, mfc="none", mec="red", mew=1.5)
        con = ConnectionPatch(
            xyA=(1.0, 0.5),
            coordsA=inset.transAxes,
            xyB=tuple(xy[i]),
            coordsB=ax.transData,
            color="red",
            lw=0.8,
            alpha=0.8,
        )
        fig.add_artist(con)
    return save_fig(fig, path)


def save_overview(xy, columns: list[tuple[str, np.ndarray, bool]], path, title="", scores: dict | None = None) -> Path:
    """All conditions side by side: one panel per condition, with its decoding score in the title."""
    plt = _mpl()
    n = max(1, len(columns))
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.0 * rows), squeeze=False)
    extent = map_extent(xy)
    for ax, (name, values, is_angle) in zip(axes.flat, columns):
        _draw_map(ax, xy, values, is_angle, extent, size=260, label="")
        s = (scores or {}).get(name)
        ax.set_title(name + (f"\n{s}" if s else ""), fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_fig(fig, path, dpi=100)


def render_movie_frames(
    maps: np.ndarray, rgb: np.ndarray, titles: list[str], tracked: np.ndarray, size: int = 400
) -> list[np.ndarray]:
    """Frames (H, W, 3) uint8 of a 2-D map over time: fixed axes, colours per point, tracked points circled."""
    plt = _mpl()
    extent = map_extent(maps)
    fig = plt.figure(figsize=(6.4, 4.8), dpi=100)  # 640 x 480: divisible by 16 for the MP4 encoder
    ax = fig.add_axes([0.05, 0.05, 0.9, 0.85])
    ax.set_xticks([])
    ax.set_yticks([])
    im = ax.imshow(
        raster(maps[0], rgb, extent, size), extent=extent, origin="upper", interpolation="nearest", aspect="auto"
    )
    marks = [ax.plot([], [], "o", ms=9, mfc="none", mec=c, mew=2)[0] for c in ("red", "black", "orange")]
    labels = [
        ax.text(0, 0, str(j + 1), color=c, fontsize=9, fontweight="bold")
        for j, c in enumerate(("red", "black", "orange"))
    ]
    title = ax.set_title("", fontsize=11)
    frames = []
    for s in range(len(maps)):
        im.set_data(raster(maps[s], rgb, extent, size))
        for j, i in enumerate(tracked[:3]):
            marks[j].set_data([maps[s, i, 0]], [maps[s, i, 1]])
            labels[j].set_position((maps[s, i, 0], maps[s, i, 1]))
        title.set_text(titles[s])
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return frames


def save_movie(
    frames: list[np.ndarray], gif_path: str | Path | None, mp4_path: str | Path | None, fps: int = 6
) -> None:
    """Write frames as an animated GIF and an H.264 MP4 (imageio-ffmpeg ships its own ffmpeg)."""
    import imageio.v2 as imageio

    if gif_path is not None:
        with atomic_path(gif_path) as tmp:
            imageio.mimsave(tmp, frames, format="GIF", duration=1.0 / fps, loop=0)
    if mp4_path is not None:
        with atomic_path(mp4_path) as tmp:
            with imageio.get_writer(
                tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=7, macro_block_size=16
            ) as w:  # imageio-ffmpeg writes yuv420p: plays everywhere
                for f in frames:
                    w.append_data(f)


def save_recon_comparison(
    frames,
    recons: list[np.ndarray],
    maps: list[np.ndarray],
    values,
    is_angle: bool,
    labels: list[str],
    color_by: str,
    path,
    method: str = "umap",
) -> Path:
    """The reference study's layout: one column per model; rows: the same input frames, each model's output, and
    each model's latent mapped to 2-D, coloured by ``color_by``."""
    plt = _mpl()
    n = len(recons)
    fig, axes = plt.subplots(3, n, figsize=(2.6 * n, 7.4), squeeze=False)

    def mosaic(imgs):
        u = to_uint8(imgs)
        k = int(np.ceil(np.sqrt(len(u))))
        pad = np.full((k * k - len(u),) + u.shape[1:], 255, np.uint8)
        u = np.concatenate([u, pad])
        rows = [np.concatenate(list(u[r * k : (r + 1) * k]), axis=1) for r in range(k)]
        return np.concatenate(rows, axis=0)

    for j in range(n):
        axes[0, j].imshow(mosaic(frames), cmap="gray", vmin=0, vmax=255)
        axes[1, j].imshow(mosaic(recons[j]), cmap="gray", vmin=0, vmax=255)
        axes[0, j].set_title(labels[j], fontsize=11, fontweight="bold")
        xy = maps[j]
        if values is not None:
            rgb, _ = color_values(values, is_angle)
        else:
            rgb = np.tile([[0.2, 0.3, 0.6]], (len(xy), 1))
        axes[2, j].imshow(raster(xy, rgb, map_extent(xy), 220), interpolation="nearest")
        for i in range(3):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
    axes[0, 0].set_ylabel("input images", fontsize=10)
    axes[1, 0].set_ylabel("output images", fontsize=10)
    name = {"umap": "UMAP", "pca": "PCA", "tsne": "t-SNE"}.get(method, method)
    axes[2, 0].set_ylabel(f"latent ({name}){', ' + color_by if color_by else ''}", fontsize=10)
    fig.tight_layout()
    return save_fig(fig, path, dpi=100)


def save_comparison_grid(
    maps: list[np.ndarray],
    labels: list[str],
    columns: list[tuple[str, np.ndarray, bool]],
    path,
    notes: dict | None = None,
) -> Path:
    """One column per run, one row per condition: each run's 2-D latent map coloured by that condition."""
    plt = _mpl()
    n, m = len(maps), max(1, len(columns))
    fig, axes = plt.subplots(m, n, figsize=(3.0 * n + 0.6, 2.7 * m), squeeze=False)
    for j, xy in enumerate(maps):
        extent = map_extent(xy)
        for i, (name, values, is_angle) in enumerate(columns or [("", None, False)]):
            ax = axes[i, j]
            _draw_map(ax, xy, values, is_angle, extent, size=240, cbar=(j == n - 1), label=name)
            if i == 0:
                ax.set_title(labels[j] + (f"\n{notes[labels[j]]}" if notes and labels[j] in notes else ""), fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.tight_layout()
    return save_fig(fig, path, dpi=100)


def save_atlas(xy, centres, cell, images, title: str, path) -> Path:
    """The decoded atlas: ``images`` (m, c, h, w) drawn at the grid ``centres`` (m, 2) of cells ``cell`` (w, h)
    over the faint scatter of the map ``xy``."""
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.scatter(xy[:, 0], xy[:, 1], s=2, c="0.6", alpha=0.25, linewidths=0)
    w, h = cell
    tiles = to_uint8(images)
    for (cx, cy), img in zip(centres, tiles):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, extent=(cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2),
                  interpolation="bilinear", alpha=0.95)  # fmt: skip
    lo, hi = np.percentile(xy, 1, axis=0), np.percentile(xy, 99, axis=0)
    pad = 0.03 * (hi - lo)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    ax.set_aspect("auto")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    return save_fig(fig, path)


def save_traversals(images, order, labels: list[str], path, max_rows: int = 16) -> Path:
    """One strip per latent dimension (``images`` (d, steps, c, h, w)), in ``order``, each with its label."""
    plt = _mpl()
    rows = list(order)[:max_rows]
    steps = images.shape[1]
    height = 1.1 * len(rows) + 0.8
    fig, axes = plt.subplots(len(rows), steps, figsize=(1.1 * steps + 2.6, height), squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.74, top=1 - 0.7 / height, bottom=0.01, wspace=0.05, hspace=0.12)
    offsets = np.linspace(-2, 2, steps)
    for r, j in enumerate(rows):
        tiles = to_uint8(images[j])
        for s in range(steps):
            ax = axes[r, s]
            ax.imshow(tiles[s], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{offsets[s]:+.1f} sd", fontsize=8)
        axes[r, -1].text(1.08, 0.5, labels[j], transform=axes[r, -1].transAxes, fontsize=7, va="center")
    fig.suptitle("the median code with one dimension moved (most image change first)", fontsize=9, x=0.38,
                 y=1 - 0.12 / height)  # fmt: skip
    return save_fig(fig, path)


def save_rotation_paths(maps, paths, labels: list[str], notes: list[str], path) -> Path:
    """Per run, its 2-D map (faint) and the paths of a few frames turned through a circle (coloured by the turn)."""
    plt = _mpl()

    n = len(maps)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 4.3), squeeze=False)
    fig.subplots_adjust(top=0.76, bottom=0.02, left=0.02, right=0.98, wspace=0.08)
    for ax, xy, run_paths, label, note in zip(axes[0], maps, paths, labels, notes):
        ax.scatter(xy[:, 0], xy[:, 1], s=2, c="0.75", alpha=0.3, linewidths=0)
        for p in run_paths:
            closed = np.concatenate([p, p[:1]])
            ax.plot(closed[:, 0], closed[:, 1], "-", c="0.3", lw=0.6)
            ax.scatter(p[:, 0], p[:, 1], c=np.linspace(0, 360, len(p), endpoint=False), cmap="twilight", s=14,
                       vmin=0, vmax=360, zorder=3)  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("\n".join([label, *textwrap.wrap(note, 44)]), fontsize=8)
    fig.suptitle("frames turned through 360 deg, placed in each run's map (colour: the turn)", fontsize=9, y=0.99)
    return save_fig(fig, path)
