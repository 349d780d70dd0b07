"""Serving: SavedModel and ONNX exports, load_policy_and_env, run_policy."""

from __future__ import annotations

import json

import gymnasium as gym
import keras
import numpy as np
import pytest
from conftest import run_python

import keras_vpg
import keras_vpg.serving

OBS_SPACE = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
SPACES = {
    "box": gym.spaces.Box(-0.3, 0.3, (2,), np.float32),
    "discrete": gym.spaces.Discrete(3, start=1),
}


def make_ac(space):
    keras.utils.set_random_seed(0)
    ac = keras_vpg.MLPActorCritic(OBS_SPACE, SPACES[space], hidden_sizes=(16,), normalize_obs=True)
    ac.obs_normalizer.update(np.full(3, 5.0), np.full(3, 30.0), 2.0)  # non-trivial statistics
    return ac


@pytest.mark.slow
@pytest.mark.parametrize("space", sorted(SPACES))
def test_saved_model_serves_without_keras_vpg(space, tmp_path):
    ac = make_ac(space)
    export_dir = tmp_path / "serving"
    keras_vpg.export(ac, export_dir, format="tf_saved_model")
    obs = np.random.default_rng(0).normal(size=(9, 3)).astype("float32")
    np.save(tmp_path / "obs.npy", obs)
    code = f"""
import json, sys, numpy as np, tensorflow as tf
m = tf.saved_model.load({str(export_dir)!r})
obs = np.load({str(tmp_path / 'obs.npy')!r})
out = dict(
    serve=m.serve(obs).numpy().tolist(), one=m.serve(obs[:1]).numpy().tolist(),
    value=m.value(obs).numpy().tolist(),
    s1=m.sample(obs, 1).numpy().tolist(), s1b=m.sample(obs, 1).numpy().tolist(),
    s2=m.sample(obs, 2).numpy().tolist(),
    signatures=sorted(m.signatures), imported="keras_vpg" in sys.modules,
)
print(json.dumps(out))
"""
    out = json.loads(run_python(code, "tensorflow").strip().splitlines()[-1])
    assert not out["imported"]
    assert {"serve", "sample", "value"} <= set(out["signatures"])
    np.testing.assert_allclose(out["serve"], ac.act(obs, deterministic=True), atol=1e-5)
    np.testing.assert_allclose(out["one"], ac.act(obs[:1], deterministic=True), atol=1e-5)
    np.testing.assert_allclose(out["value"], ac.v(obs), rtol=1e-5, atol=1e-5)
    assert out["s1"] == out["s1b"] and out["s1"] != out["s2"]
    samples = np.asarray(out["s1"])
    space_obj = SPACES[space]
    assert all(space_obj.contains(np.asarray(a, space_obj.dtype)) for a in samples)


@pytest.mark.slow
@pytest.mark.parametrize("space", sorted(SPACES))
def test_onnx_export_matches_deterministic_action(space, tmp_path):
    import onnxruntime as ort  # the onnx extra, part of keras-vpg[all]

    ac = make_ac(space)
    path = tmp_path / "policy.onnx"
    keras_vpg.export(ac, path, format="onnx")
    session = ort.InferenceSession(str(path))
    obs = np.random.default_rng(1).normal(size=(5, 3)).astype("float32")
    out = session.run(None, {session.get_inputs()[0].name: obs})[0]
    np.testing.assert_allclose(out, ac.act(obs, deterministic=True), atol=1e-5)


def test_export_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="format"):
        keras_vpg.export(make_ac("box"), tmp_path / "x", format="tflite")


def test_load_policy_and_env_then_run_policy(tmp_path, capsys):
    run = tmp_path / "run"
    agent = keras_vpg.VPG(lambda: gym.make("CartPole-v1"), steps_per_epoch=200, train_v_iters=1,
                          logger_kwargs=dict(output_dir=str(run)))
    agent.fit(epochs=1, verbose=0)
    env, get_action = keras_vpg.load_policy_and_env(run, deterministic=True)
    assert env.spec.id == "CartPole-v1"
    obs, _ = env.reset(seed=0)
    assert get_action(obs) == agent.ac.act(obs, deterministic=True)
    results = keras_vpg.run_policy(env, get_action, num_episodes=3, render=False)
    assert len(results) == 3 and all(length >= 1 for _, length in results)
    assert "AverageEpRet" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="model_7.keras"):
        keras_vpg.load_policy_and_env(run, itr=7)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        keras_vpg.load_policy_and_env(tmp_path / "nowhere")


# -- batched evaluation (keras-vpg test-policy) ------------------------------------------------
class ShortOrLongEnv(gym.Env):
    """Even-numbered instances have 1-step episodes, odd ones 20-step (reward 1 per step)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(3, start=1)
    instances = 0

    def __init__(self):
        self.length = 1 if ShortOrLongEnv.instances % 2 == 0 else 20
        ShortOrLongEnv.instances += 1
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        self.t += 1
        return np.zeros(3, np.float32), 1.0, self.t >= self.length, False, {}


def test_run_episodes_runs_each_env_through_its_own_share_of_episodes():
    # Taking the first 10 episodes to finish would give mostly 1-step ones (the short
    # envs finish 20 while a long one finishes 1); env i runs (10 + i) // 4 episodes.
    ShortOrLongEnv.instances = 0
    stats = keras_vpg.serving.run_episodes(make_ac("discrete"), ShortOrLongEnv,
                                              num_episodes=10, num_envs=4)
    assert list(stats.lengths) == [1, 1, 20, 20, 1, 1, 1, 20, 20, 20]
    assert list(stats.returns) == list(stats.lengths)
    assert stats.steps_per_second > 0


def test_run_episodes_caps_episode_length_and_uses_fewer_envs_than_episodes():
    ac = keras_vpg.MLPActorCritic(gym.make("CartPole-v1").observation_space,
                                  gym.make("CartPole-v1").action_space, hidden_sizes=(8,))
    stats = keras_vpg.serving.run_episodes(ac, lambda: gym.make("CartPole-v1"),
                                              num_episodes=3, max_ep_len=4, num_envs=8)
    assert len(stats.returns) == 3 and all(n <= 4 for n in stats.lengths)
    assert "3 episodes: EpRet" in stats.summary()
    with pytest.raises(ValueError, match="num_episodes"):
        keras_vpg.serving.run_episodes(ac, lambda: gym.make("CartPole-v1"), num_episodes=0)


@pytest.mark.parametrize("space", sorted(SPACES))
def test_batched_policy_matches_the_model(space):
    """The numpy fast path gives the model's deterministic actions and valid, seeded samples."""
    ac = make_ac(space)
    obs = np.random.default_rng(3).normal(size=(64, 3)).astype("float32")
    mode = keras_vpg.serving.batched_policy(ac, deterministic=True)(obs)
    np.testing.assert_allclose(mode, ac.act(obs, deterministic=True), atol=1e-5)
    samples = [keras_vpg.serving.batched_policy(ac, seed=s)(obs) for s in (1, 1, 2)]
    np.testing.assert_array_equal(samples[0], samples[1])
    assert not np.array_equal(samples[0], samples[2])
    space_obj = SPACES[space]
    assert all(space_obj.contains(np.asarray(a, space_obj.dtype)) for a in samples[0])
