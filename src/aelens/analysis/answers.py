"""The study's answers in numbers and words: ``results.json`` (headline numbers of every step) and the sentence that
answers each question, written from those numbers (the report and the command line print them)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from pathlib import Path

from ..layout import StudyLayout
from ..maps.scores import WORSE
from ..storage import read_json, versions

# the study's three questions: results.json's "answers" key -> the question, in the order the report asks them
QUESTIONS: dict[str, str] = {
    "what_ae_encodes": "What does the AE encode?",
    "can_embeddings_replace_encoder": "Can PCA/UMAP replace the encoder?",
    "how_objective_shapes_latent": "How does the objective shape the representation?",
}
# results.json files written before the questions had names keyed them by number
OLD_KEYS = {"q1": "what_ae_encodes", "q2": "can_embeddings_replace_encoder", "q3": "how_objective_shapes_latent"}


def read_answers(results: dict) -> dict:
    """The answers of a study's ``results.json``, by question name (older files' ``q1``..``q3`` read as the names)."""
    return {OLD_KEYS.get(k, k): v for k, v in (results.get("answers") or {}).items()}


def _load(path: Path):
    return read_json(path) if path.is_file() else None


SKILL_FLOOR = 0.05  # a condition "is encoded" when its decoding skill (1 - error/chance, or R^2) is above this


def _skill(row: dict) -> float:
    """How far above chance a decoding score is, on one scale: 1 - error/chance for angles, R^2 otherwise."""
    if row["metric"] == "mae_deg":
        return 1 - row["score"] / row["chance"] if row["chance"] else float("nan")
    return row["score"]


def _fmt_score(row: dict) -> str:
    if row["metric"] == "mae_deg":
        return f"{row['score']:.1f}° (chance {row['chance']:.0f}°)"
    return f"R² {row['score']:.2f}"


def answer_what_ae_encodes(latent: dict | None, latent_dim: int) -> str:
    if not latent or not latent.get("encoding_scores"):
        return "No conditions were available to score the AE latent against."
    best = {}
    for r in latent["encoding_scores"]:
        if not math.isfinite(_skill(r)):  # a constant condition (e.g. no crop ever padded): nothing to decode
            continue
        if r["condition"] not in best or _skill(r) > _skill(best[r["condition"]]):
            best[r["condition"]] = r
    if not best:
        return "No condition varies enough to score the AE latent against."
    ranked = sorted(best.values(), key=_skill, reverse=True)
    above = [r for r in ranked if _skill(r) > SKILL_FLOOR][:3]  # only what is decodable better than chance
    top = ", ".join(f"{r['condition']} ({r['decoder']}: {_fmt_score(r)})" for r in above)
    low = ranked[-1]
    encodes = f"encodes {top}" if above else "encodes none of the conditions better than chance"
    return (
        f"The AE's {latent_dim}-D latent {encodes}; the least decodable condition is {low['condition']} "
        f"({low['decoder']}: {_fmt_score(low)}). The 2-D map's trustworthiness is {latent['trustworthiness']:.3f} "
        "(1 = every neighbour in the picture is a neighbour in the latent)."
    )


def quality_key(rows: list[dict]) -> str:
    return "psnr_clean" if rows and rows[0].get("psnr_clean") is not None else "psnr"


def answer_can_embeddings_replace_encoder(recon: dict | None) -> str:
    if not recon:
        return "The reconstruction comparison did not run."
    rows = recon["rows"]
    key = quality_key(rows)
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
    pair = next((p for p in recon.get("pairs", []) if best is not None and p["a"] == best["model"]), None)
    if pair is not None:
        verdict = (
            f" The best replacement for the encoder is {best['model']}, which {pair['word']} the AE ({_diff(pair)})."
        )
    elif best is not None:  # results written before paired intervals: no verdict the numbers cannot carry
        verdict = f" The best replacement for the encoder is {best['model']} ({best[key] - ae[key]:+.1f} dB vs the AE)."
    verdict += _baseline_sentence(recon)
    pca = next((r for r in rows if r["latent_source"] == "pca" and r.get("explained_variance")), None)
    ev = f" {pca['model']} explains {100 * pca['explained_variance']:.0f}% of the training variance." if pca else ""
    return "; ".join(parts) + "." + verdict + ev


def _diff(pair: dict) -> str:
    lo, hi = pair["ci95"]
    ci = f"95% CI {lo:+.1f} to {hi:+.1f} dB" if math.isfinite(lo) else "no interval: a single block of test frames"
    return f"{pair['difference']:+.1f} dB, {ci}"


def reconstruction_warnings(recon: dict | None) -> list[str]:
    """A model that does not beat the noisy input or the mean training frame has learnt little: say so."""
    out = []
    for p in (recon or {}).get("baselines", []):
        if p["b"] in ("noisy input", "mean training frame") and p["word"] != "beats":
            out.append(
                f"the {p['a']} does not beat the {p['b']} on its test frames ({_diff(p)}): under-trained or "
                "mis-configured (train longer, raise --patience, or check --noise and the frames)"
            )
    return out


def _baseline_sentence(recon: dict) -> str:
    pairs = recon.get("baselines", [])
    if not pairs:
        return ""
    groups: dict[str, list[str]] = {}
    for p in pairs:
        groups.setdefault(p["word"], []).append(f"{p['b']} ({_diff(p)})")
    said = "; ".join(f"{word} {', '.join(names)}" for word, names in groups.items())
    text = f" On the same frames the {pairs[0]['a']} {said}." + fit_sentence(recon)
    return text + "".join(f" Warning: {w}." for w in reconstruction_warnings(recon))


def fit_sentence(recon: dict) -> str:
    """Where the AE is worse than a Gaussian blur on its test frames: is it worse on its own training frames too?"""
    fit = recon.get("ae_training_frames")
    blur = next((p for p in recon.get("baselines", []) if p["b"] == "Gaussian blur"), None)
    if not fit or blur is None or blur["word"] != WORSE:
        return ""
    text = (
        f" On {fit['n']} of its own training frames the {blur['a']} scores {fit['model']:.1f} dB and the blur "
        f"{fit['gaussian_blur']:.1f} dB: "
    )
    if fit["model"] < fit["gaussian_blur"]:
        return (
            text
            + "it falls short on frames it learnt from too, so the gap is in how sharply it draws, not over-fitting."
        )
    return (
        text + "it beats the blur on frames it learnt from but not on new ones (over-fitting to its training frames)."
    )


def answer_how_objective_shapes_latent(compare: dict | None, sweep: dict | None) -> str:
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
    other = best_linear_r2(dec.get(labels[0], []))
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
    text += "".join(". " + rotation_sentence(lab, pr) for lab, pr in (compare.get("rotation") or {}).items())
    return text + "."


def rotation_sentence(label: str, probe: dict) -> str:
    """One run's rotation probe in words (frames turned through 360 degrees and encoded)."""
    v = 100 * probe["variance_explained"]
    text = f"Turning the input through 360° explains {v:.0f}% of the {label}'s code variance"
    loop = probe["loop"]
    if loop > 0.8:
        times = "once" if probe.get("winding", 1) == 1 else "twice (head and tail alike)"
        text += f" and moves its code round a closed loop {times} per turn (loop {loop:.2f})"
    else:
        text += f" and moves its code round no clear loop (loop {loop:.2f})"
    if "slope" in probe:
        turns = abs(probe["slope"] - 1) < 0.2
        text += (
            f"; its answer {'turns with the image' if turns else 'does not follow the turn'} "
            f"(slope {probe['slope']:.2f}, {probe['turn_error_deg']:.0f}° mean error)"
        )
    return text


