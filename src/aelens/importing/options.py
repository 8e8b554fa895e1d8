"""What ``aelens data import`` cuts and how: the options (defaults defined here once, also for the command line).

Light on purpose (no numpy): the command line reads the defaults before anything heavy is imported."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import AelensError

WINDOW_BODY_LENGTHS = (
    4.0  # default window: 4 x the median back->front length holds a whole fly or rodent body and some floor
)

MAX_WINDOW = 100_000  # video pixels: a crop window larger than any video (a 100,000-pixel side is 10 GB per crop)
MAX_FRAME_OFFSET = 100_000  # frames between a pose file and its video: more is not the same recording
MAX_FPS = 100_000  # frames/s: above the fastest high-speed cameras; more is a typo (--fps 1e300)


@dataclass(frozen=True)
class ImportOptions:
    """What to cut and how (all optional). ``window``: crop side in video pixels (None: WINDOW_BODY_LENGTHS x the
    session's median body length); ``arena``: (cx, cy, r) in video pixels (None: estimated from the tracks)."""

    center: str = "auto"
    heading: str = "auto"
    window: float | None = None
    size: int = 50
    channels: int = 1
    egocentric: bool = False
    every: int = 1
    start: int = 0
    stop: int | None = None
    min_score: float = 0.0  # keep every tracked point; DeepLabCut users often pass 0.6 (its pcutoff)
    interpolate: int = 0  # fill gaps of up to N frames; 0: never invent a pose
    min_track_frames: int = 1
    arena: tuple[float, float, float] | None = None
    fps: float | None = None
    preview: bool = False
    frame_offset: int | str = 0  # pose row f + N shows video frame f; "auto": the offset the pictures show, if any

    def check(self) -> None:
        if not 24 <= self.size <= 1024:
            raise AelensError(f"--size must be 24..1024 pixels, got {self.size}")
        if self.channels not in (1, 3):
            raise AelensError(f"--channels must be 1 or 3, got {self.channels}")
        if self.window is not None and not (math.isfinite(self.window) and 4 <= self.window <= MAX_WINDOW):
            raise AelensError(f"--window must be 4 to {MAX_WINDOW} video pixels, got {self.window:g}")
        if self.every < 1:
            raise AelensError(f"--every must be at least 1, got {self.every}")
        if self.start < 0 or (self.stop is not None and self.stop <= self.start):
            raise AelensError(f"--start/--stop: need 0 <= start < stop, got {self.start}, {self.stop}")
        if not math.isfinite(self.min_score):
            raise AelensError(f"--min-score must be a number, got {self.min_score}")
        if self.interpolate < 0:
            raise AelensError(f"--interpolate must be 0 or more frames, got {self.interpolate}")
        if self.min_track_frames < 1:
            raise AelensError(f"--min-track-frames must be at least 1, got {self.min_track_frames}")
        if self.arena is not None and (
            len(self.arena) != 3 or not all(map(math.isfinite, self.arena)) or self.arena[2] <= 0
        ):
            raise AelensError(f"--arena: expected cx,cy,r with r > 0, got {self.arena}")
        if self.frame_offset != "auto" and not (
            isinstance(self.frame_offset, int) and abs(self.frame_offset) <= MAX_FRAME_OFFSET
        ):
            raise AelensError(
                f"--frame-offset must be auto or a whole number of frames from -{MAX_FRAME_OFFSET} to "
                f"{MAX_FRAME_OFFSET}, got {self.frame_offset!r}"
            )
        if self.fps is not None and not (math.isfinite(self.fps) and 0 < self.fps <= MAX_FPS):
            raise AelensError(f"--fps must be a frame rate above 0 and up to {MAX_FPS}, got {self.fps:g}")


@dataclass
class Session:
    """One (video, poses) pair to import."""

    poses: str
    video: str | None = None
    name: str | None = None
