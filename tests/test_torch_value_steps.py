"""PyTorch's fused value steps (one TorchScript call) against Keras's own Adam path.

The maths of the value steps is pinned to a numpy Adam on every backend in
test_gradients.py; here the fused call must equal PyTorch's eager Keras path
bit for bit, be chosen exactly when it applies, and fall back when it cannot run.
"""

from __future__ import annotations

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_vpg

if keras.backend.backend() != "torch":  # tox's torch env runs this module
    pytest.skip("tests PyTorch-only code (trainers/torch.py FusedValueSteps); "
                "tox's torch env runs it", allow_module_level=True)

from keras_vpg.trainers import get_trainer  # noqa: E402
from keras_vpg.trainers import torch as torch_trainer  # noqa: E402

ACTIONS = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def trainer_for(activation="tanh", obs_shape=(3,), vf_optimizer=None, seed=5):
    keras.utils.set_random_seed(seed)
    ac = keras_vpg.MLPActorCritic(gym.spaces.Box(-1.0, 1.0, obs_shape, np.float32), ACTIONS,
                                  hidden_sizes=(8, 8), activation=activation)
    vf_optimizer = vf_optimizer or keras.optimizers.Adam(0.01)
    return get_trainer(ac, keras.optimizers.Adam(1e-3), vf_optimizer, 5)


def count_fused_calls(trainer):
    """Wrap the trainer's fused steps; returns the list its calls append to."""
    calls, fused = [], trainer._fused_value_steps

    def counted(*args):
        calls.append(args[-1])
        return fused(*args)

    counted.applies = fused.applies
    trainer._fused_value_steps = counted
    return calls


def value_batch(obs_shape, rows=40, seed=6):
    rng = np.random.default_rng(seed)
    return {"obs": rng.normal(size=(rows, *obs_shape)).astype("float32"),
            "ret": rng.normal(size=rows).astype("float32")}


def state(trainer):
    return [keras.ops.convert_to_numpy(v) for v in
            trainer.v_variables + list(trainer.vf_optimizer.variables)]


@pytest.mark.parametrize("activation, obs_shape", [
    ("tanh", (3,)), ("relu", (3,)), ("sigmoid", (3,)), ("linear", (3,)), ("elu", (3,)),
    ("gelu", (3,)), ("silu", (3,)), ("tanh", (2, 3, 2)),
])
def test_fused_value_steps_equal_keras_adam_bit_for_bit(activation, obs_shape):
    fused, eager = trainer_for(activation, obs_shape), trainer_for(activation, obs_shape)
    calls = count_fused_calls(fused)
    eager._fused_value_steps = None
    batch = value_batch(obs_shape)
    for _ in range(2):  # the optimizer's state carries over
        assert fused.update_value(batch) == eager.update_value(batch)
    assert calls == [5, 5]
    for got, expected in zip(state(fused), state(eager)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("make_optimizer, fused", [
    (lambda: keras.optimizers.Adam(0.01), True),
    (lambda: keras.optimizers.Adam(0.01, clipnorm=1.0), False),
    (lambda: keras.optimizers.Adam(0.01, amsgrad=True), False),
    (lambda: keras.optimizers.Adam(0.01, use_ema=True), False),
    (lambda: keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)),
     False),
    (lambda: keras.optimizers.AdamW(0.01), False),
    (lambda: keras.optimizers.SGD(0.01), False),
])
def test_fused_steps_are_chosen_only_for_plain_adam(make_optimizer, fused):
    trainer = trainer_for(vf_optimizer=make_optimizer())
    assert (trainer._fused_value_steps is not None) is fused
    assert trainer.overlaps_with("numpy-mlp") is fused


def test_an_optimizer_changed_later_takes_the_eager_path():
    fused, eager = trainer_for(), trainer_for()
    calls = count_fused_calls(fused)
    eager._fused_value_steps = None
    batch = value_batch((3,))
    fused.update_value(batch)
    eager.update_value(batch)
    for trainer in (fused, eager):  # e.g. a callback between epochs
        trainer.vf_optimizer.clipnorm = 0.01
    assert fused.update_value(batch) == eager.update_value(batch)
    assert calls == [5]
    for got, expected in zip(state(fused), state(eager)):
        np.testing.assert_array_equal(got, expected)


def test_value_and_policy_sharing_a_layer_take_the_eager_path():
    keras.utils.set_random_seed(7)
    obs = keras.Input((3,))
    trunk = keras.layers.Dense(8, activation="tanh")
    pi_net = keras.Model(obs, keras.layers.Dense(2)(trunk(obs)))
    v_net = keras.Model(obs, keras.layers.Dense(1)(trunk(obs)))
    ac = keras_vpg.ActorCritic(pi_net, v_net, ACTIONS)
    trainer = get_trainer(ac, keras.optimizers.Adam(1e-3), keras.optimizers.Adam(0.01), 5)
    assert trainer._fused_value_steps is None and not trainer.overlaps_with("numpy-mlp")


def test_a_torch_without_torchscript_falls_back_with_a_warning(monkeypatch):
    def no_torchscript(fn):
        raise RuntimeError("TorchScript is gone")

    monkeypatch.setattr(torch_trainer, "_SCRIPT", None)
    monkeypatch.setattr(torch_trainer.torch.jit, "script", no_torchscript)
    with pytest.warns(RuntimeWarning, match="TorchScript is gone"):
        trainer = trainer_for()
    assert trainer._fused_value_steps is None and not trainer.overlaps_with("numpy-mlp")
    reference = trainer_for()
    reference._fused_value_steps = None
    batch = value_batch((3,))
    assert trainer.update_value(batch) == reference.update_value(batch)
