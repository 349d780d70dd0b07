"""Rollout storage with GAE-Lambda advantages and rewards-to-go (numpy).

The buffer holds ``T`` steps of ``N`` vectorized environments as arrays of
shape ``(T, N, ...)``; each environment's column is cut into paths (episode
segments). During collection only the path ends are recorded
(:meth:`VPGBuffer.end_path`); :meth:`VPGBuffer.compute_advantages` then computes
every value in one batched call and finishes each path (:meth:`VPGBuffer.finish_path`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
        # Path ends recorded during collection: (env, end row, final obs or None).
        self._ends: list[tuple[int, int, np.ndarray | None]] = []
        self._last_end = np.zeros(num_envs, dtype=np.int64)

    def store(self, obs, act, rew, logp, val=None) -> None:
        """Append one row: arrays with leading dimension ``N``.

        ``val`` may be left out when :meth:`compute_advantages` computes the
        values after collection.
        """
        if self.ptr >= self.max_size:
            raise RuntimeError("VPGBuffer is full: call get() before storing more steps")
        t = self.ptr
        self.obs[t] = obs
        self.act[t] = act
        self.rew[t] = rew
        self.logp[t] = logp
        if val is not None:
            self.val[t] = val
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

    def compute_advantages(self, value_fn: Callable[[np.ndarray], np.ndarray]) -> None:
        """Values of every stored observation and recorded final observation, then GAE.

        ``value_fn`` maps observations ``(K, *O)`` to values ``(K,)``; it is called
        twice (the ``T * N`` stored rows, then the bootstrap observations).
        """
        rows = self.ptr * self.num_envs
        self.val[: self.ptr] = np.asarray(
            value_fn(self.obs[: self.ptr].reshape((rows,) + self.obs.shape[2:]))
        ).reshape(self.ptr, self.num_envs)
        bootstrap = [k for k, (_, _, final) in enumerate(self._ends) if final is not None]
        last_vals = [0.0] * len(self._ends)
        if bootstrap:
            finals = np.stack([self._ends[k][2] for k in bootstrap]).astype(np.float32)
            for k, v in zip(bootstrap, np.asarray(value_fn(finals)).tolist()):
                last_vals[k] = v
        paths: dict[int, list[tuple[int, float]]] = {}
        for (env_index, end, _), last_val in zip(self._ends, last_vals):
            paths.setdefault(env_index, []).append((end, last_val))
        self._ends.clear()
        for env_index, ends in paths.items():
            self._finish_paths(env_index, ends)

    def finish_path(self, env_index: int, last_val: float = 0.0) -> None:
        """Close the current path of environment ``env_index`` (it ends at the current row).

        ``last_val`` is 0 when the episode terminated, else V of the true final
        observation (truncation, ``max_ep_len`` or the epoch cut-off), so the
        return is bootstrapped beyond the cut. ``self.val`` must hold the path's values.
        """
        self._finish_paths(env_index, [(self.ptr, last_val)])

    def _finish_paths(self, env_index: int, ends: list[tuple[int, float]]) -> None:
        """Close consecutive paths of one env, ``ends`` = ``[(end row, last_val)]`` in order.

        One pass over the env's column (no per-path numpy work).
        """
        start, last = int(self.path_start[env_index]), ends[-1][0]
        self._last_end[env_index] = max(self._last_end[env_index], last)
        if last == start:
            return
        rews = self.rew[start:last, env_index].tolist()
        vals = self.val[start:last, env_index].tolist()
        adv, ret = [0.0] * len(rews), [0.0] * len(rews)
        path_start = 0
        for end, last_val in ends:
            self._gae(rews, vals, path_start, end - start, last_val, adv, ret)
            path_start = end - start
        self.adv[start:last, env_index] = adv
        self.ret[start:last, env_index] = ret
        self.path_start[env_index] = last

    def _gae(self, rews, vals, start, end, last_val, adv, ret) -> None:
        """GAE-Lambda advantages and rewards-to-go of ``rews[start:end]`` into ``adv``, ``ret``.

        Python floats (float64), backwards: ``delta_t = r_t + gamma * V_{t+1} - V_t``,
        ``adv_t = delta_t + gamma * lam * adv_{t+1}``, ``ret_t = r_t + gamma * ret_{t+1}``,
        with ``V`` and ``ret`` beyond the path equal to ``last_val``.
        """
        gamma, gamma_lam = self.gamma, self.gamma * self.lam
        next_val = running_ret = float(last_val)
        running_adv = 0.0
        for t in range(end - 1, start - 1, -1):
            reward, val = rews[t], vals[t]
            running_adv = reward + gamma * next_val - val + gamma_lam * running_adv
            running_ret = reward + gamma * running_ret
            adv[t], ret[t] = running_adv, running_ret
            next_val = val

    def unfinished_envs(self) -> np.ndarray:
        """Indices of environments whose current path holds steps not yet finished."""
        return np.flatnonzero(self.path_start < self.ptr)

    def get(self) -> dict[str, np.ndarray]:
        """All ``T * N`` steps, flattened, with advantages normalized across ranks.

        Every path must be finished. Returns a dict with ``obs (M, *O)``,
        ``act (M, ...)``, ``ret (M,)``, ``adv (M,)`` and ``logp (M,)``, ``M = T * N``
        (copies, not views). Resets the buffer for the next epoch.
        """
        if self.ptr != self.max_size:
            raise RuntimeError(f"VPGBuffer holds {self.ptr} of {self.max_size} rows; not full")
        if len(self.unfinished_envs()) or self._ends:
            raise RuntimeError(
                "every path must be finished (compute_advantages or finish_path) before get()"
            )
        self.ptr = 0
        self.path_start[:] = 0
        self._last_end[:] = 0
        size = self.max_size * self.num_envs
        adv_mean, adv_std = mpi.mpi_statistics_scalar(self.adv)
        adv = (self.adv - adv_mean) / (adv_std + 1e-8)
        # Copies: the next epoch refills the buffer while this batch may still train.
        return {
            "obs": self.obs.reshape((size,) + self.obs.shape[2:]).copy(),
            "act": self.act.reshape((size,) + self.act.shape[2:]).copy(),
            "ret": self.ret.reshape(size).copy(),
            "adv": adv.reshape(size).astype(np.float32),
            "logp": self.logp.reshape(size).copy(),
        }
