"""Backend trainers: one module per Keras backend, behind :class:`Trainer`."""

from __future__ import annotations

import importlib

import keras

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
    fixed from then on). See each backend module's ``configure_threads``.
    """
    threads = requested_threads()
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
