"""Experience collection: one batched sampler call per env step, in chunks; and whole episodes.

Training collects with :class:`RolloutCollector`; evaluation (``EvalCallback``),
``keras-vpg test-policy`` and :func:`keras_vpg.run_policy` all run episodes with
:func:`play_episodes`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from keras_vpg.buffer import Transitions, VPGBuffer
from keras_vpg.env_checks import CheckEnvData
from keras_vpg.trainers.numpy_policy import NumpyPolicySampler


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
    Each copy is also wrapped in :class:`~keras_vpg.env_checks.CheckEnvData`:
    a non-finite or wrongly shaped observation, a non-finite reward, or an
    exception in the env's ``step`` stops collection with the env id and step.
    ``vector_mode`` is ``"sync"`` or ``"async"`` (the agent's config checks it).
    """
    def make_one() -> gym.Env:
        env = CheckEnvData(env_fn())
        if max_ep_len:
            env = gym.wrappers.TimeLimit(env, max_episode_steps=int(max_ep_len))
        return env

    vector_cls = SyncVectorEnv if vector_mode == "sync" else AsyncVectorEnv
    return vector_cls([make_one] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)


@dataclass
class EpochRollout:
    """What one epoch of collection gave on this rank: its transitions and episode statistics."""

    transitions: Transitions | None = None
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    env_steps: int = 0


class RolloutCollector:
    """Steps a vector env with a sampler and fills a :class:`VPGBuffer`.

    Each step stores observations, actions, rewards and log-probs and records
    where paths end; values are not needed to collect (the agent computes them
    afterwards for the whole batch, in one call). Episodes run on across
    epochs; at the epoch's end each unfinished path is cut, to be bootstrapped
    with V of the current observation.

    Collection runs in chunks (:meth:`chunks`): between two chunks nothing of
    the collection is in progress, so the caller may do other work there (the
    agent finishes the previous epoch's update) and may stop: the rows stay and
    the next :meth:`chunks` goes on from them.

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
    sampler : keras_vpg.trainers.numpy_policy.PolicySampler
        ``begin()``, ``sample(obs (N, *O)) -> (action, logp (N,))`` (numpy), ``end()``.
    buffer : VPGBuffer
    seed : int
        Seeds the envs' first reset and the action space.
    """

    def __init__(self, envs, sampler, buffer: VPGBuffer, seed: int):
        self.envs = envs
        self.sampler = sampler
        self.buffer = buffer
        self.to_env_action = _env_action_fn(envs.single_action_space)
        envs.action_space.seed(seed)
        self.obs, _ = envs.reset(seed=seed)
        self.ep_ret = np.zeros(envs.num_envs, dtype=np.float64)
        # Episode lengths as differences of a running row count (rows of earlier
        # epochs + buffer.ptr), so nothing is counted per step.
        self._rows_before = 0
        self._ep_start = np.zeros(envs.num_envs, dtype=np.int64)
        self._rollout = EpochRollout()  # the epoch being collected
        self._direct = (isinstance(envs, SyncVectorEnv)
                        and envs.autoreset_mode == AutoresetMode.SAME_STEP)

    def restart_episodes(self, seed: int) -> None:
        """Abandon the episodes in progress: reset every env with ``seed`` (a resume does this).

        Call between epochs (the buffer empty): the next :meth:`chunks` starts
        fresh episodes, as deterministic as the envs' ``reset(seed=...)``.
        """
        if self.buffer.ptr:
            raise RuntimeError("restart_episodes needs an empty buffer (call it between epochs)")
        self.obs, _ = self.envs.reset(seed=int(seed))
        self.ep_ret[:] = 0.0
        self._ep_start[:] = self._rows_before

    def chunks(self, rows_per_chunk: int = 0) -> Iterator[int]:
        """Collect the rest of the epoch, ``rows_per_chunk`` rows at a time (0: all at once).

        Yields, after each chunk, the env steps collected so far this epoch (on
        this rank). Nothing if the buffer is already full.
        """
        buffer, rows = self.buffer, self.buffer.rows
        every = rows_per_chunk if rows_per_chunk > 0 else rows
        while buffer.ptr < rows:
            self.sampler.begin()
            try:
                self._collect_rows(min(buffer.ptr + every, rows))
            finally:
                self.sampler.end()
            yield buffer.ptr * self.envs.num_envs

    def finish_epoch(self) -> EpochRollout:
        """End the (fully collected) epoch: cut open paths, return its rollout, empty the buffer.

        Open paths are ended here (the epoch cut-off), to be bootstrapped with V
        of the current observations.
        """
        buffer = self.buffer
        buffer.end_open_paths(np.asarray(self.obs))
        rollout, self._rollout = self._rollout, EpochRollout()
        rollout.env_steps = buffer.rows * self.envs.num_envs
        rollout.transitions = buffer.get()
        self._rows_before += buffer.rows
        return rollout

    def collect(self) -> EpochRollout:
        """One whole epoch at once: :meth:`chunks`, then :meth:`finish_epoch`."""
        for _ in self.chunks():
            pass
        return self.finish_epoch()

    def _collect_rows(self, end: int) -> None:
        buffer = self.buffer
        step = self._step_direct if self._direct else self._step_vector
        sample, to_env_action, store = self.sampler.sample, self.to_env_action, buffer.store
        ep_ret, obs = self.ep_ret, self.obs
        for _ in range(buffer.ptr, end):
            action, logp = sample(obs)
            next_obs, reward, done, final = step(to_env_action(action))
            store(obs, action, reward, logp)
            ep_ret += reward
            if done:  # [(env index, terminated)] of finished episodes
                self._finish_episodes(done, final)
            obs = next_obs
        self.obs = obs

    # -- one vector step -------------------------------------------------------------------
    # Each returns (next obs (N, *O), rewards (N,),
    # [(env index, terminated)] of the episodes that ended, [their true final obs]).
    # The buffer stores each row as a float32 copy (an env may reuse its array).
    def _step_direct(self, actions):
        """Step each sub-env of a SyncVectorEnv (SAME_STEP autoreset semantics)."""
        envs = self.envs.envs
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

    def _finish_episodes(self, done, finals) -> None:
        # Truncated episodes bootstrap with V of the real final observation (not the
        # next episode's reset observation); terminated ones with 0.
        now = self._rows_before + self.buffer.ptr  # rows stepped, this one included
        for (i, terminated), final in zip(done, finals):
            self.buffer.end_path(i, None if terminated else np.array(final, dtype=np.float32))
            self._rollout.episode_returns.append(float(self.ep_ret[i]))
            self._rollout.episode_lengths.append(int(now - self._ep_start[i]))
            self.ep_ret[i] = 0.0
            self._ep_start[i] = now


