"""Cutting crops out of video frames, counting a video's frames, and the preview of an import (boxes, centres,
headings on the first frames; a sheet of crops)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..errors import AelensError
from ..storage import atomic_path
from .video import write_video

PREVIEW_FRAMES = 100


def crop(
    frame: np.ndarray, cx: float, cy: float, window: float, size: int, rotate_deg: float | None = None
) -> tuple[np.ndarray, float]:
    """A ``window`` x ``window`` square of ``frame`` centred on (cx, cy) (video px, pixel centres at integers),
    resized to ``size`` x ``size`` with anti-aliasing (Pillow's bilinear filter widened by the scale). Outside the
    frame is black: the animal stays centred. ``rotate_deg``: turn the crop counter-clockwise by this much.
    Returns (crop (c, size, size) uint8, fraction of the window outside the frame)."""

    h, w = frame.shape[:2]
    out_size, win = size, window
    if rotate_deg is not None:  # cut a larger square at the same scale, turn it, keep the middle
        margin = int(math.ceil(size * (math.sqrt(2) - 1) / 2)) + 2
        out_size = size + 2 * margin
        win = window * out_size / size
    x0, y0 = cx + 0.5 - win / 2, cy + 0.5 - win / 2  # pixel edges: pixel i spans [i, i + 1]
    m = int(math.ceil(win / out_size)) + 2  # room for the filter's support
    ix0, iy0 = int(math.floor(x0)) - m, int(math.floor(y0)) - m
    ix1, iy1 = int(math.ceil(x0 + win)) + m, int(math.ceil(y0 + win)) + m
    region = np.zeros((iy1 - iy0, ix1 - ix0) + frame.shape[2:], dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(ix0, 0), max(iy0, 0), min(ix1, w), min(iy1, h)
    if sx1 > sx0 and sy1 > sy0:
        region[sy0 - iy0 : sy1 - iy0, sx0 - ix0 : sx1 - ix0] = frame[sy0:sy1, sx0:sx1]
    img = Image.fromarray(region).resize(
        (out_size, out_size), Image.BILINEAR, box=(x0 - ix0, y0 - iy0, x0 - ix0 + win, y0 - iy0 + win)
    )
    if rotate_deg is not None:
        img = img.rotate(rotate_deg, resample=Image.BILINEAR)
        img = img.crop((margin, margin, margin + size, margin + size))
    arr = np.asarray(img)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    wx0, wy0 = cx + 0.5 - window / 2, cy + 0.5 - window / 2
    ox = max(0.0, min(wx0 + window, w) - max(wx0, 0.0))
    oy = max(0.0, min(wy0 + window, h) - max(wy0, 0.0))
    return np.ascontiguousarray(arr), round(max(0.0, 1.0 - (ox * oy) / (window * window)), 6)


def count_frames(video: Path) -> int:
    """Exact frame count by demuxing (no decoding): seconds even for an hour of video."""
    import imageio_ffmpeg

    try:
        n, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    except (RuntimeError, OSError) as exc:
        raise AelensError(f"{video}: cannot count its frames ({str(exc).splitlines()[-1][:200]})") from None
    if n <= 0:
        raise AelensError(f"{video}: holds no video frames")
    return int(n)


# --------------------------------------------------------------------------------------------- preview


class Preview:
    """preview.mp4 (the first frames with crop box, centre and heading arrow) and preview_crops.png."""

    COLORS = [(46, 204, 64), (255, 65, 54), (0, 116, 217), (255, 220, 0), (177, 13, 201), (255, 133, 27)]

    def __init__(self, folder: Path, window: float, egocentric: bool):
        self.folder, self.window, self.egocentric = folder, window, egocentric
        self.frames: list[np.ndarray] = []
        self.crops: list[tuple[np.ndarray, float]] = []

    def add(self, frame: np.ndarray, animals: list, crops: list[np.ndarray]) -> None:
        if len(self.frames) >= PREVIEW_FRAMES:
            return
        h, w = frame.shape[:2]
        s = min(1.0, 640.0 / max(h, w))
        img = Image.fromarray(frame).convert("RGB").resize((max(2, int(w * s) // 2 * 2), max(2, int(h * s) // 2 * 2)))
        d = ImageDraw.Draw(img)
        half = self.window / 2
        for (x, y, a, tr), c in zip(animals, crops):
            col = self.COLORS[int(tr) % len(self.COLORS)]
            rad = math.radians(a)
            if self.egocentric:
                corners = [(-half, -half), (half, -half), (half, half), (-half, half)]
                t = math.radians(a - 90)
                pts = [
                    ((x + u * math.cos(t) + v * math.sin(t)) * s, (y - u * math.sin(t) + v * math.cos(t)) * s)
                    for u, v in corners
                ]
                d.polygon(pts, outline=col)
            else:
                d.rectangle([(x - half) * s, (y - half) * s, (x + half) * s, (y + half) * s], outline=col)
            d.ellipse([x * s - 2, y * s - 2, x * s + 2, y * s + 2], fill=col)
            d.line(
                [
                    x * s,
                    y * s,
                    (x + 0.4 * self.window * math.cos(rad)) * s,
                    (y - 0.4 * self.window * math.sin(rad)) * s,
                ],
                fill=col,
                width=2,
            )
            if len(self.crops) < 48 and len(self.frames) % 2 == 0:  # every other frame: more variety
                self.crops.append((c, 90.0 if self.egocentric else a))
        self.frames.append(np.asarray(img))

    def close(self) -> None:
        if self.frames:
            h, w = self.frames[0].shape[:2]
            with atomic_path(self.folder / "preview.mp4") as tmp:
                write_video(tmp, iter(self.frames), (w, h), fps=10, crf=23, channels=3)
        if self.crops:
            size = self.crops[0][0].shape[-1]
            z = 2
            cols = 8
            rows = -(-len(self.crops) // cols)
            sheet = Image.new("RGB", (cols * size * z, rows * size * z))
            for i, (c, a) in enumerate(self.crops):
                tile = Image.fromarray(c[0] if c.shape[0] == 1 else c.transpose(1, 2, 0)).convert("RGB")
                tile = tile.resize((size * z, size * z), Image.NEAREST)
                d = ImageDraw.Draw(tile)
                m = size * z / 2
                rad = math.radians(a)
                d.line(
                    [m, m, m + 0.35 * size * z * math.cos(rad), m - 0.35 * size * z * math.sin(rad)],
                    fill=(46, 204, 64),
                    width=2,
                )
                sheet.paste(tile, ((i % cols) * size * z, (i // cols) * size * z))
            with atomic_path(self.folder / "preview_crops.png") as tmp:
                sheet.save(tmp, format="PNG")
