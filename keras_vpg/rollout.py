"""Vectorized experience collection: one compiled batched policy call per env step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from keras_vpg.buffer import VPGBuffer

VECTOR_MODES = ("sync", "async")


def make_vector_env(
    env_fn: Callable[[], gym.Env],
    num_envs: int,
    max_ep_len: int | None,
    vector_mode: str = "sync",
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_fn()`` as a gymnasium vector env.

    Each copy is wrapped in ``TimeLimit(max_ep_len)`` (so ``max_ep_len`` is a
    truncation, bootstrapped like any other), and the vector env resets a
    finished copy in the same step (``AutoresetMode.SAME_STEP``): the returned
    observation is the next episode's first one, the true final observation is
    in ``info["final_obs"]``, and no reset transition ever reaches the buffer.
    """
    if vector_mode not in VECTOR_MODES:
        raise ValueError(f"vector_mode must be one of {VECTOR_MODES}, got {vector_mode!r}")

    def make_one() -> gym.Env:
        env = env_fn()
        if max_ep_len:
            env = gym.wrappers.TimeLimit(env, max_episode_steps=int(max_ep_len))
        return env

    vector_cls = SyncVectorEnv if vector_mode == "sync" else AsyncVectorEnv
    return vector_cls([make_one] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)


@dataclass
class EpochRollout:
    """What one epoch of collection observed on this rank."""

    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    env_steps: int = 0


