"""Which policies take the numpy fast path (config.json's ``sampler``) and which refuse it."""

from __future__ import annotations

import json

import gymnasium as gym
import keras
import pytest

import keras_vpg
from keras_vpg.trainers.numpy_policy import ACTIVATIONS, mlp_layers


def sampler_of(tmp_path, name, actor_critic=keras_vpg.MLPActorCritic, **ac_kwargs):
    agent = keras_vpg.VPG(lambda: gym.make("CartPole-v1"), actor_critic=actor_critic,
                          ac_kwargs=ac_kwargs, steps_per_epoch=20, fast_paths=True,
                          logger_kwargs=dict(output_dir=str(tmp_path / name)))
    agent.close()
    return json.loads((tmp_path / name / "config.json").read_text())["sampler"]


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu", "silu", "sigmoid"])
def test_plain_mlps_keep_the_fast_path(activation, tmp_path):
    assert sampler_of(tmp_path, activation, hidden_sizes=(8,),
                      activation=activation) == "numpy-mlp"


def custom(hidden_layer):
    def make(observation_space, action_space):
        inputs = keras.Input(observation_space.shape)
        outputs = keras.layers.Dense(int(action_space.n))(hidden_layer()(inputs))
        v_net = keras_vpg.MLPActorCritic(observation_space, action_space,
                                         hidden_sizes=(8,)).v_net
        return keras_vpg.ActorCritic(keras.Model(inputs, outputs), v_net, action_space)
    return make


@pytest.mark.parametrize("name, hidden_layer", [
    ("gelu", lambda: keras.layers.Dense(8, activation="gelu")),
    ("softplus", lambda: keras.layers.Dense(8, activation="softplus")),
    ("layernorm", lambda: keras.layers.LayerNormalization()),
    ("dropout", lambda: keras.layers.Dropout(0.5)),
])
def test_unsupported_activation_or_layer_refuses_the_fast_path(name, hidden_layer, tmp_path):
    backend = keras.backend.backend()
    assert sampler_of(tmp_path, name, actor_critic=custom(hidden_layer)) == (
        f"{backend}-compiled")


def test_a_model_with_several_inputs_is_not_a_plain_mlp():
    a, b = keras.Input((2,)), keras.Input((2,))
    joined = keras.layers.Dense(2)(keras.layers.Concatenate()([a, b]))
    assert mlp_layers(keras.Model([a, b], joined), ACTIVATIONS) is None
    two_out = keras.Input((2,))
    assert mlp_layers(keras.Model(two_out, [keras.layers.Dense(2)(two_out),
                                            keras.layers.Dense(2)(two_out)]), ACTIVATIONS) is None
    single = keras.Input((2,))
    assert mlp_layers(keras.Model(single, keras.layers.Dense(2)(single)), ACTIVATIONS)