def best_linear_r2(rows: list[dict]) -> str | None:
    """The R² condition that a ridge readout decodes best from a latent (None when none scores above SKILL_FLOOR)."""
    r2 = [r for r in rows if r["metric"] == "r2" and r["decoder"] == "ridge" and r["score"] > SKILL_FLOOR]
    return max(r2, key=lambda r: r["score"])["condition"] if r2 else None


PSNR_HOLDS_DB = 1.5  # a reconstruction "holds" on a new session within this many dB of its own test frames
TAGGER_HOLDS_RATIO = 2.0  # a tagger "holds" within this factor of its own test error (and well under the baseline)


def psnr_of(h: dict | None) -> float | None:
    if not h:
        return None
    return h.get("value_clean") if h.get("value_clean") is not None else h.get("value")


def why_reconstruction_drops(own: dict, new: dict, name: str) -> str | None:
    """Why a reconstruction loses PSNR on a new session, from its headlines (``analysis.transfer``): how much two
    models that know only the training frames lose too (their mean image; a PCA with as many components), and how
    the frames' brightness and contrast moved. None when the test results predate the mean-frame baseline."""
    mf_own, mf_new = own.get("mean_frame_psnr"), new.get("mean_frame_psnr")
    if mf_own is None or mf_new is None or "pixels" not in own or "pixels" not in new:
        return None
    drop, drop_mean = psnr_of(own) - psnr_of(new), mf_own - mf_new
    drop_pca = own["pca_psnr"] - new["pca_psnr"] if own.get("pca_psnr") and new.get("pca_psnr") else None
    pca = f", a PCA of as many components {-drop_pca:+.1f} dB" if drop_pca is not None else ""
    if drop_mean >= 0.5 * drop:
        verdict = "most of the AE's drop is the new frames' other average appearance"
    elif drop_pca is not None and drop_pca >= 0.5 * drop:
        verdict = (
            "the new frames lie outside what the training frames span (the PCA fitted on them loses as much): the "
            "drop is in the data, not in how the AE was trained"
        )
    else:
        verdict = (
            "neither explains it: the AE learnt more of the training session than what its frames share with these"
        )
    po, pn = own["pixels"], new["pixels"]
    return (
        f"Why: from the own test frames to {name} the AE changes by {-drop:+.1f} dB; the training frames' mean image, "
        f"used as a reconstruction, by {-drop_mean:+.1f} dB ({mf_own:.1f} -> {mf_new:.1f} dB){pca}; mean brightness "
        f"{po['mean']:.2f} -> {pn['mean']:.2f}, pixel s.d. {po['std']:.2f} -> {pn['std']:.2f} (0-1 scale): {verdict}."
    )


