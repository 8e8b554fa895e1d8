"""Every file name inside a run folder and a study folder, in one place.

``RunDir`` is a run folder (config, manifest, split, weights, checkpoints, test results, snapshots); ``StudyLayout`` is
what ``aelens study`` writes and its report reads; ``*Files`` name what each analysis step writes into its own folder.
The run-folder operations (create, manifest, save what an objective returns) live here too, writing through
``storage``. No other module joins these names (``tests/test_layout_names.py`` checks).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import KINDS, RunConfig, load_config
from .errors import AelensError
from .storage import (
    check_unlocked,
    git_hash,
    load_split,
    read_json,
    remove_tree,
    save_npy,
    save_split,
    sha256_file,
    split_info,
    versions,
    write_csv,
    write_json,
)

MANIFEST = "manifest.json"  # what a run is: its kind, settings' provenance, status and file hashes


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


# inside a run's snapshots/ folder (written by training.snapshotting.LatentSnapshots)
SNAPSHOT_INDEX = "index.csv"
SNAPSHOT_SUBSET = "analysis_indices.npy"


def safe_name(text: str, fallback: str = "data") -> str:
    """``text`` (a condition, session or dataset name: user data) as one part of a file name: characters other than
    letters, digits and ``._-`` become ``_``, so no name can reach outside its folder; ``fallback`` for a name
    left empty or all dots."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(text))
    return safe if safe.strip(".") else fallback


def inside_run(run: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """``folder``, a default output folder of a run (its test/ or latent/), checked to lie inside the run: a
    symbolic link there (a run folder from elsewhere can hold one) would send the writes outside it."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.resolve().is_relative_to(Path(run).resolve()):
        raise AelensError(
            f"{folder}: a symbolic link out of the run folder (to {folder.resolve()}); aelens writes a run's results "
            "only inside it: remove the link, or pass --out"
        )
    return folder


def snapshot_layer_name(layer: str) -> str:
    """One layer's snapshots (snapshots x N x D, float16): ``fc1.npy``."""
    return f"{layer}.npy"


def val_image_name(epoch: int) -> str:
    """The validation image grid after ``epoch`` (1-based): ``val_epoch003.png``."""
    return f"val_epoch{epoch:03d}.png"


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
    IMAGES = "images"  # image grids during training: images/val_epochNNN.png
    METRICS = "metrics.csv"
    LATENT = "latent"  # default output of ``aelens latent RUN``
    CKPT_EXT = ".safetensors"  # every checkpoint: best, last, epochNNN
    PCA_VARIANCE_CSV = "pca_variance.csv"  # a PCA decoder's explained variance, as a table and a figure
    PCA_VARIANCE_PNG = "pca_variance.png"

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
        return self.path / f"{self.TEST}-{safe_name(data_name)}"

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
        return self.snapshots / snapshot_layer_name(layer)

    @property
    def latent(self) -> Path:
        """Default output of ``aelens latent RUN``."""
        return self.path / self.LATENT

    @property
    def images(self) -> Path:
        return self.path / self.IMAGES

    def val_image(self, epoch: int) -> Path:
        return self.images / val_image_name(epoch)

    @property
    def reducer(self) -> Path:
        return self.path / ReducerFiles.FOLDER

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
        others = [p for p in self.checkpoints.glob(f"*{self.CKPT_EXT}") if not p.name.startswith(".")]  # not a .tmp
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


class TestFiles:
    """What ``aelens test RUN`` writes into ``RUN/test`` (or ``RUN/test-OTHER``)."""

    RESULTS = RunDir.RESULTS
    RECON_GRID = "recon_grid.png"  # frames above their reconstructions
    RECON_GIF = "recon.gif"
    ANGLE_SCATTER = "angle_scatter.png"
    ANGLE_POLAR = "angle_errors_polar.png"
    ANGLE_ARROWS = "angle_arrows.png"


class ReducerFiles:
    """A decoder run's fitted reducer (PCA/UMAP/...): ``RUN/reducer/`` with its arrays and its settings."""

    FOLDER = "reducer"
    ARRAYS = "reducer.safetensors"
    INFO = "reducer.json"
    EMBEDDINGS = "embeddings.npy"  # the training frames' embeddings, the decoder's inputs
    FIT_INDICES = "fit_indices.npy"  # the training frames the reducer was fitted on
    LEGACY_UMAP = "umap.joblib"  # a pickle written by aelens before 0.1: refused, never loaded


class LatentFiles:
    """What ``aelens latent RUN --out OUT`` writes (a study: ``latent/ae``, ``latent/tagger``)."""

    SUMMARY = "summary.json"
    OVERVIEW = "overview.png"
    MAP_XY = "map_xy.npy"
    MAP_INDICES = "map_indices.npy"
    ENCODING_SCORES = "encoding_scores.csv"
    ENCODING_VS_EPOCH_CSV = "encoding_vs_epoch.csv"
    ENCODING_VS_EPOCH_PNG = "encoding_vs_epoch.png"
    ATLAS = "atlas.png"
    TRAVERSALS_CSV = "traversals.csv"
    TRAVERSALS_PNG = "traversals.png"
    EVOLUTION_GIF = "evolution.gif"  # the movie, as a GIF and an MP4
    EVOLUTION_MP4 = "evolution.mp4"
    EVOLUTION_MAPS = "evolution_maps.npy"
    EVOLUTION_TIMING = "evolution.json"

    @staticmethod
    def scatter(condition: str | None = None) -> str:
        """The map coloured by ``condition`` (``scatter_CONDITION.png``, the name made safe: see :func:`safe_name`),
        or uncoloured (``scatter.png``)."""
        return f"scatter_{safe_name(condition)}.png" if condition else "scatter.png"


class CompareFiles:
    """What ``aelens compare`` writes (a study: ``compare/``)."""

    RESULT = "comparison.json"
    TABLE = "comparison.md"
    FIGURE = "comparison.png"
    ROTATION = "rotation.png"


class ReconFiles:
    """What ``aelens recon-compare`` writes (a study: ``recon/``)."""

    RESULT = "recon_comparison.json"
    CSV = "recon_comparison.csv"  # the table, also as Markdown
    TABLE = "recon_comparison.md"
    FIGURE = "recon_comparison.png"


class SweepFiles:
    """What the unfreeze sweep writes (a study: ``sweep/``)."""

    RESULT = "unfreeze_sweep.json"
    CSV = "unfreeze_sweep.csv"  # the table, also as Markdown
    TABLE = "unfreeze_sweep.md"
    FIGURE = "unfreeze_sweep.png"


class TransferFiles:
    """What scoring every model on a new session writes (a study: ``transfer/NAME``)."""

    RESULT = "transfer.json"
    DECODING = "decoding.csv"


class BenchFiles:
    """What ``aelens bench --out DIR`` writes, and the inputs it makes for itself in its scratch folder."""

    RESULT = "bench.json"
    LONG_VIDEO = "long.mp4"
    LONG_POSES = "long_dlc.csv"
    MISSING = "missing.npy"  # a path that does not exist, for the error's start-up time
    MOVIE_GIF = "movie.gif"
    MOVIE_MP4 = "movie.mp4"


# the result file each analysis step writes into its own output folder (read by the study and its report)
LATENT_SUMMARY = LatentFiles.SUMMARY
RECON_RESULT = ReconFiles.RESULT
SWEEP_RESULT = SweepFiles.RESULT
COMPARE_RESULT = CompareFiles.RESULT
TRANSFER_RESULT = TransferFiles.RESULT


class StudyLayout:
    """The folders of ``aelens study --out DIR``, shared by the study's steps and its report."""

    REPORT = "report.html"
    CONFIG = "study.yaml"
    TIMINGS = "timings.json"

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

    def seed_run(self, kind: str, seed: int) -> RunDir:
        """The AE or the tagger trained again with another seed (``study --seeds``): ``runs/ae-seed3``."""
        return self.run(f"{kind}-seed{seed}")

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
        return self.out / self.REPORT

    @property
    def config(self) -> Path:
        return self.out / self.CONFIG

    @property
    def timings(self) -> Path:
        return self.out / self.TIMINGS


# --------------------------------------------------------------------------------------------- run folders on disk


def default_run_dir(kind: str, root: str | os.PathLike = "runs") -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{kind}-{stamp}"
    path, i = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}-{i}")
        i += 1
    return path


