"""``aelens study``: the whole pipeline, step by step, resumable; ``aelens demo``: the same on synthetic data.

Layout of a study folder::

    study.yaml            the resolved settings (a resumed study must use the same)
    transfer/NAME/        every model scored on a new session NAME (--transfer), transfer.json
    runs/ae               the autoencoder           runs/decoder-pca16 ...  decoders on embeddings
    sweep/                the tagger from scratch and with 0..all AE layers unfrozen (unfreeze_sweep.csv)
    latent/ae, latent/tagger   maps, decoding scores, the AE's evolution movie
    recon/                reconstruction comparison (table + figure)
    compare/              AE vs tagger representations (CKA, k-NN, Procrustes, decoding, loop test)
    results.json, report.html

Every step is skipped when its output is complete, so an interrupted study resumes with the same command.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..analysis.answers import collect_results
from ..analysis.compare import compare_runs
from ..analysis.latent import latent_analysis
from ..analysis.report import write_report
from ..analysis.transfer import score_transfer
from ..config import RunConfig
from ..data.loading import IMAGE_NAMES, Dataset
from ..data.sessions import expand_data_paths, load_with_options, resolve_data_paths
from ..errors import AelensError
from ..importing.importer import crop_mismatches, import_notes
from ..layout import RunDir, StudyLayout
from ..maps.projection import METHODS
from ..models.reducers import REDUCERS
from ..runs.evaluate import compare_reconstructions
from ..storage import read_json, write_json
from ..synthetic.arena import synthesize, write_dataset
from .config import DEMO, StudyConfig, load_study_config
from .jobs import process_pool, train_all, train_and_test
from .plan import Plan, duration, plan_study
from .sweep import sweep_settings, unfreeze_sweep

log = logging.getLogger("aelens")


@dataclasses.dataclass
class Step:
    name: str
    done: Callable[[], bool]
    run: Callable[[], object]
    job: tuple[RunConfig, Path] | None = None  # a model to train and test, which may run beside its neighbours


def _run_config(study: StudyConfig, data, kind: str, **over) -> RunConfig:
    """A model's run settings: the study's shared ``run`` settings, its kind and data, and ``over``."""
    base = dataclasses.replace(study.run, kind=kind, data=dataclasses.replace(study.run.data, path=data))
    return base.with_overrides(over)


def _decoder_config(study: StudyConfig, data, spec: str) -> RunConfig:
    """The run settings of the decoder on embedding ``spec`` (METHOD:DIM); no latent snapshots (it has no encoder)."""
    method, _, dim = spec.partition(":")
    over = {"embedding.method": method, "embedding.dim": int(dim), "snapshots.enabled": False}
    return _run_config(study, data, "decoder", **over)


def _complete(run: RunDir, want: RunConfig | None = None) -> bool:
    """True when ``run`` is trained and tested, with the settings ``want`` (the study's for that model): a run the
    study did not make that way (another study's, one copied in, one trained by hand) is an error, never adopted."""
    try:
        done = run.is_tested()
    except AelensError:
        return False
    if done and want is not None:
        diff = [d for d in _differences(run.config().to_dict(), want.to_dict()) if d not in OPERATIONAL]
        if diff:
            raise AelensError(
                f"{run.path}: a finished run with other settings than this study's ({', '.join(diff[:6])}); the study "
                "does not adopt it: move it away, or use another --out"
            )
    return done


# run settings that change how a run is carried out, not what it learns: a run differing only here is the same model
OPERATIONAL = {
    "train.progress",
    "train.threads",
    "embedding.umap_n_jobs",
    "train.log_every",
    "train.checkpoint_every",
    "train.accelerator",
    "train.devices",
    "train.num_nodes",
    "train.strategy",
}


def check_settings(out: Path, cfg: StudyConfig, save: bool = True) -> None:
    """A study folder keeps its settings: resuming with other settings would mix incomparable runs. A new study's
    settings are saved (``save``) as ``study.yaml``."""
    path = StudyLayout(out).config
    if path.is_file():
        saved = load_study_config(path)
        if dataclasses.replace(saved, seeds=cfg.seeds) != cfg:
            diff = _differences(dataclasses.asdict(saved), dataclasses.asdict(cfg))
            raise AelensError(
                f"{out}: holds a study with other settings ({', '.join(diff)}); use another --out "
                "or the same settings to resume it"
            )
        if save and saved.seeds != cfg.seeds:  # more (or fewer) seeds: the same study, more or fewer extra runs
            cfg.save(path)
    elif save:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(path)


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two nested dicts."""
    out = []
    for key in a.keys() | b.keys():
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix}{key}")
    return sorted(out)


def check_study(cfg: StudyConfig, dataset) -> None:
    """Settings that only fail late (after the AE has trained) are checked against the data before any work."""

    if cfg.latent_method not in METHODS:
        raise AelensError(f"latent_method: {cfg.latent_method!r} is not one of {', '.join(METHODS)}")
    pixels = int(np.prod(dataset.shape))
    for spec in cfg.decoders:
        method, _, dim = spec.partition(":")
        if method not in REDUCERS:
            raise AelensError(f"decoders: {spec!r}: unknown method {method!r}; expected one of {', '.join(REDUCERS)}")
        if int(dim) > pixels or int(dim) >= dataset.n:
            raise AelensError(
                f"decoders: {spec!r}: {dim} dimensions is more than the frames hold ({pixels} pixels, {dataset.n} frames)"
            )
        try:
            _decoder_config(cfg, cfg.data.path, spec)  # its options (e.g. umap_fit_max against the size) now
        except AelensError as exc:
            raise AelensError(f"decoders: {spec!r}: {exc}") from None


def transfer_names(paths: tuple[str, ...]) -> list[str]:
    """Folder names under ``transfer/`` for the transfer datasets: each one's directory (or file) name, made unique."""
    names: list[str] = []
    for p in paths:
        path = Path(p)
        base = path.name if path.suffix.lower() not in (".npy", ".npz") else path.stem
        name, k = base or "transfer", 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def _check_transfer(dataset, paths: tuple[str, ...], cfg: StudyConfig) -> dict[str, Dataset]:
    """Every transfer set must load with the study's data options and have the training frames' shape; returns them
    loaded (path -> dataset), for the steps that score on them."""

    d = cfg.data
    loaded = {}
    for p in paths:
        new = loaded[p] = load_with_options(d, p)
        if new.shape != dataset.shape:
            raise AelensError(
                f"--transfer {p}: images are {'x'.join(map(str, new.shape))} but the training data's are "
                f"{'x'.join(map(str, dataset.shape))}"
            )
        if new.fingerprint == dataset.fingerprint:
            raise AelensError(
                f"--transfer {p}: is the training data itself; a transfer set is a session never trained on"
            )
    return loaded


def transfer_notes(data, path: str) -> list[str]:
    """Warnings for the report (from import.json): crops of the transfer set cut differently from the training
    data's, and transfer-set tracks whose pose headings sit consistently off the animals' visible axis."""

    return crop_mismatches(expand_data_paths(data), path) + import_notes(path)


def data_notes(data) -> list[str]:
    """Warnings for the report about the training data itself (from import.json): tracks whose pose headings sit
    consistently off the animals' visible axis."""

    return [note for path in expand_data_paths(data) for note in import_notes(path)]


def _prepare(data, out, cfg: StudyConfig, save: bool = True):
    """Resolve paths, load and check the data and settings (before any work); returns (cfg, the dataset, the
    transfer sets (path -> dataset), the layout): the only place a study reads its data."""

    if isinstance(data, (list, tuple)) and len(data) == 1:
        data = data[0]
    data = resolve_data_paths(data if data else cfg.data.path)
    transfer = tuple(str(Path(p).resolve()) for p in cfg.transfer)
    cfg = cfg.with_data(data, transfer)
    dataset = load_with_options(cfg.data)
    check_study(cfg, dataset)
    transfer_sets = _check_transfer(dataset, transfer, cfg)
    check_settings(Path(out), cfg, save)
    return cfg, dataset, transfer_sets, StudyLayout(out)


# Every step takes the study's dataset, loaded once by _prepare: no step reads the training data again.


def _model_steps(cfg: StudyConfig, lay: StudyLayout, has_target: bool, ds: Dataset) -> list[Step]:
    """Train and test the AE and each decoder; compare their reconstructions."""

    data, ae = cfg.data.path, lay.ae
    ae_cfg = _run_config(cfg, data, "ae")
    steps = [Step("train + test AE", lambda: _complete(ae, ae_cfg), lambda: train_and_test(ae_cfg, ae.path, ds))]
    for spec in cfg.decoders:
        d, dc = lay.decoder(spec), _decoder_config(cfg, data, spec)
        done, run = (lambda d=d, c=dc: _complete(d, c)), (lambda c=dc, d=d: train_and_test(c, d.path, ds))
        steps.append(Step(f"train + test decoder {spec}", done, run, job=(dc, d.path)))
    recon_runs = [ae.path] + [lay.decoder(s).path for s in cfg.decoders]
    color = cfg.target if has_target else None
    steps.append(Step("compare reconstructions", lambda: lay.recon_result.is_file(),
                      lambda: compare_reconstructions(recon_runs, out=lay.recon, color_by=color, dataset=ds,
                                                     method=cfg.latent_method)))  # fmt: skip
    return steps


def seed_configs(cfg: StudyConfig, has_target: bool) -> list[tuple[str, int, RunConfig]]:
    """(kind, seed, run settings) of the extra trainings ``--seeds K`` asks for: the AE and the tagger from scratch,
    each with seeds seed + 1 ... seed + K - 1, otherwise as the study trains them."""
    out = []
    for k in range(1, cfg.seeds):
        seed = cfg.seed + k
        out.append(("ae", seed, _run_config(cfg, cfg.data.path, "ae", seed=seed)))
        if has_target:
            tagger = {"train.epochs": cfg.sweep_epochs or cfg.epochs, "tagger.target": cfg.target, "seed": seed}
            out.append(("tagger", seed, _run_config(cfg, cfg.data.path, "tagger", **tagger)))
    return out


def _seed_steps(cfg: StudyConfig, lay: StudyLayout, has_target: bool, ds: Dataset) -> list[Step]:
    steps = []
    for kind, seed, c in seed_configs(cfg, has_target):
        run = lay.seed_run(kind, seed)
        name = f"train + test {'AE' if kind == 'ae' else 'tagger from scratch'}, seed {seed}"
        steps.append(Step(name, lambda r=run, c=c: _complete(r, c), lambda c=c, r=run: train_and_test(c, r.path, ds)))
    return steps


def _latent_step(cfg: StudyConfig, lay: StudyLayout, name: str, run: RunDir, what: str, ds: Dataset) -> Step:
    return Step(f"latent analysis of the {what}", lambda: lay.latent_summary(name).is_file(),
                lambda: latent_analysis(run.path, method=cfg.latent_method, out=lay.latent(name), evolution=True,
                                        fit=cfg.evolution_fit, max_images=cfg.max_images, dataset=ds))  # fmt: skip


def _tagger_steps(cfg: StudyConfig, lay: StudyLayout, ds: Dataset, executor, jobs: int) -> list[Step]:
    """The tagger from scratch and the unfreeze sweep, its latent, and the AE-vs-tagger comparison."""

    over = {"train.epochs": cfg.sweep_epochs or cfg.epochs, "tagger.target": cfg.target}
    tcfg = _run_config(cfg, cfg.data.path, "tagger", **over)
    runs = [lay.ae.path, lay.tagger.path, lay.sweep_run("unfreeze_all").path]
    return [
        Step("tagger from scratch + unfreeze sweep", lambda: lay.sweep_result.is_file(),
             lambda: unfreeze_sweep(tcfg, lay.ae.path, lay.sweep, dataset=ds, executor=executor, jobs=jobs)),
        _latent_step(cfg, lay, "tagger", lay.tagger, "tagger", ds),
        Step("compare AE and tagger representations", lambda: lay.compare_result.is_file(),
             lambda: compare_runs(runs, out=lay.compare, max_images=cfg.max_images, loop_on=cfg.target,
                                  dataset=ds, method=cfg.latent_method)),
    ]  # fmt: skip


def _transfer_steps(
    cfg: StudyConfig, lay: StudyLayout, has_target: bool, ds: Dataset, sets: dict[str, Dataset], echo
) -> list[Step]:
    """Score every model on each transfer set (a session never trained on)."""

    scored = {"ae": lay.ae.path, **{lay.decoder(s).path.name: lay.decoder(s).path for s in cfg.decoders}}
    if has_target:
        scored["tagger"] = lay.tagger.path
        scored.update({name: lay.sweep_run(name).path for name, _ in sweep_settings() if name != "scratch"})
    latent_dirs = {"ae": lay.latent("ae"), "tagger": lay.latent("tagger")}
    steps = []
    for name, path in zip(transfer_names(cfg.transfer), cfg.transfer):
        notes = transfer_notes(cfg.data.path, path)
        for note in notes:
            echo(f"warning: {note}")

        def run(n=name, p=path, notes=notes):
            return score_transfer(n, p, scored, lay.transfer(n), latent_dirs, max_images=cfg.max_images,
                                  seed=cfg.seed, notes=notes, train_dataset=ds, dataset=sets[p])  # fmt: skip

        steps.append(
            Step(f"score every model on new session {name}", lambda n=name: lay.transfer_result(n).is_file(), run)
        )
    return steps


def read_timings(path: Path) -> dict[str, float]:
    """A study's ``timings.json`` (step name -> seconds); a damaged one is a one-line error (it is only a record:
    deleting it loses the earlier steps' times, nothing else)."""
    if not path.is_file():
        return {}
    timings = read_json(path)
    if not isinstance(timings, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
        for v in timings.values()
    ):
        raise AelensError(f'{path}: expected step names with seconds ({{"step": 12.5}}); delete the damaged file')
    return timings


def _run_steps(steps: list[Step], lay: StudyLayout, echo, plan: Plan, executor=None, jobs: int = 1) -> dict:
    """Run the steps that are not done yet, timing each (timings.json); returns every step's seconds so far. After
    each step, one line for the whole study: time so far and the plan's estimate of the rest, scaled by how the
    finished steps compared with their estimates. With an ``executor``, consecutive model steps (the decoders) run
    side by side; each records the time of the group."""
    timings = read_timings(lay.timings)
    estimate = {p.name: p.seconds for p in plan.steps}
    spent = planned = 0.0
    t_start = time.perf_counter()
    side_by_side: set[str] = set()
    for i, step in enumerate(steps, 1):
        if step.name in side_by_side:
            continue  # trained in the group above
        if step.done():
            echo(f"[{i}/{len(steps)}] {step.name}: done earlier, skipped")
            continue
        t0 = time.perf_counter()
        if executor is not None and step.job is not None:
            group = [s for s in itertools.takewhile(lambda s: s.job is not None, steps[i - 1 :]) if not s.done()]
            echo(f"[{i}/{len(steps)}] {', '.join(s.name for s in group)} side by side ...")
            train_all([s.job for s in group], None, executor, jobs)
            side_by_side = {s.name for s in group}
        else:
            echo(f"[{i}/{len(steps)}] {step.name} ...")
            step.run()
            group = [step]
        for s in group:
            timings[s.name] = round(time.perf_counter() - t0, 2)
        write_json(lay.timings, timings)
        spent += timings[step.name]
        planned += sum(estimate.get(s.name, 0.0) for s in group)
        rest = sum(estimate.get(s.name, 0.0) for s in steps[i:] if not s.done()) * (spent / planned if planned else 1)
        label = step.name if len(group) == 1 else f"{len(group)} steps side by side"
        echo(
            f"[{i}/{len(steps)}] {label}: {timings[step.name]:.1f} s; study {duration(time.perf_counter() - t_start)}"
            f" so far, about {duration(rest)} left"
        )
    return timings


def plan_only(data, out: str | Path, cfg: StudyConfig, echo: Callable[[str], None] = print) -> Plan:
    """Check the data and settings, measure a few steps of each model kind, print the plan; write nothing."""
    cfg, dataset, transfer_sets, _ = _prepare(data, out, cfg, save=False)
    plan = _plan(cfg, dataset, transfer_sets)
    for line in plan.lines():
        echo(line)
    return plan


def _plan(cfg: StudyConfig, dataset: Dataset, transfer_sets: dict[str, Dataset]) -> Plan:
    has_target = dataset.conditions is not None and cfg.target in dataset.conditions.names
    names = dict(zip(cfg.transfer, transfer_names(cfg.transfer)))
    return plan_study(cfg, dataset, has_target, {names[p]: ds.n for p, ds in transfer_sets.items()})


def run_study(
    data, out: str | Path, cfg: StudyConfig, echo: Callable[[str], None] = print, jobs: int = 1, executor=None
) -> dict:
    """Run (or resume) every step; write ``results.json`` and ``report.html``; return the results.

    ``data``: one dataset path, several (sessions read as one, with a ``session`` column), or None for the study
    config's ``data.path``. ``cfg.transfer``: datasets every model is also scored on (see ``analysis.transfer``).
    ``jobs`` > 1: the decoders, and the sweep's taggers, train ``jobs`` at a time in worker processes; ``executor``:
    any ``submit``/``result`` executor instead (e.g. submitit's, for a SLURM cluster)."""
    if executor is None and jobs > 1:
        with process_pool(jobs) as pool:
            return run_study(data, out, cfg, echo, jobs, pool)

    cfg, dataset, transfer_sets, lay = _prepare(data, out, cfg, save=False)
    has_target = dataset.conditions is not None and cfg.target in dataset.conditions.names
    for step in _model_steps(cfg, lay, has_target, dataset) + _seed_steps(cfg, lay, has_target, dataset):
        step.done()  # a finished run there with other settings is refused now, before the folder is touched
    read_timings(lay.timings)  # a damaged record is said now, before any work
    check_settings(Path(out), cfg, save=True)
    plan = _plan(cfg, dataset, transfer_sets)
    for line in plan.lines():
        echo(line)
    steps = _model_steps(cfg, lay, has_target, dataset)
    steps.append(_latent_step(cfg, lay, "ae", lay.ae, "AE (with evolution movie)", dataset))
    if has_target:
        steps += _tagger_steps(cfg, lay, dataset, executor, jobs)
    else:
        echo(f"no {cfg.target!r} column in the metadata: skipping the tagger, sweep and representation comparison")
    steps += _seed_steps(cfg, lay, has_target, dataset)
    steps += _transfer_steps(cfg, lay, has_target, dataset, transfer_sets, echo)
    notes = data_notes(cfg.data.path)
    for note in notes:
        echo(f"warning: {note}")
    t_study = time.perf_counter()
    timings = _run_steps(steps, lay, echo, plan, executor, jobs)
    results = collect_results(lay.out, cfg, timings, time.perf_counter() - t_study, notes)
    write_json(lay.results, results)
    write_report(lay.out, results)
    return results


def run_demo(
    out: str | Path = "demo", n: int | None = None, epochs: int | None = None, echo: Callable[[str], None] = print
) -> dict:
    """Synthetic arena data + a small study: the tool's three questions answered end to end."""

    out = Path(out)
    data = StudyLayout(out).data
    n = DEMO["n"] if n is None else n
    if not any((data / name).is_file() for name in IMAGE_NAMES):
        echo(f"rendering {n} synthetic arena frames into {data} ...")
        write_dataset(data, synthesize(n, seed=0, size=DEMO["size"]))
    cfg = load_study_config(
        None,
        {
            "epochs": DEMO["epochs"] if epochs is None else epochs,
            "sweep_epochs": DEMO["sweep_epochs"] if epochs is None else epochs,
            "max_images": DEMO["max_images"],
            "batch_size": DEMO["batch_size"],
            "patience": DEMO["patience"],
            "run.embedding.umap_epochs": DEMO["umap_epochs"],
        },
    )
    return run_study(data, out, cfg, echo)
