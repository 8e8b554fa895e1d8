"""The one exception type that the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations


class AelensError(Exception):
    """A problem with the user's input (file, field, option) that the user can fix.

    The message is one line: what is wrong, where (file / field / option), what was expected and what was found.
    """


class TrainingDiverged(AelensError):
    """The training loss became NaN or infinite; the run is marked failed and its last good checkpoint is kept."""


class TrainingInterrupted(Exception):
    """Training was stopped with Ctrl-C; a checkpoint was saved at ``checkpoint``."""

    def __init__(self, run_dir, checkpoint):
        super().__init__(
            f"training interrupted; checkpoint saved to {checkpoint}; continue with: aelens train ... --resume {run_dir}"
        )
        self.run_dir = run_dir
        self.checkpoint = checkpoint
