"""The trainer's gradient steps against central finite differences of a numpy float64 model."""

from __future__ import annotations

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_vpg
from keras_vpg.trainers import get_trainer

OBS_SPACE = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
SPACES = {
    "box": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
    "discrete": gym.spaces.Discrete(3),
}


def mlp_forward(params, obs):
    kernel0, bias0, kernel1, bias1 = params
    return np.tanh(obs @ kernel0 + bias0) @ kernel1 + bias1


def policy_loss_np(pi_params, batch, discrete):
    out = mlp_forward(pi_params[:4], batch["obs"])
    if discrete:
        logp_all = out - np.log(np.exp(out).sum(-1, keepdims=True))
        logp = logp_all[np.arange(len(out)), batch["act"]]
    else:
        log_std = pi_params[4]
        z = (batch["act"] - out) / np.exp(log_std)
        logp = (-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
    return -np.mean(logp * batch["adv"])


def value_loss_np(v_params, batch):
    return np.mean((mlp_forward(v_params, batch["obs"])[:, 0] - batch["ret"]) ** 2)


def finite_difference(loss, params, eps=1e-6):
    grads = []
    for i, p in enumerate(params):
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            plus = [q.copy() for q in params]
            minus = [q.copy() for q in params]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            g[idx] = (loss(plus) - loss(minus)) / (2 * eps)
        grads.append(g)
    return grads


def numpy_values(variables):
    return [keras.ops.convert_to_numpy(v).astype(np.float64) for v in variables]


@pytest.mark.parametrize("space", sorted(SPACES))
def test_policy_and_value_steps_follow_the_exact_gradient(space):
    discrete = space == "discrete"
    keras.utils.set_random_seed(1)
    ac = keras_vpg.MLPActorCritic(OBS_SPACE, SPACES[space], hidden_sizes=(4,))
    rng = np.random.default_rng(2)
    batch = {
        "obs": rng.normal(size=(16, 3)).astype("float32"),
        "act": (rng.integers(0, 3, 16).astype("int32") if discrete
                else rng.normal(size=(16, 2)).astype("float32")),
        "adv": rng.normal(size=16).astype("float32"),
        "ret": rng.normal(size=16).astype("float32"),
        "logp": np.zeros(16, "float32"),
    }
    batch64 = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in batch.items()}
    pi_before, v_before = numpy_values(ac.pi_variables), numpy_values(ac.v_variables)
    expected_pi = finite_difference(lambda p: policy_loss_np(p, batch64, discrete), pi_before)
    expected_v = finite_difference(lambda p: value_loss_np(p, batch64), v_before)

    # Plain SGD with learning rate 1: parameters move by exactly minus the gradient.
    trainer = get_trainer(ac, keras.optimizers.SGD(1.0), keras.optimizers.SGD(1.0), 1)
    metrics = {**trainer.update_policy(batch), **trainer.update_value(batch)}
    got_pi = [b - a for b, a in zip(pi_before, numpy_values(ac.pi_variables))]
    got_v = [b - a for b, a in zip(v_before, numpy_values(ac.v_variables))]
    for got, expected in zip(got_pi + got_v, expected_pi + expected_v):
        np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-5)
    np.testing.assert_allclose(metrics["LossPi"], policy_loss_np(pi_before, batch64, discrete),
                               rtol=1e-4)
    np.testing.assert_allclose(metrics["LossV"], value_loss_np(v_before, batch64), rtol=1e-4)
    # Deltas are measured after the update, with the new parameters.
    pi_after, v_after = numpy_values(ac.pi_variables), numpy_values(ac.v_variables)
    np.testing.assert_allclose(
        metrics["DeltaLossPi"],
        policy_loss_np(pi_after, batch64, discrete) - policy_loss_np(pi_before, batch64, discrete),
        rtol=1e-3, atol=1e-5,
    )
    np.testing.assert_allclose(
        metrics["DeltaLossV"],
        value_loss_np(v_after, batch64) - value_loss_np(v_before, batch64), rtol=1e-3, atol=1e-5,
    )


