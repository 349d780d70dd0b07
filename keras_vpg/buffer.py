"""Rollout storage with GAE-Lambda advantages and rewards-to-go (numpy).

The buffer holds ``T`` steps of ``N`` vectorized environments as arrays of
shape ``(T, N, ...)``; each environment's column is cut into paths (episode
segments) by :meth:`VPGBuffer.finish_path`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_vpg import mpi


def discount_cumsum(x: np.ndarray, discount: float) -> np.ndarray:
    """Discounted cumulative sums: ``y[t] = sum_k discount**k * x[t + k]``.

    Parameters
    ----------
    x : array of shape ``(L,)``
    discount : float

    Returns
    -------
    array of shape ``(L,)``, float64
    """
    out = np.empty(len(x), dtype=np.float64)
    running = 0.0
    for t, value in zip(range(len(x) - 1, -1, -1), x[::-1].tolist()):
        running = value + discount * running
        out[t] = running
    return out


class VPGBuffer:
    """Stores one epoch of interaction and computes GAE-Lambda advantages.

    Parameters
    ----------
    obs_shape : tuple of int
        Shape of one observation.
    act_shape : tuple of int
        Shape of one action (``()`` for Discrete).
    act_dtype : numpy dtype
        ``int32`` for Discrete, ``float32`` for Box.
    steps_per_env : int
        ``T``: rows per epoch (steps of the vector env).
    num_envs : int
        ``N``: environments stepped together.
    gamma, lam : float
        Discount and GAE-Lambda parameters.
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        act_shape: Sequence[int],
        act_dtype,
        steps_per_env: int,
        num_envs: int,
        gamma: float = 0.99,
        lam: float = 0.95,
    ):
        shape = (steps_per_env, num_envs)
        self.obs = np.zeros(shape + tuple(obs_shape), dtype=np.float32)
        self.act = np.zeros(shape + tuple(act_shape), dtype=act_dtype)
        self.rew = np.zeros(shape, dtype=np.float32)
        self.val = np.zeros(shape, dtype=np.float32)
        self.logp = np.zeros(shape, dtype=np.float32)
        self.adv = np.zeros(shape, dtype=np.float32)
        self.ret = np.zeros(shape, dtype=np.float32)
        self.gamma, self.lam = gamma, lam
        self.max_size = steps_per_env
        self.num_envs = num_envs
        self.ptr = 0
        self.path_start = np.zeros(num_envs, dtype=np.int64)

    def store(self, obs, act, rew, val, logp) -> None:
        """Append one row: arrays with leading dimension ``N``."""
        if self.ptr >= self.max_size:
            raise RuntimeError("VPGBuffer is full: call get() before storing more steps")
        t = self.ptr
        self.obs[t] = obs
        self.act[t] = act
        self.rew[t] = rew
        self.val[t] = val
        self.logp[t] = logp
        self.ptr += 1

    def finish_path(self, env_index: int, last_val: float = 0.0) -> None:
        """Close the current path of environment ``env_index``.

        ``last_val`` is 0 when the episode terminated, else V of the true final
        observation (truncation, ``max_ep_len`` or the epoch cut-off), so the
        return is bootstrapped beyond the cut.
        """
        start, end = int(self.path_start[env_index]), self.ptr
        if end == start:
            return
        rews = np.append(self.rew[start:end, env_index], last_val).astype(np.float64)
        vals = np.append(self.val[start:end, env_index], last_val).astype(np.float64)
        deltas = rews[:-1] + self.gamma * vals[1:] - vals[:-1]
        self.adv[start:end, env_index] = discount_cumsum(deltas, self.gamma * self.lam)
        self.ret[start:end, env_index] = discount_cumsum(rews, self.gamma)[:-1]
        self.path_start[env_index] = end

    def unfinished_envs(self) -> np.ndarray:
        """Indices of environments whose current path holds steps not yet finished."""
        return np.flatnonzero(self.path_start < self.ptr)

    def get(self) -> dict[str, np.ndarray]:
        """All ``T * N`` steps, flattened, with advantages normalized across ranks.

        Every path must be finished. Returns a dict with ``obs (M, *O)``,
        ``act (M, ...)``, ``ret (M,)``, ``adv (M,)`` and ``logp (M,)``, ``M = T * N``.
        Resets the buffer for the next epoch.
        """
        if self.ptr != self.max_size:
            raise RuntimeError(f"VPGBuffer holds {self.ptr} of {self.max_size} rows; not full")
        if len(self.unfinished_envs()):
            raise RuntimeError("finish_path must be called for every env before get()")
        self.ptr = 0
        self.path_start[:] = 0
        size = self.max_size * self.num_envs
        adv_mean, adv_std = mpi.mpi_statistics_scalar(self.adv)
        adv = (self.adv - adv_mean) / (adv_std + 1e-8)
        return {
            "obs": self.obs.reshape((size,) + self.obs.shape[2:]),
            "act": self.act.reshape((size,) + self.act.shape[2:]),
            "ret": self.ret.reshape(size),
            "adv": adv.reshape(size).astype(np.float32),
            "logp": self.logp.reshape(size),
        }
