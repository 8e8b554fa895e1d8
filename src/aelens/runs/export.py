"""``aelens encode`` / ``aelens decode``: latent codes as a compressed copy of the frames, and back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import AelensError
from ..maps.metrics import psnr_per_image
from ..storage import load_npy, save_npy, save_npz
from .run import load_run


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise AelensError(f"{path}: already exists; choose another --out or pass --overwrite")


def encode_to_file(run_dir, out, data=None, layer: str = "fc1", overwrite: bool = False) -> dict:
    """Write the codes of every frame of ``data`` (default: the run's dataset) to ``out`` (.npy, float32).
    Returns sizes, the compression ratio and (for runs with a decoder) the reconstruction PSNR."""
    out = Path(out)
    if out.suffix != ".npy":
        raise AelensError(f"{out}: codes are written as .npy; name the file *.npy")
    _refuse_existing(out, overwrite)
    run = load_run(run_dir)
    ds = run.dataset(data)
    frames_iter = range(0, ds.n, 4096)
    codes = np.concatenate(
        [run.encode(ds.batch(np.arange(s, min(ds.n, s + 4096))).numpy(), layer) for s in frames_iter]
    )
    save_npy(out, codes.astype(np.float32))
    image_bytes = int(np.prod(ds.images.shape)) * ds.images.dtype.itemsize
    res = {
        "n": ds.n,
        "dim": int(codes.shape[1]),
        "code_bytes": int(codes.astype(np.float32).nbytes),
        "image_bytes": image_bytes,
        "compression": image_bytes / codes.astype(np.float32).nbytes,
        "out": str(out),
    }
    if run.networks.decoder is not None and layer == "fc1":
        sample = np.arange(min(ds.n, 4096))
        frames = ds.batch(sample).numpy()
        res["psnr"] = float(psnr_per_image(run.decode(codes[sample]), frames).mean())
    return res


def decode_to_file(run_dir, codes_path, out, overwrite: bool = False) -> dict:
    """Turn codes (.npy, n x d) back into frames: ``out`` (.npz, key ``images``; uint8 when the run was trained on
    uint8 frames, else float32)."""
    out = Path(out)
    if out.suffix != ".npz":
        raise AelensError(f"{out}: decoded frames are written as .npz; name the file *.npz")
    _refuse_existing(out, overwrite)
    run = load_run(run_dir)
    codes = load_npy(codes_path)
    if codes.ndim != 2 or not (np.issubdtype(codes.dtype, np.floating) or np.issubdtype(codes.dtype, np.integer)):
        raise AelensError(f"{codes_path}: codes must be a real N x D array, got {codes.dtype} {tuple(codes.shape)}")
    if len(codes) == 0:
        raise AelensError(f"{codes_path}: holds 0 codes; expected at least one row")
    if not np.isfinite(codes).all():
        row = int(np.nonzero(~np.isfinite(codes).all(axis=1))[0][0])
        raise AelensError(f"{codes_path}: codes contain NaN or infinite values (first in row {row})")
    if run.networks.decoder is not None and codes.shape[1] != run.networks.decoder.in_dim:
        d = run.networks.decoder.in_dim
        raise AelensError(f"{codes_path}: codes are {codes.shape[1]}-D; {run_dir} decodes {d}-D codes (N x {d})")
    images = run.decode(codes)
    as_uint8 = run.manifest.get("data", {}).get("dtype", "uint8") == "uint8"
    arr = (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8) if as_uint8 else images.astype(np.float32)
    if arr.shape[1] == 1:
        arr = arr[:, 0]
    save_npz(out, compressed=True, images=arr)
    return {"n": int(len(arr)), "shape": list(arr.shape), "dtype": str(arr.dtype), "out": str(out)}
