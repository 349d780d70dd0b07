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
        self.ep_len = np.zeros(envs.num_envs, dtype=np.int64)

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
        for t in range(buffer.max_size):
            action, value, logp = self.policy_step(self.obs)
            next_obs, reward, terminated, truncated, info = self.envs.step(
                self.to_env_action(action)
            )
            buffer.store(self.obs, action, reward, value, logp)
            self.ep_ret += reward
            self.ep_len += 1
            done = terminated | truncated
            if done.any():
                self._finish_episodes(np.flatnonzero(done), terminated, info, stats)
            self.obs = next_obs
            if progress is not None and every and (t + 1) % every == 0:
                progress((t + 1) * num_envs)
        # Epoch cut-off: bootstrap every path still open with V(current obs).
        open_envs = buffer.unfinished_envs()
        if len(open_envs):
            last_vals = self.value_fn(self.obs[open_envs])
            for i, last_val in zip(open_envs, last_vals):
                buffer.finish_path(int(i), float(last_val))
        stats.env_steps = buffer.max_size * num_envs
        return stats

    def _finish_episodes(self, done_envs, terminated, info, stats: EpochRollout) -> None:
        # Truncated episodes bootstrap with V of the real final observation, which
        # SAME_STEP autoreset leaves in info["final_obs"].
        cut = [i for i in done_envs if not terminated[i]]
        last_vals = {}
        if cut:
            final_obs = np.stack([info["final_obs"][i] for i in cut]).astype(np.float32)
            last_vals = dict(zip(cut, self.value_fn(final_obs).tolist()))
        for i in done_envs:
            self.buffer.finish_path(int(i), last_vals.get(i, 0.0))
            stats.episode_returns.append(float(self.ep_ret[i]))
            stats.episode_lengths.append(int(self.ep_len[i]))
            self.ep_ret[i] = 0.0
            self.ep_len[i] = 0


def _env_action_fn(space: gym.Space) -> Callable[[np.ndarray], np.ndarray]:
    """numpy map from raw policy actions to the env's: clip to the Box, offset a Discrete."""
    if isinstance(space, gym.spaces.Box):
        low, high = space.low, space.high
        return lambda a: np.clip(a, low, high)
    start = int(getattr(space, "start", 0))
    return lambda a: a.astype(np.int64) + start