@pytest.mark.parametrize("space", sorted(SPACES))
def test_compiled_sampling_and_value_agree_with_the_model(space):
    """The trainer's fast batched calls return the model's own log-prob and value."""
    keras.utils.set_random_seed(3)
    ac = keras_vpg.MLPActorCritic(OBS_SPACE, SPACES[space], hidden_sizes=(8, 8),
                                  normalize_obs=True)
    ac.obs_normalizer.update(np.full(3, 2.0), np.full(3, 9.0), 4.0)
    trainer = get_trainer(ac, keras.optimizers.Adam(), keras.optimizers.Adam(), 1)
    obs = np.random.default_rng(4).normal(size=(32, 3)).astype("float32")
    trainer.begin_collection()
    first = trainer.sample(obs)
    second = trainer.sample(obs)
    trainer.end_collection()
    values = trainer.value(obs)
    action, logp = first
    assert action.shape[0] == 32 and values.shape == (32,) and logp.shape == (32,)
    assert not np.array_equal(first[0], second[0]), "sampling repeated itself"
    _, logp_model = ac.pi(obs, action)
    np.testing.assert_allclose(logp, keras.ops.convert_to_numpy(logp_model), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(values, ac.v(obs), rtol=1e-5, atol=1e-5)
    # Outside a collection (the compiled call where a backend has a faster path inside).
    action, logp = trainer.sample(obs)
    _, logp_model = ac.pi(obs, action)
    np.testing.assert_allclose(logp, keras.ops.convert_to_numpy(logp_model), rtol=1e-5, atol=1e-5)


def value_gradient_np(v_params, batch):
    """Backpropagation of :func:`value_loss_np` by hand (float64)."""
    kernel0, bias0, kernel1, bias1 = v_params
    hidden = np.tanh(batch["obs"] @ kernel0 + bias0)
    d_out = 2.0 * (hidden @ kernel1 + bias1 - batch["ret"][:, None]) / len(batch["ret"])
    d_pre = (d_out @ kernel1.T) * (1.0 - hidden**2)
    return [batch["obs"].T @ d_pre, d_pre.sum(0), hidden.T @ d_out, d_out.sum(0)]


def adam_np(params, grads, state, lr, clipnorm, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """One Adam step in Keras's form (bias correction folded into the step size)."""
    state["t"] += 1
    t = state["t"]
    alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    out = []
    for i, (p, g) in enumerate(zip(params, grads)):
        if clipnorm is not None:  # Keras clips each gradient tensor by its own norm
            g = g * min(1.0, clipnorm / np.linalg.norm(g))
        state["m"][i] = beta_1 * state["m"][i] + (1 - beta_1) * g
        state["v"][i] = beta_2 * state["v"][i] + (1 - beta_2) * g**2
        out.append(p - alpha * state["m"][i] / (np.sqrt(state["v"][i]) + epsilon))
    return out


@pytest.mark.parametrize("clipnorm", [None, 0.05])
def test_value_steps_with_adam_follow_a_numpy_adam(clipnorm):
    # Two updates of 4 value steps each: the optimizer's state carries over.
    keras.utils.set_random_seed(3)
    ac = keras_vpg.MLPActorCritic(OBS_SPACE, SPACES["box"], hidden_sizes=(4,))
    rng = np.random.default_rng(4)
    batch = {"obs": rng.normal(size=(32, 3)).astype("float32"),
             "ret": rng.normal(size=32).astype("float32")}
    batch64 = {k: v.astype(np.float64) for k, v in batch.items()}
    params = numpy_values(ac.v_variables)
    zeros = [np.zeros_like(p) for p in params]
    state = {"t": 0, "m": list(zeros), "v": list(zeros)}
    vf_optimizer = keras.optimizers.Adam(0.01, clipnorm=clipnorm)
    trainer = get_trainer(ac, keras.optimizers.Adam(1e-3), vf_optimizer, 4)
    # PyTorch runs plain Adam's value steps as one TorchScript call (trainers/torch.py);
    # anything Adam's step does beyond that takes the eager path.
    fused = getattr(trainer, "_fused_value_steps", None) is not None
    assert fused == (keras.backend.backend() == "torch" and clipnorm is None)
    for _ in range(2):
        loss_before = value_loss_np(params, batch64)
        metrics = trainer.update_value(batch)
        for _ in range(4):
            params = adam_np(params, value_gradient_np(params, batch64), state, 0.01, clipnorm)
        np.testing.assert_allclose(metrics["LossV"], loss_before, rtol=1e-5)
        np.testing.assert_allclose(metrics["DeltaLossV"],
                                   value_loss_np(params, batch64) - loss_before, rtol=1e-3)
        for got, expected in zip(numpy_values(ac.v_variables), params):
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert int(keras.ops.convert_to_numpy(vf_optimizer.iterations)) == 8