def _env_action_fn(space: gym.Space) -> Callable[[np.ndarray], np.ndarray]:
    """numpy map from raw policy actions to the env's: clip to the Box, offset a Discrete."""
    if isinstance(space, gym.spaces.Box):
        low, high = space.low, space.high
        return lambda a: np.clip(a, low, high)
    start = int(getattr(space, "start", 0))
    if start == 0:
        return lambda a: a.astype(np.int64)
    return lambda a: a.astype(np.int64) + start


# -- whole episodes with a fixed policy (evaluation, test-policy, run_policy) ---------------
@dataclass
class EpisodeStats:
    """Returns and lengths of finished episodes (``returns[i]``, ``lengths[i]``: episode i).

    ``steps_per_second`` is the env steps of all episodes over the wall time
    (``nan`` when not measured).
    """

    returns: Sequence[float]
    lengths: Sequence[int]
    steps_per_second: float = math.nan

    def summary(self) -> str:
        """One line: mean ± std of the return and of the length over the episodes."""
        returns = np.asarray(self.returns, dtype=np.float64)
        lengths = np.asarray(self.lengths, dtype=np.float64)
        speed = "" if math.isnan(self.steps_per_second) else (
            f", {self.steps_per_second:,.0f} steps/s")
        return (f"{len(returns)} episodes: EpRet {returns.mean():.4g} ± {returns.std():.3g} "
                f"(min {returns.min():.4g}, max {returns.max():.4g}), "
                f"EpLen {lengths.mean():.4g} ± {lengths.std():.3g}{speed}")


