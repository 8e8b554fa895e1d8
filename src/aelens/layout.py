"""Every file name inside a run folder and a study folder, in one place.

``RunDir`` is a run folder (config, manifest, split, weights, checkpoints, test results, snapshots); ``StudyLayout`` is
what ``aelens study`` writes and its report reads. No other module joins these names.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import KINDS, RunConfig, load_config
from .errors import AelensError
from .storage import MANIFEST, load_split, read_json, read_manifest, save_split, sha256_file, split_info


@dataclass(frozen=True)
class Manifest:
    """The typed view of ``manifest.json`` (``raw`` keeps every field, including the objective's own)."""

    kind: str
    status: str
    seed: int | None
    image_shape: tuple[int, ...] | None
    data: dict = field(default_factory=dict)
    epochs: int = 0
    files: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Any, source: str | Path) -> Manifest:
        if not isinstance(d, dict):
            raise AelensError(f"{source}: the manifest must be a JSON object, got {type(d).__name__}")
        shape = d.get("image_shape")
        if shape is not None and not (isinstance(shape, list) and all(isinstance(v, int) and v > 0 for v in shape)):
            raise AelensError(f"{source}: image_shape must be a list of positive integers, got {shape!r}")
        if d.get("kind") not in KINDS:
            raise AelensError(f"{source}: kind must be one of {', '.join(KINDS)}, got {d.get('kind')!r}")
        data = d.get("data") if isinstance(d.get("data"), dict) else {}
        files = d.get("files") if isinstance(d.get("files"), dict) else {}
        return cls(
            kind=str(d.get("kind", "")),
            status=str(d.get("status", "")),
            seed=d.get("seed"),
            image_shape=tuple(shape) if shape else None,
            data=data,
            epochs=int(d.get("epochs") or 0),
            files=files,
            raw=d,
        )

    @property
    def fingerprint(self) -> str | None:
        return self.data.get("fingerprint")

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __contains__(self, key: str) -> bool:
        return key in self.raw


# inside a run's snapshots/ folder (written by callbacks.LatentSnapshots)
SNAPSHOT_INDEX = "index.csv"
SNAPSHOT_SUBSET = "analysis_indices.npy"


class RunDir:
    """A run folder: ``RunDir(path).config()``, ``.manifest()``, ``.split()``, ``.weights_file()``, ``.is_complete()``."""

    CONFIG = "config.yaml"
    MANIFEST = MANIFEST
    SPLIT = "split.npz"
    WEIGHTS = "model.safetensors"
    CHECKPOINTS = "checkpoints"
    LAST = "last.safetensors"
    TEST = "test"
    RESULTS = "results.json"
    SNAPSHOTS = "snapshots"
    IMAGES = "images"
    METRICS = "metrics.csv"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ----------------------------------------------------------------------------------------- names
    @property
    def config_file(self) -> Path:
        return self.path / self.CONFIG

    @property
    def manifest_file(self) -> Path:
        return self.path / self.MANIFEST

    @property
    def split_file(self) -> Path:
        return self.path / self.SPLIT

    @property
    def weights(self) -> Path:
        return self.path / self.WEIGHTS

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / self.LAST

    @property
    def test_dir(self) -> Path:
        return self.path / self.TEST

    @property
    def test_results(self) -> Path:
        return self.test_dir / self.RESULTS

    def other_test_dir(self, data_name: str) -> Path:
        """Where ``aelens test RUN --data OTHER`` writes by default: ``test-OTHER``, so that scoring another session
        never replaces the run's own ``test/`` results (characters other than letters, digits, ``._-`` become ``_``)."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", data_name) or "data"
        return self.path / f"{self.TEST}-{safe}"

    @property
    def snapshots(self) -> Path:
        return self.path / self.SNAPSHOTS

    @property
    def snapshot_index(self) -> Path:
        return self.snapshots / SNAPSHOT_INDEX

    @property
    def snapshot_subset(self) -> Path:
        return self.snapshots / SNAPSHOT_SUBSET

    def snapshot_layer(self, layer: str) -> Path:
        return self.snapshots / f"{layer}.npy"

    @property
    def latent(self) -> Path:
        """Default output of ``aelens latent RUN``."""
        return self.path / "latent"

    @property
    def images(self) -> Path:
        return self.path / self.IMAGES

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    # ----------------------------------------------------------------------------------------- contents
    def exists(self) -> bool:
        return self.manifest_file.is_file()

    def manifest(self) -> Manifest:
        return Manifest.from_dict(read_manifest(self.path), self.manifest_file)

    def config(self) -> RunConfig:
        return load_config(self.config_file)

    def split(self, n: int | None = None) -> dict[str, np.ndarray]:
        """The run's split; with ``n`` (frames in the data) indices outside 0 .. n-1 are an error."""
        return load_split(self.split_file, n)

    def split_info(self) -> dict:
        return split_info(self.split_file)

    def save_split(self, split: dict[str, np.ndarray], info: dict | None = None) -> None:
        save_split(self.split_file, split, info)

    def is_complete(self) -> bool:
        return self.exists() and self.manifest().status == "complete"

    def is_tested(self) -> bool:
        return self.is_complete() and self.test_results.is_file()

    def test_result(self) -> dict | None:
        return read_json(self.test_results) if self.test_results.is_file() else None

    def resume_checkpoint(self) -> Path | None:
        """Where a resume starts: ``checkpoints/last``, else (a kill during its first write) the newest other
        checkpoint (``best`` or ``epochNNN``, written just before it), else None."""
        if self.last_checkpoint.is_file():
            return self.last_checkpoint
        others = [p for p in self.checkpoints.glob("*.safetensors") if not p.name.startswith(".")]  # not a .tmp
        others.sort(key=lambda p: p.stat().st_mtime_ns)
        return others[-1] if others else None

    def weights_file(self) -> Path:
        """The final weights (checked against the SHA-256 the manifest recorded when training ended), or the last
        checkpoint of a run that did not finish."""
        m = self.manifest()
        if self.weights.is_file():
            recorded = m.files.get(self.WEIGHTS)
            if recorded and sha256_file(self.weights) != recorded:
                raise AelensError(
                    f"{self.weights}: its SHA-256 differs from the one {MANIFEST} recorded when training ended; the "
                    "file was changed or damaged (restore it, or retrain)"
                )
            return self.weights
        if m.status == "complete":
            raise AelensError(f"{self.weights}: missing, though the run finished; restore it, or retrain")
        if self.last_checkpoint.is_file():
            return self.last_checkpoint
        raise AelensError(
            f"{self.path}: no weights ({self.WEIGHTS} or {self.CHECKPOINTS}/{self.LAST}); did the run start training?"
        )


