"""Crash-safe file writing (no Keras import, so the plotting CLI stays light)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: never a half-written file.

    The temporary file sits in the same directory, is named after this process
    and thread (so concurrent writers never share one) and keeps ``path``'s
    suffix (Keras checks for ``.keras``); ``write`` creates it, with the usual
    permissions. It is removed if ``write`` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}{path.suffix}")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
