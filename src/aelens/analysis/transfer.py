"""Does it hold on a new session? Every model of a study scored on a dataset it never saw.

For each run: its test scores on the new frames (AE / decoders: PSNR and SSIM; taggers: angle errors, with the
mean-direction baseline of the *training* frames) beside its own held-out test scores. For the AE and the tagger:
each condition decoded from the latent with a readout fitted on the training session and applied to the new one
(no frame of the new session is used for fitting).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..data.loading import Dataset
from ..layout import LATENT_SUMMARY, TRANSFER_RESULT, RunDir, TransferFiles
from ..maps.scores import transfer_decoding_score
from ..runs.evaluate import test_run
from ..runs.run import load_run
from ..storage import read_json, write_csv, write_json
from .latent import analysis_frames, chosen_columns

log = logging.getLogger("aelens")
DECODERS = ("ridge", "knn")


def _headline(kind: str, res: dict) -> dict:
    """The numbers the report shows for one run on one set of frames."""
    if kind == "tagger":
        out = {"metric": "angle_mae_deg", "value": res.get("angle_mae_deg"), "median": res.get("angle_median_deg")}
        base = res.get("baselines", {}).get("circular_mean")
        if base is not None:
            out["baseline"] = base.get("angle_mae_deg")
            out["baseline_from"] = base.get("from", "training frames")
        return out
    out = {"metric": "psnr", "value": res.get("psnr"), "ssim": res.get("ssim")}
    if "psnr_clean" in res:
        out.update(value_clean=res["psnr_clean"], ssim_clean=res.get("ssim_clean"))
    baselines = res.get("baselines", {})  # mean_frame: absent from the results of older versions
    pca = next((scores for name, scores in baselines.items() if name.startswith("pca")), None)
    for key, scores in (("mean_frame_psnr", baselines.get("mean_frame")), ("pca_psnr", pca)):
        if scores:
            out[key] = scores.get("psnr_clean", scores.get("psnr"))
    if "pixels" in res:
        out["pixels"] = res["pixels"]
    return out


def transfer_decoding(
    run_dir: Path, new: Dataset, max_images: int, seed: int = 0, train_dataset: Dataset | None = None
) -> list[dict]:
    """Each condition both datasets have, decoded from ``run_dir``'s latent: fitted on its training data
    (``train_dataset``, or read again when None), scored on ``new`` (ridge and k-NN, with the score of a readout
    fitted on shuffled targets as chance)."""
    run = load_run(run_dir)
    train_ds = run.dataset(dataset=train_dataset)
    if train_ds.conditions is None or new.conditions is None:
        return []
    columns = [c for c in chosen_columns(train_ds, None) if c in new.conditions.names]
    if not columns:
        return []
    idx_fit = analysis_frames(run, train_ds, max_images)
    idx_new = np.unique(np.linspace(0, new.n - 1, num=min(new.n, max_images)).astype(int))
    z_fit, z_new = run.encode(train_ds.batch(idx_fit).numpy()), run.encode(new.batch(idx_new).numpy())
    rows = []
    for name in columns:
        for dec in DECODERS:
            res = transfer_decoding_score(
                z_fit,
                train_ds.conditions.column(name)[idx_fit],
                z_new,
                new.conditions.column(name)[idx_new],
                train_ds.conditions.is_angle(name),
                method=dec,
                random_state=seed,
            )
            rows.append({"condition": name, "decoder": dec, **res})
    return rows


def _in_session_scores(latent_dir: Path | None) -> dict[tuple[str, str], float]:
    """(condition, decoder) -> the cross-validated score within the training data (from ``latent_analysis``)."""
    if latent_dir is None or not (latent_dir / LATENT_SUMMARY).is_file():
        return {}
    rows = read_json(latent_dir / LATENT_SUMMARY).get("encoding_scores", [])
    return {(r["condition"], r["decoder"]): r["score"] for r in rows}


def score_transfer(
    name: str,
    data: str | Path,
    runs: dict[str, Path],
    out: str | Path,
    latent_dirs: dict[str, Path] | None = None,
    decode: tuple[str, ...] = ("ae", "tagger"),
    max_images: int = 20000,
    seed: int = 0,
    notes: list[str] | None = None,
    train_dataset: Dataset | None = None,
    dataset: Dataset | None = None,
) -> dict:
    """Score every run in ``runs`` (label -> run folder) on the dataset ``data``; decode conditions across sessions
    from the runs labelled in ``decode``. Writes ``out/transfer.json``, ``decoding.csv`` and each run's test folder.
    ``dataset`` / ``train_dataset``: ``data`` and the runs' training data when already loaded (else they are read)."""
    out = Path(out)
    models = []
    new = None
    for label, run_dir in runs.items():
        run = load_run(run_dir)
        if new is None:
            new = run.dataset(data, dataset)
        own = RunDir(run_dir).test_result()
        res = test_run(run_dir, dataset=new, out=out / label, figures=label in decode, train_dataset=train_dataset)
        models.append(
            {
                "label": label,
                "kind": run.kind,
                "run": str(run_dir),
                "new": _headline(run.kind, res),
                "own": _headline(run.kind, own) if own else None,
                "own_frames": own.get("frames") if own else None,
                "split": (own or {}).get("split", {}).get("kind"),
            }
        )
    decoding = []
    for label in decode:
        if label not in runs:
            continue
        in_session = _in_session_scores((latent_dirs or {}).get(label))
        for row in transfer_decoding(runs[label], new, max_images, seed, train_dataset):
            decoding.append({"model": label, **row, "in_session": in_session.get((row["condition"], row["decoder"]))})
    if decoding:
        write_csv(
            out / TransferFiles.DECODING,
            decoding,
            ["model", "condition", "decoder", "metric", "score", "chance", "in_session", "n_fit", "n"],
        )
    result = {
        "name": name,
        "data": str(data),
        "n": new.n,
        "models": models,
        "decoding": decoding,
        "notes": list(notes or []),
    }
    write_json(out / TRANSFER_RESULT, result)
    return result
