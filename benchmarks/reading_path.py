"""How much of the package a reader follows to understand one epoch (issue #22).

Method, the same for keras-vpg and for Spinning Up:

1. Run training on CartPole-v1 (one process, an MLP, default hyperparameters)
   with a profile function installed in every thread (``sys.setprofile`` and
   ``threading.setprofile`` before anything starts), recording each Python code
   object entered while a window is open.
2. Keep the code objects whose file is in the package (``keras_vpg/`` or
   Spinning Up's ``spinup/``), leaving out module bodies and class bodies (they
   run at import, not on the path of training).
3. Each function counts with its whole source span (decorators included);
   lambdas and comprehensions with the lines of their code object. Per file,
   take the union of these spans and count the lines that are neither blank,
   nor comment-only, nor part of a docstring. So the count rewards less code,
   never fewer explanations.

Windows measured, each in a fresh subprocess per backend:

- ``construction + first epoch``: ``VPG(...)`` then ``fit(epochs=1)``
  (Spinning Up: ``vpg(..., epochs=1)``, which also builds everything);
- ``steady-state epoch``: inside ``fit(epochs=4)``, from the start of epoch
  1's ``on_epoch_end`` to the start of epoch 2's -- one full period of the loop
  after a warm-up epoch, whatever runs in the background included.

Also printed: the package's total code lines (same filter over every file).
Spinning Up's figure is printed beside ours when its checkout is present
(``--spinup-dir``, default ``/work/spinningup``); it runs with the old-gym shims
of :mod:`spinningup_timing` (nothing of Spinning Up is copied here).

Run::

    python benchmarks/reading_path.py                      # every backend, + Spinning Up
    python benchmarks/reading_path.py --backends jax --detail   # per-file lines
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import threading
import tokenize
from collections.abc import Iterable
from pathlib import Path
from types import CodeType

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent / "keras_vpg"
BACKENDS = ("tensorflow", "jax", "torch")
STEPS_PER_EPOCH = 4000


# -- counting ------------------------------------------------------------------------------
def _docstring_lines(tree: ast.AST) -> set[int]:
    """Line numbers of every module, class and function docstring."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def code_lines(path: Path, span: Iterable[int] | None = None) -> int:
    """Lines of ``path`` (within ``span`` if given) that are code: not blank,
    not comment-only, not in a docstring."""
    source = path.read_text()
    text_lines = source.splitlines()
    skip = _docstring_lines(ast.parse(source))
    # Comment-only lines, from the tokenizer (a '#' inside a string is not a comment).
    code_on = set()
    with open(path, "rb") as f:
        for token in tokenize.tokenize(f.readline):
            if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE,
                                  tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING,
                                  tokenize.ENDMARKER):
                code_on.update(range(token.start[0], token.end[0] + 1))
    wanted = range(1, len(text_lines) + 1) if span is None else span
    return sum(1 for n in set(wanted) if n in code_on and n not in skip)


def _function_spans(path: Path) -> dict[int, tuple[int, int]]:
    """``{first line of the code object: (first, last) line}`` of every def in ``path``."""
    spans = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            spans[first] = (first, node.end_lineno)
    return spans


def summarize(codes: Iterable[tuple[str, int, str, int, int]], root: Path) -> dict:
    """Files, functions and code lines of the executed code objects under ``root``.

    ``codes``: ``(filename, co_firstlineno, co_name, min line, max line)``.
    """
    per_file: dict[Path, set[int]] = {}
    functions = set()
    span_cache: dict[Path, dict[int, tuple[int, int]]] = {}
    root = root.resolve()
    for filename, first, name, low, high in codes:
        path = Path(filename).resolve()
        if root not in path.parents or name == "<module>":
            continue
        spans = span_cache.setdefault(path, _function_spans(path))
        if first in spans:  # a def: its whole span
            start, end = spans[first]
            functions.add((path, first))
        elif name.startswith("<"):  # lambda, comprehension: its own lines
            start, end = low, high
        else:  # a class body (runs at import)
            continue
        per_file.setdefault(path, set()).update(range(start, end + 1))
    lines = {str(p.relative_to(root.parent)): code_lines(p, s) for p, s in per_file.items()}
    return {"files": len(lines), "functions": len(functions),
            "code_lines": sum(lines.values()), "per_file": dict(sorted(lines.items()))}


def package_lines(root: Path = PACKAGE) -> tuple[int, int]:
    """(code lines, all non-blank lines) of every ``.py`` file under ``root``."""
    code = total = 0
    for path in sorted(root.rglob("*.py")):
        code += code_lines(path)
        total += sum(1 for line in path.read_text().splitlines() if line.strip())
    return code, total


