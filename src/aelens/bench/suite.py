"""``aelens bench``: every speed figure measured in one run beside its baseline, so machine noise cancels in the ratio.

Baselines reproduce how the reference study trained and ran its model: plain fp32 PyTorch, a ``DataLoader`` over a
``TensorDataset`` (per-sample indexing and collate), batch 64, Adam, StepLR(15), ``loss.item()`` every step, the
decoder's output layer with PyTorch's default initialisation, and fp32 eager inference in batches of 64.
"""

from __future__ import annotations

import logging
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..analysis.latent import latent_analysis
from ..data.loading import load_dataset
from ..data.splits import make_split
from ..layout import BenchFiles
from ..models.inference import (
    cpu_flags,
    physical_cores,
    resolve_precision,
    set_threads,
)
from ..models.nets import Geometry
from ..runs.run import load_run
from ..storage import write_json
from ..study.pipeline import run_demo
from ..synthetic.arena import IMAGES_NPY, synthesize, write_dataset
from ..synthetic.video import lab_arena, synthesize_video, write_pose_files
from .measures import (
    aelens_run,
    decode_rate,
    entry,
    import_in_child,
    inference_rates,
    loop_video,
    matmul_peak,
    movie_seconds,
    peak_rss_training,
    pose_read_in_child,
    power_law_exponent,
    reference_train,
    snapshot_history,
    startup_seconds,
    step_overhead,
    study_in_child,
    train_flops_per_image,
    umap_at_scale_in_child,
    umap_transform_reference,
    val_losses,
)

log = logging.getLogger("aelens")


# --------------------------------------------------------------------------------------------- the suite


