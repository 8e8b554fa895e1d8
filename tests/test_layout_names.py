"""Every file name inside a run folder and a study folder has one owner: ``aelens/layout.py``.

The test reads every module's source and fails on a string literal that is a file name (``"overview.png"``,
``f"{layer}.npy"``, ``"reducer/embeddings.npy"``) or the ``reducer`` folder joined to a path, outside the modules
that own a file format of their own:

- ``layout.py``: run folders, study folders, the output of each analysis step, the bench's files;
- ``data/loading.py``: a data folder (``images.npz``, ``metadata.csv``, ``import.json``);
- ``importing/``: the trackers' pose files and videos it reads;
- ``synthetic/video.py``: writes those trackers' files for a synthetic session.

Docstrings are prose and are not read; a bare extension (``suffix == ".npy"``) is a format check, not a name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "aelens"
OWNERS = ("layout.py", "data/loading.py", "importing/", "synthetic/video.py")
EXTENSIONS = "safetensors|json|npy|npz|csv|png|gif|mp4|yaml|html|md|h5|slp|nwb|txt"
FILE_NAME = re.compile(r"[\w.*{}<>/\[\]-]*[\w*}\]>]\.(" + EXTENSIONS + ")")
FOLDERS = {"reducer"}  # folder names that are also ordinary words: flagged only where joined to a path


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def file_name_literals(source: str) -> list[tuple[int, str]]:
    """(line, literal) for each file-name literal in ``source``; f-strings read with ``X`` for each field."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip |= {id(v) for v in node.values}
            text = "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
            if FILE_NAME.fullmatch(text):
                found.append((node.lineno, text))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            found += [
                (side.lineno, side.value)
                for side in (node.left, node.right)
                if isinstance(side, ast.Constant) and side.value in FOLDERS
            ]
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if FILE_NAME.fullmatch(node.value):
                found.append((node.lineno, node.value))
    return sorted(found)


def test_file_names_live_in_layout():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(OWNERS):
            continue
        offenders += [f"{rel}:{line}: {text!r}" for line, text in file_name_literals(path.read_text())]
    assert not offenders, "file names outside layout.py (add a name to layout.py and use it):\n" + "\n".join(offenders)


def test_the_detector_sees_file_names():
    planted = (
        '"""Docstring naming overview.png is prose."""\n'
        'a = out / "overview.png"\n'
        'b = folder / f"{layer}.npy"\n'
        'c = f"{name}/embeddings.npy"\n'
        'd = run / "reducer"\n'
        'e = {"reducer": 1}\n'
        'f = path.suffix == ".npy"\n'
        'g = f"scatter_{name}.png"\n'
        'h = "a sentence about metadata.csv"\n'
    )
    assert file_name_literals(planted) == [
        (2, "overview.png"),
        (3, "X.npy"),
        (4, "X/embeddings.npy"),
        (5, "reducer"),
        (8, "scatter_X.png"),
    ]


def test_names_from_user_data_stay_inside_their_folder(tmp_path):
    """A condition or dataset name is user data: as a file name it can neither climb out of the folder nor name it."""
    from aelens.layout import LatentFiles, RunDir, safe_name

    assert LatentFiles.scatter("body_angle_deg") == "scatter_body_angle_deg.png"
    for hostile in ("a/../../../ESCAPED", "../x", "..", "/etc/passwd", "$\\bogus$", "a\\..\\b", "名前"):
        path = tmp_path / LatentFiles.scatter(hostile)
        assert path.resolve().parent == tmp_path.resolve() and "/" not in LatentFiles.scatter(hostile)
        other = RunDir(tmp_path).other_test_dir(hostile)
        assert other.resolve().parent == tmp_path.resolve()
    assert safe_name("..") == "data" and safe_name("") == "data" and safe_name("a b/c") == "a_b_c"
