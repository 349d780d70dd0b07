"""Learning-rate schedules for pi_lr / vf_lr, and config.json read back by load_config."""

from __future__ import annotations

import json

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_vpg

schedules = keras.optimizers.schedules


def cartpole():
    return gym.make("CartPole-v1")


def table(path):
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    keep = [i for i, name in enumerate(header) if name not in ("Time", "StepsPerSecond")]
    return [[line.split("\t")[i] for i in keep] for line in lines]


def learning_rate(optimizer) -> float:
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def weights(model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables]


def test_schedules_set_each_epochs_learning_rates(tmp_path):
    train_v_iters = 3
    agent = keras_vpg.VPG(
        cartpole, steps_per_epoch=200, train_v_iters=train_v_iters,
        ac_kwargs=dict(hidden_sizes=(16,)),
        # The policy optimizer steps once per epoch: its rate halves each epoch.
        pi_lr=schedules.ExponentialDecay(1e-2, decay_steps=1, decay_rate=0.5),
        # The value optimizer steps train_v_iters times per epoch: zero after epoch 0.
        vf_lr=schedules.PiecewiseConstantDecay([train_v_iters - 1], [1e-3, 0.0]),
        logger_kwargs=dict(output_dir=str(tmp_path / "run")),
    )
    rates, value_weights = [], []

    def record(epoch, logs):
        rates.append((learning_rate(agent.trainer.pi_optimizer),
                      learning_rate(agent.trainer.vf_optimizer)))
        value_weights.append(weights(agent.ac.v_net))

    before = weights(agent.ac.v_net)
    agent.fit(epochs=3, verbose=0, callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=record)])
    pi_rates = [pi for pi, _ in rates]
    np.testing.assert_allclose(pi_rates, [1e-2 * 0.5 ** (k + 1) for k in range(3)], rtol=1e-5)
    assert [vf for _, vf in rates] == [0.0, 0.0, 0.0]
    # The rate the value steps used: 1e-3 in epoch 0, then 0 (the weights stop moving).
    assert any(not np.array_equal(a, b) for a, b in zip(before, value_weights[0]))
    for a, b in zip(value_weights[0], value_weights[2]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="the fused value steps are PyTorch's (runs in tox env torch)")
def test_torch_fused_value_steps_fall_back_to_keras_under_a_schedule(tmp_path):
    kwargs = dict(steps_per_epoch=200, train_v_iters=4, ac_kwargs=dict(hidden_sizes=(16,)),
                  overlap_update=False)
    plain = keras_vpg.VPG(cartpole, logger_kwargs=dict(output_dir=str(tmp_path / "a")), **kwargs)
    assert plain.trainer._fused_value_steps is not None  # the fused path exists here...
    scheduled = keras_vpg.VPG(
        cartpole, vf_lr=schedules.PiecewiseConstantDecay([1], [1e-3, 0.0]),
        logger_kwargs=dict(output_dir=str(tmp_path / "b")), **kwargs,
    )
    assert scheduled.trainer._fused_value_steps is None  # ...and a schedule turns it off
    start = weights(scheduled.ac.v_net)
    scheduled.fit(epochs=1, verbose=0)
    after_one = weights(scheduled.ac.v_net)
    scheduled.fit(epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(start, after_one))
    for a, b in zip(after_one, weights(scheduled.ac.v_net)):
        np.testing.assert_array_equal(a, b)  # rate 0 from the third value step on
    assert int(keras.ops.convert_to_numpy(scheduled.trainer.vf_optimizer.iterations)) == 8


@pytest.mark.slow
def test_config_json_round_trip_reproduces_the_run(tmp_path):
    pi_lr = schedules.ExponentialDecay(3e-3, decay_steps=2, decay_rate=0.7)
    kwargs = dict(steps_per_epoch=300, train_v_iters=3, ac_kwargs=dict(hidden_sizes=(16, 8)),
                  seed=3, pi_lr=pi_lr, vf_lr=2e-3, gamma=0.95, max_ep_len=150)
    keras_vpg.VPG(cartpole, logger_kwargs=dict(output_dir=str(tmp_path / "a"), exp_name="cp"),
                  **kwargs).fit(epochs=2, verbose=0)
    recorded = json.loads((tmp_path / "a" / "config.json").read_text())
    assert recorded["pi_lr"]["class_name"] == "ExponentialDecay"

    loaded = keras_vpg.load_config(tmp_path / "a")
    assert isinstance(loaded["pi_lr"], schedules.ExponentialDecay)
    assert loaded["pi_lr"].get_config() == pi_lr.get_config()
    assert loaded["actor_critic"] is keras_vpg.MLPActorCritic
    assert loaded["ac_kwargs"]["hidden_sizes"] == (16, 8)
    assert loaded["gamma"] == 0.95 and loaded["max_ep_len"] == 150 and loaded["seed"] == 3
    assert loaded["env_fn"]().spec.id == "CartPole-v1"
    assert "backend" not in loaded and "env_spec" not in loaded

    loaded["logger_kwargs"] = dict(output_dir=str(tmp_path / "b"), exp_name="cp")
    keras_vpg.VPG(**loaded).fit(epochs=2, verbose=0)
    assert table(tmp_path / "b" / "progress.txt") == table(tmp_path / "a" / "progress.txt")
    assert "env_fn" not in keras_vpg.load_config(tmp_path / "a" / "config.json", make_env=False)
    with pytest.raises(FileNotFoundError, match="config.json"):
        keras_vpg.load_config(tmp_path / "missing")


@pytest.mark.parametrize("value", ["fast", True, -1e-3, float("nan")])
def test_a_bad_learning_rate_is_named(value, tmp_path):
    with pytest.raises(ValueError, match="pi_lr"):
        keras_vpg.VPG(cartpole, pi_lr=value, logger_kwargs=dict(output_dir=str(tmp_path)))
