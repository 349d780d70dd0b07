"""ActorCritic API, spaces, and .keras round trips across backends."""

from __future__ import annotations

import json

import gymnasium as gym
import keras
import numpy as np
import pytest
from conftest import BACKENDS, run_python

import keras_vpg

OBS = gym.spaces.Box(-1.0, 1.0, (3, 4), np.float32)
BOX = gym.spaces.Box(np.array([-0.1, -2.0], np.float32), np.array([0.1, 2.0], np.float32))
DISCRETE = gym.spaces.Discrete(3, start=1)


def make(action_space, **kwargs):
    keras.utils.set_random_seed(0)
    return keras_vpg.MLPActorCritic(OBS, action_space, hidden_sizes=(8,), **kwargs)


def test_discrete_shapes_and_integer_actions():
    ac = make(DISCRETE)
    batch = np.random.default_rng(0).normal(size=(5, 3, 4)).astype("float32")
    a, v, logp = ac.step(batch)
    assert a.shape == (5,) and v.shape == (5,) and logp.shape == (5,)
    assert np.issubdtype(a.dtype, np.integer) and set(a) <= {0, 1, 2}
    acted = ac.act(batch)
    assert acted.dtype == np.int64 and set(acted) <= {1, 2, 3}  # offset by start=1
    a1, v1, logp1 = ac.step(batch[0])
    assert np.shape(a1) == () and np.shape(v1) == () and np.shape(logp1) == ()
    assert np.shape(ac.act(batch[0])) == ()
    det = ac.act(batch, deterministic=True)
    pi, logp_a = ac.pi(batch, det - 1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(pi.mode()) + 1, det)
    np.testing.assert_array_equal(np.asarray(ac.predict(batch, verbose=0)), det)
    assert keras.ops.convert_to_numpy(logp_a).shape == (5,)
    assert ac.v(batch).shape == (5,) and np.shape(ac.v(batch[0])) == ()


def test_box_actions_are_raw_in_step_and_clipped_in_act():
    ac = make(BOX)
    ac.log_std.assign(np.full(2, 1.0, "float32"))  # wide: samples leave the box
    batch = np.zeros((200, 3, 4), "float32")
    raw, _, logp = ac.step(batch)
    assert raw.shape == (200, 2) and (np.abs(raw[:, 0]) > 0.1).any()
    _, logp_again = ac.pi(batch, raw)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(logp_again), logp, rtol=1e-5)
    acted = ac.act(batch)
    assert acted.dtype == np.float32
    assert (acted >= BOX.low).all() and (acted <= BOX.high).all()
    np.testing.assert_allclose(ac.act(batch[:3], deterministic=True),
                               np.clip(keras.ops.convert_to_numpy(ac.pi(batch[:3])[0].mean),
                                       BOX.low, BOX.high), rtol=1e-6)


def test_log_std_starts_at_minus_half_and_is_trainable():
    ac = make(BOX)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ac.log_std), [-0.5, -0.5])
    assert any(v is ac.log_std for v in ac.pi_variables)


def test_wrong_observation_shape_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        make(BOX).act(np.zeros((2, 5)))


@pytest.mark.parametrize("space, name", [
    (gym.spaces.MultiDiscrete([2, 3]), "MultiDiscrete"),
    (gym.spaces.Box(-1, 1, (2, 2)), "Box"),
    (gym.spaces.MultiBinary(3), "MultiBinary"),
])
def test_unsupported_action_spaces_name_the_space(space, name):
    with pytest.raises(TypeError, match=f"action_space.*{name}"):
        keras_vpg.MLPActorCritic(OBS, space)


def test_unsupported_observation_space_names_the_space():
    with pytest.raises(TypeError, match="observation_space.*Dict"):
        keras_vpg.MLPActorCritic(gym.spaces.Dict({"a": OBS}), DISCRETE)


def test_bring_your_own_functional_networks():
    inputs = keras.Input((5,))
    pi_net = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(7, "relu")(inputs)))
    v_inputs = keras.Input((5,))
    v_net = keras.Model(v_inputs, keras.layers.Dense(1)(v_inputs))
    ac = keras_vpg.ActorCritic(pi_net, v_net, gym.spaces.Discrete(2))
    a, v, logp = ac.step(np.ones((4, 5)))
    assert a.shape == v.shape == logp.shape == (4,)


@pytest.mark.parametrize("net", ["pi_net", "v_net"])
def test_a_regularized_layer_is_refused_not_ignored(net):
    inputs = keras.Input((5,))
    nets = {"pi_net": keras.Model(inputs, keras.layers.Dense(2)(inputs)),
            "v_net": keras.Model(inputs, keras.layers.Dense(1)(inputs))}
    hidden = keras.layers.Dense(3, kernel_regularizer="l2", name="decayed")(inputs)
    nets[net] = keras.Model(inputs, keras.layers.Dense(2 if net == "pi_net" else 1)(hidden))
    with pytest.raises(ValueError, match=f"{net}: layer 'decayed' has kernel_regularizer"):
        keras_vpg.ActorCritic(nets["pi_net"], nets["v_net"], gym.spaces.Discrete(2))


@pytest.mark.slow
def test_keras_round_trip_in_fresh_processes_on_every_backend(tmp_path):
    """Saved on this backend (tox runs the module once per backend: every pair), loaded here
    and in one fresh process per other backend, which reads both policies."""
    obs = np.random.default_rng(1).normal(size=(6, 3, 4)).astype("float32")
    np.save(tmp_path / "obs.npy", obs)
    expected = {}
    for space, tag in ((BOX, "box"), (DISCRETE, "discrete")):
        ac = make(space, normalize_obs=True)
        ac.obs_normalizer.update(np.full((3, 4), 5.0), np.full((3, 4), 30.0), 2.0)
        ac.save(tmp_path / f"{tag}.keras")
        expected[tag] = (ac.act(obs, deterministic=True), ac.v(obs))
    code = (
        "import json, keras, numpy as np, keras_vpg\n"
        f"obs = np.load({str(tmp_path / 'obs.npy')!r})\n"
        "out = {}\n"
        "for tag in ('box', 'discrete'):\n"
        f"    ac = keras.saving.load_model({str(tmp_path)!r} + f'/{{tag}}.keras')\n"
        "    out[tag] = [ac.act(obs, deterministic=True).tolist(), ac.v(obs).tolist(),"
        " type(ac).__name__]\n"
        "print(json.dumps(out))\n"
    )
    here = keras.backend.backend()
    for backend in BACKENDS:
        if backend == here:  # the same backend: loaded in this process
            out = {}
            for tag in expected:
                ac = keras.saving.load_model(tmp_path / f"{tag}.keras")
                out[tag] = [ac.act(obs, deterministic=True), ac.v(obs), type(ac).__name__]
        else:
            out = json.loads(run_python(code, backend).strip().splitlines()[-1])
        for tag, (actions, values) in expected.items():
            np.testing.assert_allclose(out[tag][0], actions, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{tag} on {backend}")
            np.testing.assert_allclose(out[tag][1], values, rtol=1e-5, atol=1e-5,
                                       err_msg=f"{tag} on {backend}")
            assert out[tag][2] == "MLPActorCritic"


def test_truncated_keras_file_raises_a_clear_error(tmp_path):
    path = tmp_path / "policy.keras"
    make(DISCRETE).save(path)
    data = path.read_bytes()
    broken = tmp_path / "broken.keras"
    broken.write_bytes(data[: len(data) // 2])
    from keras_vpg.serving import load_model

    with pytest.raises(ValueError, match="broken.keras"):
        load_model(broken)
