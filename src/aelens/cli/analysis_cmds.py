"""``aelens latent``, ``encode``, ``decode`` and ``compare``: the latent space of trained runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..layout import CompareFiles, LatentFiles, RunDir
from .common import app, check_out, check_run, echo, need, split_list


@app.command("latent")
def latent(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset [the run's own]."),
    layer: str = typer.Option("fc1", "--layer", help="fc1 (the latent) or fc2 (the decoder's first layer)."),
    method: str = typer.Option("umap", "--method", help="umap | pca | tsne."),
    color_by: Optional[str] = typer.Option(None, "--color-by", help="Columns to colour by, comma-separated [all]."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder [RUN_DIR/latent]."),
    evolution: bool = typer.Option(False, "--evolution", help="Also render the latent's evolution over training."),
    fit: str = typer.Option("last", "--fit", help="Evolution map: last | first | every | aligned | reference:RUN_DIR."),
    max_images: int = typer.Option(20000, "--max-images", help="Frames in the map."),
    no_scores: bool = typer.Option(False, "--no-scores", help="Skip the decoding scores."),
):
    """Map the latent to 2-D, colour it by each condition, score how decodable each condition is; --evolution adds
    the movie of the latent over training."""
    need(max_images, 20, "--max-images", "at least 20 frames")
    check_out(out)
    check_run(run_dir)  # before the import: a wrong path is reported at once
    from ..analysis.latent import latent_analysis

    s = latent_analysis(
        run_dir, data, layer, method, split_list(color_by), out, evolution, fit, max_images, not no_scores
    )
    folder = Path(out) if out else RunDir(run_dir).latent
    echo(
        f"{s['kind']} latent ({s['layer']}, {s['n']} frames): {s['method']} map in {s['map_seconds']:.1f} s, "
        f"trustworthiness {s['trustworthiness']:.3f}"
    )
    for r in s.get("encoding_scores", []):
        if r["decoder"] == "ridge":
            knn = next(x for x in s["encoding_scores"] if x["condition"] == r["condition"] and x["decoder"] == "knn")
            unit = "deg MAE" if r["metric"] == "mae_deg" else "R2"
            echo(
                f"  {r['condition']:24s} {unit:8s} ridge {r['score']:8.3f}  knn {knn['score']:8.3f}  (chance {r['chance']:.3f})"
            )
    if "evolution" in s:
        e = s["evolution"]
        echo(
            f"evolution: {e['frames']} frames ({e['fit']}), {e['total_seconds']:.1f} s -> {folder / LatentFiles.EVOLUTION_GIF}, {folder / LatentFiles.EVOLUTION_MP4}"
        )
    echo(f"overview: {folder / LatentFiles.OVERVIEW}")


@app.command("encode")
def encode(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset [the run's own]."),
    out: Path = typer.Option(..., "--out", help="Codes file to write (.npy)."),
    layer: str = typer.Option("fc1", "--layer", help="fc1 or fc2."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
):
    """Write the latent code of every frame (a compressed copy of the dataset, and the door to your own analyses)."""
    check_out(out, folder=False)
    check_run(run_dir)  # before the import: a wrong path is reported at once
    from ..runs.export import encode_to_file

    r = encode_to_file(run_dir, out, data, layer, overwrite)
    line = f"wrote {r['n']} x {r['dim']} codes to {r['out']}: {r['code_bytes'] / 1e6:.2f} MB vs {r['image_bytes'] / 1e6:.2f} MB of frames ({r['compression']:.1f}x smaller)"
    echo(line + (f", reconstruction PSNR {r['psnr']:.2f} dB" if "psnr" in r else ""))


@app.command("decode")
def decode(
    run_dir: Path = typer.Argument(..., help="A run directory with a decoder (AE or decoder run)."),
    codes: Path = typer.Argument(..., help="Codes (.npy, N x D) from aelens encode."),
    out: Path = typer.Option(..., "--out", help="Frames file to write (.npz, key images)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
):
    """Turn latent codes back into frames."""
    check_out(out, folder=False)
    check_run(run_dir)  # before the import: a wrong path is reported at once
    from ..runs.export import decode_to_file

    r = decode_to_file(run_dir, codes, out, overwrite)
    echo(f"wrote {r['n']} frames {tuple(r['shape'][1:])} {r['dtype']} to {r['out']}")


@app.command("compare")
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="Two or more run directories (same image shape and dataset)."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset [the first run's own]."),
    layer: str = typer.Option("fc1", "--layer", help="fc1 or fc2."),
    out: Path = typer.Option(Path("comparison"), "--out", help="Output folder."),
    max_images: int = typer.Option(10000, "--max-images", help="Frames compared."),
    color_by: Optional[str] = typer.Option(None, "--color-by", help="Conditions (rows of the figure) [all]."),
):
    """Compare the latents of several runs on the same frames: CKA, k-NN overlap, Procrustes, decoding, loop test."""
    need(max_images, 20, "--max-images", "at least 20 frames")
    check_out(out)
    for r in run_dirs:  # before the import: a wrong path is reported at once
        check_run(r)
    from ..analysis.compare import compare_runs

    res = compare_runs(run_dirs, data, layer, out, max_images, split_list(color_by))
    for p in res["pairs"]:
        lo, hi = p["linear_cka_ci95"]
        echo(
            f"{p['a']} vs {p['b']}: linear CKA {p['linear_cka']:.3f} [{lo:.3f}, {hi:.3f}] (permutation 95% "
            f"{p['permutation_95']:.3f}), debiased {p['debiased_cka']:.3f}, mutual 10-NN {p['mutual_knn_10']:.3f}, "
            f"Procrustes {p['procrustes_distance']:.3f}"
        )
    for lab, lp in res["loop"].items():
        echo(f"loop test {lab}: |circular corr| {lp['circular_corr']:.3f} (permutation 95% {lp['permutation_95']:.3f})")
    echo(f"report: {out / CompareFiles.TABLE}  figure: {out / CompareFiles.FIGURE}")
