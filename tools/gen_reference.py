"""Write the manual's generated reference pages from the code, so that they cannot drift from it.

    python tools/gen_reference.py          # rewrite docs/reference/commands.md and docs/reference/errors.md
    python tools/gen_reference.py --check  # exit 1 when either page differs from what the code gives (a test runs this)

`commands.md` holds every command's `--help`; `errors.md` every one-line error the code can raise (the message
templates of each ``AelensError``, read from the source), grouped by what the user was doing, with what to do.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import typer

from aelens.cli import app

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "aelens"
DOCS = ROOT / "docs" / "reference"
ERROR_CLASSES = {"AelensError", "TrainingDiverged"}

# folder (or root module) -> (group title, what to do); the order is the page's
GROUPS = {
    "cli": (
        "Command-line options",
        "An option out of range, of the wrong kind, or combined with one it excludes. The message names the option "
        "and what it takes; `aelens COMMAND --help` lists every option with its default.",
    ),
    "importing": (
        "Importing videos and poses",
        "`aelens data import` checks the video, the pose file and their agreement before it writes anything. Check "
        "that each `--poses` belongs to the `--video` beside it (same order), that the node names you pass exist "
        "(the message lists the file's nodes), and see [Importing](../guide/importing.md) for the formats.",
    ),
    "data": (
        "Reading data and splitting it",
        "Images must be `N x H x W` or `N x C x H x W` with `H, W >= 24`, conditions one row per frame; see [Data "
        "format](../guide/data-format.md) and [Splits and transfer](../guide/splits.md).",
    ),
    "synthetic": ("Synthetic data", "Sizes and counts of `aelens data synth`."),
    "config": (
        "Configs and settings",
        "A YAML config (`--config`, `study.yaml`) is data: unknown keys, wrong types and out-of-range values are "
        "refused with the file and the field. Start from a run's own `config.yaml` or the defaults "
        "([settings](api.md#settings)).",
    ),
    "study": (
        "The study",
        "Settings of `aelens study` that would fail late are refused before any model trains. See [The study and its "
        "config](../guide/study.md).",
    ),
    "training": (
        "Training",
        "Most of these say which setting to change. A loss that becomes NaN stops the run and keeps its last finite "
        "checkpoint: lower `--lr` or check the images for NaN/inf. See [Training and "
        "resuming](../guide/training.md).",
    ),
    "objectives": ("Objectives (AE, decoder, tagger)", "Targets and starting points of the taggers and decoders."),
    "models": ("Models and reducers", "Fitted reducers and weights that cannot be used as they are."),
    "runs": (
        "Run folders",
        "A run folder is read through its `manifest.json`; damaged, foreign or unfinished runs are refused. Resume "
        "an unfinished run with `aelens train KIND --resume RUN`, or train it again. See [Run "
        "folders](../guide/run-folders.md).",
    ),
    "storage": (
        "Files on disk",
        "aelens writes atomically and never overwrites what it did not make; these say which file is damaged or "
        "locked. A lock left by a killed process of this machine is taken over; one held by a running process names "
        "it: wait for it to finish.",
    ),
    "maps": ("Maps and scores", "Inputs of the scores and maps (too few frames, a constant condition, ...)."),
    "analysis": ("Analysis and report", "The latent analysis, comparisons and transfer."),
    "bench": ("Benchmark", "`aelens bench` settings."),
}


def _expr(node: ast.AST) -> str | None:
    """The message template of an error's first argument: literal text, and {expression} for what is filled in."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            else:
                parts.append("{" + ast.unparse(v.value) + "}")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _expr(node.left), _expr(node.right)
        if left is not None and right is not None:
            return left + right
    if isinstance(node, ast.IfExp):
        a, b = _expr(node.body), _expr(node.orelse)
        if a is not None and b is not None:
            return a + "  |  " + b
    return None


