"""Every write to disk goes through here: atomic files, safetensors weights, JSON/YAML, split files, folder locks.

Nothing here unpickles anything. Checkpoints are safetensors files whose header metadata carries the non-tensor part
of the training state as JSON (see :func:`save_tree` / :func:`load_tree`).
"""

from .files import (  # noqa: F401
    NpyAppender,
    _read_text,
    atomic_dir,
    atomic_path,
    format_cell,
    load_npy,
    markdown_table,
    read_json,
    read_record,
    read_yaml,
    remove_file,
    remove_tree,
    save_npy,
    save_npz,
    sha256_file,
    write_bytes,
    write_csv,
    write_json,
    write_table,
    write_text,
    write_yaml,
)
from .runs import (  # noqa: F401
    LOCK,
    check_unlocked,
    git_hash,
    load_split,
    run_lock,
    save_split,
    split_info,
    versions,
)
from .tensors import (  # noqa: F401
    TREE_FORMAT,
    load_into,
    load_state_dict,
    load_tensors,
    load_tree,
    save_tensors,
    save_tree,
    tree_from_safetensors,
    tree_to_safetensors,
)
