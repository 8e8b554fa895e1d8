"""What a study will cost, said before it starts: every model with its training frames and epoch ceiling, the
measured seconds per step of each model kind, and the estimated time of each step and of the whole study."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from ..config import RunConfig
from ..data.loading import Dataset
from ..data.splits import make_split
from ..maps.metrics import image_metrics
from ..runs.evaluate import TRAINING_FIT_FRAMES
from ..training.calibrate import measure
from .config import StudyConfig
from .sweep import sweep_settings

# UMAP's cost in the analysis steps (maps, the evolution movie, the UMAP decoders' reducers): numba's compilation
# once per process, then about half a second per 1,000 frames (bench: 100,000 frames in 52 s on 2 cores)
UMAP_START_S = 10.0
UMAP_PER_1000_S = 0.5
SCORE_SAMPLE = 256  # frames scored (MSE, PSNR, SSIM) to measure the scoring rate


@dataclasses.dataclass
class PlannedStep:
    name: str
    seconds: float  # estimated, at the epoch ceiling (early stopping usually ends sooner)
    detail: str = ""


@dataclasses.dataclass
class Plan:
    steps: list[PlannedStep]
    rates: dict[str, dict]  # model kind -> measured step seconds and inference rate
    score_frames_per_s: float  # MSE, PSNR and SSIM of a reconstruction against its frames
    train_frames: int
    pool: int
    val_frames: int
    test_frames: int

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    def lines(self) -> list[str]:
        out = [
            f"plan: {len(self.steps)} steps; each model trains on {self.train_frames} of {self.pool} training frames, "
            f"validates on {self.val_frames}, is tested on all {self.test_frames} test frames",
            "measured on this machine: "
            + "; ".join(
                f"{kind} {r['step_seconds'] * 1000:.0f} ms/step of {r['batch_size']}, "
                f"inference {r['infer_frames_per_s']:.0f} frames/s"
                for kind, r in self.rates.items()
            )
            + f"; scoring {self.score_frames_per_s:.0f} frames/s",
        ]
        out += [f"  {s.name}: {duration(s.seconds)}" + (f"  ({s.detail})" if s.detail else "") for s in self.steps]
        out.append(f"estimated: {duration(self.seconds)} at most (every model to its epoch ceiling)")
        return out


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _umap(frames: int) -> float:
    return UMAP_START_S + UMAP_PER_1000_S * frames / 1000


def score_rate(dataset: Dataset, n: int = SCORE_SAMPLE) -> float:
    """Frames per second of :func:`image_metrics` (MSE, PSNR, SSIM) on ``dataset``'s first frames: testing scores a
    reconstruction and each baseline this way, against the frames and, where there are, the clean frames."""
    x = dataset.batch(np.arange(min(n, dataset.n))).numpy()
    t0 = time.perf_counter()
    image_metrics(x, x)
    return len(x) / max(time.perf_counter() - t0, 1e-9)


def plan_study(cfg: StudyConfig, dataset: Dataset, has_target: bool, transfer: dict[str, int]) -> Plan:
    """Measure a few steps of each model kind and estimate every step of the study (``transfer``: each transfer
    set's name and frames)."""
    run = cfg.run
    s = run.split
    split, _ = make_split(dataset, s.val_fraction, s.test_fraction, run.seed, s.kind, s.purge)
    pool, n_val, n_test = len(split["train"]), len(split["val"]), len(split["test"])
    train = min(run.select.frames or pool, pool)
    val = min(run.select.val_frames or n_val, n_val)
    kinds = {"ae": {}, "decoder": {"embedding.dim": 16}}
    if has_target:
        kinds["tagger"] = {"tagger.target": cfg.target}
    rates = {k: measure(_kind_config(run, k, over), dataset) for k, over in kinds.items()}

    scoring = score_rate(dataset)
    targets = 2 if dataset.clean is not None else 1  # scored against the frames, and against the clean frames
    # a reconstruction's test: the model and three baselines (blur, PCA, mean frame), plus the noisy input vs clean
    test_passes = 4 * targets + (targets - 1) + (run.data.normalize != "none")

    def training(kind: str, epochs: int) -> float:
        r = rates[kind]
        per_epoch = math.ceil(train / r["batch_size"]) * r["step_seconds"] + val / r["infer_frames_per_s"]
        scored = test_passes * n_test / scoring if kind != "tagger" else 0.0
        fit = min(TRAINING_FIT_FRAMES, train) if kind != "tagger" else 0  # the training-frame check
        return epochs * per_epoch + (n_test + fit) / r["infer_frames_per_s"] + scored

    steps = [PlannedStep("train + test AE", training("ae", cfg.epochs), f"{cfg.epochs} epochs at most")]
    for spec in cfg.decoders:
        method = spec.partition(":")[0]
        fit = _umap(min(train, run.embedding.umap_fit_max)) if method == "umap" else 1.0
        steps.append(PlannedStep(f"train + test decoder {spec}", fit + training("decoder", cfg.epochs)))
    maps = min(cfg.max_images, dataset.n)
    models = 1 + len(cfg.decoders)
    # a map of up to 3,000 test frames per model; each model reconstructs and is scored on every test frame
    recon = _umap(3000 * models) + models * n_test * (1 / rates["ae"]["infer_frames_per_s"] + targets / scoring)
    steps.append(PlannedStep("compare reconstructions", recon, f"{models} models"))
    movie = _umap(run.snapshots.max_images) * 2
    steps.append(PlannedStep("latent analysis of the AE (with evolution movie)", _umap(maps) + movie))
    n_sweep = len(sweep_settings()) if has_target else 0
    if has_target:
        sweep = cfg.sweep_epochs or cfg.epochs
        steps.append(
            PlannedStep(
                "tagger from scratch + unfreeze sweep", n_sweep * training("tagger", sweep), f"{n_sweep} taggers"
            )
        )
        steps.append(PlannedStep("latent analysis of the tagger", _umap(maps) + movie))
        steps.append(PlannedStep("compare AE and tagger representations", 3 * _umap(maps)))
    for k in range(1, cfg.seeds):
        steps.append(PlannedStep(f"train + test AE, seed {cfg.seed + k}", training("ae", cfg.epochs)))
        if has_target:
            sweep = cfg.sweep_epochs or cfg.epochs
            steps.append(
                PlannedStep(f"train + test tagger from scratch, seed {cfg.seed + k}", training("tagger", sweep))
            )
    for name, n in transfer.items():
        models = 1 + len(cfg.decoders) + n_sweep
        seconds = models * n / rates["ae"]["infer_frames_per_s"]
        steps.append(PlannedStep(f"score every model on new session {name}", seconds, f"{n} frames"))
    return Plan(steps, rates, scoring, train, pool, val, n_test)


def _kind_config(run: RunConfig, kind: str, over: dict) -> RunConfig:
    return dataclasses.replace(run, kind=kind).with_overrides(over)
