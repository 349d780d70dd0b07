"""keras-vpg: Vanilla Policy Gradient with GAE-Lambda for Keras 3 (TensorFlow, JAX, PyTorch).

Importing the package changes nothing in the process and does not import Keras:
the public names below are loaded on first use (PEP 562), so ``keras_vpg.cli``
and ``keras_vpg.plot`` start without a Keras backend. On that first use, if
Keras is not imported yet and the backend it would pick (``KERAS_BACKEND``,
else ``keras.json``, else TensorFlow) is not installed, ``KERAS_BACKEND`` is
set to the first installed one of jax/torch/tensorflow, with a one-line notice
on stderr (see ``keras_vpg._backend``); that is the only change keras-vpg makes
to the process on its own.

``keras.saving.load_model`` finds keras-vpg's classes once they are registered,
i.e. once ``keras_vpg.actor_critic`` is imported: ``import keras`` before
``import keras_vpg`` (the usual order) does it at import, as Keras then has its
backend already; otherwise the first use of any name below does.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from keras_vpg._version import __version__ as __version__

#: Public name -> module defining it (imported on first access).
_EXPORTS = {
    "VPG": "keras_vpg.agent",
    "vpg": "keras_vpg.agent",
    "ActorCritic": "keras_vpg.actor_critic",
    "MLPActorCritic": "keras_vpg.actor_critic",
    "Categorical": "keras_vpg.distributions",
    "DiagGaussian": "keras_vpg.distributions",
    "Distribution": "keras_vpg.distributions",
    "EvalCallback": "keras_vpg.callbacks",
    "TensorBoardLogger": "keras_vpg.callbacks",
    "evaluate_policy": "keras_vpg.callbacks",
    "ExperimentGrid": "keras_vpg.grid",
    "load_config": "keras_vpg.config",
    "export": "keras_vpg.serving",
    "load_policy_and_env": "keras_vpg.serving",
    "run_policy": "keras_vpg.serving",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time see __getattr__
    from keras_vpg.actor_critic import ActorCritic as ActorCritic
    from keras_vpg.actor_critic import MLPActorCritic as MLPActorCritic
    from keras_vpg.agent import VPG as VPG
    from keras_vpg.agent import vpg as vpg
    from keras_vpg.callbacks import EvalCallback as EvalCallback
    from keras_vpg.callbacks import TensorBoardLogger as TensorBoardLogger
    from keras_vpg.callbacks import evaluate_policy as evaluate_policy
    from keras_vpg.config import load_config as load_config
    from keras_vpg.distributions import Categorical as Categorical
    from keras_vpg.distributions import DiagGaussian as DiagGaussian
    from keras_vpg.distributions import Distribution as Distribution
    from keras_vpg.grid import ExperimentGrid as ExperimentGrid
    from keras_vpg.serving import export as export
    from keras_vpg.serving import load_policy_and_env as load_policy_and_env
    from keras_vpg.serving import run_policy as run_policy


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'keras_vpg' has no attribute {name!r}")
    from keras_vpg._backend import ensure_backend

    ensure_backend()  # a no-op once Keras is imported
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


if "keras" in sys.modules:  # Keras's backend is already fixed: register the classes now
    importlib.import_module("keras_vpg.actor_critic")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
