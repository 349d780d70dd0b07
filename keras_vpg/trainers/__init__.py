"""Backend trainers: one module per Keras backend, behind :class:`Trainer`."""

from __future__ import annotations

import importlib

import keras

from keras_vpg.mpi import local_ranks, usable_cores
from keras_vpg.trainers.base import (
    APPLIED_SETTINGS,
    UPDATE_METRICS,
    Allreduce,
    Trainer,
    requested_threads,
)

_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def _configure_threads() -> None:
    """Apply the active backend's thread/dispatch defaults (``KERAS_VPG_THREADS=0``: none).

    Runs at import, before the backend has computed anything (some settings are
    fixed from then on). See each backend module's ``configure_threads``. Under
    ``mpirun`` with several ranks on this machine, and no ``KERAS_VPG_THREADS``,
    each rank takes its share of the cores (TensorFlow's thread pools otherwise
    size themselves to the whole machine on every rank: 136 -> 81 ms per
    HalfCheetah-v5 update with 2 ranks on 2 cores).
    """
    threads = requested_threads()
    ranks_here = local_ranks()
    if threads is None and ranks_here > 1:
        threads = max(1, usable_cores() // ranks_here)
    backend = keras.backend.backend()
    if threads == 0 or backend not in _MODULES:
        return
    module = importlib.import_module(f"keras_vpg.trainers.{_MODULES[backend]}")
    APPLIED_SETTINGS.update(module.configure_threads(threads))


_configure_threads()

__all__ = ["UPDATE_METRICS", "Allreduce", "Trainer", "get_trainer"]


def get_trainer(ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce=None) -> Trainer:
    """The :class:`Trainer` of the active Keras backend."""
    backend = keras.backend.backend()
    if backend not in _MODULES:
        raise RuntimeError(
            f"Keras backend {backend!r} is not supported by keras-vpg; set KERAS_BACKEND "
            f"to one of {sorted(_MODULES)}"
        )
    module = importlib.import_module(f"keras_vpg.trainers.{_MODULES[backend]}")
    return module.BackendTrainer(ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce)