def episode_line(index: int, ep_ret: float, ep_len: int) -> str:
    """One episode as Spinning Up's ``run_policy`` prints it (``test-policy --verbose`` too)."""
    return f"Episode {index} \t EpRet {ep_ret:.3f} \t EpLen {ep_len}"


def batched_policy(ac, deterministic: bool = False, seed: int | None = None
                   ) -> Callable[[np.ndarray], np.ndarray]:
    """``obs (B, *O) -> env-ready actions (B, ...)`` in one call per batch (numpy).

    A plain-MLP policy runs in numpy on weights read once, the path training
    collects with (:class:`~keras_vpg.trainers.numpy_policy.NumpyPolicySampler`),
    its draws seeded by ``seed`` when given; other models use ``ac.act``. The
    weights must not change while the returned function is used.
    """
    sampler = NumpyPolicySampler.for_model(ac)
    if sampler is None:
        return lambda obs: ac.act(obs, deterministic=deterministic)
    sampler.begin()
    if seed is not None:
        sampler.rng = np.random.default_rng(seed)
    to_env_action = _env_action_fn(ac.action_space)
    if deterministic:
        return lambda obs: to_env_action(sampler.mode(obs))
    return lambda obs: to_env_action(sampler.sample(obs)[0])


def play_episodes(
    policy: Callable[[np.ndarray], np.ndarray],
    envs: Sequence[gym.Env],
    num_episodes: int,
    max_ep_len: int | None = 0,
    seed: int | None = 0,
    render: bool = False,
    on_episode: Callable[[float, int], None] | None = None,
) -> EpisodeStats:
    """Run ``num_episodes`` episodes of ``policy`` on ``envs`` side by side: the one episode runner.

    Env ``i`` is first reset with ``seed + i`` (``None``: unseeded) and runs a
    fixed share of the episodes, ``(num_episodes + i) // len(envs)``, so the
    result does not favour short episodes, as taking the first ``num_episodes``
    to finish would. Each step makes one policy call on the whole batch
    (finished envs' last observations included: one input shape, so a compiled
    policy is traced once).

    Parameters
    ----------
    policy : callable
        ``obs (len(envs), *O) float32 -> env actions (len(envs), ...)``.
    envs : sequence of gymnasium.Env
        Stepped one by one (left open).
    num_episodes : int
    max_ep_len : int or None
        Cut episodes after this many steps (0 / ``None``: only the env's own limit).
    seed : int or None
    render : bool
        Render the first env before each of its steps.
    on_episode : callable, optional
        ``(return, length)`` of each episode as it ends.

    Returns
    -------
    EpisodeStats
        Episodes ordered by env, then by time.
    """
    count = len(envs)
    quota = [(num_episodes + i) // count for i in range(count)]
    returns: list[list[float]] = [[] for _ in range(count)]
    lengths: list[list[int]] = [[] for _ in range(count)]
    obs = np.stack([np.asarray(env.reset(seed=None if seed is None else seed + i)[0],
                               dtype=np.float32) for i, env in enumerate(envs)])
    ep_ret, ep_len = np.zeros(count), np.zeros(count, dtype=np.int64)
    active = [i for i in range(count) if quota[i]]
    steps, start = 0, time.perf_counter()
    while active:
        actions = policy(obs)
        for i in active:
            if render and i == 0:
                envs[i].render()
            next_obs, reward, terminated, truncated, _ = envs[i].step(actions[i])
            ep_ret[i] += float(reward)
            ep_len[i] += 1
            if terminated or truncated or (max_ep_len and ep_len[i] >= max_ep_len):
                returns[i].append(float(ep_ret[i]))
                lengths[i].append(int(ep_len[i]))
                if on_episode is not None:
                    on_episode(returns[i][-1], lengths[i][-1])
                ep_ret[i], ep_len[i] = 0.0, 0
                if len(returns[i]) < quota[i]:
                    next_obs, _ = envs[i].reset()
            obs[i] = next_obs
        steps += len(active)
        active = [i for i in active if len(returns[i]) < quota[i]]
    seconds = time.perf_counter() - start
    return EpisodeStats([r for rs in returns for r in rs], [n for ns in lengths for n in ns],
                        steps / max(seconds, 1e-9))
