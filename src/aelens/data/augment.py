"""Training-time augmentation of top-view crops for the direction tagger, as named parts.

A recipe is a comma-separated list of parts (``--augment rotate,flip,photometric``), ``none``, or ``all``:

- ``rotate``: turn each crop by a uniform random angle about its centre; the target angle turns with it. A model
  trained with ``rotate`` also sees every input (training, validation, test, inference) through a circular mask
  (:func:`circle_mask`, applied by the encoder), so the corners, which a rotation fills with black, cannot tell
  the rotation.
- ``flip``: mirror left-right with probability 1/2; the angle theta becomes 180 - theta.
- ``shift``: move the crop by up to 5% of its size in x and y (the tracking centre is never exact); angle unchanged.
- ``scale``: zoom by a factor in [0.9, 1.1] (animals differ in size and distance to the camera); angle unchanged.
- ``photometric``: per frame, brightness +-0.1, contrast x[0.75, 1.33], gamma [0.75, 1.33], a blur (half the
  frames, 3 x 3 box blend) and Gaussian noise (sigma up to 0.04): lighting and camera differ between sessions.

All parts draw from one seeded generator per step (the same draws after a resume). Pixels are assumed in [0, 1]
(uint8 frames are); the photometric part clamps to that range.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SHIFT_FRACTION = 0.05
SCALE_RANGE = (0.9, 1.1)


def circle_mask(height: int, width: int) -> torch.Tensor:
    """(1, 1, h, w): 1 inside the largest centred circle, 0 outside, a one-pixel soft edge."""
    yy = torch.arange(height, dtype=torch.float32).view(-1, 1) - (height - 1) / 2
    xx = torch.arange(width, dtype=torch.float32).view(1, -1) - (width - 1) / 2
    return (min(height, width) / 2 - torch.sqrt(yy**2 + xx**2)).clamp(0.0, 1.0).view(1, 1, height, width)


def uses_circle_mask(parts: tuple[str, ...]) -> bool:
    """A tagger trained with rotations sees every input through the encoder's circular mask."""
    return "rotate" in parts


def affine_batch(
    x: torch.Tensor, angle_rad: torch.Tensor, zoom: torch.Tensor | None = None, shift: torch.Tensor | None = None
) -> torch.Tensor:
    """Rotate each frame counter-clockwise (y up) by ``angle_rad`` (b,) about its centre, enlarge it by ``zoom`` (b,)
    and move it by ``shift`` (b, 2) (fractions of the half-size, x right and y up); uncovered pixels are 0."""
    c, s = torch.cos(angle_rad), torch.sin(angle_rad)
    if zoom is not None:
        c, s = c / zoom, s / zoom
    zero = torch.zeros_like(c)
    tx, ty = (zero, zero) if shift is None else (-shift[:, 0], shift[:, 1])
    # affine_grid maps output to input coordinates (x right, y down): the inverse of the wanted motion
    theta = torch.stack([torch.stack([c, -s, tx], 1), torch.stack([s, c, ty], 1)], 1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotate_batch(x: torch.Tensor, angle_rad: torch.Tensor) -> torch.Tensor:
    """Rotate each frame counter-clockwise (y up) by ``angle_rad`` (b,) about its centre; corners fill with 0."""
    return affine_batch(x, angle_rad)


def _uniform(b: int, low: float, high: float, gen: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(b, generator=gen, device=device)


def photometric(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast, gamma, blur and noise per frame (see the module doc); values stay in [0, 1]."""
    b, dev = x.shape[0], x.device
    view = (-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = torch.exp(_uniform(b, math.log(0.75), math.log(1.0 / 0.75), gen, dev)).view(view)
    x = (x - mean) * contrast + mean + _uniform(b, -0.1, 0.1, gen, dev).view(view)
    gamma = torch.exp(_uniform(b, math.log(0.75), math.log(1.0 / 0.75), gen, dev)).view(view)
    x = x.clamp(0.0, 1.0).pow(gamma)
    blur_weight = (_uniform(b, 0.0, 1.0, gen, dev) * (torch.rand(b, generator=gen, device=dev) < 0.5)).view(view)
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    x = x + blur_weight * (blurred - x)
    sigma = _uniform(b, 0.0, 0.04, gen, dev).view(view)
    noise = torch.randn(x.shape, generator=gen, device=dev, dtype=x.dtype)
    return (x + sigma * noise).clamp(0.0, 1.0)


def augment_batch(
    x: torch.Tensor, y: torch.Tensor, parts: tuple[str, ...], gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment frames ``x`` (b, c, h, w) and their target unit vectors ``y`` (b, 2) = (cos, sin) by ``parts``."""
    if not parts:
        return x, y
    b, dev = x.shape[0], x.device
    if "flip" in parts:
        flip = torch.rand(b, generator=gen, device=dev) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), torch.flip(x, dims=[3]), x)
        y = torch.stack([torch.where(flip, -y[:, 0], y[:, 0]), y[:, 1]], 1)  # mirror: theta -> 180 - theta
    geometric = [p for p in ("rotate", "shift", "scale") if p in parts]
    if geometric:
        alpha = _uniform(b, 0.0, 2 * math.pi, gen, dev) if "rotate" in parts else torch.zeros(b, device=dev)
        zoom = torch.exp(_uniform(b, *map(math.log, SCALE_RANGE), gen, dev)) if "scale" in parts else None
        shift = (
            _uniform(2 * b, -2 * SHIFT_FRACTION, 2 * SHIFT_FRACTION, gen, dev).view(b, 2) if "shift" in parts else None
        )
        x = affine_batch(x, alpha, zoom, shift)
        if "rotate" in parts:
            c, s = torch.cos(alpha), torch.sin(alpha)
            y = torch.stack([c * y[:, 0] - s * y[:, 1], s * y[:, 0] + c * y[:, 1]], 1)  # theta -> theta + alpha
    if "photometric" in parts:
        x = photometric(x, gen)
    return x, y
