"""The grammar of the options that are small languages (``--augment``, ``--noise``): parsed and checked here, below
the config, so that the config can validate them and the data layer can act on them without either importing the
other's machinery."""

from __future__ import annotations

import math

from .errors import AelensError

AUGMENT_PARTS = ("rotate", "flip", "shift", "scale", "photometric")
# Legacy `augment: true` (runs made before the parts existed) meant rotations and flips.
LEGACY_AUGMENT = "rotate,flip"


def parse_augment(spec: str | bool) -> tuple[str, ...]:
    """``'rotate,flip'`` -> ('rotate', 'flip') in canonical order; ``none``/``false`` -> (); ``all`` -> every part."""
    if isinstance(spec, bool):
        spec = LEGACY_AUGMENT if spec else "none"
    text = str(spec).strip().lower()
    if text in ("", "none", "false", "off", "no"):
        return ()
    if text in ("true", "on", "yes"):
        text = LEGACY_AUGMENT
    if text == "all":
        return AUGMENT_PARTS
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in parts if p not in AUGMENT_PARTS]
    if unknown or not parts:
        raise AelensError(
            f"--augment must be none, all or a comma-separated list of {', '.join(AUGMENT_PARTS)}; got {str(spec)!r}"
        )
    return tuple(p for p in AUGMENT_PARTS if p in parts)


def format_augment(parts: tuple[str, ...]) -> str:
    return ",".join(parts) if parts else "none"


# name -> what its number means (the functions live with the batches: ``data.batches.NOISES``)
NOISE_KINDS: dict[str, str] = {
    "gaussian": "standard deviation in pixel units (0..1), e.g. gaussian:0.1",
    "poisson": "photons at full brightness, e.g. poisson:20",
    "saltpepper": "fraction of pixels set to 0 or 1, e.g. saltpepper:0.05",
}


def parse_noise_spec(spec: str | None) -> tuple[str, float] | None:
    """'none' -> None; 'gaussian:0.1' -> ('gaussian', 0.1). Unknown names or bad parameters are an AelensError."""
    if spec in ("none", "", None):
        return None
    name, _, param = spec.partition(":")
    if name not in NOISE_KINDS:
        raise AelensError(
            f"--noise: unknown noise {spec!r}; expected none or one of {', '.join(f'{k}:X' for k in NOISE_KINDS)}"
        )
    meaning = NOISE_KINDS[name]
    try:
        value = float(param)
    except ValueError:
        raise AelensError(f"--noise: {spec!r} needs a number after '{name}:' ({meaning})") from None
    if not (value > 0 and math.isfinite(value)) or (name == "saltpepper" and value > 1):
        raise AelensError(f"--noise: {spec!r} is out of range ({meaning})")
    return name, value
