"""The logged KL, Entropy and VVals columns, recomputed independently from the batch.

Only the loss columns had checks of their own; these recompute the rest of each epoch's
row with the public ActorCritic methods (``pi``, ``v``) around the policy step.
"""

from __future__ import annotations

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_vpg


def np_(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_kl_entropy_and_vvals_match_an_independent_computation(env_id, tmp_path):
    agent = keras_vpg.VPG(
        lambda: gym.make(env_id), steps_per_epoch=300, train_v_iters=3, max_ep_len=100,
        pi_lr=1e-2, seed=4, ac_kwargs=dict(hidden_sizes=(16,)),
        logger_kwargs=dict(output_dir=str(tmp_path / "run")),
    )
    expected = []
    update_policy = agent.trainer.update_policy

    def recomputing_update_policy(batch):
        obs, act = np.asarray(batch["obs"]), np.asarray(batch["act"])
        # The value network has not moved yet this epoch: these are the epoch's VVals.
        values = np_(agent.ac.v(obs))
        pi_old, logp_old = agent.ac.pi(obs, act)
        entropy = np_(pi_old.entropy()).mean()
        metrics = update_policy(batch)
        _, logp_new = agent.ac.pi(obs, act)
        expected.append({
            "AverageVVals": values.mean(), "StdVVals": values.std(),
            "MaxVVals": values.max(), "MinVVals": values.min(),
            "Entropy": entropy,
            # KL after the update (sample estimate over the batch), not ~0 as in Spinning Up.
            "KL": (np_(logp_old) - np_(logp_new)).mean(),
        })
        return metrics

    agent.trainer.update_policy = recomputing_update_policy
    history = agent.fit(epochs=2, verbose=0)
    agent.close()
    assert len(expected) == 2
    for epoch, want in enumerate(expected):
        assert want["KL"] != 0.0  # the policy moved: the check compares something
        for key, value in want.items():
            got = history.history[key][epoch]
            assert got == pytest.approx(value, rel=2e-3, abs=2e-5), (epoch, key, got, value)
