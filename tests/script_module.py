"""The repository's root, and a script of the repository (benchmarks/, tests/golden/)
loaded as a module, for the tests that call its functions: the scripts are not a package,
and may import the scripts beside them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_script(relative_path: str) -> ModuleType:
    """The module of ``ROOT / relative_path``, named after the file, its folder importable
    while it loads."""
    path = ROOT / relative_path
    saved_path = sys.path[:]  # the script may add entries of its own
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved_path
    return module
