"""Rollout storage, and GAE-Lambda advantages and rewards-to-go as a pure function (numpy).

:class:`VPGBuffer` is passive: it holds ``T`` steps of ``N`` vectorized
environments as arrays of shape ``(T, N, ...)`` and records where each
environment's column is cut into paths (episode segments), with the true final
observation of each path that must be bootstrapped. It computes nothing: the
agent computes the values of those observations, then :func:`gae_lambda` the
advantages and rewards-to-go, then normalizes the advantages (over all ranks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def gae_lambda(rewards: np.ndarray, values: np.ndarray, path_ends: Sequence[tuple[int, int, float]],
               gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """GAE-Lambda advantages and rewards-to-go of paths cut in ``N`` columns of ``T`` steps.

    Backwards along each path, in float64::

        delta_t = r_t + gamma * V_{t+1} - V_t
        adv_t   = delta_t + gamma * lam * adv_{t+1}
        ret_t   = r_t + gamma * ret_{t+1}

    with ``V`` and ``ret`` beyond a path's end equal to its ``last_val``: 0 for a
    terminated episode, V of the true final observation for a truncated or cut-off one.

    Parameters
    ----------
    rewards, values : arrays of shape ``(T, N)``
    path_ends : sequence of ``(env, end, last_val)``
        Each env's paths in order: a path runs from the previous end of its env
        (0 for the first) to ``end`` (exclusive). Every env's last path must end at ``T``.
    gamma, lam : float

    Returns
    -------
    adv, ret : float32 arrays of shape ``(T, N)``
    """
    rewards, values = np.asarray(rewards), np.asarray(values)
    steps, num_envs = rewards.shape
    adv = np.zeros((steps, num_envs), dtype=np.float32)
    ret = np.zeros((steps, num_envs), dtype=np.float32)
    starts = [0] * num_envs  # where each env's next path starts
    for env, end, last_val in path_ends:
        start, starts[env] = starts[env], end
        # Backwards along the path with Python floats (no numpy work per step).
        rews, vals = rewards[start:end, env].tolist(), values[start:end, env].tolist()
        path_adv, path_ret = [0.0] * len(rews), [0.0] * len(rews)
        next_val = running_ret = float(last_val)
        running_adv = 0.0
        for t in range(len(rews) - 1, -1, -1):
            running_adv = rews[t] + gamma * next_val - vals[t] + gamma * lam * running_adv
            running_ret = rews[t] + gamma * running_ret
            path_adv[t], path_ret[t], next_val = running_adv, running_ret, vals[t]
        adv[start:end, env], ret[start:end, env] = path_adv, path_ret
    for env, start in enumerate(starts):
        if steps and start != steps:
            raise ValueError(f"env {env}'s last path ends at {start}, not at T={steps}")
    return adv, ret


@dataclass
class Transitions:
    """One epoch of stored interaction (copies: the buffer is refilled meanwhile).

    Attributes
    ----------
    obs : ``(T, N, *O)`` float32
    act : ``(T, N, *A)``
    rew : ``(T, N)`` float32
    logp : ``(T, N)`` float32, log-probs under the policy that collected them
    path_ends : list of ``(env, end, final_obs or None)``
        Where paths end, in order; ``final_obs`` (``(*O,)``) is to be bootstrapped
        with its value, ``None`` (terminated) with 0.
    """

    obs: np.ndarray
    act: np.ndarray
    rew: np.ndarray
    logp: np.ndarray
    path_ends: list[tuple[int, int, np.ndarray | None]]

    def bootstrap_obs(self) -> np.ndarray:
        """The ``K`` final observations to bootstrap, in ``path_ends`` order, then zero rows.

        Returns ``(P, *O)`` float32, ``P`` the power of two (at least 8) that holds
        ``K``: a compiled value call (XLA compiles once per input shape) then sees
        a few batch sizes, not a new one every epoch. :meth:`path_ends_with_values`
        takes the first ``K`` values of the ``P``.
        """
        finals = np.array([f for _, _, f in self.path_ends if f is not None], np.float32)
        finals = finals.reshape((-1,) + self.obs.shape[2:])
        rows = max(8, 1 << max(len(finals) - 1, 0).bit_length())
        return np.concatenate([finals, np.zeros((rows - len(finals),) + finals.shape[1:],
                                                np.float32)])

    def path_ends_with_values(self, bootstrap_values: Sequence[float]
                              ) -> list[tuple[int, int, float]]:
        """``path_ends`` with each final observation replaced by its value (0 if terminated).

        ``bootstrap_values``: values of :meth:`bootstrap_obs`, in order (extra ones unused).
        """
        values = iter(bootstrap_values)
        return [(env, end, 0.0 if final is None else next(values))
                for env, end, final in self.path_ends]


class VPGBuffer:
    """Stores one epoch of interaction of ``N`` vectorized environments.

    Parameters
    ----------
    obs_shape : tuple of int
        Shape of one observation.
    act_shape : tuple of int
        Shape of one action (``()`` for Discrete).
    act_dtype : numpy dtype
        ``int32`` for Discrete, ``float32`` for Box.
    steps_per_env : int
        ``T``: rows per epoch (steps of the vector env), stored as :attr:`rows`.
    num_envs : int
        ``N``: environments stepped together.
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        act_shape: Sequence[int],
        act_dtype,
        steps_per_env: int,
        num_envs: int,
    ):
        shape = (steps_per_env, num_envs)
        self.obs = np.zeros(shape + tuple(obs_shape), dtype=np.float32)
        self.act = np.zeros(shape + tuple(act_shape), dtype=act_dtype)
        self.rew = np.zeros(shape, dtype=np.float32)
        self.logp = np.zeros(shape, dtype=np.float32)
        self.rows = steps_per_env  # rows, not transitions: each row holds N of them
        self.ptr = 0
        # Path ends recorded during collection: (env, end row, final obs or None).
        self._ends: list[tuple[int, int, np.ndarray | None]] = []
        self._last_end = np.zeros(num_envs, dtype=np.int64)

    def store(self, obs, act, rew, logp) -> None:
        """Append one row: arrays with leading dimension ``N``."""
        if self.ptr >= self.rows:
            raise RuntimeError("VPGBuffer is full: call get() before storing more steps")
        t = self.ptr
        self.obs[t], self.act[t], self.rew[t], self.logp[t] = obs, act, rew, logp
        self.ptr += 1

    def end_path(self, env_index: int, final_obs: np.ndarray | None = None) -> None:
        """Record that environment ``env_index``'s path ends at the current row.

        ``final_obs`` is the true final observation of a truncated or cut-off
        path (bootstrapped with its value), ``None`` for a terminated episode
        (bootstrapped with 0). Nothing is recorded if the path is empty.
        """
        if self._last_end[env_index] == self.ptr:
            return
        self._ends.append((env_index, self.ptr, final_obs))
        self._last_end[env_index] = self.ptr

    def end_open_paths(self, obs: np.ndarray) -> None:
        """Epoch cut-off: end every open path, bootstrapped with V of ``obs[env]`` ``(N, *O)``."""
        for i in np.flatnonzero(self._last_end < self.ptr):
            self.end_path(int(i), np.array(obs[i], dtype=np.float32))

    def get(self) -> Transitions:
        """The epoch's :class:`Transitions` (copies); empties the buffer for the next epoch.

        The buffer must be full and every path ended (:meth:`end_open_paths`).
        """
        if self.ptr != self.rows:
            raise RuntimeError(f"VPGBuffer holds {self.ptr} of {self.rows} rows; not full")
        if np.any(self._last_end < self.ptr):
            raise RuntimeError("every path must be ended (end_open_paths) before get()")
        data = Transitions(self.obs.copy(), self.act.copy(), self.rew.copy(), self.logp.copy(),
                           list(self._ends))
        self.ptr = 0
        self._ends.clear()
        self._last_end[:] = 0
        return data