# -- recording (in the worker process) -----------------------------------------------------
class Recorder:
    """A profile function for every thread, recording code objects while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.seen: set[CodeType] = set()

    def __call__(self, frame, event, arg):
        if event == "call" and self.on:
            self.seen.add(frame.f_code)

    def install(self) -> None:
        sys.setprofile(self)
        threading.setprofile(self)

    def codes(self) -> list[tuple[str, int, str, int, int]]:
        out = []
        for code in self.seen:
            lines = [line for _, _, line in code.co_lines() if line]
            first = code.co_firstlineno
            out.append((code.co_filename, first, code.co_name,
                        min(lines, default=first), max(lines, default=first)))
        return out


def keras_vpg_worker(window: str) -> list:
    """Record one window of a CartPole-v1 run of keras-vpg (defaults, one process)."""
    import gymnasium as gym
    import keras

    from keras_vpg.agent import VPG

    recorder = Recorder()
    recorder.install()
    out = tempfile.mkdtemp(prefix="reading_path_")
    logger_kwargs = dict(output_dir=out, exp_name="reading_path")

    def env_fn():
        return gym.make("CartPole-v1")

    if window == "first":
        recorder.on = True
        VPG(env_fn, logger_kwargs=logger_kwargs).fit(epochs=1)
        recorder.on = False
    else:
        class Window(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 1:
                    recorder.on = True
                elif epoch == 2:
                    recorder.on = False

        VPG(env_fn, logger_kwargs=logger_kwargs).fit(epochs=4, callbacks=[Window()])
    sys.setprofile(None)
    threading.setprofile(None)
    return recorder.codes()


def spinup_worker(spinup_dir: str) -> list:
    """Record Spinning Up's ``vpg(..., epochs=1)`` on CartPole-v1 (construction included)."""
    sys.path.insert(0, str(HERE))
    from spinningup_timing import install_spinup_shims

    install_spinup_shims(spinup_dir, seed=0)
    import gym  # the shim
    from spinup.algos.pytorch.vpg.vpg import vpg

    recorder = Recorder()
    recorder.install()
    recorder.on = True
    vpg(lambda: gym.make("CartPole-v1"), epochs=1,
        logger_kwargs=dict(output_dir=tempfile.mkdtemp(prefix="reading_path_spinup_")))
    recorder.on = False
    sys.setprofile(None)
    threading.setprofile(None)
    return recorder.codes()


# -- driver --------------------------------------------------------------------------------
def run_worker(args: list[str], backend: str | None = None) -> list:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(HERE.parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    if backend:
        env["KERAS_BACKEND"] = backend
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        subprocess.run([sys.executable, __file__, "--worker", *args, "--result", result.name],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        return json.loads(Path(result.name).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--spinup-dir", default="/work/spinningup")
    parser.add_argument("--detail", action="store_true", help="code lines per file")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        kind, *rest = args.worker
        codes = spinup_worker(*rest) if kind == "spinup" else keras_vpg_worker(kind)
        Path(args.result).write_text(json.dumps(codes))
        return

    rows = []
    spinup = Path(args.spinup_dir)
    if (spinup / "spinup" / "algos" / "pytorch" / "vpg" / "vpg.py").exists():
        found = summarize(run_worker(["spinup", str(spinup)]), spinup / "spinup")
        rows.append(("Spinning Up vpg(..., epochs=1), construction included", found))
    for backend in args.backends:
        for window, label in (("first", "VPG(...) + fit(epochs=1)"),
                              ("steady", "one steady-state epoch")):
            found = summarize(run_worker([window], backend), PACKAGE)
            rows.append((f"keras-vpg {backend}: {label}", found))

    print("| | files | functions | code lines |\n|---|---|---|---|")
    for label, found in rows:
        print(f"| {label} | {found['files']} | {found['functions']} | {found['code_lines']:,} |")
    code, total = package_lines()
    print(f"\nkeras_vpg/ in total: {code:,} code lines ({total:,} non-blank lines with docs "
          "and comments)")
    if args.detail:
        for label, found in rows:
            print(f"\n{label}:")
            for name, lines in found["per_file"].items():
                print(f"  {lines:5d}  {name}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"rows": [dict(label=label, **found) for label, found in rows],
             "package_code_lines": code, "package_lines": total}, indent=1))


if __name__ == "__main__":
    main()
