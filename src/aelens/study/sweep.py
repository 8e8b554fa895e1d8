"""``aelens sweep unfreeze``: the direction tagger from scratch and from the AE encoder with 0, 1, ... all layers
trainable, each tested on the same held-out frames; one table and one plot."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from ..config import RunConfig
from ..errors import AelensError
from ..layout import SWEEP_RESULT, SweepFiles, read_manifest
from ..maps.figures import save_sweep_plot
from ..models.nets import Encoder
from ..runs.evaluate import ensure_test
from ..storage import write_json, write_table
from .jobs import train_all

log = logging.getLogger("aelens")


def sweep_settings() -> list[tuple[str, str | None]]:
    """(name, unfreeze) for every sweep run: scratch (None), then 0 .. len(layers)-1 and all."""
    n = len(Encoder.LAYERS)
    return [("scratch", None)] + [(f"unfreeze{k}", str(k)) for k in range(n)] + [("unfreeze_all", "all")]


def unfreeze_sweep(
    base: RunConfig, init_from: str | Path, out: str | Path, dataset=None, executor=None, jobs: int = 1
) -> dict:
    """Train and test every sweep run under ``out`` (skipping finished ones); write ``unfreeze_sweep.csv`` and
    ``unfreeze_sweep.png``. ``base`` is a tagger config (data, target, epochs, ...); ``dataset``: its data, loaded
    (read once for every run), or None to read it; ``executor``: train the runs side by side on it (see
    :mod:`aelens.study.jobs`)."""

    if base.tagger.kind != "angle":
        raise AelensError("sweep unfreeze scores angle errors; use an angle target (--kind angle)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for name, unfreeze in sweep_settings():
        tagger = dataclasses.replace(
            base.tagger, unfreeze=unfreeze or "all", init_from=None if unfreeze is None else str(init_from)
        )
        runs.append((dataclasses.replace(base, kind="tagger", tagger=tagger), out / name))
    train_all(runs, dataset, executor, jobs)
    rows = []
    baseline = None
    for name, unfreeze in sweep_settings():
        run_dir = out / name
        res = ensure_test(run_dir, dataset=dataset)
        m = read_manifest(run_dir)
        baseline = res["baselines"]["circular_mean"]["angle_mae_deg"]
        rows.append(
            {
                "run": name,
                "init": "scratch" if unfreeze is None else "ae",
                "unfreeze": unfreeze or "all",
                "trainable_layers": "+".join(m.get("trainable_layers", [])) or "readout only",
                "angle_mae_deg": res["angle_mae_deg"],
                "angle_mae_ci95": res.get("angle_mae_ci95"),
                "angle_median_deg": res["angle_median_deg"],
                "within_15deg": res["within_15deg"],
                "within_30deg": res["within_30deg"],
                "train_seconds": m.get("train_seconds"),
                "epochs": m.get("epochs"),
            }
        )
    fields = [
        "run",
        "init",
        "unfreeze",
        "trainable_layers",
        "angle_mae_deg",
        "angle_mae_ci95",
        "angle_median_deg",
        "within_15deg",
        "within_30deg",
        "train_seconds",
        "epochs",
    ]
    write_table(out / SweepFiles.CSV, out / SweepFiles.TABLE, rows, fields)
    save_sweep_plot(rows, baseline, out / SweepFiles.FIGURE)
    result = {"rows": rows, "circular_mean_mae_deg": baseline, "init_from": str(init_from)}
    write_json(out / SWEEP_RESULT, result)
    return result
