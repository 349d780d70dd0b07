"""keras-vpg: Vanilla Policy Gradient with GAE-Lambda for Keras 3 (TensorFlow, JAX, PyTorch)."""

import os

from keras_vpg._backend import select_backend

select_backend()  # before Keras is imported: honours `keras-vpg --backend`
# TensorFlow's C++ start-up chatter hides the training output; set it to 0 to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_vpg.actor_critic import ActorCritic, MLPActorCritic
from keras_vpg.agent import VPG, vpg
from keras_vpg.callbacks import EvalCallback, TensorBoardLogger, evaluate_policy
from keras_vpg.distributions import Categorical, DiagGaussian, Distribution
from keras_vpg.grid import ExperimentGrid
from keras_vpg.logger import load_config
from keras_vpg.serving import export, load_policy_and_env, run_policy

__version__ = "0.1.0"

__all__ = [
    "VPG",
    "ActorCritic",
    "Categorical",
    "DiagGaussian",
    "Distribution",
    "EvalCallback",
    "ExperimentGrid",
    "MLPActorCritic",
    "TensorBoardLogger",
    "evaluate_policy",
    "export",
    "load_config",
    "load_policy_and_env",
    "run_policy",
    "vpg",
]
