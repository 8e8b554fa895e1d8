"""The study's ``results.json`` (headline numbers) and its self-contained ``report.html`` (figures embedded as data
URIs: it opens offline, and can be mailed as one file). Each question gets its figures, its table and a sentence
written from the numbers."""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import html
from pathlib import Path

from ..layout import StudyLayout
from ..storage import read_json, versions, write_text


def _load(path: Path):
    return read_json(path) if path.is_file() else None


def _skill(row: dict) -> float:
    """How far above chance a decoding score is, on one scale: 1 - error/chance for angles, R^2 otherwise."""
    if row["metric"] == "mae_deg":
        return 1 - row["score"] / row["chance"] if row["chance"] else float("nan")
    return row["score"]


def _fmt_score(row: dict) -> str:
    if row["metric"] == "mae_deg":
        return f"{row['score']:.1f}° (chance {row['chance']:.0f}°)"
    return f"R² {row['score']:.2f}"


def answer_q1(latent: dict | None, latent_dim: int) -> str:
    if not latent or not latent.get("encoding_scores"):
        return "No conditions were available to score the AE latent against."
    best = {}
    for r in latent["encoding_scores"]:
        if r["condition"] not in best or _skill(r) > _skill(best[r["condition"]]):
            best[r["condition"]] = r
    ranked = sorted(best.values(), key=_skill, reverse=True)
    top = ", ".join(f"{r['condition']} ({r['decoder']}: {_fmt_score(r)})" for r in ranked[:3])
    low = ranked[-1]
    return (
        f"The AE's {latent_dim}-D latent encodes {top}; the least decodable condition is {low['condition']} "
        f"({low['decoder']}: {_fmt_score(low)}). The 2-D map's trustworthiness is {latent['trustworthiness']:.3f} "
        "(1 = every neighbour in the picture is a neighbour in the latent)."
    )


def _quality_key(rows: list[dict]) -> str:
    return "psnr_clean" if rows and rows[0].get("psnr_clean") is not None else "psnr"


def answer_q2(recon: dict | None) -> str:
    if not recon:
        return "The reconstruction comparison did not run."
    rows = recon["rows"]
    key = _quality_key(rows)
    ae = next((r for r in rows if r["latent_source"] == "ae"), None)
    if ae is None:
        return "No AE run was compared."
    parts = []
    for r in rows:
        if r is ae:
            continue
        t = (r["train_seconds"] or 0) / (ae["train_seconds"] or 1)
        what = "PSNR against the clean frames" if key == "psnr_clean" else "PSNR"
        parts.append(
            f"{r['model']} reaches {100 * r[key] / ae[key]:.0f}% of the AE's {what} "
            f"({r[key]:.1f} vs {ae[key]:.1f} dB) with {t:.2f}x its training time"
        )
    best = max((r for r in rows if r is not ae), key=lambda r: r[key], default=None)
    verdict = ""
    if best is not None:
        verdict = f" The best replacement for the encoder is {best['model']}" + (
            ", which beats the AE." if best[key] > ae[key] else f", {ae[key] - best[key]:.1f} dB below the AE."
        )
    pca = next((r for r in rows if r["latent_source"] == "pca" and r.get("explained_variance")), None)
    ev = f" {pca['model']} explains {100 * pca['explained_variance']:.0f}% of the training variance." if pca else ""
    return "; ".join(parts) + "." + verdict + ev


def answer_q3(compare: dict | None, sweep: dict | None) -> str:
    if not compare:
        return "The tagger was not trained (no angle target in the metadata)."
    labels = compare["labels"]
    pair = compare["pairs"][0]
    lo, hi = pair["linear_cka_ci95"]
    text = (
        f"The AE and the tagger trained from scratch share a linear CKA of {pair['linear_cka']:.2f} "
        f"[95% CI {lo:.2f}-{hi:.2f}; unrelated representations score up to {pair['permutation_95']:.2f}]"
    )
    dec = compare["decoding"]

    def ridge(label, cond):
        return next((r for r in dec.get(label, []) if r["condition"] == cond and r["decoder"] == "ridge"), None)

    angle = compare.get("loop_condition")
    if angle:
        a, t = ridge(labels[0], angle), ridge(labels[1], angle)
        if a and t:
            text += f". {angle} is decoded from the tagger latent with {t['score']:.1f}° error vs {a['score']:.1f}° from the AE"
    other = _best_linear_r2(dec.get(labels[0], []))
    if other:
        a, t = ridge(labels[0], other), ridge(labels[1], other)
        if a and t:
            change = "drops" if t["score"] < a["score"] else "rises"
            text += (
                f"; {other}, the condition the AE's latent holds best linearly, {change} from R² {a['score']:.2f} "
                f"(AE) to {t['score']:.2f} (tagger)"
            )
    loop = compare.get("loop", {}).get(labels[1])
    if loop:
        is_loop = loop["circular_corr"] > max(0.5, loop["permutation_95"])
        text += (
            f". The tagger's map {'is' if is_loop else 'is not'} a loop ordered by angle "
            f"(|circular correlation| {loop['circular_corr']:.2f}, chance up to {loop['permutation_95']:.2f})"
        )
    if sweep:
        rows = sweep["rows"]
        scratch = next(r for r in rows if r["init"] == "scratch")
        ae_rows = [r for r in rows if r["init"] == "ae"]
        best = min(ae_rows, key=lambda r: r["angle_mae_deg"])
        probe = ae_rows[0]
        text += (
            f". Starting from the AE encoder, the linear probe (0 layers) reaches {probe['angle_mae_deg']:.1f}° and the best "
            f"setting (unfreeze {best['unfreeze']}) {best['angle_mae_deg']:.1f}°, vs {scratch['angle_mae_deg']:.1f}° from "
            f"scratch (always answering the mean direction: {sweep['circular_mean_mae_deg']:.1f}°)"
        )
    return text + "."


