"""``aelens bench``: every speed figure measured in one run beside its baseline, so machine noise cancels in the ratio.

Baselines reproduce how the reference study trained and ran its model: plain fp32 PyTorch, a ``DataLoader`` over a
``TensorDataset`` (per-sample indexing and collate), batch 64, Adam, StepLR(15), ``loss.item()`` every step, the
decoder's output layer with PyTorch's default initialisation, and fp32 eager inference in batches of 64.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .inference import (
    INFER_BATCH,
    cpu_flags,
    inference_copy,
    physical_cores,
    resolve_precision,
    run_batched,
    set_threads,
)
from .nets import Decoder, Encoder, Geometry, Networks
from .storage import write_json, write_text

log = logging.getLogger("aelens")


# --------------------------------------------------------------------------------------------- the reference


def reference_model(geometry: Geometry, latent_dim: int = 16, seed: int = 0) -> Networks:
    """The AE as the reference built it: same layers, PyTorch's default initialisation everywhere."""
    torch.manual_seed(seed)
    nets = Networks(Encoder(geometry, latent_dim), Decoder(geometry, latent_dim))
    nets.decoder.out.reset_parameters()
    return nets


def reference_val_mse(nets: Networks, val: torch.Tensor, batch: int = 64) -> float:
    nets.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(val), batch):
            x = val[start : start + batch]
            total += float(F.mse_loss(nets.reconstruct(x), x, reduction="sum"))
    nets.train()
    return total / val.numel()


