"""The documentation site's examples run as written, and its reference pages match the code.

For each page of ``docs/`` (``docs/architecture.md`` aside: another page's owner), every
fenced block is tagged ``bash``, ``python`` or ``text``. A block whose title starts with
:data:`NOT_RUN_TITLE` (`````bash title="Not run by the docs tests: REASON"``) is skipped;
the title, shown on the page, says why. The page's ``bash`` commands then run in order in
a fresh temporary directory, and its ``python`` blocks after them, as one script, in the
same directory, with the README test's substitutions (fewer epochs, steps and episodes).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from script_module import ROOT
from test_readme import commands, example_env, substitute

DOCS = ROOT / "docs"
NOT_RUN_TITLE = "Not run by the docs tests:"
#: Pages not checked here, and why.
SKIPPED_PAGES = {"architecture.md": "rewritten by the refactor; it has no runnable examples"}
#: Fewer episodes than the README test's substitutions leave.
EXTRA_SUBSTITUTIONS = [
    (r"\bn_eval_episodes=\d+", "n_eval_episodes=2"),
    (r"\bnum_episodes=\d+", "num_episodes=2"),
]
BLOCK = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", flags=re.M | re.S)


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if p.relative_to(DOCS).as_posix()
                  not in SKIPPED_PAGES and "hooks" not in p.parts)


def blocks(page: Path) -> list[tuple[str, str, str]]:
    """``[(language, info after the language, text)]`` of the page's fenced blocks."""
    return BLOCK.findall(page.read_text())


def runnable(page: Path, language: str) -> list[str]:
    return [text for lang, info, text in blocks(page)
            if lang == language and NOT_RUN_TITLE not in info]


def page_substitute(text: str) -> str:
    text = substitute(text)
    for pattern, replacement in EXTRA_SUBSTITUTIONS:
        text = re.sub(pattern, replacement, text)
    return text


RUNNABLE_PAGES = [p for p in pages() if runnable(p, "bash") or runnable(p, "python")]


def test_every_block_is_tagged_and_every_skip_says_why():
    for page in pages():
        for language, info, text in blocks(page):
            assert language in ("bash", "python", "text"), (page, language, text[:80])
            if NOT_RUN_TITLE in info:
                reason = info.split(NOT_RUN_TITLE, 1)[1].strip(' "')
                assert len(reason) > 10, (page, info)


def test_the_site_has_every_page_of_the_nav():
    nav = re.findall(r":\s*([\w/-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    assert {p.relative_to(DOCS).as_posix() for p in pages()} | set(SKIPPED_PAGES) == set(nav)


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_examples_run(page, tmp_path):
    env = example_env()
    for text in runnable(page, "bash"):
        for command in commands(text):
            ran = page_substitute(command)
            result = subprocess.run(["bash", "-c", ran], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=900)
            assert result.returncode == 0, f"{page.name}: {command}\n(ran: {ran})\n" \
                                           f"{result.stdout[-1500:]}\n{result.stderr[-3000:]}"
    script = "\n\n".join(page_substitute(text) for text in runnable(page, "python"))
    if script:
        result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{page.name}\n{result.stderr[-3000:]}"
    # Outputs stay in directories .gitignore lists, or are the plots the pages draw.
    leftovers = {p.name for p in tmp_path.iterdir()} - {"data", "runs"}
    assert all(name.endswith(".png") for name in leftovers), leftovers


def _table_column(page: Path, marker: str) -> list[str]:
    text = page.read_text()
    table = text.split(f"<!-- {marker} -->", 1)[1].split(f"<!-- /{marker} -->", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", table, flags=re.M)


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    """A one-epoch CartPole run through the command line: its directory."""
    cwd = tmp_path_factory.mktemp("docs_run")
    result = subprocess.run(
        [sys.executable, "-m", "keras_vpg", "train", "--env", "CartPole-v1", "--epochs", "1",
         "--steps-per-epoch", "500", "--train-v-iters", "2", "--exp-name", "ref"],
        cwd=cwd, env=example_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "data" / "ref" / "ref_s0"


def test_progress_columns_page_matches_a_run(cartpole_run):
    header = (cartpole_run / "progress.txt").read_text().splitlines()[0].split("\t")
    assert _table_column(DOCS / "reference" / "files.md", "progress-columns") == header


def test_config_fields_page_matches_a_run(cartpole_run):
    import json

    keys = sorted(json.loads((cartpole_run / "config.json").read_text()))
    assert sorted(_table_column(DOCS / "reference" / "files.md", "config-fields")) == keys


def test_cli_reference_names_every_flag():
    sys.path.insert(0, str(DOCS / "hooks"))
    try:
        from cli_reference import cli_reference_markdown
    finally:
        sys.path.remove(str(DOCS / "hooks"))
    from keras_vpg.cli import build_parser

    markdown = cli_reference_markdown()
    parser = build_parser()
    subparsers = next(a for a in parser._actions if hasattr(a, "choices") and
                      isinstance(a.choices, dict))
    for name, sub in subparsers.choices.items():
        assert f"## {name}" in markdown
        for action in sub._actions:
            if action.option_strings:
                assert f"| `{', '.join(action.option_strings)}` |" in markdown, (name, action)


def test_version_names_what_a_bug_report_needs():
    import keras_vpg

    result = subprocess.run([sys.executable, "-m", "keras_vpg", "--version"],
                            env=example_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"keras-vpg {keras_vpg.__version__}"
    for name in ("Keras", "tensorflow", "jax", "torch", "backend:", "gymnasium", "MuJoCo"):
        assert any(line.startswith(name + ("" if name.endswith(":") else " "))
                   for line in lines), (name, lines)


def test_the_version_is_written_once():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'attr = "keras_vpg.__version__"' in text
    assert not re.search(r'^version\s*=\s*"', text, flags=re.M)  # no literal version
    changelog = (ROOT / "CHANGELOG.md").read_text()
    import keras_vpg

    assert f"## [{keras_vpg.__version__}]" in changelog