def answer_transfer(tr: dict, target: str = "body_angle_deg") -> list[str]:
    """One sentence per question that the transfer numbers support (see ``analysis.transfer``)."""
    name = tr["name"]
    models = {m["label"]: m for m in tr["models"]}
    out = []
    ae = models.get("ae")
    if ae and psnr_of(ae["own"]) is not None:
        own, new = psnr_of(ae["own"]), psnr_of(ae["new"])
        holds = own - new <= PSNR_HOLDS_DB
        gap = f"{abs(own - new):.1f} dB {'below' if new < own else 'above'}"
        out.append(
            f"The AE reconstructs {name} at {new:.1f} dB PSNR, {gap} its own test frames ({own:.1f} dB): it "
            f"{'holds' if holds else 'does not hold'} on the new session (criterion: within {PSNR_HOLDS_DB} dB)."
        )
        why = None if holds else why_reconstruction_drops(ae["own"], ae["new"], name)
        if why:
            out.append(why)
    recon = [m for m in tr["models"] if m["kind"] == "decoder" and psnr_of(m["own"]) is not None]
    if ae and recon:
        drop_ae = psnr_of(ae["own"]) - psnr_of(ae["new"])
        best = max(recon, key=lambda m: psnr_of(m["new"]))
        verdict = "better" if psnr_of(best["new"]) > psnr_of(ae["new"]) else "worse"
        out.append(
            f"Of the encoder replacements, {best['label']} reconstructs {name} best ({psnr_of(best['new']):.1f} dB, "
            f"{verdict} than the AE; from its own test frames to {name} it changes by "
            f"{psnr_of(best['new']) - psnr_of(best['own']):+.1f} dB, the AE by {-drop_ae:+.1f} dB)."
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


def seed_spread(lay: StudyLayout, cfg) -> dict | None:
    """With ``--seeds K``: the AE's PSNR and the tagger's angle error for each seed (the study's own runs first),
    and their spread: what another training of the same model on the same frames would give."""
    if getattr(cfg, "seeds", 1) < 2:
        return None
    rows = []
    for k in range(cfg.seeds):
        seed = cfg.seed + k
        ae = _load((lay.ae if k == 0 else lay.seed_run("ae", seed)).test_results) or {}
        tagger = _load((lay.tagger if k == 0 else lay.seed_run("tagger", seed)).test_results) or {}
        key = "psnr_clean" if "psnr_clean" in ae else "psnr"
        rows.append({"seed": seed, "ae_psnr": ae.get(key), "tagger_mae_deg": tagger.get("angle_mae_deg")})
    spread = {}
    for metric in ("ae_psnr", "tagger_mae_deg"):
        values = [r[metric] for r in rows if isinstance(r[metric], (int, float))]
        if len(values) >= 2:
            mean = sum(values) / len(values)
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            spread[metric] = {"mean": mean, "sd": sd, "min": min(values), "max": max(values), "n": len(values)}
    return {"rows": rows, "spread": spread}


def collect_results(out: Path, cfg, timings: dict, seconds: float, data_notes: list[str] | None = None) -> dict:
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
        "data_notes": list(data_notes or []),
        "ae_test": ae_test,
        "reconstruction": recon,
        "latent_ae": {k: v for k, v in (latent_ae or {}).items() if k != "files"},
        "latent_tagger": {k: v for k, v in (latent_tagger or {}).items() if k != "files"},
        "sweep": sweep,
        "comparison": compare,
        "transfer": transfer,
        "seeds": seed_spread(lay, cfg),
        "answers": {
            "what_ae_encodes": answer_what_ae_encodes(latent_ae, cfg.latent_dim),
            "can_embeddings_replace_encoder": answer_can_embeddings_replace_encoder(recon),
            "how_objective_shapes_latent": answer_how_objective_shapes_latent(compare, sweep),
            "transfer": {t["name"]: answer_transfer(t, cfg.target) for t in transfer},
        },
    }