# the result file each analysis step writes into its own output folder (read by the study and its report)
LATENT_SUMMARY = "summary.json"
RECON_RESULT = "recon_comparison.json"
SWEEP_RESULT = "unfreeze_sweep.json"
COMPARE_RESULT = "comparison.json"
TRANSFER_RESULT = "transfer.json"


class StudyLayout:
    """The folders of ``aelens study --out DIR``, shared by the study's steps and its report."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)

    def __fspath__(self) -> str:
        return str(self.out)

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    def run(self, name: str) -> RunDir:
        return RunDir(self.runs / name)

    @property
    def ae(self) -> RunDir:
        return self.run("ae")

    @property
    def tagger(self) -> RunDir:
        """The tagger trained from scratch (the sweep's first run)."""
        return self.sweep_run("scratch")

    def sweep_run(self, name: str) -> RunDir:
        return RunDir(self.sweep / name)

    def decoder(self, spec: str) -> RunDir:
        """``pca:16`` -> runs/decoder-pca16."""
        method, _, dim = spec.partition(":")
        return self.run(f"decoder-{method}{dim}")

    @property
    def recon(self) -> Path:
        return self.out / "recon"

    def latent(self, name: str) -> Path:
        return self.out / "latent" / name

    @property
    def compare(self) -> Path:
        return self.out / "compare"

    @property
    def sweep(self) -> Path:
        return self.out / "sweep"

    @property
    def transfer_root(self) -> Path:
        return self.out / "transfer"

    def transfer(self, name: str) -> Path:
        return self.transfer_root / name

    # the result of each step; a step is done when its result exists
    @property
    def recon_result(self) -> Path:
        return self.recon / RECON_RESULT

    def latent_summary(self, name: str) -> Path:
        return self.latent(name) / LATENT_SUMMARY

    @property
    def sweep_result(self) -> Path:
        return self.sweep / SWEEP_RESULT

    @property
    def compare_result(self) -> Path:
        return self.compare / COMPARE_RESULT

    def transfer_result(self, name: str) -> Path:
        return self.transfer(name) / TRANSFER_RESULT

    def transfer_results(self) -> list[Path]:
        return sorted(self.transfer_root.glob(f"*/{TRANSFER_RESULT}"))

    @property
    def results(self) -> Path:
        return self.out / RunDir.RESULTS

    @property
    def report(self) -> Path:
        return self.out / "report.html"

    @property
    def config(self) -> Path:
        return self.out / "study.yaml"

    @property
    def timings(self) -> Path:
        return self.out / "timings.json"