def _best_linear_r2(rows: list[dict]) -> str | None:
    """The R² condition that a ridge readout decodes best from a latent (None when there is none)."""
    r2 = [r for r in rows if r["metric"] == "r2" and r["decoder"] == "ridge" and r["score"] == r["score"]]
    return max(r2, key=lambda r: r["score"])["condition"] if r2 else None


PSNR_HOLDS_DB = 1.5  # a reconstruction "holds" on a new session within this many dB of its own test frames
TAGGER_HOLDS_RATIO = 2.0  # a tagger "holds" within this factor of its own test error (and well under the baseline)


def _psnr(h: dict | None) -> float | None:
    if not h:
        return None
    return h.get("value_clean") if h.get("value_clean") is not None else h.get("value")


def answer_transfer(tr: dict, target: str = "body_angle_deg") -> list[str]:
    """One sentence per question that the transfer numbers support (see ``analysis.transfer``)."""
    name = tr["name"]
    models = {m["label"]: m for m in tr["models"]}
    out = []
    ae = models.get("ae")
    if ae and _psnr(ae["own"]) is not None:
        own, new = _psnr(ae["own"]), _psnr(ae["new"])
        holds = own - new <= PSNR_HOLDS_DB
        gap = f"{abs(own - new):.1f} dB {'below' if new < own else 'above'}"
        out.append(
            f"The AE reconstructs {name} at {new:.1f} dB PSNR, {gap} its own test frames ({own:.1f} dB): it "
            f"{'holds' if holds else 'does not hold'} on the new session (criterion: within {PSNR_HOLDS_DB} dB)."
        )
    recon = [m for m in tr["models"] if m["kind"] == "decoder" and _psnr(m["own"]) is not None]
    if ae and recon:
        drop_ae = _psnr(ae["own"]) - _psnr(ae["new"])
        best = max(recon, key=lambda m: _psnr(m["new"]))
        verdict = "better" if _psnr(best["new"]) > _psnr(ae["new"]) else "worse"
        out.append(
            f"Of the encoder replacements, {best['label']} reconstructs {name} best ({_psnr(best['new']):.1f} dB, "
            f"{verdict} than the AE; from its own test frames to {name} it changes by "
            f"{_psnr(best['new']) - _psnr(best['own']):+.1f} dB, the AE by {-drop_ae:+.1f} dB)."
        )
    tagger = models.get("tagger")
    if tagger and tagger["new"].get("value") is not None and tagger["own"]:
        new, own, base = tagger["new"]["value"], tagger["own"]["value"], tagger["new"].get("baseline")
        holds = new <= TAGGER_HOLDS_RATIO * max(own, 1e-9) and base is not None and new < 0.5 * base
        out.append(
            f"The tagger (from scratch) is off by {new:.1f}° on {name} (median {tagger['new']['median']:.1f}°), "
            f"vs {own:.1f}° on its own test frames and {base:.1f}° for always answering the training frames' mean "
            f"direction: it {'transfers' if holds else 'does not transfer well'} "
            f"(criterion: at most {TAGGER_HOLDS_RATIO:g}x its own error and under half the baseline)."
        )
        sweep = [
            m
            for m in tr["models"]
            if m["kind"] == "tagger" and m["label"] != "tagger" and m["new"].get("value") is not None
        ]
        if sweep:
            best = min(sweep, key=lambda m: m["new"]["value"])
            out.append(
                f"Started from the AE encoder, the best tagger on {name} is {best['label']} "
                f"({best['new']['value']:.1f}°)."
            )
    dec = [r for r in tr.get("decoding", []) if r["decoder"] == "ridge" and r["score"] == r["score"]]
    for model in ("ae", "tagger"):
        rows = [r for r in dec if r["model"] == model]
        angle = next((r for r in rows if r["metric"] == "mae_deg" and r["condition"] == target), None) or next(
            (r for r in rows if r["metric"] == "mae_deg"), None
        )
        if angle:
            within = (
                f", within the training data {angle['in_session']:.1f}°" if angle.get("in_session") is not None else ""
            )
            out.append(
                f"A ridge readout of {angle['condition']} fitted on the training session's {model} latent scores "
                f"{angle['score']:.1f}° on {name} (chance {angle['chance']:.0f}°{within})."
            )
    return out


