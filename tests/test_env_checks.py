"""Bad data from an env stops training before it is trained on, naming env, step and value."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import keras_vpg
from keras_vpg.env_checks import CheckEnvData, EnvDataError, EnvStepError
from keras_vpg.rollout import make_vector_env

BAD_AT = 7  # the env step (1-based, since the env was made) that goes wrong


class MisbehavingEnv(gym.Env):
    """A 3-d Box observation env that misbehaves at step ``BAD_AT`` in the way ``kind`` says."""

    def __init__(self, kind: str = "none"):
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.kind = kind
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.steps += 1
        obs, reward = np.full(3, 0.5, np.float32), 1.0
        if self.steps == BAD_AT:
            if self.kind == "nan_obs":
                obs[1] = np.nan
            elif self.kind == "inf_obs":
                obs[2] = -np.inf
            elif self.kind == "nan_reward":
                reward = float("nan")
            elif self.kind == "wrong_shape":
                obs = np.zeros(4, np.float32)
            elif self.kind == "raises":
                raise RuntimeError("simulator diverged")
        return obs, reward, self.steps % 5 == 0, False, {}


gym.register("Misbehaving-v0", entry_point=MisbehavingEnv)

CASES = [
    ("nan_obs", EnvDataError, ["non-finite observation", "obs[1] = ", "nan"]),
    ("inf_obs", EnvDataError, ["non-finite observation", "obs[2] = ", "-inf"]),
    ("nan_reward", EnvDataError, ["non-finite reward nan"]),
    ("wrong_shape", EnvDataError, ["shape (4,)", "declares (3,)"]),
    ("raises", EnvStepError, ["RuntimeError: simulator diverged"]),
]


@pytest.mark.parametrize("kind, error, fragments", CASES)
def test_wrapper_names_env_step_and_value(kind, error, fragments):
    env = CheckEnvData(gym.make("Misbehaving-v0", kind=kind))
    env.reset(seed=0)
    for _ in range(BAD_AT - 1):
        env.step(0)
    with pytest.raises(error) as info:
        env.step(0)
    message = str(info.value)
    assert "'Misbehaving-v0'" in message and f"at step {BAD_AT}" in message
    for fragment in fragments:
        assert fragment in message
    if kind == "raises":
        assert isinstance(info.value.__cause__, RuntimeError)


def test_well_behaved_env_passes_through_unchanged():
    plain, checked = gym.make("CartPole-v1"), CheckEnvData(gym.make("CartPole-v1"))
    a, _ = plain.reset(seed=3)
    b, _ = checked.reset(seed=3)
    np.testing.assert_array_equal(a, b)
    for action in [0, 1, 1, 0, 1]:
        ra, rb = plain.step(action), checked.step(action)
        np.testing.assert_array_equal(ra[0], rb[0])
        assert ra[1:4] == rb[1:4]


def test_integer_observations_are_not_checked_for_finiteness():
    env = CheckEnvData(gym.make("FrozenLake-v1"))
    obs, _ = env.reset(seed=0)
    assert env.step(0)[0] is not None and np.ndim(obs) == 0


def test_make_vector_env_wraps_every_copy():
    envs = make_vector_env(lambda: gym.make("Misbehaving-v0", kind="nan_obs"), 2, None)
    assert all(isinstance(e.env, CheckEnvData) or isinstance(e, CheckEnvData) for e in envs.envs)
    envs.reset(seed=0)
    with pytest.raises(EnvDataError, match="Misbehaving-v0"):
        for _ in range(BAD_AT):
            envs.step(np.zeros(2, np.int64))


@pytest.mark.parametrize("kind, error, fragments", CASES)
def test_training_stops_before_the_bad_step_is_trained_on(kind, error, fragments, tmp_path):
    agent = keras_vpg.VPG(
        lambda: gym.make("Misbehaving-v0", kind=kind), steps_per_epoch=50, train_v_iters=1,
        ac_kwargs=dict(hidden_sizes=(8,)), save_freq=1,
        logger_kwargs=dict(output_dir=str(tmp_path / "run")),
    )
    updates = []
    update_policy = agent.trainer.update_policy
    agent.trainer.update_policy = lambda batch: updates.append(batch) or update_policy(batch)
    with pytest.raises(error) as info:
        agent.fit(epochs=1, verbose=0)
    assert "Misbehaving-v0" in str(info.value)
    assert updates == []  # nothing of the epoch reached an update
    assert not (tmp_path / "run" / "progress.txt").exists()
