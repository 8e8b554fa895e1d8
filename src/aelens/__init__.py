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
    "ImportOptions": "data.importer",
    "Run": "runs",
    "RunConfig": "config",
    "import_video": "data.importer",
    "load_config": "config",
    "load_dataset": "data.loading",
    "load_run": "runs",
    "synthesize": "data.synthetic",
    "test_run": "evaluate",
    "train": "training",  # the module is not called train: importing it would replace aelens.train, the function
    "train_autoencoder": "training",
    "train_decoder": "training",
    "train_tagger": "training",
    "write_dataset": "data.synthetic",
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
    from .data.importer import ImportOptions, import_video  # noqa: F401
    from .data.loading import Dataset, load_dataset  # noqa: F401
    from .data.synthetic import synthesize, write_dataset  # noqa: F401
    from .errors import AelensError  # noqa: F401
    from .evaluate import test_run  # noqa: F401
    from .runs import Run, load_run  # noqa: F401
    from .training import train, train_autoencoder, train_decoder, train_tagger  # noqa: F401
