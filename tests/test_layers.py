"""The package's layers: every module imports only from its own layer or below, and nothing imports in a circle.

Imports inside functions count too (they are dependencies all the same, only later). The layers, bottom up, are
listed in LAYERS; the README's Development section describes them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "aelens"

# bottom up; a module may import from its own layer or any layer below, never above. Each name is a whole folder
# (the package and every module in it) or a module at the package root: no exceptions for single files.
LAYERS: list[tuple[str, list[str]]] = [
    ("errors", ["_version", "errors"]),
    ("storage", ["storage"]),  # the only package that writes files
    ("config", ["config"]),
    ("layout", ["layout"]),  # every file name in a run folder and a study folder
    ("inputs", ["data", "importing", "synthetic"]),
    ("maps", ["maps"]),  # pure building blocks on arrays: scores, projections, figures
    ("models", ["models"]),
    ("objectives", ["objectives"]),
    ("training", ["training"]),
    ("runs", ["runs"]),
    ("analysis", ["analysis"]),
    ("study", ["study"]),
    ("bench", ["bench"]),
    ("interface", ["cli", "__main__", ""]),  # "" is the package itself: its __init__ is the Python API
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer_of(module: str) -> int:
    for i, (_, patterns) in enumerate(LAYERS):
        for p in patterns:
            if module == p or (p and module.startswith(p + ".")):
                return i
    raise AssertionError(f"module aelens.{module} is in no layer: add it to LAYERS in tests/test_layers.py")


def _imports(path: Path, module: str) -> set[str]:
    """aelens modules imported anywhere in the file, as names relative to the package ('' = the package)."""
    is_pkg = path.name == "__init__.py"
    package = module.split(".") if is_pkg else module.split(".")[:-1]
    package = [p for p in package if p]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "aelens":
                target = node.module.split(".")[1:]
            else:
                continue
            name = ".".join(target)
            # `from . import x` / `from .data import loading`: x may be a module of that package
            for alias in node.names:
                sub = f"{name}.{alias.name}" if name else alias.name
                found.add(sub if (SRC / Path(*sub.split("."))).with_suffix(".py").is_file() else name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "aelens":
                    found.add(".".join(alias.name.split(".")[1:]))
    found.discard(module)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p, _module_name(p)) for p in sorted(SRC.rglob("*.py"))}


def test_every_module_imports_only_from_its_layer_or_below():
    upward = []
    for module, deps in _graph().items():
        for dep in deps:
            if _layer_of(dep) > _layer_of(module):
                upward.append(
                    f"aelens.{module} ({LAYERS[_layer_of(module)][0]}) imports aelens.{dep} "
                    f"({LAYERS[_layer_of(dep)][0]})"
                )
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycle = stack[stack.index(d) :] + [d]
                pytest.fail("import cycle: " + " -> ".join(f"aelens.{c}".rstrip(".") for c in cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)


def test_the_checker_sees_upward_and_circular_imports(tmp_path, monkeypatch):
    """The two tests above would catch a planted upward import and a planted cycle."""
    pkg = tmp_path / "aelens"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("")
    (pkg / "storage.py").write_text("def f():\n    from .study import run_study\n")
    (pkg / "study.py").write_text("from .storage import f\n")
    (pkg / "data" / "loading.py").write_text("from ..errors import AelensError\nfrom aelens.data import batches\n")
    (pkg / "data" / "batches.py").write_text("from . import loading\n")
    monkeypatch.setattr(__import__(__name__), "SRC", pkg)
    graph = _graph()
    assert graph["storage"] == {"study"} and graph["study"] == {"storage"}
    assert graph["data.loading"] == {"errors", "data.batches"} and graph["data.batches"] == {"data.loading"}
    assert _layer_of("study") > _layer_of("storage")  # so storage -> study is reported as upward
    with pytest.raises(pytest.fail.Exception, match="import cycle: aelens.data.batches -> aelens.data.loading"):
        test_no_import_cycles()


def test_the_python_api_names_stay_functions_after_every_module_is_imported():
    """The package imports its API lazily; a submodule named like an API function would replace it on import."""
    import importlib

    import aelens

    for path in sorted(SRC.rglob("*.py")):
        name = _module_name(path)
        if name and name != "__main__":
            importlib.import_module(f"aelens.{name}")
    for name in aelens.__all__:
        value = getattr(aelens, name)
        assert not isinstance(value, type(aelens)), f"aelens.{name} is a module, not the API's {name}"
    assert callable(aelens.train) and aelens.train.__module__ == "aelens.training.trainer"


WRITERS = ("write_", "save_", "remove_", "record_", "atomic_", "NpyAppender", "create_run_dir", "update_manifest")


def _writes(path: Path) -> list[str]:
    """Ways ``path`` could write a file itself: writers imported from storage, ``open(..., "w"/"a"/"x")``,
    ``Path.write_*``, ``np.save*`` and ``torch.save``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith("storage"):
            found += [f"imports {a.name}" for a in node.names if a.name.startswith(WRITERS)]
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            owner = getattr(f.value, "id", "") if isinstance(f, ast.Attribute) else ""
            if name in ("write_text", "write_bytes") or (owner in ("np", "numpy", "torch") and name.startswith("save")):
                found.append(f"calls {owner + '.' if owner else ''}{name} (line {node.lineno})")
            if name == "open" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                if any(c in str(node.args[1].value) for c in "wax"):
                    found.append(f"opens a file for writing (line {node.lineno})")
    return found


