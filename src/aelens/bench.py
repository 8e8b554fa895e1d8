"""``aelens bench``: every speed figure measured in one run beside its baseline, so machine noise cancels in the ratio.

Baselines reproduce how the reference study trained and ran its model: plain fp32 PyTorch, a ``DataLoader`` over a
``TensorDataset`` (per-sample indexing and collate), batch 64, Adam, StepLR(15), ``loss.item()`` every step, the
decoder's output layer with PyTorch's default initialisation, and fp32 eager inference in batches of 64.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .inference import INFER_BATCH, cpu_flags, inference_copy, physical_cores, resolve_precision, run_batched, set_threads
from .nets import Decoder, Encoder, Geometry, Networks
from .storage import write_json

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
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> dict:
    """Train like the reference: returns images/s over the timed steps and the validation MSE after each epoch."""
    from torch.utils.data import DataLoader, TensorDataset

    nets = reference_model(Geometry(*train.shape[1:]), seed=seed)
    opt = torch.optim.Adam(nets.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=15, gamma=0.1)
    loader = DataLoader(TensorDataset(train, train), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    warmup, steps, images, timed = 3, 0, 0, 0.0
    t_start = time.perf_counter()
    val_mse, losses = [], []
    for epoch in range(epochs):
        for x, y in loader:
            t0 = time.perf_counter()
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
            val_mse.append(reference_val_mse(nets, val))
            if on_epoch:
                on_epoch(epoch + 1, val_mse[-1], time.perf_counter() - t_start)
        if max_steps is not None and steps >= max_steps + warmup:
            break
    return {"images_per_s": images / timed if timed else float("nan"), "val_mse": val_mse,
            "seconds": time.perf_counter() - t_start, "nets": nets}


# --------------------------------------------------------------------------------------------- measurements


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 1.0) -> float:
    """Achieved FLOP/s of an n x n matrix product: the practical peak of this machine for that dtype."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def train_flops_per_image(geometry: Geometry, batch: int = 64) -> float:
    """FLOPs of one training step (forward + backward) per image, counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    nets = Networks(Encoder(geometry), Decoder(geometry))
    x = torch.rand(batch, geometry.channels, geometry.height, geometry.width)
    with FlopCounterMode(display=False) as counter:
        F.mse_loss(nets.reconstruct(x), x).backward()
    return counter.get_total_flops() / batch


def inference_rates(nets: Networks, frames: torch.Tensor, bf16: bool, seconds: float = 3.0) -> dict:
    """Images/s of encode and reconstruct: aelens (folded BN, channels-last, bf16 where fast) and the reference
    (fp32 eager, batch 64)."""
    nets = nets.eval()
    fast = inference_copy(nets)
    n = len(frames)

    def rate(fn, batch, **kw):
        run_batched(fn, lambda i: frames[i], min(n, batch * 2), torch.device("cpu"), batch_size=batch, **kw)  # warm
        reps, t0 = 0, time.perf_counter()
        while True:
            run_batched(fn, lambda i: frames[i], n, torch.device("cpu"), batch_size=batch, **kw)
            reps += 1
            if time.perf_counter() - t0 > seconds:
                break
        return reps * n / (time.perf_counter() - t0)

    return {
        "encode": {"aelens": rate(fast.latent, INFER_BATCH, bf16=bf16), "reference": rate(nets.latent, 64, bf16=False, channels_last=False)},
        "reconstruct": {"aelens": rate(fast.reconstruct, INFER_BATCH, bf16=bf16),
                        "reference": rate(nets.reconstruct, 64, bf16=False, channels_last=False)},
    }


def _aelens_run(data_dir: Path, out: Path, epochs: int, extra: dict | None = None) -> tuple[Path, dict]:
    from .config import RunConfig
    from .storage import read_manifest
    from .train import train

    over = {"data.path": str(data_dir), "train.epochs": epochs, "train.progress": False, **(extra or {})}
    run = train(RunConfig(kind="ae").with_overrides(over), out=out, overwrite=True)
    return run, read_manifest(run)


def _val_losses(run: Path) -> list[float]:
    from .callbacks import read_metrics

    return [r["val_loss"] for r in read_metrics(run / "metrics.csv") if "val_loss" in r]


def peak_rss_training(data_dir: Path, out: Path, steps: int) -> dict:
    """Train in a child process and report its peak RSS (VmHWM: ru_maxrss would carry the parent's peak across
    exec) and images/s."""
    code = (
        "import json; from aelens.config import RunConfig; from aelens.train import train; "
        "from aelens.storage import read_manifest; "
        f"cfg=RunConfig(kind='ae').with_overrides({{'data.path': {str(data_dir)!r}, 'train.epochs': 1, "
        f"'train.max_steps': {steps}, 'train.progress': False, 'snapshots.enabled': False, 'train.val_every': 1000}}); "
        f"run=train(cfg, out={str(out)!r}, overwrite=True); m=read_manifest(run); "
        "hwm=[l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
        "print(json.dumps({'rss_mb': int(hwm)/1024, "
        "'images_per_s': m['train_images_per_s']}))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"memmap training failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _entry(aelens: float, reference: float, unit: str, higher_is_better: bool = True) -> dict:
    ratio = aelens / reference if higher_is_better else reference / aelens
    return {"aelens": round(aelens, 4), "reference": round(reference, 4), "ratio": round(ratio, 3), "unit": unit}


# --------------------------------------------------------------------------------------------- the suite


def run_bench(out_dir: str | Path = ".", quick: bool = False, suite: str = "all", echo=print) -> dict:
    """Measure everything and write ``bench.json`` to ``out_dir``. ``quick``: about a minute, smaller sizes."""
    from .data.synthetic import synthesize, write_dataset

    out_dir = Path(out_dir)
    threads = set_threads(0)
    precision = resolve_precision("auto", "cpu")
    bf16 = precision == "bf16"
    results: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
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
    n_data = 1200 if quick else 5000
    tmp = Path(tempfile.mkdtemp(prefix="aelens-bench-"))
    try:
        return _suite(results, tmp, out_dir, n_data, quick, bf16, echo)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _suite(results: dict, tmp: Path, out_dir: Path, n_data: int, quick: bool, bf16: bool, echo) -> dict:
    from .data.synthetic import synthesize, write_dataset

    data_dir = write_dataset(tmp / "data", synthesize(n_data, seed=0))
    from .data.batches import split_indices
    from .data.loading import load_dataset

    ds = load_dataset(data_dir)
    split = split_indices(ds.n, 0.2, 0.1, 42)
    train_x, val_x = ds.batch(split["train"]), ds.batch(split["val"])
    geometry = Geometry(*ds.shape)

    # 1. peak matrix-product rates and FLOPs per training image
    peak32 = matmul_peak(torch.float32, seconds=0.5 if quick else 1.0)
    peak16 = matmul_peak(torch.bfloat16, seconds=0.5 if quick else 1.0)
    flops_img = train_flops_per_image(geometry)
    results["matmul_peak_gflop_s"] = {"fp32": round(peak32 / 1e9, 1), "bf16": round(peak16 / 1e9, 1)}
    results["train_mflop_per_image"] = round(flops_img / 1e6, 1)
    echo(f"matmul peak: fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} GFLOP/s; training step: {flops_img / 1e6:.0f} MFLOP/image")

    # 2. training throughput: reference loop vs aelens defaults
    steps = 25 if quick else 60
    ref = reference_train(train_x, None, epochs=100, max_steps=steps)
    run, m = _aelens_run(data_dir, tmp / "tput", 1, {"train.max_steps": steps + 3, "snapshots.enabled": False})
    results["train_images_per_s"] = _entry(m["train_images_per_s"], ref["images_per_s"], "images/s")
    achieved = m["train_images_per_s"] * flops_img
    results["train_flop_s"] = {"aelens_gflop_s": round(achieved / 1e9, 1),
                               "percent_of_bf16_matmul_peak": round(100 * achieved / peak16, 1),
                               "reference_gflop_s": round(ref["images_per_s"] * flops_img / 1e9, 1)}
    echo(f"train: aelens {m['train_images_per_s']:.0f} images/s vs reference loop {ref['images_per_s']:.0f} "
         f"({results['train_images_per_s']['ratio']:.2f}x); {achieved / 1e9:.0f} GFLOP/s = "
         f"{100 * achieved / peak16:.0f}% of the bf16 matmul peak")

    # 3. inference
    frames = ds.batch(np.arange(min(ds.n, 2048)))
    inf = inference_rates(ref["nets"], frames, bf16, seconds=1.5 if quick else 4.0)
    results["inference_encode_images_per_s"] = _entry(inf["encode"]["aelens"], inf["encode"]["reference"], "images/s")
    results["inference_images_per_s"] = _entry(inf["reconstruct"]["aelens"], inf["reconstruct"]["reference"], "images/s")
    echo(f"inference: reconstruct {inf['reconstruct']['aelens']:.0f} vs {inf['reconstruct']['reference']:.0f} images/s "
         f"({results['inference_images_per_s']['ratio']:.2f}x); encode {results['inference_encode_images_per_s']['ratio']:.2f}x")

    # 4. time to quality (and quality after equal epochs), with snapshots on as by default
    epochs = 4 if quick else 20
    ref_curve: list[tuple[int, float, float]] = []
    ref_full = reference_train(train_x, val_x, epochs=epochs, on_epoch=lambda e, v, t: ref_curve.append((e, v, t)))
    target = ref_full["val_mse"][-1]
    run, m = _aelens_run(data_dir, tmp / "ttq", epochs)
    ours = _val_losses(run)
    elapsed = np.cumsum(m["epoch_seconds"])
    reached = next((i for i, v in enumerate(ours) if v <= target), None)
    ttq = float(elapsed[reached]) if reached is not None else float("nan")
    results["time_to_quality_s"] = {**_entry(ttq, ref_full["seconds"], "s", higher_is_better=False),
                                   "target_val_mse": round(target, 6), "epochs": epochs,
                                   "aelens_epochs_needed": None if reached is None else reached + 1}
    results["val_mse_after_equal_epochs"] = {"aelens": round(ours[-1], 6), "reference": round(target, 6),
                                             "ratio": round(ours[-1] / target, 3), "epochs": epochs}
    results["snapshot_overhead_percent"] = round(100 * m.get("snapshot_overhead", float("nan")), 2)
    echo(f"time to the reference's {epochs}-epoch val MSE {target:.5f}: aelens {ttq:.0f} s vs {ref_full['seconds']:.0f} s; "
         f"after {epochs} epochs aelens {ours[-1]:.5f} ({ours[-1] / target:.2f}x); snapshots {results['snapshot_overhead_percent']}% of training")

    # 5. memory-mapped training: peak RSS and throughput vs in-memory
    n_mm = 20000 if quick else 200000
    mm_dir = tmp / "memmap"
    write_dataset(mm_dir, synthesize(n_mm, seed=1), npy=True)
    mm = peak_rss_training(mm_dir, tmp / "mm", 40 if quick else 150)
    mem = peak_rss_training(data_dir, tmp / "inmem", 40 if quick else 150)
    results["memmap_training"] = {"images": n_mm, "peak_rss_mb": round(mm["rss_mb"], 1),
                                  "in_memory_peak_rss_mb": round(mem["rss_mb"], 1), "file_mb": round(n_mm * 2500 / 2**20, 1),
                                  **_entry(mm["images_per_s"], mem["images_per_s"], "images/s")}
    echo(f"memmap ({n_mm} images, {n_mm * 2500 / 2**20:.0f} MB): peak RSS {mm['rss_mb']:.0f} MB, "
         f"{mm['images_per_s']:.0f} images/s vs {mem['images_per_s']:.0f} in memory")

    results["ratios"] = {k: v["ratio"] for k, v in results.items() if isinstance(v, dict) and "ratio" in v}
    write_json(out_dir / "bench.json", results)
    return results