def create_run_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Create a fresh run directory. An existing non-empty one is an error unless ``overwrite`` is given, and even
    then only a directory that holds an aelens manifest is removed (never a folder of the user's own files, never one
    that another aelens process is writing)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        check_unlocked(path)
        if not overwrite:
            raise AelensError(f"{path}: run directory already exists; choose another --out or pass --overwrite")
        if not (path / MANIFEST).is_file():
            raise AelensError(
                f"{path}: exists and is not an aelens run directory (no {MANIFEST}); refusing to overwrite"
            )
        remove_tree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_manifest(run_dir: str | os.PathLike, kind: str, seed: int, extra: dict | None = None) -> dict:
    manifest = {
        "kind": kind,
        "status": "running",
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "argv": sys.argv,
        "seed": seed,
        "versions": versions(),
        "git": git_hash(),
        "files": {},
        **(extra or {}),
    }
    write_json(Path(run_dir) / MANIFEST, manifest)
    return manifest


def read_manifest(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise AelensError(f"{run_dir}: not an aelens run directory (no {MANIFEST})")
    return read_json(path)


def update_manifest(run_dir: str | os.PathLike, **fields: Any) -> dict:
    manifest = read_manifest(run_dir)
    for key, value in fields.items():
        if key == "files":
            manifest.setdefault("files", {}).update(value)
        else:
            manifest[key] = value
    write_json(Path(run_dir) / MANIFEST, manifest)
    return manifest


def record_file_hashes(run_dir: str | os.PathLike, relpaths: list[str]) -> dict:
    run_dir = Path(run_dir)
    return update_manifest(run_dir, files={p: sha256_file(run_dir / p) for p in relpaths if (run_dir / p).is_file()})


def save_run_files(run_dir: str | os.PathLike, files: dict[str, Any]) -> None:
    """Save the files an objective asked for (:data:`aelens.objectives.base.RunFiles`), by path relative to
    ``run_dir``: an array (.npy), an object with ``save(folder) -> names`` (a fitted reducer), table rows
    ``(rows, fields)`` (.csv) or a callable that draws a figure to the path. Arrays' and saved objects' SHA-256
    hashes go into the manifest."""
    hashed: list[str] = []
    for rel, value in files.items():
        path = Path(run_dir) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, np.ndarray):
            save_npy(path, value)
            hashed.append(rel)
        elif hasattr(value, "save"):
            hashed += [f"{rel}/{name}" for name in value.save(path)]
        elif isinstance(value, tuple):
            write_csv(path, *value)
        elif callable(value):
            value(path)
        else:
            raise TypeError(f"{rel}: cannot save a {type(value).__name__}")
    if hashed:
        record_file_hashes(run_dir, hashed)