def reference_train(
    train: torch.Tensor,
    val: torch.Tensor | None,
    epochs: int = 1,
    max_steps: int | None = None,
    seed: int = 0,
    device: torch.device = torch.device("cpu"),
) -> dict:
    """Train like the reference: returns images/s over the timed steps and the validation MSE after each epoch."""
    from torch.utils.data import DataLoader, TensorDataset

    nets = reference_model(Geometry(*train.shape[1:]), seed=seed).to(device)
    opt = torch.optim.Adam(nets.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=15, gamma=0.1)
    loader = DataLoader(
        TensorDataset(train, train), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    warmup, steps, images, timed = 3, 0, 0, 0.0
    t_start = time.perf_counter()
    val_mse, losses = [], []
    for _ in range(epochs):
        for x, y in loader:
            t0 = time.perf_counter()
            x, y = x.to(device), y.to(device)
            loss = F.mse_loss(nets.reconstruct(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            steps += 1
            if steps > warmup:
                timed += time.perf_counter() - t0
                images += len(x)
            if max_steps is not None and steps >= max_steps + warmup:
                break
        sched.step()
        if val is not None:
            val_mse.append(reference_val_mse(nets, val.to(device)))
        if max_steps is not None and steps >= max_steps + warmup:
            break
    return {
        "images_per_s": images / timed if timed else float("nan"),
        "val_mse": val_mse,
        "seconds": time.perf_counter() - t_start,
        "nets": nets,
    }


# --------------------------------------------------------------------------------------------- measurements


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, seconds: float = 1.0, device: torch.device = torch.device("cpu")) -> float:
    """Achieved FLOP/s of a square matrix product (2048 on CPU, 8192 on GPU): the practical peak for that dtype."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(2):
        a @ b
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
        _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def train_flops_per_image(geometry: Geometry, batch: int = 64) -> float:
    """FLOPs of one training step (forward + backward) per image, counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    nets = Networks(Encoder(geometry), Decoder(geometry))
    x = torch.rand(batch, geometry.channels, geometry.height, geometry.width)
    with FlopCounterMode(display=False) as counter:
        F.mse_loss(nets.reconstruct(x), x).backward()
    return counter.get_total_flops() / batch


def inference_rates(
    nets: Networks, frames: torch.Tensor, bf16: bool, seconds: float = 3.0, device: torch.device = torch.device("cpu")
) -> dict:
    """Images/s of encode and reconstruct: aelens (folded BN, channels-last, bf16 where fast) and the reference
    (fp32 eager, batch 64). Frames start in host memory, results end there, as in real use."""
    nets = nets.eval().to(device)
    fast = inference_copy(nets, device)
    n = len(frames)
    batch_ours = INFER_BATCH if device.type == "cpu" else 1024

    def rate(fn, batch, **kw):
        run_batched(fn, lambda i: frames[i], min(n, batch * 2), device, batch_size=batch, **kw)  # warm
        reps, t0 = 0, time.perf_counter()
        while True:
            run_batched(fn, lambda i: frames[i], n, device, batch_size=batch, **kw)
            reps += 1
            if time.perf_counter() - t0 > seconds / 3:
                break
        return reps * n / (time.perf_counter() - t0)

    cases = {
        "encode": {
            "aelens": lambda: rate(fast.latent, batch_ours, bf16=bf16),
            "reference": lambda: rate(nets.latent, 64, bf16=False, channels_last=False),
        },
        "reconstruct": {
            "aelens": lambda: rate(fast.reconstruct, batch_ours, bf16=bf16),
            "reference": lambda: rate(nets.reconstruct, 64, bf16=False, channels_last=False),
        },
    }
    # three alternating rounds, best of each: drifting clock speed and load hit both sides alike
    best = {what: {who: 0.0 for who in pair} for what, pair in cases.items()}
    for _ in range(3):
        for what, pair in cases.items():
            for who, fn in pair.items():
                best[what][who] = max(best[what][who], fn())
    return best


def _aelens_run(data_dir: Path, out: Path, epochs: int, extra: dict | None = None) -> tuple[Path, dict]:
    from .config import RunConfig
    from .storage import read_manifest
    from .training import train

    # the reference's random split: both sides then train and validate on the same frames
    over = {
        "data.path": str(data_dir),
        "train.epochs": epochs,
        "train.progress": False,
        "split.kind": "random",
        **(extra or {}),
    }
    run = train(RunConfig(kind="ae").with_overrides(over), out=out, overwrite=True)
    return run, read_manifest(run)


def _val_losses(run: Path) -> list[float]:
    from .callbacks import read_metrics

    return [r["val_loss"] for r in read_metrics(run / "metrics.csv") if "val_loss" in r]


def _child_with_peak_rss(code: str, what: str) -> dict:
    """Run ``code`` (which leaves a dict in ``res``) in a child process; returns ``res`` with the child's peak RSS
    (VmHWM: ru_maxrss would carry the parent's peak across exec) as ``rss_mb``."""
    code += (
        "; import json; hwm=[l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
        "res['rss_mb']=int(hwm)/1024; print(json.dumps(res))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_training(data_dir: Path, out: Path, steps: int) -> dict:
    """Train in a child process and report its peak RSS and images/s."""
    code = (
        "from aelens.config import RunConfig; from aelens.training import train; "
        "from aelens.storage import read_manifest; "
        f"cfg=RunConfig(kind='ae').with_overrides({{'data.path': {str(data_dir)!r}, 'train.epochs': 1, "
        f"'train.max_steps': {steps}, 'train.progress': False, 'snapshots.enabled': False, 'train.val_every': 1000, "
        "'split.kind': 'random'}); "
        f"run=train(cfg, out={str(out)!r}, overwrite=True); m=read_manifest(run); "
        "res={'images_per_s': m['train_images_per_s']}"
    )
    return _child_with_peak_rss(code, "memmap training")


def decode_rate(video: Path) -> float:
    """Frames/s of streaming every frame of ``video`` in gray and doing nothing with it: the import's ceiling."""
    from .data.video import stream_frames

    t0 = time.perf_counter()
    n = sum(1 for _ in stream_frames(video))
    return n / (time.perf_counter() - t0)


def import_in_child(video: Path, poses: Path, out: Path) -> dict:
    """``aelens data import`` in a child process: its peak RSS, frames/s of the streaming stage and wall s."""
    code = (
        "import json, time; from aelens.data.importer import import_video; "
        f"t0=time.perf_counter(); d=import_video({str(video)!r}, {str(poses)!r}, {str(out)!r}, overwrite=True, "
        "progress=False); wall=time.perf_counter()-t0; "
        "s=json.load(open(d/'import.json'))['sessions'][0]; "
        "res={'frames_per_s': s['frames_per_s'], 'frames': s['frames_read'], 'crops': s['crops_written'], 'wall_s': wall}"
    )
    return _child_with_peak_rss(code, "import")


def loop_video(video: Path, poses_csv: Path, times: int, out_dir: Path) -> tuple[Path, Path]:
    """A ``times`` x longer video by repeating the stream without re-encoding, with its DeepLabCut CSV repeated to
    match: a long video for the memory figure in seconds instead of the hours rendering would take."""
    import imageio_ffmpeg

    long_video = out_dir / "long.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            "-stream_loop",
            str(times - 1),
            "-i",
            str(video),
            "-c",
            "copy",
            str(long_video),
        ],
        check=True,
        capture_output=True,
    )
    lines = poses_csv.read_text().splitlines()
    head = [ln for ln in lines if ln.split(",")[0] in ("scorer", "individuals", "bodyparts", "coords")]
    body = [ln.split(",", 1)[1] for ln in lines[len(head) :]]
    rows = [f"{i},{b}" for i, b in enumerate(body * times)]
    long_csv = out_dir / "long_dlc.csv"
    write_text(long_csv, "\n".join(head + rows) + "\n")
    return long_video, long_csv


def _entry(aelens: float, reference: float, unit: str, higher_is_better: bool = True) -> dict:
    ratio = aelens / reference if higher_is_better else reference / aelens
    return {"aelens": round(aelens, 4), "reference": round(reference, 4), "ratio": round(ratio, 3), "unit": unit}


# --------------------------------------------------------------------------------------------- movie and scaling


def snapshot_history(codes: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """A stand-in training history ending at ``codes``: earlier snapshots are noisier versions of it."""
    rng = np.random.default_rng(seed)
    scale = codes.std(0, keepdims=True)
    return np.stack(
        [codes + (1 - t / max(1, count - 1)) * scale * rng.normal(size=codes.shape) for t in range(count)]
    ).astype(np.float32)


def movie_seconds(snaps: np.ndarray, out: Path, seed: int = 0) -> dict:
    """Wall time of ``aelens latent --evolution`` (fit mode last): 2-D maps, frames, GIF and MP4."""
    from .analysis import figures
    from .analysis.projection import evolution_maps

    t0 = time.perf_counter()
    maps, timing = evolution_maps(snaps, "last", "umap", random_state=seed)
    rgb, _ = figures.color_values(np.linspace(0, 360, snaps.shape[1], endpoint=False), True)
    tracked = figures.spread_examples(maps[-1], 3, seed)
    frames = figures.render_movie_frames(maps, rgb, [f"snapshot {s}" for s in range(len(maps))], tracked)
    figures.save_movie(frames, out / "movie.gif", out / "movie.mp4")
    return {"seconds": time.perf_counter() - t0, "fit_seconds": timing["fit_seconds"], "maps": maps}


def umap_transform_reference(snaps: np.ndarray, maps: np.ndarray, probe: int = 2, seed: int = 0) -> dict:
    """The reference study's way: UMAP fitted on the last snapshot, ``transform`` of every snapshot. Measured on
    ``probe`` snapshots and extrapolated to all; also how well aelens's placement agrees with ``transform``
    (mutual 10-NN overlap of the two 2-D layouts of the same snapshot)."""
    import umap

    from .analysis.scores import mutual_knn_overlap

    t0 = time.perf_counter()
    model = umap.UMAP(n_components=2, random_state=seed, n_jobs=1).fit(snaps[-1])
    fit = time.perf_counter() - t0
    which = np.linspace(0, len(snaps) - 2, probe).astype(int)
    times, agree = [], []
    for s in which:
        t1 = time.perf_counter()
        xy = model.transform(snaps[s])
        times.append(time.perf_counter() - t1)
        agree.append(mutual_knn_overlap(maps[s], xy, 10))
    return {
        "seconds": fit + float(np.mean(times)) * len(snaps),
        "fit_seconds": fit,
        "transform_seconds_each": float(np.mean(times)),
        "agreement_knn10": [round(a, 3) for a in agree],
        "agreement_snapshots": which.tolist(),
    }


def power_law_exponent(ns, seconds) -> float:
    """Slope of log(seconds) against log(N): 1 = linear, 2 = quadratic."""
    return float(np.polyfit(np.log(ns), np.log(seconds), 1)[0])


# --------------------------------------------------------------------------------------------- the suite


def run_bench(out_dir: str | Path = ".", quick: bool = False, echo=print) -> dict:
    """Measure everything and write ``bench.json`` to ``out_dir``. ``quick``: about 3 minutes on 2 CPU cores, smaller sizes."""
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
    write_json(out_dir / "bench.json", results)
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
        from .data.batches import make_split
        from .data.loading import load_dataset
        from .data.synthetic import synthesize, write_dataset

        self.r, self.tmp, self.quick, self.bf16, self.device, self.echo = results, tmp, quick, bf16, device, echo
        self.data_dir = write_dataset(tmp / "data", synthesize(1200 if quick else 5000, seed=0))
        self.ds = load_dataset(self.data_dir)
        split, _ = make_split(self.ds, 0.2, 0.1, 42, kind="random")  # as the reference did
        self.train_x, self.val_x = self.ds.batch(split["train"]), self.ds.batch(split["val"])
        self.geometry = Geometry(*self.ds.shape)

    def run(self) -> None:
        self.importing()
        self.peaks()
        self.throughput()
        self.inference()
        self.time_to_quality()
        self.memmap()
        self.movie()
        if not self.quick:
            self.study()

    def peaks(self):
        secs = 0.5 if self.quick else 1.0
        self.peak16 = matmul_peak(torch.bfloat16, secs, self.device)
        peak32 = matmul_peak(torch.float32, secs, self.device)
        self.flops_img = train_flops_per_image(self.geometry)
        self.r["matmul_peak_gflop_s"] = {"fp32": round(peak32 / 1e9, 1), "bf16": round(self.peak16 / 1e9, 1)}
        self.r["train_mflop_per_image"] = round(self.flops_img / 1e6, 1)
        self.echo(
            f"matmul peak: fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {self.peak16 / 1e9:.0f} GFLOP/s; "
            f"one training step: {self.flops_img / 1e6:.0f} MFLOP per image"
        )

    def throughput(self):
        """Reference loop and aelens alternated (twice each, best of each), so drifting machine load hits both."""
        steps = 25 if self.quick else 60
        ref_rates, our_rates = [], []
        for i in range(2):
            ref = reference_train(self.train_x, None, epochs=100, max_steps=steps, device=self.device)
            ref_rates.append(ref["images_per_s"])
            _, m = _aelens_run(
                self.data_dir, self.tmp / f"tput{i}", 1, {"train.max_steps": steps + 3, "snapshots.enabled": False}
            )
            our_rates.append(m["train_images_per_s"])
        self.ref_nets = ref["nets"]
        ours, theirs = max(our_rates), max(ref_rates)
        self.r["train_images_per_s"] = _entry(ours, theirs, "images/s")
        achieved = ours * self.flops_img
        self.r["train_flop_s"] = {
            "aelens_gflop_s": round(achieved / 1e9, 1),
            "percent_of_bf16_matmul_peak": round(100 * achieved / self.peak16, 1),
            "reference_gflop_s": round(theirs * self.flops_img / 1e9, 1),
        }
        self.echo(
            f"train: aelens {ours:.0f} images/s vs reference loop {theirs:.0f} ({ours / theirs:.2f}x); "
            f"{achieved / 1e9:.0f} GFLOP/s = {100 * achieved / self.peak16:.2g}% of the bf16 matmul peak"
        )

    def inference(self):
        frames = self.ds.batch(np.arange(min(self.ds.n, 2048)))
        inf = inference_rates(self.ref_nets, frames, self.bf16, 1.5 if self.quick else 4.0, self.device)
        self.r["inference_encode_images_per_s"] = _entry(
            inf["encode"]["aelens"], inf["encode"]["reference"], "images/s"
        )
        self.r["inference_images_per_s"] = _entry(
            inf["reconstruct"]["aelens"], inf["reconstruct"]["reference"], "images/s"
        )
        self.echo(
            f"inference: reconstruct {inf['reconstruct']['aelens']:.0f} vs {inf['reconstruct']['reference']:.0f} images/s "
            f"({self.r['inference_images_per_s']['ratio']:.2f}x); encode {inf['encode']['aelens']:.0f} vs "
            f"{inf['encode']['reference']:.0f} ({self.r['inference_encode_images_per_s']['ratio']:.2f}x)"
        )

    def time_to_quality(self):
        epochs = 4 if self.quick else 20
        ref = reference_train(self.train_x, self.val_x, epochs=epochs, device=self.device)
        target = ref["val_mse"][-1]
        self.ttq_run, m = _aelens_run(self.data_dir, self.tmp / "ttq", epochs)
        ours = _val_losses(self.ttq_run)
        elapsed = np.cumsum(m["epoch_seconds"])
        reached = next((i for i, v in enumerate(ours) if v <= target), None)
        ttq = float(elapsed[reached]) if reached is not None else float("nan")
        self.r["time_to_quality_s"] = {
            **_entry(ttq, ref["seconds"], "s", higher_is_better=False),
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
        self.r["snapshot_overhead_percent"] = round(100 * snap, 2)
        self.echo(
            f"time to the reference's {epochs}-epoch val MSE {target:.5f}: aelens {ttq:.0f} s "
            f"({self.r['time_to_quality_s']['aelens_epochs_needed']} epochs) vs {ref['seconds']:.0f} s; after "
            f"{epochs} epochs aelens {ours[-1]:.5f}; latent snapshots {100 * snap:.1f}% of training"
        )

    def memmap(self):
        from .data.synthetic import synthesize, write_dataset

        n = 20000 if self.quick else 200000
        mm_dir = self.tmp / "memmap"
        write_dataset(mm_dir, synthesize(n, seed=1), npy=True)
        steps = 40 if self.quick else 150
        mm = peak_rss_training(mm_dir, self.tmp / "mm", steps)
        mem = peak_rss_training(self.data_dir, self.tmp / "inmem", steps)
        self.r["memmap_training"] = {
            "images": n,
            "file_mb": round(n * 2500 / 2**20, 1),
            "peak_rss_mb": round(mm["rss_mb"], 1),
            "in_memory_peak_rss_mb": round(mem["rss_mb"], 1),
            **_entry(mm["images_per_s"], mem["images_per_s"], "images/s"),
        }
        self.echo(
            f"memory-mapped {n} frames ({n * 2500 / 2**20:.0f} MB): peak RSS {mm['rss_mb']:.0f} MB, "
            f"{mm['images_per_s']:.0f} images/s vs {mem['images_per_s']:.0f} from memory"
        )

    def movie(self):
        """The evolution movie (40 snapshots x 20,000 points; quick: 10 x 5,000) against UMAP transform of every
        snapshot; full mode also times N = 5k, 20k, 80k for the growth exponent."""
        from .data.synthetic import synthesize
        from .runs import load_run

        count, sizes = (10, [5000]) if self.quick else (40, [5000, 20000, 80000])
        run = load_run(self.ttq_run)
        frames = synthesize(max(sizes), seed=2)["images"]
        codes = run.encode(frames)
        scaling = []
        for n in sizes:
            snaps = snapshot_history(codes[:n], count)
            res = movie_seconds(snaps, self.tmp)
            scaling.append((n, res["seconds"], res["fit_seconds"]))
            self.echo(f"evolution movie {count} x {n}: {res['seconds']:.1f} s (UMAP fit {res['fit_seconds']:.1f} s)")
            if n == (5000 if self.quick else 20000):
                ref = umap_transform_reference(snaps, res["maps"])
                self.r["evolution_movie_s"] = {
                    **_entry(res["seconds"], ref["seconds"], "s", higher_is_better=False),
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

    def importing(self):
        """``aelens data import`` beside a plain decode of the same video (frames/s, alternated: decode, import,
        decode), and its peak memory on that video and on one 10 x (quick: 5 x) longer."""
        from .data.synthetic_video import lab_arena, synthesize_video

        size, n, times = (512, 200, 5) if self.quick else (1024, 1000, 10)
        folder = self.tmp / "video"
        w = synthesize_video(folder, n=n, animals=2, seed=0, arena=lab_arena(size), crf=23)
        d1 = decode_rate(w["video"])
        imp = import_in_child(w["video"], w["deeplabcut-csv"], self.tmp / "imported")
        d2 = decode_rate(w["video"])
        decode = (d1 + d2) / 2
        self.r["import_frames_per_s"] = _entry(imp["frames_per_s"], decode, "frames/s")
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

    def study(self):
        from .study import run_demo

        t0 = time.perf_counter()
        run_demo(self.tmp / "demo", echo=lambda s: None)
        seconds = time.perf_counter() - t0
        self.r["demo_study_s"] = {"aelens": round(seconds, 1), "unit": "s"}
        self.echo(f"aelens demo (synthesis + study on the demo settings): {seconds:.0f} s")
