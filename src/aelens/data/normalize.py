"""Per-session intensity normalisation: each session's pixels mapped to a common range, from its own pixels alone.

Lab sessions differ in lighting and exposure: a model trained on one session's brightness meets another's on the
next recording day. With ``data.normalize: session``, the frames of each session (the ``session`` column; the whole
dataset when there is none) are mapped so that the session's LOW and HIGH pixel percentiles land on TARGET: an
affine map per session, taken from that session's own pixels (no labels, no other session), and applied the same
way wherever frames reach a model (training, testing, transfer to a new session, encoding, maps). A brightened or
darkened copy of a session (any ``a * x + b`` with ``a > 0``, short of saturation) therefore gives the same frames.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..config import NORMALIZE
from ..errors import AelensError
from .loading import Dataset
from .splits import session_codes

LOW, HIGH = 0.5, 99.5  # percentiles of a session's pixels ...
TARGET = (0.05, 0.95)  # ... mapped here (room on both sides: a frame darker or brighter than most stays in [0, 1])
SAMPLE_FRAMES = 2000  # frames per session the percentiles are read from, evenly spread in time


def check_normalize(method: str) -> None:
    if method not in NORMALIZE:
        raise AelensError(f"--normalize must be none or session, got {method!r}")


def session_groups(dataset: Dataset) -> tuple[np.ndarray, list[str]]:
    """Each row's session index and the sessions' names (one group, the dataset, when there is no session column)."""
    c = dataset.conditions
    if c is not None and "session" in c.names:
        codes = session_codes(dataset)
        values = np.unique(codes)
        return np.searchsorted(values, codes), [c.label("session", v) for v in values]
    return np.zeros(dataset.n, dtype=np.int64), [str(dataset.source)]


def session_levels(dataset: Dataset) -> dict[str, list[float]]:
    """Per session: its LOW and HIGH pixel percentiles (model units, 0..1 for uint8), from up to SAMPLE_FRAMES of
    its own frames."""
    groups, names = session_groups(dataset)
    out = {}
    for g, name in enumerate(names):
        rows = np.flatnonzero(groups == g)
        pick = rows[np.linspace(0, len(rows) - 1, min(len(rows), SAMPLE_FRAMES)).round().astype(np.int64)]
        pixels = dataset.batch(np.unique(pick)).numpy().ravel()
        lo, hi = np.percentile(pixels, [LOW, HIGH])
        out[name] = [float(lo), float(hi)]
    return out


def normalized(dataset: Dataset, method: str) -> Dataset:
    """``dataset`` whose frames (and clean frames) reach models normalised by ``method`` (see the module)."""
    check_normalize(method)
    if method == "none":  # as stored (a dataset normalised for another run is turned back)
        return dataset if dataset.levels is None else dataclasses.replace(dataset, levels=None, level_info={})
    if dataset.levels is not None:
        return dataset
    base = dataclasses.replace(dataset, levels=None, level_info={})
    levels = session_levels(base)
    groups, names = session_groups(base)
    gain_bias = np.zeros((len(names), 2), dtype=np.float32)
    for g, name in enumerate(names):
        lo, hi = levels[name]
        gain = (TARGET[1] - TARGET[0]) / (hi - lo) if hi - lo > 1e-6 else 1.0  # a constant session: left as it is
        gain_bias[g] = gain, TARGET[0] - lo * gain if hi - lo > 1e-6 else 0.0
    return dataclasses.replace(dataset, levels=gain_bias[groups], level_info={"method": method, "sessions": levels})
