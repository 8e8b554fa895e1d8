"""The study's ``results.json`` (headline numbers) and its self-contained ``report.html`` (figures embedded as data
URIs: it opens offline, and can be mailed as one file). Each question gets its figures, its table and a sentence
written from the numbers."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from ..layout import CompareFiles, LatentFiles, ReconFiles, RunDir, StudyLayout, SweepFiles, TestFiles
from ..storage import write_text
from .answers import best_linear_r2, psnr_of, quality_key, read_answers

# --------------------------------------------------------------------------------------------- HTML

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
.answer{background:#f3f7fb;border-left:4px solid #3a78b5;padding:.7em 1em;margin:1em 0}
figure{margin:1em 0;text-align:center} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555} table{border-collapse:collapse;margin:1em 0;font-size:.85em}
td,th{border:1px solid #ddd;padding:.25em .55em;text-align:right} th{background:#f5f5f5} td:first-child,th:first-child{text-align:left}
.meta{color:#666;font-size:.85em} code{background:#f4f4f4;padding:0 .2em}
"""


def _img(path: Path, caption: str) -> str:
    if not path.is_file():
        return ""
    mime = "image/gif" if path.suffix == ".gif" else "image/png"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, float) for x in v):  # an interval
        return f"[{v[0]:.4g}, {v[1]:.4g}]" if all(math.isfinite(x) for x in v) else ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _table(rows: list[dict], fields: list[str], headers: list[str] | None = None) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in (headers or fields))
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(f))}</td>" for f in fields) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _score_table(rows: list[dict]) -> str:
    by = {}
    for r in rows:
        by.setdefault(r["condition"], {})[r["decoder"]] = r
    out = []
    for cond, d in by.items():
        any_row = next(iter(d.values()))
        out.append(
            {
                "condition": cond,
                "metric": "angle MAE (deg)" if any_row["metric"] == "mae_deg" else "R²",
                "ridge": _with_folds(d.get("ridge", {})),
                "knn": _with_folds(d.get("knn", {})),
                "chance": any_row["chance"],
            }
        )
    return _table(
        out,
        ["condition", "metric", "ridge", "knn", "chance"],
        ["condition", "metric", "ridge [folds' range]", "k-NN [folds' range]", "chance (shuffled)"],
    )


def _group_score_table(rows: list[dict]) -> str:
    """Ridge decoding of each condition within each session / track: conditions down, groups across."""
    if not rows:
        return ""
    groups = list(dict.fromkeys(f"{r['by']} {r['group']}" for r in rows))
    table: dict[str, dict] = {}
    for r in rows:
        cell = table.setdefault(r["condition"], {"condition": r["condition"]})
        cell["metric"] = "angle MAE (deg)" if r["metric"] == "mae_deg" else "R²"
        cell[f"{r['by']} {r['group']}"] = r["score"]
    return "<p>Ridge decoding within each session and animal (each fitted and scored on its own frames):</p>" + _table(
        list(table.values()), ["condition", "metric", *groups]
    )


def _with_folds(row: dict) -> str | float | None:
    """A decoding score and the range of its single folds (blocks of time), when the scores have them."""
    score, folds = row.get("score"), row.get("fold_range")
    if not isinstance(score, float) or not folds or not all(isinstance(v, float) and math.isfinite(v) for v in folds):
        return score
    return f"{score:.4g} [{folds[0]:.4g}, {folds[1]:.4g}]"


def _split_line(results: dict) -> str:
    split = (results.get("ae_test") or {}).get("split")
    if not split:
        return ""
    text = f"split: {split.get('kind')}"
    if split.get("purge"):
        text += f", purge {split['purge']} frames at block boundaries"
    if split.get("groups"):
        text += f", groups {split['groups']}"
    return (
        f"<p class='meta'>{html.escape(text)} (every model shares this split; test scores are on its test frames)</p>"
    )


