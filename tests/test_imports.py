"""No import circles in keras_vpg, function-level imports included (DESIGN section 2).

A module never imports one that imports it, directly or through others: a reader
can then read the package bottom up, and no import order can half-initialize a
module. The graph is read from the source with ``ast`` (no import runs), so an
import inside a function counts as much as one at the top of a file. Edges:

- ``import keras_vpg.a.b`` and ``from keras_vpg.a import b`` (``b`` a module) ->
  ``keras_vpg.a.b``; ``from keras_vpg.a import name`` (not a module) -> ``keras_vpg.a``;
  relative imports resolved the same way;
- ``importlib.import_module("keras_vpg...")`` with a literal name, or an f-string
  (every module whose name starts with its literal prefix);
- the package's lazy public names (``keras_vpg._EXPORTS``): ``keras_vpg`` ->
  each module listed there.

Importing a submodule also runs its package's ``__init__`` first; that implicit
step is not an edge (else every package whose ``__init__`` imports a submodule
would be a circle).
"""

from __future__ import annotations

import ast
from pathlib import Path

from script_module import ROOT

PACKAGE = ROOT / "keras_vpg"


def module_names(root: Path = PACKAGE) -> dict[str, Path]:
    names = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = module_names(root)
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        found: list[str] = []  # candidate module names; kept if they are modules
        target = found.append

        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target(alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    if f"{source}.{alias.name}" in modules:
                        target(f"{source}.{alias.name}")
                    else:
                        target(source)
            elif (isinstance(node, ast.Call) and node.args
                  and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"):
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    target(arg.value)
                elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(
                        arg.values[0], ast.Constant):
                    prefix = arg.values[0].value
                    edges.update(m for m in modules if m.startswith(prefix) and m != name)
            elif (name == "keras_vpg" and isinstance(node, ast.Assign)
                  and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets)):
                for value in node.value.values:
                    target(value.value)
        edges.update(m for m in found if m in modules)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_checkpoint_format_is_a_leaf():
    # The on-disk format knows nothing of VPG (or of any other module of the package).
    assert import_graph()["keras_vpg.checkpoint"] == set()


def test_the_graph_sees_function_level_and_dynamic_imports(tmp_path):
    package = tmp_path / "keras_vpg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text('_EXPORTS = {"A": "keras_vpg.a"}\n')
    (package / "a.py").write_text("def f():\n    from keras_vpg import b\n")
    (package / "b.py").write_text("import importlib\n"
                                  "def g(x):\n    importlib.import_module(f'keras_vpg.sub.{x}')\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("def h():\n    from ..a import f\n")
    graph = import_graph(package)
    assert graph["keras_vpg"] == {"keras_vpg.a"}
    assert graph["keras_vpg.b"] == {"keras_vpg.sub.c"}
    assert find_cycle(graph) == ["keras_vpg.a", "keras_vpg.b", "keras_vpg.sub.c", "keras_vpg.a"]
