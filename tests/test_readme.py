"""The README's examples run as written, so they cannot rot.

Every fenced block of README.md is tagged ``bash``, ``python`` or ``text``
(text: not an example). Each ``bash`` command runs in a temporary directory, in
README order, after the substitutions of :data:`SUBSTITUTIONS` (fewer epochs and
episodes, the test environment instead of a new virtualenv), unless it is listed
in :data:`NOT_RUN` with its reason (whole blocks: :data:`NOT_RUN_BLOCKS`). The
``python`` blocks run, in order, as one script in another temporary directory,
with the same substitutions.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from script_module import ROOT

README = ROOT / "README.md"

#: README commands that are not run, and why. A key that matches no README command fails.
NOT_RUN = {
    'python3 -m pip install "tox>=4" && python3 -m tox':
        "runs the whole suite this test belongs to; .ci/run runs exactly this command",
}

#: README blocks (python or bash) not run, keyed by their first line, and why. Each key
#: must be the first line of a README block. (The docs' blocks: tests/test_docs.py.)
NOT_RUN_BLOCKS: dict[str, str] = {}

#: (pattern, replacement): what changes between the README and the test, and why.
SUBSTITUTIONS = [
    # The test environment is already an install of keras-vpg with its extras.
    (r'^python3 -m venv \.venv && \.venv/bin/pip install "\.\[jax\]" && \.venv/bin/', ""),
    # Short runs: the commands are checked, not the learning.
    (r"--epochs \d+", "--epochs 1"),
    (r"\bepochs=\d+", "epochs=1"),
    (r"--steps-per-epoch \d+", "--steps-per-epoch 1000"),
    (r"\bsteps_per_epoch=\d+", "steps_per_epoch=1000"),
    (r"--episodes \d+", "--episodes 10"),
    # Run from a temporary directory: the examples are in the repository.
    (r"(?<![\w/])examples/", f"{ROOT}/examples/"),
]


def fenced_blocks(runnable: bool = False) -> list[tuple[str, str]]:
    """``[(language, text)]`` of README.md's fenced code blocks, in order.

    ``runnable``: only bash and python blocks, without those of :data:`NOT_RUN_BLOCKS`.
    """
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", README.read_text(), flags=re.M | re.S)
    if runnable:
        blocks = [(language, text) for language, text in blocks if language in ("bash", "python")
                  and text.strip().splitlines()[0].strip() not in NOT_RUN_BLOCKS]
    return blocks


def commands(text: str) -> list[str]:
    """Shell commands of a bash block: continuation lines joined, comments dropped."""
    text = text.replace("\\\n", " ")
    lines = [re.sub(r"(^|\s+)#.*$", "", line).strip() for line in text.splitlines()]
    return [re.sub(r"\s+", " ", line) for line in lines if line]


def substitute(text: str) -> str:
    for pattern, replacement in SUBSTITUTIONS:
        text = re.sub(pattern, replacement, text, flags=re.M)
    return text


def example_env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def test_every_block_is_tagged():
    languages = [language for language, _ in fenced_blocks()]
    assert languages and set(languages) <= {"bash", "python", "text"}, languages


def test_the_readme_is_a_front_page():
    """Under 200 lines, and every relative link points at a file of the repository."""
    text = README.read_text()
    assert len(text.splitlines()) < 200
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert links
    for link in links:
        if "://" not in link:
            assert (ROOT / link).exists(), link


def test_the_readme_opens_with_the_two_commands():
    bash = [commands(text) for language, text in fenced_blocks() if language == "bash"]
    assert len(bash[0]) == 1 and len(bash[1]) == 1
    install_and_train, install_and_test = bash[0][0], bash[1][0]
    assert 'pip install ".[jax]"' in install_and_train and "keras-vpg train" in install_and_train
    assert "python3 -m tox" in install_and_test


@pytest.fixture(scope="module")
def shell_results(tmp_path_factory):
    """``[(README command, what ran, CompletedProcess)]`` of every bash command run."""
    cwd = tmp_path_factory.mktemp("readme_shell")
    results = []
    for language, text in fenced_blocks(runnable=True):
        if language != "bash":
            continue
        for command in commands(text):
            if command in NOT_RUN:
                continue
            ran = substitute(command)
            result = subprocess.run(["bash", "-c", ran], cwd=cwd, env=example_env(),
                                    capture_output=True, text=True, timeout=900)
            results.append((command, ran, result))
    return cwd, results


def test_not_run_lists_only_readme_commands():
    readme = [c for language, text in fenced_blocks(runnable=True) if language == "bash"
              for c in commands(text)]
    assert set(NOT_RUN) <= set(readme), set(NOT_RUN) - set(readme)
    first_lines = {text.strip().splitlines()[0].strip() for _, text in fenced_blocks()}
    assert set(NOT_RUN_BLOCKS) <= first_lines, set(NOT_RUN_BLOCKS) - first_lines


def test_every_shell_command_runs(shell_results):
    cwd, results = shell_results
    assert len(results) >= 4
    for command, ran, result in results:
        assert result.returncode == 0, f"{command}\n(ran: {ran})\n{result.stderr[-3000:]}"
    # What the README says the commands leave behind.
    assert (cwd / "data" / "cartpole" / "cartpole_s0" / "model.keras").exists()
    assert (cwd / "cartpole.png").read_bytes()[:4] == b"\x89PNG"
    assert (cwd / "data" / "cartpole" / "cartpole_s0" / "saved_model" / "saved_model.pb").exists()
    test_policy = [r for c, _, r in results if c.startswith("keras-vpg test-policy")]
    assert [r.stdout.split(" episodes: EpRet")[0].split()[-1] for r in test_policy] == [
        "100"]  # the default
    # Everything a README command writes stays under data/ (ignored) or is the plot.
    assert sorted(p.name for p in cwd.iterdir()) == ["cartpole.png", "data"]


def test_the_python_examples_run_as_one_script(tmp_path):
    script = "\n\n".join(substitute(text) for language, text in fenced_blocks(runnable=True)
                         if language == "python")
    assert "obs, _ = env.reset(" in script  # the snippet defines what it uses
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=example_env(),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "data" / "cartpole_py" / "serving" / "saved_model.pb").exists()
    # Outputs stay in directories .gitignore lists (the docs' TensorBoard example: runs/).
    assert {p.name for p in tmp_path.iterdir()} <= {"data", "runs"}
    ignored = (ROOT / ".gitignore").read_text().split()
    assert {"data/", "runs/"} <= set(ignored)


def test_gitignore_lists_no_tracked_file():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (e.g. an sdist): no tracked files to compare")
    result = subprocess.run(["git", "ls-files", "--cached", "--ignored", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f".gitignore matches tracked files:\n{result.stdout}"
