"""The sampler collection uses: the policy's actions and log-probs, and nothing else.

Collection needs only to sample from the current policy. Two paths, chosen once
per agent and recorded in ``config.json`` (``"sampler"``):

- ``"numpy-mlp"``: plain-MLP policies sampled in numpy on weights read once per
  chunk of collection (:class:`~keras_vpg.trainers.numpy_policy.NumpyPolicySampler`).
  At a few observations per call a framework's fixed cost per call dominates a
  small policy's time (see ``benchmarks/README.md``).
- ``"<backend>-compiled"``: the backend trainer's compiled batched call
  (``Trainer.sample``), for every other model, or when fast paths are off.

Fast paths are on unless ``VPG(fast_paths=False)`` or ``KERAS_VPG_FAST_PATHS=0``;
off, the suite runs on the plain paths (see :func:`fast_paths_enabled`).
"""

from __future__ import annotations

import os

import keras

from keras_vpg.actor_critic import ActorCritic
from keras_vpg.trainers.numpy_policy import NumpyPolicySampler

#: Environment variable: ``0`` turns keras-vpg's fast paths off (the plain Keras paths run).
FAST_PATHS_ENV = "KERAS_VPG_FAST_PATHS"


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


class PolicySampler:
    """``(action, logp)`` for a batch of observations, from the current policy.

    The path is chosen once, here: :attr:`begin`, :attr:`sample` and :attr:`end`
    are the chosen sampler's own methods, so collection calls them directly.

    Parameters
    ----------
    ac : ActorCritic
    trainer : keras_vpg.trainers.Trainer
        Its compiled ``sample`` (with ``begin_collection``/``end_collection``) is
        the path when numpy does not apply.
    fast_paths : bool
        Whether the numpy MLP path may be used.

    Attributes
    ----------
    begin : callable
        ``() -> None``, before a run of :attr:`sample` calls: reads the policy's
        current weights.
    sample : callable
        ``obs (B, *O) -> (action (B, ...), logp (B,))``, numpy in and out.
    end : callable
        ``() -> None``, after the run: drops cached weights, writes cached state
        (the seed) back.
    numpy : NumpyPolicySampler or None
        The numpy sampler, when it applies.
    path : str
        ``"numpy-mlp"`` or ``"<backend>-compiled"``.
    """

    def __init__(self, ac: ActorCritic, trainer, fast_paths: bool = True):
        self.numpy = NumpyPolicySampler.for_model(ac) if fast_paths else None
        if self.numpy is not None:
            self.path = "numpy-mlp"
            self.begin, self.sample, self.end = self.numpy.begin, self.numpy.sample, self.numpy.end
        else:
            self.path = f"{keras.backend.backend()}-compiled"
            self.begin, self.sample = trainer.begin_collection, trainer.sample
            self.end = trainer.end_collection
