"""``aelens study``, ``demo`` and ``bench``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import AelensError
from ..layout import BenchFiles, StudyLayout
from ..study.config import DEMO
from .common import app, check_out, echo, need, study_help


@app.command("study")
def study(
    data: Optional[List[str]] = typer.Option(
        None,
        "--data",
        metavar="PATH",
        help="Images file or data directory (with metadata for the tagger); repeat for several sessions [the config's data.path].",
    ),
    out: Path = typer.Option(..., "--out", help="Study folder (resumed when it exists)."),
    config: Optional[Path] = typer.Option(None, "--config", help="study.yaml with settings (see docs/guide/study.md)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help=study_help("Epochs for every model.", "epochs")),
    split: Optional[str] = typer.Option(
        None, "--split", help=study_help("auto | random | blocked | group:COLUMN.", "split")
    ),
    purge: Optional[int] = typer.Option(
        None, "--purge", help="Frames dropped at block boundaries [1 s of video, else 10]."
    ),
    transfer: Optional[List[str]] = typer.Option(
        None, "--transfer", metavar="PATH", help="A new session (dataset) every model is also scored on; repeatable."
    ),
    seeds: Optional[int] = typer.Option(
        None,
        "--seeds",
        help=study_help(
            "Train the AE and the tagger this many times (seed, seed+1, ...): the spread over training; "
            "each extra seed costs one AE and one tagger.",
            "seeds",
        ),
    ),
    normalize: Optional[str] = typer.Option(
        None,
        "--normalize",
        help=study_help("Intensities: none | session (each session's pixels to a common range).", "normalize"),
    ),
    augment: Optional[str] = typer.Option(
        None,
        "--augment",
        help=study_help("The taggers' training augmentation (see train tagger --augment).", "augment"),
    ),
    latent_dim: Optional[int] = typer.Option(
        None, "--latent-dim", help=study_help("Latent size of the AE and the taggers.", "latent_dim")
    ),
    target: Optional[str] = typer.Option(None, "--target", help=study_help("The taggers' angle column.", "target")),
    train_frames: Optional[str] = typer.Option(
        None,
        "--train-frames",
        help=study_help(
            "Training frames per model, chosen from the training blocks: a number, or all.", "train_frames"
        ),
    ),
    select: Optional[str] = typer.Option(
        None, "--select", help=study_help("How: diverse | stride | random.", "select")
    ),
    patience: Optional[int] = typer.Option(
        None,
        "--patience",
        help="Validations without improvement before a run stops (0: never) [auto: 4 for the AE and decoders; "
        "taggers train to --epochs].",
    ),
    budget: Optional[str] = typer.Option(None, "--budget", help="Wall-clock ceiling per model: 90s, 10m, 1h [none]."),
    jobs: int = typer.Option(
        1, "--jobs", min=1, help="Models trained side by side (the decoders, the sweep's taggers), sharing the cores."
    ),
    plan_only: bool = typer.Option(
        False, "--plan-only", help="Print the plan (models, frames, measured step times, estimated time) and exit."
    ),
):
    """Run the whole pipeline: AE, PCA/UMAP decoders, tagger + unfreeze sweep, latent analysis, comparisons, report."""
    check_out(out)
    from ..study.config import load_study_config
    from ..study.pipeline import plan_only as print_plan
    from ..study.pipeline import run_study

    cfg = load_study_config(
        config,
        {
            "epochs": epochs,
            "split": split,
            "purge": purge,
            "augment": augment,
            "latent_dim": latent_dim,
            "target": target,
            "train_frames": train_frames,
            "select": select,
            "patience": patience,
            "budget": budget,
            "transfer": list(transfer) if transfer else None,
            "normalize": normalize,
            "seeds": seeds,
        },
    )
    if not data and cfg.data.path is None:
        raise AelensError(
            "--data is required (an images file or a data directory), or a --config whose data.path names it"
        )
    if plan_only:
        print_plan(data, out, cfg, echo)
        return
    res = run_study(data, out, cfg, echo, jobs=jobs)
    _print_answers(res, out)


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo"), "--out", help="Folder for the synthetic data and the study."),
    n: Optional[int] = typer.Option(
        None, "--n", help=f"Synthetic frames [{DEMO['n']}, {DEMO['size']} x {DEMO['size']} px]."
    ),
    epochs: Optional[int] = typer.Option(
        None, "--epochs", help=f"Epochs per model [{DEMO['epochs']}; {DEMO['sweep_epochs']} for the tagger sweep]."
    ),
):
    """Synthetic arena data + a small study (measured times: docs/performance.md); prints the report's path."""
    import time

    check_out(out)
    from ..study.pipeline import run_demo

    need(n, 100, "--n", "at least 100 frames")
    need(epochs, 1, "--epochs", "at least 1")
    t0 = time.perf_counter()
    res = run_demo(out, n, epochs, echo)
    _print_answers(res, out)
    echo(f"demo finished in {time.perf_counter() - t0:.0f} s")


def _print_answers(res: dict, out: Path) -> None:
    echo("")
    from ..analysis.answers import QUESTIONS, read_answers

    answers = read_answers(res)
    for q, title in QUESTIONS.items():
        echo(f"{title}\n  {answers[q]}")
    echo(f"\nreport: {StudyLayout(out).report}")


# --------------------------------------------------------------------------------------------- bench


@app.command("bench")
def bench(
    out: Path = typer.Option(Path("."), "--out", help="Folder for bench.json."),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Under 90 s on 2 CPU cores: start-up, import rate, per-step overhead, training and inference throughput, smaller sizes.",
    ),
):
    """Measure speed beside the reference implementation's way of training, in one run; print ratios."""
    check_out(out)
    from ..bench.suite import run_bench

    res = run_bench(out, quick=quick, echo=echo)
    echo("")
    echo(f"{'figure':38s} {'aelens':>12s} {'reference':>12s} {'ratio':>7s}")
    for key, value in res.items():
        if isinstance(value, dict) and "ratio" in value and "aelens" in value:
            echo(f"{key:38s} {value['aelens']:>12.5g} {value['reference']:>12.5g} {value['ratio']:>6.2f}x")
    if "step_overhead_ms" in res:
        o = res["step_overhead_ms"]
        echo(f"{'per-step overhead (ms, bare step)':38s} {o['overhead_ms']:>12.3g} {o['bare_step_ms']:>12.4g}")
    if "startup_s" in res:
        s = res["startup_s"]
        echo(f"start-up (s): import aelens {s['import_aelens']:.2f}, --help {s['help']:.2f}, missing-data error "
             f"{s['missing_data_error']:.2f}")  # fmt: skip
    echo(f"bench.json: {Path(out) / BenchFiles.RESULT}")
