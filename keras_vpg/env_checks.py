"""Stop on bad data from an env before it is trained on.

:class:`CheckEnvData` wraps each env of a run (see
:func:`keras_vpg.rollout.make_vector_env`). A non-finite observation or reward,
or an observation whose shape is not the declared one, raises
:class:`EnvDataError` naming the env id, the step and the offending value; an
exception raised by the env's own ``step`` or ``reset`` is re-raised as
:class:`EnvStepError` with the env id and the step (the original chained as
``__cause__``). The check is one ``np.isfinite`` over the observation array and
one ``np.isfinite`` on the reward per step (see ``benchmarks/env_checks.py``
for its cost).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class EnvDataError(ValueError):
    """An env returned an observation or reward that must not be trained on."""


class EnvStepError(RuntimeError):
    """An env's ``step`` or ``reset`` raised; the original exception is ``__cause__``."""


def env_name(env: gym.Env) -> str:
    """The env's gymnasium id (``spec.id``), else its class name."""
    spec_id = getattr(getattr(env, "spec", None), "id", None)  # the spec may be None
    return spec_id or type(env.unwrapped).__name__


class CheckEnvData(gym.Wrapper):
    """Checks every observation and reward of ``env`` (a gymnasium wrapper).

    Parameters
    ----------
    env : gymnasium.Env
        An env with a ``Box`` (or any array-shaped) observation space.

    Raises
    ------
    EnvDataError
        On a non-finite observation or reward, or an observation of another shape
        than ``env.observation_space.shape``.
    EnvStepError
        When ``env.step`` or ``env.reset`` raises (chained).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.env_id = env_name(env)
        self._shape = tuple(env.observation_space.shape or ())
        dtype = getattr(env.observation_space, "dtype", None)
        self._float_obs = dtype is None or np.issubdtype(dtype, np.floating)
        self.total_steps = 0  # env steps since the env was made
        self.episode_steps = 0  # steps of the current episode

    def _where(self) -> str:
        return (f"env {self.env_id!r} at step {self.total_steps} "
                f"(step {self.episode_steps} of its episode)")

    def reset(self, **kwargs: Any):
        try:
            obs, info = self.env.reset(**kwargs)
        except Exception as error:
            raise self._raised(f"env {self.env_id!r}: reset after step {self.total_steps}",
                               error) from error
        self.episode_steps = 0
        self._check(obs, 0.0, "reset")
        return obs, info

    def step(self, action):
        self.total_steps += 1
        self.episode_steps += 1
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        except Exception as error:
            raise self._raised(f"{self._where()}: step", error) from error
        self._check(obs, reward, "step")
        return obs, reward, terminated, truncated, info

    @staticmethod
    def _raised(what: str, error: Exception) -> EnvStepError:
        return EnvStepError(f"{what} raised {type(error).__name__}: {error}")

    def _check(self, obs, reward, call: str) -> None:
        """Raise :class:`EnvDataError` if ``obs`` or ``reward`` must not be trained on."""
        obs = np.asarray(obs)
        if obs.shape != self._shape:
            raise EnvDataError(f"{self._where()}: {call} returned an observation of shape "
                               f"{obs.shape}, the observation space declares {self._shape}")
        if (self._float_obs and not np.isfinite(obs).all()) or not np.isfinite(reward).all():
            raise EnvDataError(f"{self._where()}: {self._what_is_not_finite(obs, reward, call)}")

    def _what_is_not_finite(self, obs: np.ndarray, reward, call: str) -> str:
        bad = np.flatnonzero(~np.isfinite(obs.astype(np.float64)))
        if len(bad):
            first = np.unravel_index(bad[0], obs.shape)  # () for a 0-d observation
            return (f"{call} returned a non-finite observation: "
                    f"obs[{', '.join(map(str, first))}] = {obs[first]!r} "
                    f"({len(bad)} of {obs.size} entries non-finite); stopped before training on it")
        return f"non-finite reward {reward!r}; stopped before training on it"
