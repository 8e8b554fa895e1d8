"""``aelens train ae|decoder|tagger``, ``sweep unfreeze``, ``test`` and ``compare-recon``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import AelensError
from ..layout import ReconFiles, RunDir, SweepFiles
from .common import (
    DECODER_OPTIONS,
    RUN_OPTIONS,
    TAGGER_OPTIONS,
    TRAIN_OPTIONS,
    app,
    build_config,
    check_out,
    check_run,
    echo,
    require_kind,
    sweep_app,
    train_app,
    with_options,
)


def _train(kind: str, opts: dict, extra: dict | None = None) -> Path:
    # options and data are checked before torch and Lightning are imported: a mistake is reported at once
    if opts.get("resume"):
        given = [
            name for name, value in opts.items() if name not in ("resume", "epochs") and value not in (None, False)
        ]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise AelensError(
                f"--resume continues a run with its own settings (only --epochs can grow); {flags} would change it: "
                f"start a new run with --config {opts['resume']}/config.yaml {flags} instead"
            )
        cfg = build_config(kind, {"epochs": opts.get("epochs")}) if opts.get("epochs") else None
        require_kind(opts["resume"], kind, "--resume")
        from ..training.trainer import train

        run_dir = train(cfg, resume=opts["resume"])
    else:
        from ..data.sessions import load_with_options

        check_out(opts.get("out"))
        cfg = build_config(kind, opts, extra)
        if cfg.data.path is None:
            raise AelensError("--data is required (an images file or a data directory), or a --config that names it")
        dataset = load_with_options(cfg.data)  # read once; train() records the paths as absolute
        from ..training.trainer import train

        run_dir = train(cfg, out=opts.get("out"), overwrite=opts.get("overwrite", False), dataset=dataset)
    from ..training.trainer import is_worker

    if not is_worker():  # DDP processes other than rank 0 re-run this command too: one summary
        _summary(run_dir)
    return run_dir


def _summary(run_dir: Path) -> None:
    from ..layout import read_manifest

    m = read_manifest(run_dir)
    line = f"run: {run_dir}  epochs: {m.get('epochs')}  train time: {m.get('train_seconds', 0):.1f} s"
    if m.get("best_val_loss") is not None:
        line += f"  best val loss: {m['best_val_loss']:.5g} (epoch {m.get('best_epoch')})"
    echo(line)
    if "snapshot_overhead" in m:
        echo(f"latent snapshots: {m['snapshot_seconds']:.1f} s ({100 * m['snapshot_overhead']:.1f}% of training)")
    if "explained_variance" in m:
        echo(
            f"PCA: the {RunDir(run_dir).config().embedding.dim} components kept explain "
            f"{100 * m['explained_variance']:.1f}% of the training variance (cumulative curve: pca_variance.csv)"
        )
    echo(f"next: aelens test {run_dir}")


@train_app.command("ae")
@with_options(RUN_OPTIONS + TRAIN_OPTIONS)
def train_ae(opts):
    """Train the denoising convolutional autoencoder (16-D latent)."""
    _train("ae", opts)


@train_app.command("decoder")
@with_options(RUN_OPTIONS + TRAIN_OPTIONS + DECODER_OPTIONS)
def train_decoder(opts):
    """Train the AE's decoder on a PCA / UMAP / ... embedding of the frames."""
    _train("decoder", opts, {key: opts[name] for name, _, _, _, key in DECODER_OPTIONS})


@train_app.command("tagger")
@with_options(RUN_OPTIONS + TRAIN_OPTIONS + TAGGER_OPTIONS)
def train_tagger(opts):
    """Train the direction tagger (the AE's encoder + a readout of the body angle)."""
    _train("tagger", opts, {key: opts[name] for name, _, _, _, key in TAGGER_OPTIONS})


