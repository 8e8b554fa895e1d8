"""Tensors in safetensors files: flat weights, nested training-state trees (non-tensor parts as JSON in the header),
state dicts loaded into modules with one-line errors. Nothing here unpickles anything."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AelensError

if TYPE_CHECKING:  # torch and safetensors are imported where tensors are read or written: the CLI starts fast
    import torch
from .files import write_bytes

TREE_FORMAT = "aelens-tree-1"

# --------------------------------------------------------------------------------------------- tensors


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None):
    """Write a dict of tensors as one safetensors file, atomically."""
    from safetensors.torch import save as _st_save

    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    write_bytes(path, _st_save(flat, metadata=metadata))


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file: (tensors, header metadata). A missing, truncated or corrupted file is an AelensError."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise AelensError(f"{path}: checkpoint file not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise AelensError(f"{path}: corrupted or truncated safetensors file ({exc})") from None
    return tensors, meta


# --------------------------------------------------------------------------------------------- nested state trees


def tree_to_safetensors(tree: Any) -> tuple[dict[str, torch.Tensor], str]:
    """Split a nested state (dicts, lists, tuples, scalars, strings, tensors) into tensors and a JSON skeleton.

    Tensors become ``{"__t__": name}``; dicts with non-string keys become ``{"__dict__": [[k, v], ...]}``; tuples
    become ``{"__tuple__": [...]}``. Anything else (an arbitrary object) is refused: we never pickle.
    """
    import torch

    tensors: dict[str, torch.Tensor] = {}

    def enc(obj: Any, where: str) -> Any:
        if isinstance(obj, torch.Tensor):
            name = f"t{len(tensors)}"
            tensors[name] = obj
            return {"__t__": name}
        if isinstance(obj, np.ndarray):
            return enc(torch.from_numpy(np.ascontiguousarray(obj)), where)
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
            return obj
        if isinstance(obj, float):
            return {"__float__": repr(obj)} if not math.isfinite(obj) else obj
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: enc(v, f"{where}.{k}") for k, v in obj.items()}
            return {"__dict__": [[enc(k, where), enc(v, f"{where}[{k!r}]")] for k, v in obj.items()]}
        if isinstance(obj, list):
            return [enc(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, tuple):  # includes torch.Size
            return {"__tuple__": [enc(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"cannot store {type(obj).__name__} at {where} in a safetensors checkpoint")

    skeleton = enc(tree, "checkpoint")
    return tensors, json.dumps(skeleton)


def tree_from_safetensors(tensors: dict[str, torch.Tensor], skeleton: str) -> Any:
    def dec(obj: Any) -> Any:
        if isinstance(obj, list):
            return [dec(v) for v in obj]
        if isinstance(obj, dict):
            if "__t__" in obj:
                if obj["__t__"] not in tensors:
                    raise KeyError(f"tensor {obj['__t__']!r} is not in the file")
                return tensors[obj["__t__"]]
            if "__float__" in obj:
                return float(obj["__float__"])
            if "__tuple__" in obj:
                return tuple(dec(v) for v in obj["__tuple__"])
            if "__dict__" in obj:
                pairs = obj["__dict__"]
                if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                    raise ValueError("a __dict__ entry is not a list of [key, value] pairs")
                return {_hashable(dec(k)): dec(v) for k, v in pairs}
            return {k: dec(v) for k, v in obj.items()}
        return obj

    return dec(json.loads(skeleton))


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def save_tree(path: str | os.PathLike, tree: Any) -> None:
    """Save a nested training state (e.g. a Lightning checkpoint dict) as one safetensors file, atomically."""
    tensors, skeleton = tree_to_safetensors(tree)
    save_tensors(path, tensors, metadata={"format": TREE_FORMAT, "tree": skeleton})


def load_tree(path: str | os.PathLike) -> Any:
    return _tree(path, *load_tensors(path))


def _tree(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Any:
    if meta.get("format") != TREE_FORMAT or "tree" not in meta:
        raise AelensError(f"{path}: not an aelens checkpoint (no '{TREE_FORMAT}' header)")
    try:
        tree = tree_from_safetensors(tensors, meta["tree"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AelensError(f"{path}: corrupted checkpoint header ({exc.__class__.__name__}: {exc})") from None
    except RecursionError:
        raise AelensError(f"{path}: corrupted checkpoint header (nested too deeply)") from None
    return _checked_tree(tree, path)


# the parts of a Lightning checkpoint that resuming reads, and their types
_TREE_PARTS = {
    "state_dict": dict,
    "epoch": int,
    "global_step": int,
    "optimizer_states": list,
    "lr_schedulers": list,
    "callbacks": dict,
    "loops": dict,
}


def _checked_tree(tree: Any, path) -> Any:
    """A checkpoint tree with the types resuming expects (a damaged or hand-edited one is a one-line error)."""
    import torch

    if not isinstance(tree, dict):
        raise AelensError(f"{path}: the checkpoint holds {type(tree).__name__}; expected a map of training state")
    for key, kind in _TREE_PARTS.items():
        if key in tree and (not isinstance(tree[key], kind) or isinstance(tree[key], bool)):
            raise AelensError(
                f"{path}: checkpoint field {key!r} is {type(tree[key]).__name__}; expected {kind.__name__}"
            )
    bad = [k for k, v in tree.get("state_dict", {}).items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise AelensError(f"{path}: checkpoint state_dict entry {bad[0]!r} is not a named tensor")
    return tree


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model weights of a run's ``model.safetensors`` or of a training checkpoint (safetensors tree)."""
    path = Path(path)
    tensors, meta = load_tensors(path)
    if meta.get("format") != TREE_FORMAT:  # final weights: flat tensors; checkpoints are trees
        return tensors
    tree = _tree(path, tensors, meta)
    if not isinstance(tree, dict) or "state_dict" not in tree:
        raise AelensError(f"{path}: checkpoint has no model state")
    return tree["state_dict"]


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike) -> None:
    """``module.load_state_dict(state)`` with a one-line error naming the first mismatch."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        detail = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise AelensError(f"{source}: checkpoint does not match the model architecture ({detail})")
    for key, value in own.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise AelensError(
                f"{source}: checkpoint does not match the model ({key}: file has {tuple(state[key].shape)}, "
                f"model expects {tuple(value.shape)}); was it trained on another image size, channel count or latent dim?"
            )
    module.load_state_dict(state)
