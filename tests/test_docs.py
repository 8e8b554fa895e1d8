"""The manual and the front door: the site builds with warnings as errors, the generated reference pages match the
code, every tutorial's commands run (on small data), the help shows the config's defaults, and the words are for
users."""

from __future__ import annotations

import dataclasses
import inspect
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SHARED = ROOT.parent / "shared"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.md"))


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The manual, built with MkDocs in strict mode: a broken link, a missing page or API reference fails."""
    out = tmp_path_factory.mktemp("site")
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(out)},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_the_manual_builds_with_warnings_as_errors(site):
    assert (site / "index.html").is_file()
    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("load_dataset", "train_autoencoder", "load_run", "test_run", "RunConfig", "StudyConfig"):
        assert 'id="aelens.' in api and name in api, name
    assert api.count('class="doc doc-object') >= 25


def test_a_broken_link_fails_the_build(tmp_path):
    """The strict build is a real check: a page with a link to nowhere makes it fail."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\n[gone](nowhere.md)\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: x\nnav:\n  - index.md\n")
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(tmp_path / "mkdocs.yml")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert res.returncode != 0 and "nowhere.md" in res.stderr


def test_the_generated_reference_pages_match_the_code():
    """docs/reference/commands.md holds every command's --help and errors.md every error message of the source."""
    res = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_reference.py"), "--check"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_error_page_lists_the_messages_the_code_raises():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_reference
    finally:
        sys.path.pop(0)
    found = gen_reference.error_messages()
    flat = [text for items in found.values() for text, _ in items]
    assert len(flat) >= 200
    # a message raised in the importer and one in the CLI, as the reader meets them (placeholders in braces)
    assert "--jobs must be at least 1, got {jobs}" in flat
    assert any(t.startswith("{path}: exists and is not a folder") for t in flat)


def test_every_figure_appears_once_and_none_is_orphaned():
    refs: dict[str, int] = {}
    for page in _pages():
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text(encoding="utf-8")):
            name = (page.parent / target).resolve().relative_to(DOCS).as_posix()
            refs[name] = refs.get(name, 0) + 1
    twice = {k: v for k, v in refs.items() if v > 1}
    assert not twice, f"figures shown more than once: {twice}"
    figures = {p.relative_to(DOCS).as_posix() for p in (DOCS / "figures").iterdir()}
    missing = set(refs) - figures
    assert not missing, f"pages show figures that do not exist: {sorted(missing)}"
    linked = set(refs)
    for page in _pages():  # a figure may also be linked to rather than shown
        for target in re.findall(r"\]\((figures/[^)]+|\.\./figures/[^)]+)\)", page.read_text(encoding="utf-8")):
            linked.add((page.parent / target).resolve().relative_to(DOCS).as_posix())
    assert not figures - linked, f"figures no page uses: {sorted(figures - linked)}"


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert "make demo" in readme and "make test" in readme
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).exists(), link


# phrases that speak of the project's history or work instead of to the user
WORK_LOG = re.compile(
    r"\bthis stop\b|\bthis time\b|\bthe issue'?s?\b|\bthis session's\b|\bearlier code\b|\bearlier runs\b"
    r"|\bwe (?:now|changed|fixed)\b|\bbefore (?:this|the) change\b|\bnow (?:also|takes|uses|holds)\b|\bre-?run\b",
    re.IGNORECASE,
)


def _help_texts() -> dict[str, str]:
    import typer

    from aelens.cli import app

    root = typer.main.get_command(app)
    out = {}

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        ctx = cmd.make_context(" ".join(["aelens", *path]), [], resilient_parsing=True)
        out[" ".join(path) or "aelens"] = cmd.get_help(ctx)

    walk(root, [])
    return out


def test_words_are_for_users():
    texts = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *_pages()]}
    texts.update({f"aelens {k} --help": v for k, v in _help_texts().items()})
    hits = [f"{name}: {m.group(0)!r}" for name, text in texts.items() for m in WORK_LOG.finditer(text)]
    assert not hits, hits
    unfinished = [n for n, text in texts.items() if re.search(r"PLACEHOLDER|\bTODO\b|\bFIXME\b|\bTBD\b", text)]
    assert not unfinished, unfinished
    assert WORK_LOG.search("as measured this time") and WORK_LOG.search("the issue's 12 deg")  # the check can fail


# ---- the help agrees with the code ----


