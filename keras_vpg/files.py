"""Where a run's files go, and crash-safe writing of them (no Keras import, so the
plotting CLI stays light)."""

from __future__ import annotations

import os
import threading
import time
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


def run_directory(exp_name: str, seed: int | None = None, data_dir: str | os.PathLike | None = None,
                  datestamp: bool = False) -> Path:
    """Where a run writes, as Spinning Up places it: ``data_dir/exp_name/exp_name_s<seed>``.

    With ``datestamp``: ``data_dir/YYYY-MM-DD_exp_name/YYYY-MM-DD_HH-MM-SS-exp_name_s<seed>``;
    without a seed: ``data_dir/exp_name``. ``data_dir`` defaults to ``data``.
    """
    folder = (time.strftime("%Y-%m-%d_") if datestamp else "") + exp_name
    path = Path(data_dir or "data") / folder
    if seed is not None:
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S-") if datestamp else ""
        path = path / f"{stamp}{exp_name}_s{seed}"
    return path