def _transfer_section(lay: StudyLayout, results: dict) -> list[str]:
    transfer = results.get("transfer") or []
    if not transfer:
        return []
    parts = [
        "<section id='transfer'><h2>4. Does it hold on a new session?</h2>",
        "<p>Every model scored on data it never saw, beside its own held-out test frames. Readouts of the "
        "conditions are fitted on the training session's latent and applied to the new one.</p>",
    ]
    for tr in transfer:
        name = tr["name"]
        parts.append(f"<h3>{html.escape(name)} ({tr['n']} frames)</h3>")
        parts.append(
            "<div class='answer'>"
            + "<br>".join(html.escape(t) for t in results["answers"]["transfer"].get(name, []))
            + "</div>"
        )
        parts += [f"<p><b>Warning:</b> {html.escape(n)}</p>" for n in tr.get("notes", [])]
        rows = [_transfer_row(m) for m in tr["models"]]
        parts.append(_table(rows, ["model", "metric", "own test", "new session", "change", "baseline"]))
        dec = list(tr.get("decoding", []))
        if dec:
            parts.append(
                _table(
                    dec,
                    ["model", "condition", "decoder", "metric", "in_session", "score", "chance"],
                    ["model", "condition", "decoder", "metric", "within training data", "on the new session", "chance"],
                )
            )
        parts.append(
            _img(lay.transfer(name) / "ae" / TestFiles.RECON_GRID, f"{name}: frames and the AE's reconstructions.")
        )
        parts.append(
            _img(
                lay.transfer(name) / "tagger" / TestFiles.ANGLE_ARROWS,
                f"{name}: the tagger's answers (true vs predicted).",
            )
        )
    parts.append("</section>")
    return parts


def _transfer_row(m: dict) -> dict:
    """A model's own-test and new-session score (taggers: mean angle error; AE and decoders: PSNR)."""
    own, new = m["own"] or {}, m["new"]
    if m["kind"] == "tagger":
        metric, a, b, baseline = "angle error (deg, mean)", own.get("value"), new.get("value"), new.get("baseline")
    else:
        metric, a, b, baseline = "PSNR (dB)", psnr_of(own), psnr_of(new), None
    return {
        "model": m["label"],
        "metric": metric,
        "own test": a,
        "new session": b,
        "change": (b or 0) - (a or 0),
        "baseline": baseline,
    }


def _pca_run(lay: StudyLayout, decoders) -> Path | None:
    """The PCA decoder run with the most components (its explained-variance curve goes into the report)."""
    pca = [(int(dim), spec) for spec in decoders for method, _, dim in [spec.partition(":")] if method == "pca"]
    return lay.decoder(max(pca)[1]).path if pca else None


def _condition_figures(lay: StudyLayout, results: dict) -> list[str]:
    """The AE map coloured by the tagger's target and by the condition its latent holds best besides it."""
    settings = results["settings"]
    target = settings["run"]["tagger"]["target"]
    scores = (results.get("latent_ae") or {}).get("encoding_scores", [])
    other = best_linear_r2([r for r in scores if r["condition"] != target])
    folder = lay.latent("ae")
    parts = [
        _img(
            folder / LatentFiles.scatter(target),
            f"Coloured by {target} (the taggers' target), with example frames and their reconstructions.",
        )
    ]
    if other:
        parts.append(
            _img(
                folder / LatentFiles.scatter(other),
                f"Coloured by {other}, the condition a linear readout decodes best from the AE latent.",
            )
        )
    return parts


def _header(results: dict) -> list[str]:
    s = results["settings"]
    return [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>aelens study</title><style>{CSS}</style></head><body>",
        "<h1>aelens study report</h1>",
        f"<p class='meta'>data: <code>{html.escape(str(s['run']['data']['path']))}</code> · {_epochs_phrase(s['run']['train'])} · "
        f"total {results['seconds']:.0f} s of this session's compute · aelens {results['versions']['aelens']}, "
        f"torch {results['versions']['torch']} · {results['created']}</p>",
        _split_line(results),
        *(f"<p><b>Warning about the data:</b> {html.escape(n)}</p>" for n in results.get("data_notes", [])),
    ]


def _what_ae_encodes_section(lay: StudyLayout, results: dict) -> list[str]:
    lat = results.get("latent_ae") or {}
    method = str(results["settings"].get("latent_method", "umap")).upper()
    folder = lay.latent("ae")
    return [
        "<section id='what_ae_encodes'><h2>1. What does the autoencoder's latent encode?</h2>",
        f"<div class='answer'>{html.escape(read_answers(results)['what_ae_encodes'])}</div>",
        _img(
            folder / LatentFiles.OVERVIEW,
            f"The AE latent ({method}), coloured by each condition; decoding score in each title.",
        ),
        _score_table(lat.get("encoding_scores", [])),
        _group_score_table(lat.get("encoding_scores_by_group", [])),
        *_condition_figures(lay, results),
        _img(folder / LatentFiles.ATLAS, "What lives where in the map: the AE's decoded image at each grid point."),
        _img(
            folder / LatentFiles.TRAVERSALS_PNG,
            "What each latent dimension does: the median code with one dimension moved.",
        ),
        _img(folder / LatentFiles.EVOLUTION_GIF, "How the latent developed during training (one frame per snapshot)."),
        _img(folder / LatentFiles.ENCODING_VS_EPOCH_PNG, "Decodability of each condition over training."),
        _img(lay.ae.test_dir / TestFiles.RECON_GRID, "Held-out test frames and the AE's reconstructions."),
        *_group_tables(results.get("ae_test") or {}, "The AE's test PSNR"),
        "</section>",
    ]