def _sources(path: str):
    """Where the defaults of a command's options are defined: dataclasses and functions, in order of precedence."""
    from aelens.analysis.compare import compare_runs
    from aelens.analysis.latent import latent_analysis
    from aelens.config import RunConfig
    from aelens.importing.importer import import_video
    from aelens.importing.options import ImportOptions
    from aelens.study.config import DEMO, StudyConfig
    from aelens.study.pipeline import run_study
    from aelens.synthetic.arena import synthesize
    from aelens.synthetic.video import synthesize_video

    def fields_of(obj) -> dict:
        """Fields and the read-only shorthands (properties) of a settings dataclass."""
        names = [f.name for f in dataclasses.fields(obj)]
        names += [n for n, v in vars(type(obj)).items() if isinstance(v, property)]
        return {n: getattr(obj, n) for n in names}

    def params_of(fn) -> dict:
        return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}

    return {
        "data import": [fields_of(ImportOptions()), params_of(import_video)],
        "data synth": [params_of(synthesize), params_of(synthesize_video)],
        "latent": [params_of(latent_analysis)],
        "compare": [params_of(compare_runs)],
        "study": [fields_of(StudyConfig()), params_of(run_study)],
        "demo": [DEMO],
        "train": [fields_of(RunConfig())],
    }.get("train" if path.startswith(("train", "sweep")) else path, [])


def _as_text(value) -> str:
    from aelens.cli.common import _format_default

    return _format_default(value)


def test_the_help_shows_the_defaults_the_code_uses():
    """Every default that `--help` shows, in brackets or as click's [default: ...], equals the default defined in
    the dataclass or function the command passes the option to (same name); an option that shows a default with
    no such source must say in words what happens (a path or a rule), not restate a number."""
    import typer

    from aelens.cli import TAGGER_OPTIONS, TRAIN_OPTIONS, app, config_default
    from aelens.cli.common import DECODER_OPTIONS

    keyed = {flag.split("/")[0]: key for _, _, flag, _, key in TRAIN_OPTIONS + TAGGER_OPTIONS + DECODER_OPTIONS if key}
    root = typer.main.get_command(app)
    checked, problems = 0, []

    def walk(cmd, path):
        nonlocal checked
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
            return
        where = " ".join(path)
        sources = _sources(where)
        for p in cmd.params:
            flag = max(p.opts, key=len)
            name = flag.lstrip("-").replace("-", "_")
            shown = re.findall(r"\[([^\]]*)\]\s*$", (getattr(p, "help", "") or "").strip())
            if p.default not in (None, False, ()) and getattr(p, "show_default", False) and not p.required:
                shown.append(_as_text(p.default))
            if not shown or name == "out":  # output folders are named by the command, not settings
                continue
            if path[0] in ("train", "sweep") and flag in keyed:
                value = config_default(keyed[flag])
                expected = None if value is None else _as_text(value)
            else:
                found = next((s[name] for s in sources if name in s), None)
                expected = None if found is None else _as_text(found)
            if expected is None:
                if any(re.fullmatch(r"[-+0-9.e,]+", text) for text in shown):
                    problems.append(f"{where} {flag}: shows {shown} with no dataclass or function default named {name}")
                continue
            checked += 1
            if expected not in shown:
                problems.append(f"{where} {flag}: help shows {shown}, the code's default is {expected}")

    walk(root, [])
    assert not problems, "\n".join(problems)
    assert checked >= 60


def test_the_study_yaml_of_the_manual_is_the_defaults(tmp_path):
    """docs/guide/study.md shows every study.yaml key with its default: the block loads, equals the defaults, and
    names every shorthand."""
    from aelens.study.config import STUDY_SHORTHANDS, StudyConfig, load_study_config

    text = (DOCS / "guide" / "study.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", text, flags=re.S).group(1)
    path = tmp_path / "study.yaml"
    path.write_text(block)
    assert load_study_config(path) == StudyConfig()
    keys = set(re.findall(r"^(\w+):", block, flags=re.M))
    fields = {f.name for f in dataclasses.fields(StudyConfig)} - {"run"}
    assert set(STUDY_SHORTHANDS) | fields | {"run"} == keys


# ---- the tutorials run ----

QUICK_STUDY = """\
epochs: 1
sweep_epochs: 1
batch_size: 32
decoders: [pca:2]
latent_method: pca
max_images: 300
train_frames: 200
run:
  snapshots: {max_images: 200}
  train: {val_every: 1}
"""
SMALL_FRAMES = "200"