def error_messages() -> dict[str, list[tuple[str, str]]]:
    """{group key: [(message template, module:line), ...]} for every error constructed in the package."""
    found: dict[str, list[tuple[str, str]]] = {key: [] for key in GROUPS}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        key = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        key = {"layout": "runs", "errors": "training"}.get(key, key)  # layout.py holds the run-folder operations
        if key not in GROUPS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ERROR_CLASSES):
                continue
            text = _expr(node.args[0]) if node.args else None
            if text is None:
                continue  # a message passed on from elsewhere (already listed where it is made)
            where = f"{'/'.join(rel.parts)}:{node.lineno}"
            found[key].append((" ".join(text.split()), where))
    return found


def _cell(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def errors_page() -> str:
    lines = [
        "# Errors and what to do",
        "",
        "Every problem aelens can name is said in one line, `aelens: error: ...`, with exit code 2, before anything",
        "is written (add `--debug` for a traceback). The line names the file, field or option, what was expected",
        "and what was found. This page lists every such message, read from the source code (`{...}` is filled in",
        "with your file, option or value), grouped by what you were doing. It is generated by",
        "`python tools/gen_reference.py`, and a test fails when it differs from the code.",
        "",
        "## Frequent questions",
        "",
        "- **The import says a pose file refers to frames the video does not have.** The pose file belongs to another",
        "  video (or another cut of it): give each `--poses` beside its own `--video`, in the same order.",
        "- **The import warns that the pose heading sits N deg from the animal's visible axis.** The tracker places a",
        "  point consistently beside the body. Choose other nodes with `--heading back:front`, or keep it and read",
        "  the tagger's errors on that track knowing they include that offset.",
        "- **The import warns that the tracker likely swapped head and tail.** Fix the tracking (or leave those",
        "  frames out with `--start/--stop`); aelens keeps the file's labels as they are.",
        "- **A study stops with 'already holds ... trained with other settings'.** A study folder is resumed; give",
        "  a new `--out` for new settings.",
        "- **Training stopped early.** By design: a run stops when its validation loss has not improved by",
        "  `--min-delta` for `--patience` validations (`manifest.json`, `stopped`). `--patience 0` trains to `--epochs`.",
        "- **A run is refused as changed or truncated.** Its `model.safetensors` no longer matches the SHA-256 the",
        "  manifest recorded: copy the run folder again, or train it again.",
        "- **A disk is full or read-only.** Said in one line; files already written, checkpoints included, stay as",
        "  they were. Free some space or choose another `--out`, then `--resume`.",
        "",
    ]
    total = 0
    for key, items in error_messages().items():
        if not items:
            continue
        title, advice = GROUPS[key]
        lines += [f"## {title}", "", advice, "", "| message | where |", "|---|---|"]
        seen = set()
        for text, where in items:
            if text in seen:
                continue
            seen.add(text)
            total += 1
            lines.append(f"| {_cell(text)} | `{where.rsplit(':', 1)[0]}` |")
        lines.append("")
    lines[6] += f" {total} messages in all."
    return "\n".join(lines)


def commands_page() -> str:
    root = typer.main.get_command(app)
    lines = [
        "# Commands",
        "",
        "Every command's `--help`, as the command line prints it (generated by `python tools/gen_reference.py`; a",
        "test fails when it differs). The defaults in brackets come from the [settings dataclasses](api.md#settings).",
        "",
    ]

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name in sorted(cmd.commands):
                yield from walk(cmd.commands[name], [*path, name])
        else:
            yield path, cmd

    for path, cmd in walk(root, []):
        name = " ".join(["aelens", *path])
        ctx = cmd.make_context(name, [], resilient_parsing=True, max_content_width=110, terminal_width=110)
        text = cmd.get_help(ctx)
        lines += [f"## {' '.join(path)}", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(lines)


def pages() -> dict[Path, str]:
    return {DOCS / "errors.md": errors_page(), DOCS / "commands.md": commands_page()}


def main(argv: list[str]) -> int:
    stale = []
    for path, text in pages().items():
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run python tools/gen_reference.py): " + ", ".join(str(p) for p in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
