"""Backend trainers: one module per Keras backend, behind :class:`Trainer`.

Importing this package changes nothing in the process. The thread and dispatch
defaults of the active backend are applied by :func:`configure_threads`, which
:class:`keras_vpg.VPG` calls when the first agent of the process is built
(``VPG(tune_threads=False)`` or ``KERAS_VPG_THREADS=0`` turn it off). A program
that wants them to act from its very start (e.g. TensorFlow's ``XLA_FLAGS``, read
at its first XLA compilation) calls it itself, right after importing keras_vpg.
"""

from __future__ import annotations

import importlib
import os

import keras

from keras_vpg.mpi import local_ranks, usable_cores
from keras_vpg.trainers.base import (
    APPLIED_SETTINGS,
    UPDATE_METRICS,
    Allreduce,
    Trainer,
    requested_threads,
)

#: The supported Keras backends, each with its module here.
_BACKENDS = ("tensorflow", "jax", "torch")
#: Environment variable: ``0`` turns keras-vpg's fast paths off (the plain Keras paths run).
FAST_PATHS_ENV = "KERAS_VPG_FAST_PATHS"

#: Whether :func:`configure_threads` has run in this process (it acts once).
_configured = False

__all__ = [
    "UPDATE_METRICS", "Allreduce", "Trainer", "configure_threads", "fast_paths_enabled",
    "get_trainer",
]


def configure_threads() -> dict[str, str]:
    """Apply the active backend's thread/dispatch defaults, once per process.

    - torch: one intra-op thread while collecting, all usable cores in the
      update, one inter-op thread (unless ``OMP_NUM_THREADS`` is set);
    - TensorFlow: ``--xla_cpu_multi_thread_eigen=false`` in ``XLA_FLAGS`` (unless
      that flag is there), and thread-pool sizes when a count is chosen;
    - JAX: synchronous CPU dispatch (unless ``JAX_CPU_ENABLE_ASYNC_DISPATCH`` is set).

    See each backend module's ``configure_threads`` for the reasons. Some settings
    only act before the backend's first computation, so call this early (the CLI
    does; :class:`keras_vpg.VPG` does when it is built). ``KERAS_VPG_THREADS=N``
    chooses the thread count, ``KERAS_VPG_THREADS=0`` leaves every default alone.
    Under ``mpirun`` with several ranks on this machine, and no
    ``KERAS_VPG_THREADS``, each rank takes its share of the cores (TensorFlow's
    pools otherwise size themselves to the whole machine on every rank).

    Returns
    -------
    dict
        The settings applied (also in ``keras_vpg.trainers.base.APPLIED_SETTINGS``);
        later calls apply nothing more and return the same.

    Raises
    ------
    ValueError
        If ``KERAS_VPG_THREADS`` is not a non-negative integer.
    """
    global _configured
    threads = requested_threads()  # checked at every call: a bad value is always reported
    if _configured:
        return dict(APPLIED_SETTINGS)
    _configured = True
    ranks_here = local_ranks()
    if threads is None and ranks_here > 1:
        threads = max(1, usable_cores() // ranks_here)
    backend = keras.backend.backend()
    if threads != 0 and backend in _BACKENDS:
        module = importlib.import_module(f"keras_vpg.trainers.{backend}")
        APPLIED_SETTINGS.update(module.configure_threads(threads))
    return dict(APPLIED_SETTINGS)


def fast_paths_enabled(requested: bool | None = None) -> bool:
    """``requested`` if given, else ``KERAS_VPG_FAST_PATHS`` (unset or ``1``: on; ``0``: off).

    Raises
    ------
    ValueError
        If the variable is set to anything but ``0`` or ``1``.
    """
    if requested is not None:
        return bool(requested)
    text = os.environ.get(FAST_PATHS_ENV, "").strip()
    if text not in ("", "0", "1"):
        raise ValueError(f"{FAST_PATHS_ENV} must be 0 or 1, got {text!r}")
    return text != "0"


def get_trainer(ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce=None,
                fast_paths: bool | None = None) -> Trainer:
    """The :class:`Trainer` of the active Keras backend.

    ``fast_paths``: see :class:`Trainer`; ``None`` reads :func:`fast_paths_enabled`.
    """
    backend = keras.backend.backend()
    if backend not in _BACKENDS:
        raise RuntimeError(
            f"Keras backend {backend!r} is not supported by keras-vpg; set KERAS_BACKEND "
            f"to one of {sorted(_BACKENDS)}"
        )
    module = importlib.import_module(f"keras_vpg.trainers.{backend}")
    return module.BackendTrainer(ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce,
                                 fast_paths=fast_paths_enabled(fast_paths))