def far_off(rows: list[dict], metric: str) -> list[str]:
    """Groups whose 95% interval lies wholly outside every other group's: named in the report."""
    out = []
    for r in rows:
        lo, hi = r["ci95"]
        others = [o["ci95"] for o in rows if o is not r]
        if all(math.isfinite(v) for v in (lo, hi)) and others and all(hi < o[0] or lo > o[1] for o in others):
            out.append(f"{r['group']} ({r[metric]:.1f})")
    return out


def _group_tables(test: dict, what: str) -> list[str]:
    """Per session and per track rows of a test score, with the groups that lie apart from the rest."""
    parts = []
    for column, rows in (test.get("by_group") or {}).items():
        metric = next(k for k in rows[0] if k not in ("group", "n", "ci95"))
        apart = far_off(rows, metric)
        note = f" Apart from the others (intervals that do not overlap): {', '.join(apart)}." if apart else ""
        parts.append(f"<p class='meta'>{html.escape(what)} per {column}.{html.escape(note)}</p>")
        parts.append(_table(rows, ["group", "n", metric, "ci95"], [column, "frames", metric, "95% interval"]))
    return parts


def _replace_encoder_section(lay: StudyLayout, results: dict) -> list[str]:
    rows = (results.get("reconstruction") or {}).get("rows", [])
    key = quality_key(rows)
    clean = [key, "ssim_clean"] if key == "psnr_clean" else []
    ci = [f"{key}_ci95"] if rows and f"{key}_ci95" in rows[0] else []
    fields = ["model", "dim", "mse", "psnr", "ssim", *clean, *ci, "train_seconds", "seconds_per_epoch",
              "explained_variance"]  # fmt: skip
    recon = results.get("reconstruction") or {}
    pair_fields = ["a", "word", "b", "difference", "ci95", "blocks"]
    pairs = _table(recon.get("pairs", []) + recon.get("baselines", []), pair_fields,
                   ["model", "", "compared with", "PSNR difference (dB)", "95% interval", "test blocks"])  # fmt: skip
    method = f"<p class='meta'>{html.escape(recon['intervals'])}.</p>" if recon.get("intervals") else ""
    pca_run = _pca_run(lay, results["settings"].get("decoders", []))
    variance = ""
    if pca_run:
        variance = _img(
            pca_run / RunDir.PCA_VARIANCE_PNG,
            f"Cumulative explained variance of PCA on the training frames ({pca_run.name}).",
        )
    return [
        "<section id='can_embeddings_replace_encoder'><h2>2. Can PCA or UMAP replace the encoder?</h2>",
        f"<div class='answer'>{html.escape(read_answers(results)['can_embeddings_replace_encoder'])}</div>",
        _img(lay.recon / ReconFiles.FIGURE, "Same test frames through each model; bottom row: each model's latent in 2-D."),
        _table(rows, fields),
        pairs,
        method,
        variance,
        "</section>",
    ]  # fmt: skip


SWEEP_FIELDS = ["run", "trainable_layers", "angle_mae_deg", "angle_mae_ci95", "angle_median_deg", "within_15deg", "within_30deg",
                "train_seconds"]  # fmt: skip


