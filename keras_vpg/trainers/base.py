"""The trainer interface and the losses every backend shares.

A trainer owns the compiled functions of one backend: the batched sampling
call used during collection, the batched value call, and the per-epoch update
(one policy-gradient step, then ``train_v_iters`` value steps, as two calls).
Backend differences live only in ``keras_vpg/trainers/<backend>.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from keras_vpg.actor_critic import ActorCritic
from keras_vpg.mpi import usable_cores

#: Maps a flat float32 gradient vector to its average over MPI ranks.
Allreduce = Callable[[np.ndarray], np.ndarray]

#: Keys of the metrics of :meth:`Trainer.update_policy` and :meth:`Trainer.update_value`,
#: in logging order.
UPDATE_METRICS = ("LossPi", "LossV", "DeltaLossPi", "DeltaLossV", "Entropy", "KL")


def policy_loss(ac: ActorCritic, obs, act, adv):
    """Spinning Up's policy loss ``-mean(logp(a|s) * adv)``.

    Returns ``(loss, logp (B,), entropy (B,))``.
    """
    dist = ac.distribution(obs)
    logp = dist.log_prob(act)
    return -ops.mean(logp * adv), logp, dist.entropy()


def value_loss(ac: ActorCritic, obs, ret, shards: int = 1):
    """Mean squared error of ``V(s)`` against the rewards-to-go ``ret (B,)``.

    ``obs (B, *O)`` have already been through the model's observation normalizer
    (see :meth:`Trainer.update_value`), so they go straight to ``ac.v_net``.

    With ``shards > 1`` the batch is cut into that many row blocks whose squared
    errors are summed separately: the same loss, written as independent chains
    that a compiled graph can run on different cores (XLA on CPU parallelizes
    the blocks, not the small matmuls inside one).
    """
    def value(x):
        return ops.reshape(ac.v_net(x), (-1,))

    rows = obs.shape[0]
    if shards <= 1 or rows is None or rows < shards:
        return ops.mean(ops.square(value(obs) - ret))
    cuts = [rows * i // shards for i in range(1, shards)]
    total = 0.0
    for obs_block, ret_block in zip(ops.split(obs, cuts), ops.split(ret, cuts)):
        total = total + ops.sum(ops.square(value(obs_block) - ret_block))
    return total / rows


def update_shards(allreduce) -> int:
    """Row blocks for the value loss in a compiled update (see :func:`value_loss`).

    Two when this process may use two or more cores, one under MPI (each rank
    has its core) or on one core. Measured on a 2-core machine, the 80 value
    steps on a 4000-row batch are faster with two blocks, slower with four
    (figures: benchmarks/README.md).
    """
    return 1 if allreduce is not None else min(2, usable_cores())


def policy_metrics(ac: ActorCritic, batch, loss_pi_old, entropy_old):
    """The policy step's statistics: ``LossPi`` and ``Entropy`` from before the step,
    ``DeltaLossPi`` and ``KL`` measured with the updated policy parameters.

    ``KL`` is the sample estimate ``mean(logp_old - logp_new)`` over the batch, and
    ``DeltaLossPi`` is new loss minus old loss (Spinning Up computes both before
    the update, so its logs read ~0).
    """
    loss_pi_new, logp_new, _ = policy_loss(ac, batch["obs"], batch["act"], batch["adv"])
    return {
        "LossPi": loss_pi_old,
        "DeltaLossPi": loss_pi_new - loss_pi_old,
        "Entropy": ops.mean(entropy_old),
        "KL": ops.mean(batch["logp"] - logp_new),
    }


def value_metrics(ac: ActorCritic, batch, loss_v_old):
    """``LossV`` before and ``DeltaLossV`` (new minus old) after the value steps.

    ``batch["obs"]`` is normalized already (see :meth:`Trainer.update_value`).
    """
    loss_v_new = value_loss(ac, batch["obs"], batch["ret"])
    return {"LossV": loss_v_old, "DeltaLossV": loss_v_new - loss_v_old}


class Trainer:
    """Compiled collection and update for one backend.

    Parameters
    ----------
    ac : ActorCritic
        The model; its variables are updated in place by :meth:`update_policy` and
        :meth:`update_value`.
    pi_optimizer, vf_optimizer : keras.optimizers.Optimizer
        Optimizers of the policy and of the value function.
    train_v_iters : int
        Value-function gradient steps per epoch.
    allreduce : callable or None
        Averages a flat float32 gradient vector across MPI ranks; ``None`` for
        one process.
    fast_paths : bool
        ``False``: plain Keras and the backend's plain compiled calls only (no
        PyTorch TorchScript value steps or plain-torch MLP calls, no JAX
        per-function compiler options); ``VPG(fast_paths=False)`` and
        ``KERAS_VPG_FAST_PATHS=0`` set it, with the numpy sampler off too.
    """

    def __init__(
        self,
        ac: ActorCritic,
        pi_optimizer: keras.optimizers.Optimizer,
        vf_optimizer: keras.optimizers.Optimizer,
        train_v_iters: int,
        allreduce: Allreduce | None = None,
        fast_paths: bool = True,
    ):
        self.ac = ac
        self.fast_paths = bool(fast_paths)
        self.pi_optimizer = pi_optimizer
        self.vf_optimizer = vf_optimizer
        self.train_v_iters = int(train_v_iters)
        self.allreduce = allreduce
        self.pi_variables = ac.pi_variables
        self.v_variables = ac.v_variables
        pi_optimizer.build(self.pi_variables)
        vf_optimizer.build(self.v_variables)

    def overlaps_with(self, sampler_path: str) -> bool:
        """Whether the value steps run well in a background thread while the next epoch
        is collected on ``sampler_path`` (measured per backend; see the backend modules)."""
        return False

    def sample(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sample actions for a batch of observations ``(B, *O)`` with the backend's call.

        Returns numpy ``(action (B, ...), logp (B,))``. Collection goes through
        :class:`keras_vpg.trainers.numpy_policy.PolicySampler`, which uses this path unless the
        numpy MLP path applies.
        """
        raise NotImplementedError

    def value(self, obs: np.ndarray) -> np.ndarray:
        """Values of a batch of observations ``(B, *O)``, numpy ``(B,)``.

        A compiled call compiles once per batch size: callers keep the sizes few
        (the epoch's ``T * N`` rows; the bootstrap batch padded to a power of two,
        :meth:`keras_vpg.buffer.Transitions.bootstrap_obs`).
        """
        raise NotImplementedError

    def update_policy(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One policy-gradient step on the whole batch.

        ``batch`` has ``obs (M, *O)``, ``act (M, ...)``, ``adv (M,)``, ``ret (M,)``
        and ``logp (M,)`` (log-probs under the policy that collected the data).
        Returns ``LossPi``, ``DeltaLossPi``, ``Entropy`` and ``KL`` (floats, this rank).
        Changes only the policy's variables and its optimizer's.
        """
        raise NotImplementedError

    def update_value(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """``train_v_iters`` value-function steps on ``obs (M, *O)`` and ``ret (M,)``.

        ``batch["obs"]`` has been through the observation normalizer already (by
        ``VPG._value_batch``, so the caller may update the normalizer while the
        steps run); other keys are ignored. Returns ``LossV`` and ``DeltaLossV``
        (floats, this rank). Reads and changes only the value network's variables
        and its optimizer's, so it may run in another thread while :meth:`sample`
        is called and the normalizer is updated (see :meth:`overlaps_with`).
        """
        raise NotImplementedError

    def begin_collection(self) -> None:
        """Called before a run of :meth:`sample` calls (may cache the policy's weights)."""

    def end_collection(self) -> None:
        """Called after it: drop cached weights, write cached state back."""


#: Environment variable: threads of the backend's math (0 leaves the backend's defaults).
THREADS_ENV = "KERAS_VPG_THREADS"

#: Thread settings applied by the backend's ``configure_threads`` (for the record and tests).
APPLIED_SETTINGS: dict[str, str] = {}


def requested_threads() -> int | None:
    """``KERAS_VPG_THREADS`` as an int (``None`` when unset; 0 means "leave the defaults").

    Raises
    ------
    ValueError
        If the variable is not a non-negative integer.
    """
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return None
    try:
        threads = int(text)
    except ValueError:
        threads = -1
    if threads < 0:
        raise ValueError(f"{THREADS_ENV} must be a non-negative integer, got {text!r}")
    return threads


def unpack_sample(bits: np.ndarray, batch: int, action_shape: tuple, action_dtype):
    """``(action, logp)`` from a packed ``uint32`` sampling output.

    The compiled call returns one flat vector (one device-to-host copy): the
    actions' bits ``(batch, *action_shape)`` of 32-bit ``action_dtype``, then
    ``batch`` float32 log-probs.
    """
    end = batch * int(np.prod(action_shape, dtype=int))
    action = bits[:end].view(action_dtype).reshape((batch, *action_shape))
    return action, bits[end:].view(np.float32)


def flat_concat(tensors):
    """Concatenate tensors into one flat vector (for a single allreduce call)."""
    return ops.concatenate([ops.reshape(t, (-1,)) for t in tensors], axis=0)


def split_like(flat, tensors):
    """Inverse of :func:`flat_concat`: views of ``flat`` shaped like ``tensors``."""
    out, start = [], 0
    for t in tensors:
        size = int(np.prod(t.shape))
        out.append(ops.reshape(flat[start : start + size], t.shape))
        start += size
    return out
