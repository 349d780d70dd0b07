"""Backend trainers: one module per Keras backend, behind :class:`Trainer`."""

from __future__ import annotations

import importlib

import keras

from keras_vpg.trainers.base import UPDATE_METRICS, Allreduce, Trainer

_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}

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
