"""The policy step sees the data's own policy; sampling paths reproduce the model they stand for."""

from __future__ import annotations

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_vpg
from keras_vpg.actor_critic import ObservationNormalizer
from keras_vpg.trainers.numpy_policy import NumpyPolicySampler


def _record_policy_step_logps(agent: keras_vpg.VPG) -> list[tuple[np.ndarray, np.ndarray]]:
    """Wrap the policy step: record (stored logp, logp recomputed at its start) per epoch."""
    records = []
    update_policy = agent.trainer.update_policy

    def recording_update_policy(batch):
        _, logp_now = agent.ac.pi(batch["obs"], batch["act"])
        records.append((np.asarray(batch["logp"]), keras.ops.convert_to_numpy(logp_now)))
        return update_policy(batch)

    agent.trainer.update_policy = recording_update_policy
    return records


def _shared_trunk_actor_critic(observation_space, action_space):
    """pi and v on one Dense trunk: value steps would move the policy too."""
    inputs = keras.Input(observation_space.shape)
    trunk = keras.layers.Dense(16, activation="tanh", name="trunk")
    pi_net = keras.Model(inputs, keras.layers.Dense(int(action_space.n))(trunk(inputs)))
    v_inputs = keras.Input(observation_space.shape)
    v_net = keras.Model(v_inputs, keras.layers.Dense(1)(trunk(v_inputs)))
    return keras_vpg.ActorCritic(pi_net, v_net, action_space)


def test_with_a_shared_trunk_the_policy_step_comes_before_the_value_steps(tmp_path):
    agent = keras_vpg.VPG(
        lambda: gym.make("CartPole-v1"), actor_critic=_shared_trunk_actor_critic,
        steps_per_epoch=400, train_v_iters=20, vf_lr=1e-2, seed=1,
        logger_kwargs=dict(output_dir=str(tmp_path / "run")),
    )
    assert agent.ac.shared_variables, "the test needs a shared trunk"
    records = _record_policy_step_logps(agent)
    agent.fit(epochs=3, verbose=0)
    assert len(records) == 3
    for stored, recomputed in records:
        np.testing.assert_allclose(recomputed, stored, rtol=1e-4, atol=1e-4)


class _ShiftedGaussianActorCritic(keras_vpg.ActorCritic):
    """A subclass whose ``distribution`` moves the mean: the numpy copy would not know."""

    def distribution(self, obs):
        dist = super().distribution(obs)
        return keras_vpg.DiagGaussian(dist.mean + 0.75, self.log_std, seed=self.seed_generator)


def _shifted_actor_critic(observation_space, action_space):
    base = keras_vpg.MLPActorCritic(observation_space, action_space, hidden_sizes=(16,))
    return _ShiftedGaussianActorCritic(base.pi_net, base.v_net, action_space)


def _twice_called_layer_actor_critic(observation_space, action_space):
    """One Dense layer applied twice: its weights appear once in ``pi_net.layers``."""
    inputs = keras.Input(observation_space.shape)
    square = keras.layers.Dense(observation_space.shape[0], activation="tanh")
    outputs = keras.layers.Dense(action_space.shape[0])(square(square(inputs)))
    pi_net = keras.Model(inputs, outputs)
    v_net = keras_vpg.MLPActorCritic(observation_space, action_space, hidden_sizes=(8,)).v_net
    return keras_vpg.ActorCritic(pi_net, v_net, action_space)


@pytest.mark.parametrize("make_ac", [_shifted_actor_critic, _twice_called_layer_actor_critic])
def test_models_numpy_would_not_reproduce_train_with_the_backend_sampler(make_ac, tmp_path):
    agent = keras_vpg.VPG(
        lambda: gym.make("Pendulum-v1"), actor_critic=make_ac,
        steps_per_epoch=300, train_v_iters=2, max_ep_len=100, seed=2,
        logger_kwargs=dict(output_dir=str(tmp_path / "run")),
    )
    assert NumpyPolicySampler.for_model(agent.ac) is None
    records = _record_policy_step_logps(agent)
    agent.fit(epochs=2, verbose=0)
    for stored, recomputed in records:
        np.testing.assert_allclose(recomputed, stored, rtol=1e-4, atol=1e-4)


def test_plain_mlp_keeps_the_numpy_sampler():
    space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    ac = keras_vpg.MLPActorCritic(space, gym.spaces.Box(-1.0, 1.0, (2,), np.float32))
    assert NumpyPolicySampler.for_model(ac) is not None


def test_normalizer_passes_observations_unclipped_until_it_has_statistics():
    normalizer = ObservationNormalizer((3,))
    obs = np.array([[25.0, -40.0, 0.5]], np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(normalizer(obs)), obs, rtol=1e-6)
    normalizer.update(np.zeros(3), np.full(3, 4.0), 4.0)  # mean 0, variance 1
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(normalizer(obs)), [[10.0, -10.0, 0.5]], rtol=1e-5
    )


def test_numpy_sampler_matches_the_model_before_and_after_normalizer_statistics():
    obs_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    ac = keras_vpg.MLPActorCritic(obs_space, act_space, hidden_sizes=(8,), normalize_obs=True)
    sampler = NumpyPolicySampler.for_model(ac)
    obs = np.array([[30.0, -50.0, 1.0], [0.1, 0.2, -0.3]], np.float32)
    for _ in range(2):
        sampler.begin()
        actions, logp = sampler.sample(obs)
        sampler.end()
        _, expected = ac.pi(obs, actions)
        np.testing.assert_allclose(logp, keras.ops.convert_to_numpy(expected), rtol=1e-4, atol=1e-4)
        ac.obs_normalizer.update(np.array([2.0, -1.0, 0.0]), np.array([8.0, 3.0, 2.0]), 2.0)
