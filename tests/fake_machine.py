"""The environment of a machine that lacks some packages, for tests that run the CLI in a
subprocess as a new user would (test_first_contact, test_tensorboard_extra).

It needs no conftest: both modules run under ``--noconftest`` in their tox envs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

#: Variables of this process that would make the child unlike a new user's machine.
UNSET = ("KERAS_BACKEND", "KERAS_HOME", "KERAS_VPG_DEBUG")


def machine_env(root: Path, missing: tuple[str, ...], unset: tuple[str, ...] = UNSET
                ) -> dict[str, str]:
    """Environment variables of a machine under ``root``: a fresh HOME whose keras.json
    says ``"tensorflow"`` (as Keras writes it), and a ``sitecustomize`` that hides the
    ``missing`` packages (``None`` in ``sys.modules``, what Python does for a missing one).
    """
    (root / "home" / ".keras").mkdir(parents=True)
    (root / "home" / ".keras" / "keras.json").write_text(json.dumps({"backend": "tensorflow"}))
    (root / "hide").mkdir()
    (root / "hide" / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in missing))
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["HOME"] = str(root / "home")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.environ.get("PYTHONPATH"), str(root / "hide")) if p)
    return env
