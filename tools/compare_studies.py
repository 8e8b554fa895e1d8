"""Every headline number of two study folders side by side, each with its tolerance: the "do the answers survive?"
tables of docs/guide/scale.md.

    python tools/compare_studies.py STUDY_A STUDY_B "label A" "label B"

Tolerances: decoding within max(1 deg, 10%) or R^2 within 0.05; PSNR within 0.3 dB; CKA inside the other's bootstrap
interval; tagger errors within max(1 deg, 10%); a tagger's error on a new session no worse than +1 deg.
Prints a Markdown table and the count of numbers within tolerance.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def rows(a: dict, b: dict) -> list[tuple[str, float, float, bool]]:
    out = []
    dec_a = {(s["condition"], s["decoder"]): s for s in a["latent_ae"]["encoding_scores"]}
    dec_b = {(s["condition"], s["decoder"]): s for s in b["latent_ae"]["encoding_scores"]}
    for key, sa in dec_a.items():
        x, y = sa["score"], dec_b[key]["score"]
        if not (math.isfinite(x) and math.isfinite(y)):
            continue  # a constant condition: nothing to decode
        if sa["metric"] == "mae_deg":
            out.append((f"AE decoding {key[0]} ({key[1]}), deg", x, y, abs(x - y) <= max(1.0, 0.1 * y)))
        else:
            out.append((f"AE decoding {key[0]} ({key[1]}), R2", x, y, abs(x - y) <= 0.05))
    for ra, rb in zip(a["reconstruction"]["rows"], b["reconstruction"]["rows"]):
        field = "psnr_clean" if "psnr_clean" in ra else "psnr"
        x, y = ra[field], rb[field]
        out.append((f"{ra['model']} {field.replace('_', ' vs ')}, dB", x, y, abs(x - y) <= 0.3))
    for pa, pb in zip(a["comparison"]["pairs"], b["comparison"]["pairs"]):
        x, y = pa["linear_cka"], pb["linear_cka"]
        ia, ib = pa["linear_cka_ci95"], pb["linear_cka_ci95"]
        ok = ia[0] <= y <= ia[1] or ib[0] <= x <= ib[1]
        out.append((f"CKA {pa['a']} vs {pa['b']} [CI {ia[0]:.3f}-{ia[1]:.3f} / {ib[0]:.3f}-{ib[1]:.3f}]", x, y, ok))
    for sa, sb in zip(a["sweep"]["rows"], b["sweep"]["rows"]):
        x, y = sa["angle_mae_deg"], sb["angle_mae_deg"]
        out.append((f"tagger {sa['run']} test error, deg", x, y, abs(x - y) <= max(1.0, 0.1 * y)))
    for ta, tb in zip(a.get("transfer", []), b.get("transfer", [])):
        for ma, mb in zip(ta["models"], tb["models"]):
            x, y = ma["new"]["value"], mb["new"]["value"]
            if ma["new"]["metric"] == "psnr":
                out.append((f"{ma['label']} on {ta['name']}, PSNR dB", x, y, abs(x - y) <= 0.3))
            else:
                out.append((f"tagger {ma['label']} on {ta['name']}, deg", x, y, x <= y + 1.0))
    return out


def seed_line(label: str, res: dict) -> str:
    """What a second training seed changes in the same study (``aelens study --seeds K``), for the AE's PSNR and the
    tagger's error: the yardstick for differences between two studies."""
    seeds = (res.get("seeds") or {}).get("rows", [])
    if len(seeds) < 2:
        return f"{label}: one seed (run the study with --seeds 2 for the spread between trainings)"
    psnr = " / ".join(f"{r['ae_psnr']:.2f}" for r in seeds)
    tagger = " / ".join(f"{r['tagger_mae_deg']:.2f}" for r in seeds)
    names = ", ".join(str(r["seed"]) for r in seeds)
    return f"{label}, seeds {names}: AE PSNR {psnr} dB; tagger from scratch {tagger} deg"


def main(argv: list[str]) -> int:
    a, b = (json.loads((Path(p) / "results.json").read_text()) for p in argv[:2])
    label_a, label_b = (argv[2:4] + ["A", "B"])[:2] if len(argv) >= 4 else ("A", "B")
    table = rows(a, b)
    print(f"| headline number | {label_a} | {label_b} | within tolerance |")
    print("|---|---|---|---|")
    for name, x, y, ok in table:
        print(f"| {name} | {x:.3g} | {y:.3g} | {'yes' if ok else '**no**'} |")
    print(f"| study wall time, s | {a['seconds']:.0f} | {b['seconds']:.0f} | |")
    print(f"\n{sum(ok for *_, ok in table)} of {len(table)} within tolerance")
    for label, res in ((label_a, a), (label_b, b)):
        print(seed_line(label, res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
