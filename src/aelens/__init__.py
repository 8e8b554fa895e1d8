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

from ._version import __version__  # noqa: E402,F401
from .config import RunConfig, load_config  # noqa: E402
from .data.importer import ImportOptions, import_video  # noqa: E402
from .data.loading import Dataset, load_dataset  # noqa: E402
from .data.synthetic import synthesize, write_dataset  # noqa: E402
from .errors import AelensError  # noqa: E402
from .evaluate import test_run  # noqa: E402
from .runs import Run, load_run  # noqa: E402
from .train import train, train_autoencoder, train_decoder, train_tagger  # noqa: E402

__all__ = [
    "AelensError",
    "Dataset",
    "ImportOptions",
    "Run",
    "RunConfig",
    "import_video",
    "load_config",
    "load_dataset",
    "load_run",
    "synthesize",
    "test_run",
    "train",
    "train_autoencoder",
    "train_decoder",
    "train_tagger",
    "write_dataset",
]