@sweep_app.command("unfreeze")
@with_options(
    [o for o in RUN_OPTIONS if o[0] in ("config",)]
    + TRAIN_OPTIONS
    + [o for o in TAGGER_OPTIONS if o[0] not in ("unfreeze",)]
)
def sweep_unfreeze(
    out: Path = typer.Option(Path("unfreeze_sweep"), "--out", help="Folder for the sweep's runs and table."),
    opts=None,
):
    """Train the tagger from scratch and from the AE encoder with 0, 1, 2, ... all layers trainable; test each."""
    if not opts.get("init_from"):
        raise AelensError("--init-from AE_RUN_DIR is required: the AE whose encoder starts the sweep's runs")
    check_out(out)
    require_kind(opts["init_from"], "ae", "--init-from")  # before the sweep folder exists
    from ..study.sweep import unfreeze_sweep

    cfg = build_config("tagger", opts, {key: opts[name] for name, _, _, _, key in TAGGER_OPTIONS if name in opts})
    if cfg.data.path is None:
        raise AelensError("--data is required (an images file or a data directory)")
    res = unfreeze_sweep(cfg, opts["init_from"], out)
    echo(f"{'run':14s} {'trainable':24s} {'MAE deg':>8s} {'median':>7s} {'<15deg':>7s}")
    for r in res["rows"]:
        echo(
            f"{r['run']:14s} {r['trainable_layers']:24s} {r['angle_mae_deg']:8.2f} {r['angle_median_deg']:7.2f} {r['within_15deg']:7.2f}"
        )
    echo(f"circular-mean baseline: {res['circular_mean_mae_deg']:.1f} deg; table: {out / SweepFiles.TABLE}")


# --------------------------------------------------------------------------------------------- test


@app.command("test")
def test(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset to score [the run's own: its test split]."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Output folder [RUN_DIR/test; RUN_DIR/test-NAME for another dataset NAME]."
    ),
):
    """Score a run on held-out frames beside simple baselines; write results.json and figures."""
    check_out(out)
    check_run(run_dir)  # before the import: a wrong path is reported at once
    from ..runs.evaluate import test_run

    res = test_run(run_dir, data=data, out=out)
    keys = [
        k
        for k in (
            "mse",
            "psnr",
            "ssim",
            "psnr_clean",
            "ssim_clean",
            "angle_mae_deg",
            "angle_median_deg",
            "within_15deg",
            "within_30deg",
            "mae",
            "r2",
        )
        if k in res
    ]
    echo(f"{res['kind']} run, {res['n']} frames ({res['frames']}): " + ", ".join(f"{k} {res[k]:.4g}" for k in keys))
    for name, scores in res.get("baselines", {}).items():
        shown = [k for k in keys if k in scores]
        source = f" (from the {scores['from']})" if "from" in scores else ""
        echo(f"  baseline {name}{source}: " + ", ".join(f"{k} {scores[k]:.4g}" for k in shown))
    echo(f"results: {Path(out) / RunDir.RESULTS if out else RunDir(run_dir).test_results}")


@app.command("compare-recon")
def compare_recon(
    run_dirs: list[Path] = typer.Argument(..., help="AE and decoder run directories."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset [the first run's own]."),
    out: Path = typer.Option(Path("recon_comparison"), "--out", help="Output folder."),
    color_by: str = typer.Option("body_angle_deg", "--color-by", help="Condition colouring the latent maps."),
):
    """Evaluate AE and decoder runs on the same test frames: one table, one figure."""
    check_out(out)
    for r in run_dirs:  # before the import: a wrong path is reported at once
        check_run(r)
    from ..runs.evaluate import compare_reconstructions

    res = compare_reconstructions(run_dirs, data, out, color_by)
    keys = [k for k in ("psnr", "ssim", "psnr_clean", "train_seconds", "seconds_per_epoch") if k in res["rows"][0]]
    echo(f"{res['n']} {res['frames']}")
    echo(f"{'model':10s} " + " ".join(f"{k:>17s}" for k in keys))
    for r in res["rows"]:
        echo(f"{r['model']:10s} " + " ".join(f"{(r[k] if r[k] is not None else float('nan')):17.4g}" for k in keys))
    echo(f"table: {out / ReconFiles.TABLE}  figure: {out / ReconFiles.FIGURE}")
