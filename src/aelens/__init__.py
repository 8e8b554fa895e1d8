"""aelens: what do neural networks learn from top-view animal videos?

The Python API mirrors the command line::

    import aelens
    ds = aelens.load_dataset("../shared/data/mouse_openfield")
    cfg = aelens.RunConfig(kind="ae").with_overrides({"data.path": ds.source, "train.epochs": 20})
    run_dir = aelens.train_autoencoder(cfg)
    run = aelens.load_run(run_dir)
    codes = run.encode(ds)            # (n, 16)
    recon = run.reconstruct(ds)       # (n, 1, 50, 50)
    results = aelens.test_run(run_dir)
    data_dir = aelens.import_video("fly.mp4", "fly.analysis.h5", "data/fly")   # video + poses -> crops
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

# name -> module: imported on first use, so that `aelens --help` and one-line errors do not wait for torch and
# Lightning (the command line imports only what a command needs)
_API = {
    "AelensError": "errors",
    "Dataset": "data.loading",
    "ImportOptions": "importing.importer",
    "Run": "runs.run",
    "RunConfig": "config",
    "import_video": "importing.importer",
    "load_config": "config",
    "load_dataset": "data.loading",
    "load_run": "runs.run",
    "synthesize": "synthetic.arena",
    "test_run": "runs.evaluate",
    "train": "training.trainer",  # no module is called train: importing it would replace aelens.train, the function
    "train_autoencoder": "training.trainer",
    "train_decoder": "training.trainer",
    "train_tagger": "training.trainer",
    "write_dataset": "synthetic.arena",
}
__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'aelens' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .config import RunConfig, load_config  # noqa: F401
    from .data.loading import Dataset, load_dataset  # noqa: F401
    from .errors import AelensError  # noqa: F401
    from .importing.importer import ImportOptions, import_video  # noqa: F401
    from .runs.evaluate import test_run  # noqa: F401
    from .runs.run import Run, load_run  # noqa: F401
    from .synthetic.arena import synthesize, write_dataset  # noqa: F401
    from .training.trainer import train, train_autoencoder, train_decoder, train_tagger  # noqa: F401
