"""Choose the Keras backend before Keras is imported (runs first in ``keras_vpg/__init__``).

- ``keras-vpg ... --backend jax`` / ``python -m keras_vpg ... --backend jax`` sets
  ``KERAS_BACKEND``: the flag must act before the package import loads Keras.
- With no ``KERAS_BACKEND`` and no ``~/.keras/keras.json``, Keras defaults to
  TensorFlow and fails to import without it; pick an installed backend instead
  (``pip install "keras-vpg[jax]"`` alone then works).
"""

from __future__ import annotations

import importlib.util
import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")


def _cli_backend_flag(argv: list[str]) -> str | None:
    launched_as_cli = (
        (len(argv) > 2 and argv[1] == "-m" and argv[2] == "keras_vpg")
        or (len(argv) > 1 and os.path.basename(argv[1]) == "keras-vpg")
        or os.path.basename(argv[0]) == "keras-vpg"
    )
    if not launched_as_cli:
        return None
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--backend="):
            return arg.split("=", 1)[1]
    return None


def select_backend() -> None:
    """Set ``KERAS_BACKEND`` from the CLI flag, or to an installed backend if Keras's won't load."""
    if "keras" in sys.modules:
        return
    flag = _cli_backend_flag(list(getattr(sys, "orig_argv", sys.argv)))
    if flag in BACKENDS:
        os.environ["KERAS_BACKEND"] = flag
        return
    keras_json = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")),
                              "keras.json")
    if os.environ.get("KERAS_BACKEND") or os.path.exists(keras_json):
        return
    if importlib.util.find_spec("tensorflow") is None:
        for backend in ("jax", "torch"):
            if importlib.util.find_spec(backend) is not None:
                os.environ["KERAS_BACKEND"] = backend
                return