def test_objectives_never_write_files():
    """Objectives return what should be saved (RunFiles); the training saves it through storage."""
    offenders = {_module_name(p): w for p in sorted((SRC / "objectives").glob("*.py")) if (w := _writes(p))}
    assert not offenders, offenders


def test_the_write_detector_sees_writes(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        "from ..storage import save_npy, read_json\nimport numpy as np\n"
        "def f(p, a):\n    np.save(p, a)\n    p.write_text('x')\n    open(p, 'wb')\n    open(p, 'rb')\n"
    )
    assert _writes(planted) == [
        "imports save_npy",
        "calls np.save (line 4)",
        "calls p.write_text (line 5)",
        "opens a file for writing (line 6)",
    ]


# where each layer's tests are: a folder's own behaviour is tested in these files (the rule the README states)
TESTS: dict[str, list[str]] = {
    "cli": ["test_config.py", "test_hostile.py", "test_hostile_round3.py", "test_docs.py"],
    "bench": ["test_step_work.py", "test_metrics.py"],
    "study": ["test_study.py", "test_config.py"],
    "analysis": ["test_latent.py", "test_compare.py", "test_study.py"],
    "runs": ["test_train.py", "test_reducers.py", "test_reliability.py"],
    "training": ["test_train.py", "test_ddp.py", "test_step_work.py"],
    "objectives": ["test_train.py", "test_tagger.py"],
    "models": ["test_nets.py", "test_reducers.py"],
    "maps": ["test_scores.py", "test_metrics.py", "test_inside.py"],
    "data": ["test_loading.py", "test_splits.py", "test_selection.py", "test_normalize.py"],
    "importing": ["test_import.py", "test_heading_check.py", "test_tracking_check.py"],
    "synthetic": ["test_synthetic.py"],
    "layout": ["test_storage.py", "test_layout_names.py"],
    "config": ["test_config.py"],
    "storage": ["test_storage.py", "test_reliability.py"],
    "errors": ["test_hostile.py"],
    "": ["test_layers.py"],  # the package: its Python API and its layers
}


def test_every_layer_names_where_its_tests_are():
    tests = Path(__file__).resolve().parent
    layers = {p.split(".")[0] for _, patterns in LAYERS for p in patterns} - {"__main__", "_version"}
    assert layers == set(TESTS), f"layers without a TESTS entry: {sorted(layers - set(TESTS))}"
    missing = [f for files in TESTS.values() for f in files if not (tests / f).is_file()]
    assert not missing, missing
    unlisted = {p.name for p in tests.glob("test_*.py")} - {f for files in TESTS.values() for f in files}
    assert not unlisted, f"test files no layer names: {sorted(unlisted)}"
