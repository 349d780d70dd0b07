"""Private framework APIs (keras_vpg/trainers/compat.py): each has a public fallback that
is taken, correctly and with one warning, when the private path is missing."""

from __future__ import annotations

import warnings

import keras
import pytest

from keras_vpg.trainers import compat


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(compat, "_warned", set())


def caught(fn):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = fn()
    return result, [w for w in record if "keras-vpg" in str(w.message)]


def test_keras_adam_state_reads_the_slots_of_each_variable():
    variables = [keras.Variable(keras.ops.ones((2, 3))), keras.Variable(keras.ops.zeros((3,)))]
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    optimizer.build(variables)
    state, warned = caught(lambda: compat.keras_adam_state(optimizer, variables))
    assert not warned
    assert [tuple(m.shape) for m in state["momentums"]] == [(2, 3), (3,)]
    assert [tuple(v.shape) for v in state["velocities"]] == [(2, 3), (3,)]
    assert float(keras.ops.convert_to_numpy(state["learning_rate"])) == pytest.approx(0.01)


def test_keras_adam_state_falls_back_once_with_a_warning_when_the_slots_are_gone():
    class RenamedAdam:  # what a Keras release without these private names would look like
        pass

    for expected_warnings in (1, 0):  # warned once per process
        state, warned = caught(lambda: compat.keras_adam_state(RenamedAdam(), []))
        assert state is None and len(warned) == expected_warnings


def test_a_schedule_is_no_version_problem_and_not_warned():
    variables = [keras.Variable(keras.ops.ones((2,)))]
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9))
    optimizer.build(variables)
    state, warned = caught(lambda: compat.keras_adam_state(optimizer, variables))
    assert state is None and not warned


def test_jax_client_check_falls_back_when_the_private_registry_is_gone(monkeypatch):
    xla_bridge = pytest.importorskip("jax._src.xla_bridge")
    assert isinstance(compat.jax_cpu_client_started(), bool)
    monkeypatch.delattr(xla_bridge, "_backends")
    started, warned = caught(compat.jax_cpu_client_started)
    assert started is False and len(warned) == 1


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="PyTorch trainer's fused value steps; runs in the torch tox env")
def test_torch_value_steps_stay_correct_on_the_eager_fallback(monkeypatch):
    import gymnasium as gym
    import numpy as np

    from keras_vpg import MLPActorCritic
    from keras_vpg.trainers import get_trainer

    monkeypatch.setattr(compat, "keras_adam_state", lambda optimizer, variables: None)
    ac = MLPActorCritic(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Discrete(2),
                        hidden_sizes=(8,))
    trainer = get_trainer(ac, keras.optimizers.Adam(), keras.optimizers.Adam(1e-2), 20)
    assert trainer._fused_value_steps is None and not trainer.overlaps_with("numpy-mlp")
    rng = np.random.default_rng(0)
    batch = {"obs": rng.normal(size=(64, 3)).astype("float32"),
             "ret": rng.normal(size=64).astype("float32")}
    metrics = trainer.update_value(batch)
    assert metrics["DeltaLossV"] < 0  # the eager Adam steps fit the returns


def test_space_generator_state_reads_the_generator_without_making_one():
    import gymnasium as gym

    space = gym.spaces.Discrete(3)
    assert compat.space_generator_state(space) is None  # unseeded: still none after reading
    assert space._np_random is None
    space.seed(5)
    state, warned = caught(lambda: compat.space_generator_state(space))
    assert state == space.np_random.bit_generator.state and not warned


def test_space_generator_state_falls_back_to_the_public_generator():
    import types

    import numpy as np

    # A gymnasium whose private attribute is renamed: only the public np_random is there.
    space = types.SimpleNamespace(np_random=np.random.default_rng(5))
    expected = np.random.default_rng(5).bit_generator.state
    state, warned = caught(lambda: compat.space_generator_state(space))
    assert state == expected and len(warned) == 1
    assert compat.space_generator_state(space) == expected  # warned once only