class RolloutCollector:
    """Steps a vector env with a batched policy and fills a :class:`VPGBuffer`.

    Episodes run on across epochs; at the epoch's end each unfinished path is
    cut and bootstrapped with V of the current observation.

    With a ``SyncVectorEnv`` (``SAME_STEP`` autoreset, as :func:`make_vector_env`
    makes), the collector steps the sub-environments itself: the same calls in
    the same order (``env.step``; ``env.reset()`` right after a finished
    episode, the true final observation kept for bootstrapping), without the
    vector env's per-step merging of every sub-env's ``info`` dict, which costs
    more than a CartPole step. Other vector envs (``AsyncVectorEnv``) are
    stepped through their own ``step``.

    Parameters
    ----------
    envs : gymnasium.vector.VectorEnv
        Made by :func:`make_vector_env` (``SAME_STEP`` autoreset).
    trainer : keras_vpg.trainers.Trainer
        Its ``policy_step(obs (N, *O))`` gives numpy ``(action, value (N,), logp (N,))``
        and ``value(obs (K, *O))`` numpy ``(K,)``.
    buffer : VPGBuffer
    seed : int
        Seeds the envs' first reset and the action space.
    """

    def __init__(self, envs, trainer, buffer: VPGBuffer, seed: int):
        self.envs = envs
        self.trainer = trainer
        self.policy_step = trainer.policy_step
        self.value_fn = trainer.value
        self.buffer = buffer
        self.to_env_action = _env_action_fn(envs.single_action_space)
        envs.action_space.seed(seed)
        self.obs, _ = envs.reset(seed=seed)
        self.ep_ret = np.zeros(envs.num_envs, dtype=np.float64)
        # Episode lengths as differences of a running row count (rows stepped before
        # this epoch + buffer.ptr), so nothing is counted per step.
        self._rows_before = 0
        self._ep_start = np.zeros(envs.num_envs, dtype=np.int64)
        self._direct = isinstance(envs, SyncVectorEnv) and (
            getattr(envs, "autoreset_mode", None) == AutoresetMode.SAME_STEP
        )

    def collect(
        self, progress: Callable[[int], None] | None = None, every: int = 0
    ) -> EpochRollout:
        """Fill the buffer with one epoch; ``progress(steps)`` is called every ``every`` rows."""
        self.trainer.begin_collection()
        try:
            return self._collect(progress, every)
        finally:
            self.trainer.end_collection()

    def _collect(self, progress, every) -> EpochRollout:
        buffer, stats = self.buffer, EpochRollout()
        num_envs = self.envs.num_envs
        rows = buffer.max_size
        every = every if progress is not None and every and every > 0 else rows
        step = self._step_direct if self._direct else self._step_vector
        policy_step, to_env_action, store = self.policy_step, self.to_env_action, buffer.store
        ep_ret = self.ep_ret
        obs = self.obs
        for chunk_start in range(0, rows, every):
            chunk_end = min(chunk_start + every, rows)
            for _ in range(chunk_start, chunk_end):
                action, value, logp = policy_step(obs)
                next_obs, reward, done, final = step(to_env_action(action))
                store(obs, action, reward, value, logp)
                ep_ret += reward
                if done:  # [(env index, terminated)] of finished episodes
                    self._finish_episodes(done, final, stats)
                obs = next_obs
            self.obs = obs
            if progress is not None:
                progress(chunk_end * num_envs)
        # Epoch cut-off: bootstrap every path still open with V(current obs).
        open_envs = buffer.unfinished_envs()
        if len(open_envs):
            last_vals = self.value_fn(np.asarray(self.obs)[open_envs])
            for i, last_val in zip(open_envs, last_vals):
                buffer.finish_path(int(i), float(last_val))
        stats.env_steps = rows * num_envs
        self._rows_before += rows
        return stats

    @property
    def ep_len(self) -> np.ndarray:
        """Steps taken so far in each env's current episode."""
        return self._rows_before + self.buffer.ptr - self._ep_start

    # -- one vector step -------------------------------------------------------------------
    # Each returns (next obs (N, *O) float32, rewards (N,) or a scalar for N = 1,
    # [(env index, terminated)] of the episodes that ended, [their true final obs]).
    # Observations are copied (an env may reuse its array) and cast to float32 once,
    # the dtype of the buffer and of every backend's network.
    def _step_direct(self, actions):
        """Step each sub-env of a SyncVectorEnv (SAME_STEP autoreset semantics)."""
        envs = self.envs.envs
        if len(envs) == 1:
            obs, reward, terminated, truncated, _ = envs[0].step(actions[0])
            if terminated or truncated:
                final = obs
                obs, _ = envs[0].reset()
                return _as_row(obs), reward, [(0, bool(terminated))], [final]
            return _as_row(obs), reward, (), ()
        observations, rewards, done, finals = [], np.empty(len(envs)), [], []
        for i, env in enumerate(envs):
            obs, rewards[i], terminated, truncated, _ = env.step(actions[i])
            if terminated or truncated:
                done.append((i, bool(terminated)))
                finals.append(obs)
                obs, _ = env.reset()
            observations.append(obs)
        return np.stack(observations, dtype=np.float32), rewards, done, finals

    def _step_vector(self, actions):
        """Step through the vector env's own ``step`` (e.g. AsyncVectorEnv)."""
        obs, reward, terminated, truncated, info = self.envs.step(actions)
        ended = terminated | truncated
        if not ended.any():
            return obs, reward, (), ()
        idx = np.flatnonzero(ended)
        done = [(int(i), bool(terminated[i])) for i in idx]
        return obs, reward, done, [info["final_obs"][i] for i in idx]

    def _finish_episodes(self, done, finals, stats: EpochRollout) -> None:
        # Truncated episodes bootstrap with V of the real final observation (not the
        # next episode's reset observation); terminated ones with 0.
        cut = [k for k, (_, terminated) in enumerate(done) if not terminated]
        last_vals = {}
        if cut:
            final_obs = np.stack([finals[k] for k in cut]).astype(np.float32)
            last_vals = dict(zip(cut, self.value_fn(final_obs).tolist()))
        now = self._rows_before + self.buffer.ptr  # rows stepped, this one included
        for k, (i, _) in enumerate(done):
            self.buffer.finish_path(i, last_vals.get(k, 0.0))
            stats.episode_returns.append(float(self.ep_ret[i]))
            stats.episode_lengths.append(int(now - self._ep_start[i]))
            self.ep_ret[i] = 0.0
            self._ep_start[i] = now


def _as_row(obs) -> np.ndarray:
    """One observation as a float32 batch of one (a copy)."""
    return np.array(obs, dtype=np.float32)[None]


def _env_action_fn(space: gym.Space) -> Callable[[np.ndarray], np.ndarray]:
    """numpy map from raw policy actions to the env's: clip to the Box, offset a Discrete."""
    if isinstance(space, gym.spaces.Box):
        low, high = space.low, space.high
        return lambda a: np.clip(a, low, high)
    start = int(getattr(space, "start", 0))
    if start == 0:
        return lambda a: a.astype(np.int64)
    return lambda a: a.astype(np.int64) + start
