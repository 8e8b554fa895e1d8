"""The ``aelens`` command line: parse options, build a config, call one library function, report.

Known problems (:class:`~aelens.errors.AelensError`) become one line on stderr and exit code 2 (a traceback with
``--debug``); Ctrl-C during training saves a checkpoint and exits with 130.
"""

from __future__ import annotations

import errno
import logging
import traceback

import typer

from ..errors import AelensError, TrainingInterrupted
from . import analysis_cmds, data_cmds, study_cmds, train_cmds  # noqa: F401  (each registers its commands)
from .common import (  # noqa: F401  (the option tables and help helpers, for tests and docs)
    DECODER_OPTIONS,
    RUN_OPTIONS,
    STATE,
    TAGGER_OPTIONS,
    TRAIN_OPTIONS,
    app,
    config_default,
    option_help,
)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "numexpr", "numexpr.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        code = app(args=argv, standalone_mode=False)  # click's errors come here, to be said in one line
        return code if isinstance(code, int) else 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except TrainingInterrupted as exc:
        typer.echo(f"aelens: {exc}", err=True)
        return 130
    except AelensError as exc:
        if STATE["debug"]:
            traceback.print_exc()
        typer.echo(f"aelens: error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("aelens: interrupted", err=True)
        return 130
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        if STATE["debug"]:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"aelens: error: {where}{exc.strerror or exc}{DISK_ERRORS[exc.errno]}", err=True)
        return 2
    except Exception as exc:  # click's (Typer vendors its own copy): known by class name
        code = _click_error(exc)
        if code is None:
            raise
        return code


# disks that cannot take a write: said in one line (files already written, checkpoints included, are kept as they were)
DISK_ERRORS = {
    errno.ENOSPC: " (the disk is full: free some space and run the command again)",
    errno.EDQUOT: " (over the disk quota: free some space and run the command again)",
    errno.EROFS: " (a read-only file system: choose another --out)",
    errno.EACCES: " (no permission to write there: choose another --out)",
    errno.ENOTDIR: " (a part of the path is a file, not a folder)",
    errno.ENAMETOOLONG: " (a name in the path is too long for the file system)",
    errno.ELOOP: " (a symbolic-link loop)",
    errno.EPERM: " (no permission to write there: choose another --out)",
}


def _click_error(exc: Exception) -> int | None:
    """Say a command-line mistake in one line (exit 2): an unknown option, a missing argument, "abc" for a
    number... A bare group (``aelens train``) shows its help. None: not one of click's errors."""
    names = {c.__name__ for c in type(exc).__mro__}
    ctx = getattr(exc, "ctx", None)
    if "NoArgsIsHelpError" in names:
        typer.echo(ctx.get_help() if ctx is not None else str(exc), err=True)
        return 2
    if "UsageError" in names:
        where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        typer.echo(f"aelens: error: {exc.format_message()}{where}", err=True)
        return 2
    if "ClickException" in names:
        typer.echo(f"aelens: error: {exc.format_message()}", err=True)
        return getattr(exc, "exit_code", 1)
    if "Abort" in names:
        typer.echo("aelens: interrupted", err=True)
        return 130
    return None
