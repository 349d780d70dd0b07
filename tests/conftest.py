"""Shared fixtures. The suite runs once per backend (tox sets KERAS_BACKEND)."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import keras
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BACKENDS = ("tensorflow", "jax", "torch")


@pytest.fixture
def backend() -> str:
    return keras.backend.backend()


def run_python(code: str, backend: str, cwd=None, timeout: float = 300) -> str:
    """Run ``code`` in a fresh interpreter on ``backend``; return its stdout (fail loudly)."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{backend} subprocess failed:\n{result.stderr[-3000:]}"
    return result.stdout


class ScriptedEnv(gym.Env):
    """Deterministic env: obs = [step index within the episode, episode index].

    Reward at step t of an episode is ``t + 1``. The episode terminates after
    ``terminate_at`` steps (if set); otherwise a TimeLimit truncates it.
    """

    metadata = {"render_modes": []}

    def __init__(self, terminate_at: int | None = 5, discrete: bool = True):
        self.observation_space = gym.spaces.Box(-1e6, 1e6, (2,), np.float32)
        self.action_space = (
            gym.spaces.Discrete(2) if discrete else gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        )
        self.terminate_at = terminate_at
        self.t = 0
        self.episode = -1

    def _obs(self):
        return np.array([self.t, self.episode], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.episode += 1
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        return self._obs(), float(self.t), terminated, False, {}


@pytest.fixture
def tiny_vpg_kwargs(tmp_path):
    """Small, fast VPG settings writing under tmp_path."""
    return dict(
        steps_per_epoch=200, train_v_iters=2, ac_kwargs=dict(hidden_sizes=(16,)),
        logger_kwargs=dict(output_dir=str(tmp_path / "run"), exp_name="test"),
    )
