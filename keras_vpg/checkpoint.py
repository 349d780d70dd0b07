"""The on-disk format of full checkpoints: named arrays, random streams and metadata.

A checkpoint is a directory ``RUN_DIR/checkpoints/ckpt_<E>/`` holding the state
after ``E`` completed epochs (epochs ``0 .. E-1``; a resume runs epoch ``E`` next):

- ``arrays.npz``: named numpy arrays, stored raw (bit-exact, any size);
- ``state.json``, written last: the metadata the writer gives (JSON: the epoch,
  counters, random streams, the run's config...), the format version, and the
  size and SHA-256 of ``arrays.npz``.

Why a directory: the arrays stay in numpy's own format and the metadata readable
JSON; the directory is written under a temporary name and renamed into place in
one atomic ``rename``, so a kill at any moment leaves either the complete new
checkpoint or none (the previous ones untouched). The hash catches a checkpoint
damaged afterwards (a truncated copy, a full disk): :func:`latest_checkpoint`
then warns and takes the previous one.

This module is a leaf: it knows nothing of the agent. What goes into a
checkpoint of a VPG run, and how a run resumes from one, is in
:mod:`keras_vpg.agent` (``VPG.restore``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINTS = "checkpoints"
FORMAT_VERSION = 1
_ARRAYS, _STATE = "arrays.npz", "state.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (damaged, or for another model)."""


class NonFiniteError(FloatingPointError):
    """A non-finite loss or weight: training stopped, nothing non-finite was saved.

    ``all_ranks``: under MPI every rank sees the same (averaged) losses and
    weights, so every rank raises it at the same point.
    """

    all_ranks = True


# -- where checkpoints are -------------------------------------------------------------------
def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    """``RUN_DIR/checkpoints``."""
    return Path(run_dir) / CHECKPOINTS


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``[(epoch, path)]`` of the ``ckpt_<epoch>`` directories, oldest first (unchecked)."""
    directory = checkpoint_dir(run_dir)
    if not directory.is_dir():
        return []
    # iterdir, not glob: an unreadable directory is an error, not "no checkpoints".
    numbered = [(p.name.removeprefix("ckpt_"), p) for p in directory.iterdir()
                if p.name.startswith("ckpt_")]
    return sorted((int(number), p) for number, p in numbered if number.isdecimal() and p.is_dir())


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The checkpoint's ``state.json`` and arrays, after checking its hash.

    Raises
    ------
    CheckpointError
        Naming the file that is missing, truncated or altered.
    """
    state_file, arrays_file = Path(path, _STATE), Path(path, _ARRAYS)
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{state_file} is missing or damaged ({error})") from error
    if state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{state_file}: unknown checkpoint format {state.get('format')!r}")
    try:
        data = arrays_file.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{arrays_file} is missing ({error})") from error
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != state["arrays_bytes"] or digest != state["arrays_sha256"]:
        raise CheckpointError(f"{arrays_file} is truncated or altered ({len(data)} bytes, "
                              f"{state['arrays_bytes']} written)")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return state, arrays


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest usable checkpoint of ``run_dir``, or ``None`` if there is none.

    A damaged newer checkpoint is skipped with a warning naming it.
    """
    for _epoch, path in reversed(list_checkpoints(run_dir)):
        try:
            read_checkpoint(path)
            return path
        except CheckpointError as error:
            warnings.warn(f"skipping checkpoint {path}: {error}; trying the previous one",
                          stacklevel=2)
    return None


# -- saving ----------------------------------------------------------------------------------
def write_checkpoint(run_dir: str | os.PathLike, epoch: int, arrays: Mapping[str, np.ndarray],
                     state: Mapping[str, Any], keep: int) -> Path:
    """Write ``RUN_DIR/checkpoints/ckpt_<epoch>`` atomically; keep the ``keep`` newest.

    Parameters
    ----------
    run_dir : str or path
    epoch : int
        Completed epochs (the directory's number).
    arrays : mapping of str to numpy array
        Stored bit-exact in ``arrays.npz`` (names may contain ``/``).
    state : mapping
        JSON-able metadata for ``state.json`` (``format`` and the hash are added).
    keep : int

    Returns
    -------
    Path
        The checkpoint directory.

    Raises
    ------
    NonFiniteError
        If a floating-point array holds NaN or Inf (the last good checkpoint is
        never replaced by it).
    """
    bad = [name for name, value in arrays.items()
           if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all()]
    if bad:
        raise NonFiniteError(f"not saving a checkpoint of epoch {epoch}: "
                             f"non-finite values in {bad}")
    directory = checkpoint_dir(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".tmp_ckpt_{epoch}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        np.savez(tmp / _ARRAYS, **arrays)
        data = (tmp / _ARRAYS).read_bytes()
        state = dict(state, format=FORMAT_VERSION, arrays_bytes=len(data),
                     arrays_sha256=hashlib.sha256(data).hexdigest())
        (tmp / _STATE).write_text(json.dumps(state, indent=1))
        for name in (_ARRAYS, _STATE):
            _fsync(tmp / name)
        final = directory / f"ckpt_{epoch}"
        if final.exists():  # same epoch again (e.g. a damaged one): swap, then remove the old
            old = directory / f".old_ckpt_{epoch}_{os.getpid()}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old)
        else:
            os.rename(tmp, final)
        _fsync(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Keep the ``keep`` newest checkpoints; remove leftovers of interrupted writes.
    for entry in directory.iterdir():
        leftover = entry.name.startswith((".tmp_ckpt_", ".old_ckpt_"))
        if leftover and entry.name.rsplit("_", 1)[-1] != str(os.getpid()):  # not this process's
            shutil.rmtree(entry, ignore_errors=True)
    checkpoints = list_checkpoints(directory.parent)
    for _, path in checkpoints[: max(0, len(checkpoints) - keep)]:
        shutil.rmtree(path)
    return final


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- resuming --------------------------------------------------------------------------------
def set_aside_newer(path: str | os.PathLike, epoch: int) -> None:
    """Move checkpoints newer than ``epoch`` (not resumed) to ``checkpoints/superseded_<time>/``.

    (Later pruning could otherwise remove them.) ``path``: the checkpoint resumed.
    """
    path = Path(path)
    newer = [p for e, p in list_checkpoints(path.parent.parent) if e > epoch]
    if not newer:
        return
    aside = path.parent / f"superseded_{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir(exist_ok=True)
    for p in newer:
        os.rename(p, aside / p.name)
    warnings.warn(f"checkpoints newer than {path.name} (not resumed) moved to {aside}",
                  stacklevel=3)


def is_usable(path: str | os.PathLike) -> bool:
    """Whether the checkpoint at ``path`` reads back with a matching hash."""
    try:
        read_checkpoint(path)
    except CheckpointError:
        return False
    return True