def collect_results(out: Path, cfg, timings: dict, seconds: float) -> dict:
    lay = StudyLayout(out)
    ae_test = _load(lay.ae.test_results)
    recon = _load(lay.recon_result)
    latent_ae = _load(lay.latent_summary("ae"))
    latent_tagger = _load(lay.latent_summary("tagger"))
    sweep = _load(lay.sweep_result)
    compare = _load(lay.compare_result)
    transfer = [t for t in (_load(p) for p in lay.transfer_results()) if t]
    return {
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "settings": dataclasses.asdict(cfg),
        "versions": versions(),
        "seconds": round(seconds, 1),
        "step_seconds": timings,
        "ae_test": ae_test,
        "reconstruction": recon,
        "latent_ae": {k: v for k, v in (latent_ae or {}).items() if k != "files"},
        "latent_tagger": {k: v for k, v in (latent_tagger or {}).items() if k != "files"},
        "sweep": sweep,
        "comparison": compare,
        "transfer": transfer,
        "answers": {
            "q1": answer_q1(latent_ae, cfg.latent_dim),
            "q2": answer_q2(recon),
            "q3": answer_q3(compare, sweep),
            "transfer": {t["name"]: answer_transfer(t, cfg.target) for t in transfer},
        },
    }


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
                "ridge": d.get("ridge", {}).get("score"),
                "knn": d.get("knn", {}).get("score"),
                "chance": any_row["chance"],
            }
        )
    return _table(
        out,
        ["condition", "metric", "ridge", "knn", "chance"],
        ["condition", "metric", "ridge", "k-NN", "chance (shuffled)"],
    )


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
        rows = []
        for m in tr["models"]:
            own, new = m["own"] or {}, m["new"]
            if m["kind"] == "tagger":
                rows.append(
                    {
                        "model": m["label"],
                        "metric": "angle error (deg, mean)",
                        "own test": own.get("value"),
                        "new session": new.get("value"),
                        "change": (new.get("value") or 0) - (own.get("value") or 0),
                        "baseline": new.get("baseline"),
                    }
                )
            else:
                rows.append(
                    {
                        "model": m["label"],
                        "metric": "PSNR (dB)",
                        "own test": _psnr(own),
                        "new session": _psnr(new),
                        "change": (_psnr(new) or 0) - (_psnr(own) or 0),
                        "baseline": None,
                    }
                )
        parts.append(_table(rows, ["model", "metric", "own test", "new session", "change", "baseline"]))
        dec = [r for r in tr.get("decoding", [])]
        if dec:
            parts.append(
                _table(
                    dec,
                    ["model", "condition", "decoder", "metric", "in_session", "score", "chance"],
                    ["model", "condition", "decoder", "metric", "within training data", "on the new session", "chance"],
                )
            )
        parts.append(
            _img(lay.transfer(name) / "ae" / "recon_grid.png", f"{name}: frames and the AE's reconstructions.")
        )
        parts.append(
            _img(
                lay.transfer(name) / "tagger" / "angle_arrows.png", f"{name}: the tagger's answers (true vs predicted)."
            )
        )
    parts.append("</section>")
    return parts


def _pca_run(lay: StudyLayout, decoders) -> Path | None:
    """The PCA decoder run with the most components (its explained-variance curve goes into the report)."""
    pca = [(int(dim), spec) for spec in decoders for method, _, dim in [spec.partition(":")] if method == "pca"]
    return lay.decoder(max(pca)[1]).path if pca else None


def _condition_figures(lay: StudyLayout, results: dict) -> list[str]:
    """The AE map coloured by the tagger's target and by the condition its latent holds best besides it."""
    settings = results["settings"]
    target = settings.get("target", "body_angle_deg")
    scores = (results.get("latent_ae") or {}).get("encoding_scores", [])
    other = _best_linear_r2([r for r in scores if r["condition"] != target])
    folder = lay.latent("ae")
    parts = [
        _img(
            folder / f"scatter_{target}.png",
            f"Coloured by {target} (the taggers' target), with example frames and their reconstructions.",
        )
    ]
    if other:
        parts.append(
            _img(
                folder / f"scatter_{other}.png",
                f"Coloured by {other}, the condition a linear readout decodes best from the AE latent.",
            )
        )
    return parts


