"""A trained policy's whole state survives ``.keras`` save and load (``log_std`` included)."""

from __future__ import annotations

import gymnasium as gym
import keras
import numpy as np

import keras_vpg


def test_a_trained_log_std_survives_save_and_load(tmp_path):
    agent = keras_vpg.VPG(
        lambda: gym.make("Pendulum-v1"), steps_per_epoch=400, train_v_iters=2, max_ep_len=100,
        pi_lr=3e-2, seed=1, ac_kwargs=dict(hidden_sizes=(16,)),
        logger_kwargs=dict(output_dir=str(tmp_path / "run")),
    )
    agent.fit(epochs=2, verbose=0)
    agent.close()
    trained = keras.ops.convert_to_numpy(agent.ac.log_std)
    assert not np.allclose(trained, -0.5, atol=1e-3), "log_std did not move from its init"
    path = tmp_path / "trained.keras"
    agent.save(str(path))
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.log_std), trained)
    # The stochastic policy, not only the deterministic action: log-probs and entropy.
    obs = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    act = np.random.default_rng(1).normal(size=(16, 1)).astype("float32")
    pi_a, logp_a = agent.ac.pi(obs, act)
    pi_b, logp_b = loaded.pi(obs, act)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(logp_b),
                               keras.ops.convert_to_numpy(logp_a), rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pi_b.entropy()),
                               keras.ops.convert_to_numpy(pi_a.entropy()), rtol=1e-6)
    for a, b in zip(agent.ac.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