def tutorial_commands(page: Path) -> list[list[str]]:
    """The `aelens ...` command lines of a tutorial's bash blocks, continuation lines joined, comments removed."""
    text = page.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("aelens "):
                commands.append(shlex.split(line)[1:])
    return commands


def small(args: list[str], quick: Path) -> list[str]:
    """The same command on small data: fewer frames, one epoch (the tutorial's settings otherwise)."""
    args = [a.replace("../shared/", f"{SHARED}/") for a in args]
    if args[:2] == ["data", "synth"] and "--n" in args:
        args[args.index("--n") + 1] = SMALL_FRAMES
    if args[:2] == ["data", "import"]:
        args += ["--stop", SMALL_FRAMES, "--no-progress"]
    if args[0] == "study":
        args += ["--config", str(quick)]
    if args[0] == "demo":
        args += ["--n", SMALL_FRAMES, "--epochs", "1"]
    return args


def test_the_tutorials_are_found():
    names = {p.stem for p in TUTORIALS}
    assert {"sleap", "deeplabcut", "own-tracker", "report"} <= names
    assert all(tutorial_commands(p) for p in TUTORIALS)
    assert small(["data", "import", "--poses", "../shared/raw/x.slp"], Path("q"))[3] == f"{SHARED}/raw/x.slp"


@pytest.mark.parametrize("page", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_a_tutorial_runs_end_to_end(page, tmp_path, monkeypatch, capsys):
    from conftest import run_cli

    commands = tutorial_commands(page)
    if any("../shared/" in a for args in commands for a in args) and not (SHARED / "raw").is_dir():
        pytest.skip(f"{SHARED / 'raw'} is absent")
    quick = tmp_path / "quick.yaml"
    quick.write_text(QUICK_STUDY)
    monkeypatch.chdir(tmp_path)
    for args in commands:
        code, out, err = run_cli(small(args, quick), capsys)
        assert code == 0, f"aelens {shlex.join(args)}\n{out[-2000:]}\n{err[-2000:]}"
    text = page.read_text(encoding="utf-8")
    for report in set(re.findall(r"`([\w./-]+/report\.html)`", text)):
        assert (tmp_path / report).is_file(), report
    if page.stem == "deeplabcut":  # the three files of one DeepLabCut session give the same crops and conditions
        first = np.load(tmp_path / "mouse" / "images.npy")
        for other in ("mouse_csv", "mouse_nwb"):
            assert np.array_equal(first, np.load(tmp_path / other / "images.npy")), other
            a = (tmp_path / "mouse" / "metadata.csv").read_text().splitlines()
            b = (tmp_path / other / "metadata.csv").read_text().splitlines()
            assert a[0] == b[0] and len(a) == len(b) > 100
            assert _rows_close(a[1:], b[1:]), other


def _rows_close(a: list[str], b: list[str]) -> bool:
    """Conditions row for row: text equal, numbers within float32 rounding (the NWB file stores float32)."""
    for ra, rb in zip(a, b):
        for x, y in zip(ra.split(","), rb.split(",")):
            if x == y:
                continue
            try:
                if abs(float(x) - float(y)) > 1e-3 * max(1.0, abs(float(x))):
                    return False
            except ValueError:
                return False
    return True


# ---- the site in a browser ----


@pytest.mark.browser
def test_the_site_shows_its_navigation_images_and_api_pages(site, tmp_path):
    from conftest import headless_chromium

    driver = headless_chromium(tmp_path)
    try:
        driver.get((site / "index.html").as_uri())
        nav = driver.execute_script(
            "return Array.from(document.querySelectorAll('nav a, nav label')).map(a => a.textContent.trim())"
        )
        driver.get((site / "tutorials" / "report" / "index.html").as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).filter(i => i.src.includes('figures'))"
            ".map(i => [i.complete && i.naturalWidth > 0, i.src])"
        )
        driver.get((site / "reference" / "api" / "index.html").as_uri())
        api = driver.execute_script("return document.body.innerText")
    finally:
        driver.quit()
    assert {"Install", "Tutorials", "User guide", "Results", "API"} <= set(nav), nav
    assert len(images) >= 5 and all(ok for ok, _ in images), images
    assert "load_dataset" in api and "train_autoencoder" in api