def run_bench(out_dir: str | Path = ".", quick: bool = False, echo=print) -> dict:
    """Measure everything and write ``bench.json`` to ``out_dir``. ``quick``: under 90 s on 2 CPU cores: the import
    rate, the matrix-product peak, the per-step overhead, training and inference throughput, at smaller sizes."""
    out_dir = Path(out_dir)
    threads = set_threads(0)
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    precision = resolve_precision("auto", "gpu" if device.type == "cuda" else "cpu")
    results: dict = {
        "machine": {
            "cpu": _cpu_name(),
            "cores": physical_cores(),
            "threads": threads,
            "fast_bf16": bool({"avx512_bf16", "amx_bf16"} & cpu_flags()),
            "amx": "amx_bf16" in cpu_flags(),
            "torch": torch.__version__,
            "precision": precision,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "quick": quick,
    }
    tmp = Path(tempfile.mkdtemp(prefix="aelens-bench-"))
    try:
        Suite(results, tmp, quick, precision == "bf16", device, echo).run()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["ratios"] = {k: v["ratio"] for k, v in results.items() if isinstance(v, dict) and "ratio" in v}
    write_json(out_dir / BenchFiles.RESULT, results)
    return results


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Suite:
    """The benchmark figures, in order; each adds its entry to ``results`` and prints one line."""

    def __init__(self, results: dict, tmp: Path, quick: bool, bf16: bool, device: torch.device, echo):
        self.r, self.tmp, self.quick, self.bf16, self.device, self.echo = results, tmp, quick, bf16, device, echo
        self.data_dir = write_dataset(tmp / "data", synthesize(1200 if quick else 5000, seed=0))
        self.ds = load_dataset(self.data_dir)
        split, _ = make_split(self.ds, 0.2, 0.1, 42, kind="random")  # as the reference did
        self.train_x, self.val_x = self.ds.batch(split["train"]), self.ds.batch(split["val"])
        self.geometry = Geometry(*self.ds.shape)

    def run(self) -> None:
        figures = [self.startup, self.importing, self.peaks, self.overhead, self.throughput, self.inference]
        if not self.quick:
            figures += [self.time_to_quality, self.snapshots, self.memmap, self.movie, self.umap_scale, self.study,
                        self.pose_readers, self.study_at_scale]  # fmt: skip
        seconds = {}
        for figure in figures:
            t0 = time.perf_counter()
            figure()
            seconds[figure.__name__] = round(time.perf_counter() - t0, 1)
        self.r["seconds_per_figure"] = seconds

    def startup(self):
        """Fresh interpreters: ``import aelens``, ``aelens --help``, a missing-data error (targets 0.5 / 1 / 1.5 s)."""
        res = startup_seconds(self.tmp)
        self.r["startup_s"] = {**res, "targets_s": {"import_aelens": 0.5, "help": 1.0, "missing_data_error": 1.5}}
        self.echo(
            f"start-up: import aelens {res['import_aelens']:.2f} s, aelens --help {res['help']:.2f} s, missing-data "
            f"error {res['missing_data_error']:.2f} s"
        )

    def peaks(self):
        """Square matrix-product rate in fp32, and in bf16 where this device has fast bf16 (elsewhere bf16 runs
        through slow fallbacks: minutes of measuring for a figure nobody trains at)."""
        secs = 0.5 if self.quick else 1.0
        peak32 = matmul_peak(torch.float32, secs, self.device)
        peak16 = matmul_peak(torch.bfloat16, secs, self.device) if self.bf16 else None
        self.peak = peak16 if self.bf16 else peak32
        self.flops_img = train_flops_per_image(self.geometry)
        self.r["matmul_peak_gflop_s"] = {"fp32": round(peak32 / 1e9, 1)}
        if peak16 is not None:
            self.r["matmul_peak_gflop_s"]["bf16"] = round(peak16 / 1e9, 1)
        self.r["train_mflop_per_image"] = round(self.flops_img / 1e6, 1)
        bf16 = f", bf16 {peak16 / 1e9:.0f} GFLOP/s" if peak16 is not None else " (no fast bf16 here: not measured)"
        self.echo(
            f"matmul peak: fp32 {peak32 / 1e9:.0f} GFLOP/s{bf16}; one training step: "
            f"{self.flops_img / 1e6:.0f} MFLOP per image"
        )

    def overhead(self):
        """Per-step work aelens adds to a bare PyTorch loop doing the same work (tiny networks, paired steps)."""
        res = step_overhead(self.data_dir, self.tmp / "overhead", steps=150 if self.quick else 400)
        self.r["step_overhead_ms"] = {**res, "target_ms": 0.5}
        self.echo(
            f"per-step overhead: {res['overhead_ms']:.2f} ms (interquartile {res['overhead_ms_iqr'][0]:.2f}-"
            f"{res['overhead_ms_iqr'][1]:.2f}) over a bare loop's {res['bare_step_ms']:.2f} ms step "
            f"(tiny networks, batch {res['batch']})"
        )

    def throughput(self):
        """Reference loop and aelens alternated (twice each, best of each), so drifting machine load hits both."""
        steps, rounds = (12, 1) if self.quick else (60, 2)
        ref_rates, our_rates = [], []
        for i in range(rounds):
            ref = reference_train(self.train_x, None, epochs=100, max_steps=steps, device=self.device)
            ref_rates.append(ref["images_per_s"])
            _, m = aelens_run(
                self.data_dir, self.tmp / f"tput{i}", 1, {"train.max_steps": steps + 3, "snapshots.enabled": False}
            )
            our_rates.append(m["train_images_per_s"])
        self.ref_nets = ref["nets"]
        ours, theirs = max(our_rates), max(ref_rates)
        self.r["train_images_per_s"] = entry(ours, theirs, "images/s")
        achieved = ours * self.flops_img
        self.r["train_flop_s"] = {
            "aelens_gflop_s": round(achieved / 1e9, 1),
            f"percent_of_{'bf16' if self.bf16 else 'fp32'}_matmul_peak": round(100 * achieved / self.peak, 1),
            "reference_gflop_s": round(theirs * self.flops_img / 1e9, 1),
        }
        self.echo(
            f"train: aelens {ours:.0f} images/s vs reference loop {theirs:.0f} ({ours / theirs:.2f}x); "
            f"{achieved / 1e9:.0f} GFLOP/s = {100 * achieved / self.peak:.2g}% of the {'bf16' if self.bf16 else 'fp32'} "
            "matmul peak"
        )

    def inference(self):
        frames = self.ds.batch(np.arange(min(self.ds.n, 256 if self.quick else 2048)))
        inf = inference_rates(self.ref_nets, frames, self.bf16, 1.0 if self.quick else 4.0, self.device)
        self.r["inference_encode_images_per_s"] = entry(inf["encode"]["aelens"], inf["encode"]["reference"], "images/s")
        self.r["inference_images_per_s"] = entry(
            inf["reconstruct"]["aelens"], inf["reconstruct"]["reference"], "images/s"
        )
        self.echo(
            f"inference: reconstruct {inf['reconstruct']['aelens']:.0f} vs {inf['reconstruct']['reference']:.0f} images/s "
            f"({self.r['inference_images_per_s']['ratio']:.2f}x); encode {inf['encode']['aelens']:.0f} vs "
            f"{inf['encode']['reference']:.0f} ({self.r['inference_encode_images_per_s']['ratio']:.2f}x)"
        )

    def time_to_quality(self):
        epochs = 20
        ref = reference_train(self.train_x, self.val_x, epochs=epochs, device=self.device)
        target = ref["val_mse"][-1]
        self.ttq_run, m = aelens_run(self.data_dir, self.tmp / "ttq", epochs)
        ours = val_losses(self.ttq_run)
        elapsed = np.cumsum(m["epoch_seconds"])
        reached = next((i for i, v in enumerate(ours) if v <= target), None)
        ttq = float(elapsed[reached]) if reached is not None else float("nan")
        self.r["time_to_quality_s"] = {
            **entry(ttq, ref["seconds"], "s", higher_is_better=False),
            "target_val_mse": round(target, 6),
            "epochs": epochs,
            "aelens_epochs_needed": None if reached is None else reached + 1,
        }
        self.r["val_mse_after_equal_epochs"] = {
            "aelens": round(ours[-1], 6),
            "reference": round(target, 6),
            "ratio": round(target / ours[-1], 3),
            "epochs": epochs,
            "note": "ratio > 1: aelens lower (better)",
        }
        snap = m.get("snapshot_overhead", float("nan"))
        self.r["snapshot_overhead_percent"] = {"ae": round(100 * snap, 2), "target": 10, "epochs": epochs}
        self.echo(
            f"time to the reference's {epochs}-epoch val MSE {target:.5f}: aelens {ttq:.0f} s "
            f"({self.r['time_to_quality_s']['aelens_epochs_needed']} epochs) vs {ref['seconds']:.0f} s; after "
            f"{epochs} epochs aelens {ours[-1]:.5f}; latent snapshots {100 * snap:.1f}% of training"
        )

    def snapshots(self):
        """Latent snapshots as a share of training for a direction tagger with the default settings (the AE's share
        comes from the time-to-quality run); the same 5,000 frames and epochs."""
        epochs = self.r["time_to_quality_s"]["epochs"]
        _, m = aelens_run(self.data_dir, self.tmp / "tagger", epochs, {"kind": "tagger"})
        share = round(100 * m.get("snapshot_overhead", float("nan")), 2)
        self.r["snapshot_overhead_percent"]["tagger"] = share
        self.echo(
            f"latent snapshots, % of training ({epochs} epochs, {self.ds.n} frames): AE "
            f"{self.r['snapshot_overhead_percent']['ae']:.1f}%, tagger {share:.1f}%"
        )

    def memmap(self):
        n = 200000
        mm_dir = self.tmp / "memmap"
        write_dataset(mm_dir, synthesize(n, seed=1), npy=True)
        steps = 150
        mm = peak_rss_training(mm_dir, self.tmp / "mm", steps)
        mem = peak_rss_training(self.data_dir, self.tmp / "inmem", steps)
        self.r["memmap_training"] = {
            "images": n,
            "file_mb": round(n * 2500 / 2**20, 1),
            "peak_rss_mb": round(mm["rss_mb"], 1),
            "in_memory_peak_rss_mb": round(mem["rss_mb"], 1),
            **entry(mm["images_per_s"], mem["images_per_s"], "images/s"),
        }
        self.echo(
            f"memory-mapped {n} frames ({n * 2500 / 2**20:.0f} MB): peak RSS {mm['rss_mb']:.0f} MB, "
            f"{mm['images_per_s']:.0f} images/s vs {mem['images_per_s']:.0f} from memory"
        )

    def movie(self):
        """The evolution movie (40 snapshots x 20,000 points) against UMAP transform of every
        snapshot; full mode also times N = 5k, 20k, 80k for the growth exponent."""

        count, sizes = 40, [5000, 20000, 80000]
        run = load_run(self.ttq_run)
        frames = synthesize(max(sizes), seed=2)["images"]
        codes = run.encode(frames)
        scaling = []
        for n in sizes:
            snaps = snapshot_history(codes[:n], count)
            res = movie_seconds(snaps, self.tmp)
            scaling.append((n, res["seconds"], res["fit_seconds"]))
            self.echo(f"evolution movie {count} x {n}: {res['seconds']:.1f} s (UMAP fit {res['fit_seconds']:.1f} s)")
            if n == 20000:
                ref = umap_transform_reference(snaps, res["maps"])
                self.r["evolution_movie_s"] = {
                    **entry(res["seconds"], ref["seconds"], "s", higher_is_better=False),
                    "snapshots": count,
                    "points": n,
                    **{f"reference_{k}": v for k, v in ref.items()},
                }
                self.echo(
                    f"  vs UMAP fit + transform of every snapshot: {ref['seconds']:.0f} s (estimated from "
                    f"{len(ref['agreement_snapshots'])} transforms); layouts agree on {ref['agreement_knn10']} of 10-NN"
                )
        if len(sizes) > 1:
            ns = [s[0] for s in scaling]
            self.r["scaling"] = {
                "n": ns,
                "movie_seconds": [round(s[1], 2) for s in scaling],
                "umap_fit_seconds": [round(s[2], 2) for s in scaling],
                "movie_exponent": round(power_law_exponent(ns, [s[1] for s in scaling]), 2),
                "umap_fit_exponent": round(power_law_exponent(ns, [s[2] for s in scaling]), 2),
                "training_exponent": 1.0,
            }
            self.echo(
                f"growth with N: movie ~ N^{self.r['scaling']['movie_exponent']}, UMAP fit ~ "
                f"N^{self.r['scaling']['umap_fit_exponent']}, training ~ N^1 (constant images/s)"
            )

    def umap_scale(self):
        """UMAP at 100,000 frames: the reducer of ``train decoder --embedding umap --dim 16`` (70,000 training frames,
        30,000 held out; in a fresh process, numba's compilation included), umap-learn's ``transform`` beside neighbour
        placement on 500 held-out frames, and ``aelens latent`` of the bench's AE on the 100,000 frames."""

        n = 100000
        folder = write_dataset(self.tmp / "umap100k", synthesize(n, seed=3), npy=True)
        res = umap_at_scale_in_child(folder / IMAGES_NPY)
        quality = res.pop("old_path_on_500_held_out")
        t0 = time.perf_counter()
        summary = latent_analysis(self.ttq_run, data=folder, out=self.tmp / "latent100k")
        latent_s = time.perf_counter() - t0
        self.r["umap_at_scale"] = {
            "frames": n,
            "decoder_reducer": res,
            "old_path_on_500_held_out": quality,
            "latent_s": round(latent_s, 1),
            "latent_map_points": summary["n"],
            "latent_trustworthiness": round(summary["trustworthiness"], 4),
            "target_s": 180,
        }
        self.echo(
            f"UMAP at {n} frames, fresh process: decoder reducer fit + place {res['fit_and_place_train_s']:.0f} s, "
            f"held-out {res['place_held_out_s']:.0f} s (trustworthiness {res['trustworthiness_held_out']:.3f}; on "
            f"500 held-out frames umap-learn transform {quality['umap_transform_s']:.1f} s, trustworthiness "
            f"{quality['umap_transform_trustworthiness']:.3f}, vs placement {quality['neighbour_placement_s']:.2f} s, "
            f"{quality['neighbour_placement_trustworthiness']:.3f}); peak RSS {res['rss_mb']:.0f} MB; aelens latent "
            f"{latent_s:.0f} s ({summary['n']} points mapped)"
        )

    def importing(self):
        """``aelens data import`` beside a plain decode of the same video (frames/s, alternated: decode, import,
        decode), and its peak memory on that video and on one 10 x (quick: 3 x) longer."""

        size, n, times = (384, 120, 3) if self.quick else (1024, 1000, 10)
        folder = self.tmp / "video"
        w = synthesize_video(folder, n=n, animals=2, seed=0, arena=lab_arena(size), crf=23)
        d1 = decode_rate(w["video"])
        imp = import_in_child(w["video"], w["deeplabcut-csv"], self.tmp / "imported")
        d2 = decode_rate(w["video"])
        decode = (d1 + d2) / 2
        self.r["import_frames_per_s"] = entry(imp["frames_per_s"], decode, "frames/s")
        self.r["import_frames_per_s"].update(
            {
                "video": f"{size}x{size} H.264 crf 23, {n} frames, 2 animals",
                "end_to_end_frames_per_s": round(imp["frames"] / imp["wall_s"], 1),
            }
        )
        long_video, long_csv = loop_video(w["video"], w["deeplabcut-csv"], times, folder)
        big = import_in_child(long_video, long_csv, self.tmp / "imported_long")
        self.r["import_peak_rss_mb"] = {
            "short": round(imp["rss_mb"], 1),
            "long": round(big["rss_mb"], 1),
            "frames_short": n,
            "frames_long": big["frames"],
            "unit": "MB",
            "long_frames_per_s": round(big["frames_per_s"], 1),
        }
        self.echo(
            f"import {imp['frames_per_s']:.0f} frames/s vs plain decode {decode:.0f} "
            f"({imp['frames_per_s'] / decode:.2f}x; {size}x{size}); peak RSS {imp['rss_mb']:.0f} MB for {n} "
            f"frames, {big['rss_mb']:.0f} MB for {big['frames']}"
        )

    def pose_readers(self):
        """Each pose format of a one-hour session (108,000 frames, 2 animals) read as the importer reads it, in a fresh
        process: seconds and peak memory (sleap-io builds an object per instance for .slp and NWB)."""
        n = 108000
        files = write_pose_files(self.tmp / "poses", n, animals=2, seed=1)
        rows = {}
        for fmt, path in files.items():
            if fmt == "truth":
                continue
            res = pose_read_in_child(path)
            rows[fmt] = {"seconds": round(res["seconds"], 1), "rss_mb": round(res["rss_mb"], 1)}
        self.r["pose_readers_at_scale"] = {"frames": n, "animals": 2, "formats": rows}
        self.echo("pose files of 108,000 frames x 2 animals: " + ", ".join(
            f"{fmt} {r['seconds']:.0f} s / {r['rss_mb']:.0f} MB" for fmt, r in rows.items()))  # fmt: skip

    def study_at_scale(self, n: int = 108000):
        """A one-hour session (``n`` frames of one animal, 30 frames/s) rendered as a video with its poses, imported,
        then studied with the default settings, each in a fresh process: wall time and peak memory; beside them the
        plan's estimate, from the same study's measured steps, for every training frame at the epoch ceiling."""
        folder = self.tmp / "hour"
        t0 = time.perf_counter()
        w = synthesize_video(folder, n=n, animals=1, seed=5, arena=lab_arena(512), crf=23)
        render = time.perf_counter() - t0
        imp = import_in_child(w["video"], w["deeplabcut-csv"], self.tmp / "hour_data")
        res = study_in_child(self.tmp / "hour_data", self.tmp / "hour_study")
        self.r["study_at_scale"] = entry(res["wall_s"], res["plan_all_frames_s"], "s", higher_is_better=False)
        self.r["study_at_scale"].update(
            frames=n, render_s=round(render, 1), import_s=round(imp["wall_s"], 1), import_rss_mb=round(imp["rss_mb"]),
            study_rss_mb=round(res["rss_mb"]), plan_s=round(res["plan_s"], 1), train_frames=res["train_frames"],
            training_pool=res["pool"],
        )  # fmt: skip
        self.echo(
            f"study at scale ({n} frames): import {imp['wall_s']:.0f} s ({imp['rss_mb']:.0f} MB), study "
            f"{res['wall_s']:.0f} s ({res['rss_mb']:.0f} MB), planned {res['plan_s']:.0f} s; every frame at the "
            f"ceiling would take about {res['plan_all_frames_s']:.0f} s ({res['plan_all_frames_s'] / res['wall_s']:.1f}x)"
        )

    def study(self):
        t0 = time.perf_counter()
        run_demo(self.tmp / "demo", echo=lambda s: None)
        seconds = time.perf_counter() - t0
        self.r["demo_study_s"] = {"aelens": round(seconds, 1), "unit": "s"}
        self.echo(f"aelens demo (synthesis + study on the demo settings): {seconds:.0f} s")