def _objective_section(lay: StudyLayout, results: dict) -> list[str]:
    cmp_, sweep = results.get("comparison"), results.get("sweep")
    parts = [
        "<section id='how_objective_shapes_latent'><h2>3. How does the objective shape the representation?</h2>",
        f"<div class='answer'>{html.escape(read_answers(results)['how_objective_shapes_latent'])}</div>",
    ]
    if cmp_:
        pair_rows = [
            {"runs": f"{p['a']} vs {p['b']}", "linear CKA": p["linear_cka"],
             "95% CI": f"{p['linear_cka_ci95'][0]:.3f}-{p['linear_cka_ci95'][1]:.3f}", "debiased CKA": p["debiased_cka"],
             "permutation 95%": p["permutation_95"], "mutual 10-NN": p["mutual_knn_10"],
             "Procrustes": p["procrustes_distance"]}
            for p in cmp_["pairs"]
        ]  # fmt: skip
        parts += [
            _img(lay.compare / CompareFiles.FIGURE, "Each run's latent (columns) coloured by each condition (rows)."),
            _table(pair_rows, list(pair_rows[0])),
            "".join(f"<h3>{html.escape(lab)}</h3>" + _score_table(rows) for lab, rows in cmp_["decoding"].items()),
            _img(lay.compare / CompareFiles.ROTATION, "Frames turned through 360°, placed in each run's map."),
            _table(
                _rotation_rows(cmp_),
                [
                    "run",
                    "variance explained by rotation",
                    "loop",
                    "times round per turn",
                    "turn slope",
                    "turn error (deg)",
                ],
            ),  # fmt: skip
            _img(
                lay.latent("tagger") / LatentFiles.ATLAS, "The tagger's map: the mean real frame near each grid point."
            ),
        ]
    if sweep:
        parts += [
            _img(lay.sweep / SweepFiles.FIGURE, "Tagger test error vs trainable AE encoder layers."),
            _table(sweep["rows"], SWEEP_FIELDS),
        ]
    return [*parts, "</section>"]


def _rotation_rows(cmp_: dict) -> list[dict]:
    return [
        {"run": lab, "variance explained by rotation": p["variance_explained"], "loop": p["loop"],
         "times round per turn": p["winding"], "turn slope": p.get("slope"), "turn error (deg)": p.get("turn_error_deg")}
        for lab, p in (cmp_.get("rotation") or {}).items()
    ]  # fmt: skip


def write_report(out: Path, results: dict) -> Path:
    """``report.html``: one section per question (figures embedded), the transfer section, how to reproduce."""
    lay = StudyLayout(out)
    steps = ", ".join(f"{k}: {v}" for k, v in results["step_seconds"].items())
    parts = [
        *_header(results),
        *_what_ae_encodes_section(lay, results),
        *_replace_encoder_section(lay, results),
        *_objective_section(lay, results),
        *_transfer_section(lay, results),
        *_seeds_section(results),
        "<h2>Reproduce</h2><p>Every run directory holds its <code>config.yaml</code>; "
        "<code>aelens study --data DATA --out DIR --config DIR/study.yaml</code> repeats (or resumes) this study.</p>",
        f"<p class='meta'>step times (s): {html.escape(steps)}</p>",
        "</body></html>",
    ]
    write_text(lay.report, "\n".join(p for p in parts if p))
    return lay.report


def _seeds_section(results: dict) -> list[str]:
    """With ``--seeds K``: each seed's AE PSNR and tagger error, and their spread beside the intervals over frames."""
    seeds = results.get("seeds")
    if not seeds:
        return []
    rows = "".join(
        f"<tr><td>{r['seed']}</td><td>{_num(r['ae_psnr'], ' dB')}</td><td>{_num(r['tagger_mae_deg'], ' deg')}</td></tr>"
        for r in seeds["rows"]
    )
    said = [
        f"{label}: mean {v['mean']:.2f}{unit}, sd {v['sd']:.2f}, range {v['min']:.2f} to {v['max']:.2f} over {v['n']} seeds"
        for key, label, unit in (("ae_psnr", "AE PSNR", " dB"), ("tagger_mae_deg", "tagger error", " deg"))
        if (v := seeds["spread"].get(key))
    ]
    return [
        "<h2>Seeds</h2><p>The AE and the tagger from scratch, trained again with other seeds on the same frames and "
        "scored on the same test frames: the spread below comes from training, the intervals above from which frames "
        "were held out. " + html.escape("; ".join(said)) + ".</p>",
        f"<table><tr><th>seed</th><th>AE PSNR</th><th>tagger error</th></tr>{rows}</table>",
    ]


def _num(value, unit: str) -> str:
    return f"{value:.2f}{unit}" if isinstance(value, (int, float)) else "-"


def _epochs_phrase(train: dict) -> str:
    """How long each model trained, as the settings say: a fixed count, or a ceiling with early stopping."""
    patience = train.get("patience", 0)
    if patience is None:
        return (
            f"up to {train['epochs']} epochs per model (the AE and decoders stop when their validation loss stops "
            "improving; taggers train to the ceiling)"
        )
    if patience:
        return f"up to {train['epochs']} epochs per model (each run stops when its validation loss stops improving)"
    return f"{train['epochs']} epochs per model"