def _header(results: dict) -> list[str]:
    s = results["settings"]
    return [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>aelens study</title><style>{CSS}</style></head><body>",
        "<h1>aelens study report</h1>",
        f"<p class='meta'>data: <code>{html.escape(str(s['data']['path']))}</code> · {s['epochs']} epochs per model · "
        f"total {results['seconds']:.0f} s of this session's compute · aelens {results['versions']['aelens']}, "
        f"torch {results['versions']['torch']} · {results['created']}</p>",
        _split_line(results),
    ]


def _q1_section(lay: StudyLayout, results: dict) -> list[str]:
    lat = results.get("latent_ae") or {}
    method = str(results["settings"].get("latent_method", "umap")).upper()
    folder = lay.latent("ae")
    return [
        "<section id='q1'><h2>1. What does the autoencoder's latent encode?</h2>",
        f"<div class='answer'>{html.escape(results['answers']['q1'])}</div>",
        _img(
            folder / "overview.png",
            f"The AE latent ({method}), coloured by each condition; decoding score in each title.",
        ),
        _score_table(lat.get("encoding_scores", [])),
        *_condition_figures(lay, results),
        _img(folder / "evolution.gif", "How the latent developed during training (one frame per snapshot)."),
        _img(folder / "encoding_vs_epoch.png", "Decodability of each condition over training."),
        _img(lay.ae.test_dir / "recon_grid.png", "Held-out test frames and the AE's reconstructions."),
        "</section>",
    ]


def _q2_section(lay: StudyLayout, results: dict) -> list[str]:
    rows = (results.get("reconstruction") or {}).get("rows", [])
    key = _quality_key(rows)
    clean = [key, "ssim_clean"] if key == "psnr_clean" else []
    fields = ["model", "dim", "mse", "psnr", "ssim", *clean, "train_seconds", "seconds_per_epoch", "explained_variance"]
    pca_run = _pca_run(lay, results["settings"].get("decoders", []))
    variance = ""
    if pca_run:
        variance = _img(
            pca_run / "pca_variance.png",
            f"Cumulative explained variance of PCA on the training frames ({pca_run.name}).",
        )
    return [
        "<section id='q2'><h2>2. Can PCA or UMAP replace the encoder?</h2>",
        f"<div class='answer'>{html.escape(results['answers']['q2'])}</div>",
        _img(lay.recon / "recon_comparison.png", "Same test frames through each model; bottom row: each model's latent in 2-D."),
        _table(rows, fields),
        variance,
        "</section>",
    ]  # fmt: skip


SWEEP_FIELDS = ["run", "trainable_layers", "angle_mae_deg", "angle_median_deg", "within_15deg", "within_30deg",
                "train_seconds"]  # fmt: skip


def _q3_section(lay: StudyLayout, results: dict) -> list[str]:
    cmp_, sweep = results.get("comparison"), results.get("sweep")
    parts = [
        "<section id='q3'><h2>3. How does the objective shape the representation?</h2>",
        f"<div class='answer'>{html.escape(results['answers']['q3'])}</div>",
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
            _img(lay.compare / "comparison.png", "Each run's latent (columns) coloured by each condition (rows)."),
            _table(pair_rows, list(pair_rows[0])),
            "".join(f"<h3>{html.escape(lab)}</h3>" + _score_table(rows) for lab, rows in cmp_["decoding"].items()),
        ]
    if sweep:
        parts += [
            _img(lay.sweep / "unfreeze_sweep.png", "Tagger test error vs trainable AE encoder layers."),
            _table(sweep["rows"], SWEEP_FIELDS),
        ]
    return [*parts, "</section>"]


def write_report(out: Path, results: dict) -> Path:
    """``report.html``: one section per question (figures embedded), the transfer section, how to reproduce."""
    lay = StudyLayout(out)
    steps = ", ".join(f"{k}: {v}" for k, v in results["step_seconds"].items())
    parts = [
        *_header(results),
        *_q1_section(lay, results),
        *_q2_section(lay, results),
        *_q3_section(lay, results),
        *_transfer_section(lay, results),
        "<h2>Reproduce</h2><p>Every run directory holds its <code>config.yaml</code>; "
        "<code>aelens study --data DATA --out DIR --config DIR/study.yaml</code> repeats (or resumes) this study.</p>",
        f"<p class='meta'>step times (s): {html.escape(steps)}</p>",
        "</body></html>",
    ]
    write_text(lay.report, "\n".join(p for p in parts if p))
    return lay.report
