"""Distributions against scipy (every backend) and TensorFlow Probability (TF backend)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops
from scipy import special, stats

from keras_vpg.distributions import Categorical, DiagGaussian

rng = np.random.default_rng(0)
LOGITS = rng.normal(size=(5, 4)).astype("float32")
LOGITS_2 = rng.normal(size=(5, 4)).astype("float32")
MEAN = rng.normal(size=(5, 3)).astype("float32")
MEAN_2 = rng.normal(size=(5, 3)).astype("float32")
LOG_STD = rng.normal(scale=0.3, size=(3,)).astype("float32")
LOG_STD_2 = rng.normal(scale=0.3, size=(3,)).astype("float32")
ACTIONS = np.array([0, 3, 1, 2, 3])
X = rng.normal(size=(5, 3)).astype("float32")


def np_(x):
    return ops.convert_to_numpy(x)


def test_categorical_matches_scipy():
    dist = Categorical(ops.convert_to_tensor(LOGITS))
    probs = special.softmax(LOGITS.astype(np.float64), axis=-1)
    np.testing.assert_allclose(np_(dist.log_prob(ACTIONS)),
                               np.log(probs[np.arange(5), ACTIONS]), rtol=1e-5)
    np.testing.assert_allclose(np_(dist.entropy()), [stats.entropy(p) for p in probs], rtol=1e-5)
    other = special.softmax(LOGITS_2.astype(np.float64), axis=-1)
    kl = [stats.entropy(p, q) for p, q in zip(probs, other)]
    np.testing.assert_allclose(np_(dist.kl(Categorical(ops.convert_to_tensor(LOGITS_2)))), kl,
                               rtol=1e-5)
    np.testing.assert_array_equal(np_(dist.mode()), LOGITS.argmax(-1))


def test_gaussian_matches_scipy():
    dist = DiagGaussian(ops.convert_to_tensor(MEAN), ops.convert_to_tensor(LOG_STD))
    std = np.exp(LOG_STD.astype(np.float64))
    logp = stats.norm.logpdf(X, MEAN, std).sum(-1)
    np.testing.assert_allclose(np_(dist.log_prob(X)), logp, rtol=1e-5)
    entropy = stats.norm.entropy(MEAN * 0, std * np.ones_like(MEAN)).sum(-1)
    np.testing.assert_allclose(np_(dist.entropy()), entropy, rtol=1e-5)
    std2 = np.exp(LOG_STD_2.astype(np.float64))
    # Closed-form KL of independent normals, summed over dimensions.
    kl = (np.log(std2 / std) + (std**2 + (MEAN - MEAN_2) ** 2) / (2 * std2**2) - 0.5).sum(-1)
    other = DiagGaussian(ops.convert_to_tensor(MEAN_2), ops.convert_to_tensor(LOG_STD_2))
    np.testing.assert_allclose(np_(dist.kl(other)), kl, rtol=1e-4)
    np.testing.assert_allclose(np_(dist.mode()), MEAN)


def test_against_tensorflow_probability():
    """TFP computes the reference in TensorFlow whatever Keras backend runs ours."""
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    ours = Categorical(ops.convert_to_tensor(LOGITS))
    theirs = tfd.Categorical(logits=LOGITS)
    np.testing.assert_allclose(np_(ours.log_prob(ACTIONS)), theirs.log_prob(ACTIONS), rtol=1e-5)
    np.testing.assert_allclose(np_(ours.entropy()), theirs.entropy(), rtol=1e-5)
    np.testing.assert_allclose(np_(ours.kl(Categorical(ops.convert_to_tensor(LOGITS_2)))),
                               theirs.kl_divergence(tfd.Categorical(logits=LOGITS_2)), rtol=1e-4)
    ours = DiagGaussian(ops.convert_to_tensor(MEAN), ops.convert_to_tensor(LOG_STD))
    theirs = tfd.MultivariateNormalDiag(MEAN, np.exp(LOG_STD) * np.ones_like(MEAN))
    np.testing.assert_allclose(np_(ours.log_prob(X)), theirs.log_prob(X), rtol=1e-5)
    np.testing.assert_allclose(np_(ours.entropy()), theirs.entropy(), rtol=1e-5)
    other = tfd.MultivariateNormalDiag(MEAN_2, np.exp(LOG_STD_2) * np.ones_like(MEAN_2))
    ours_other = DiagGaussian(ops.convert_to_tensor(MEAN_2), ops.convert_to_tensor(LOG_STD_2))
    np.testing.assert_allclose(np_(ours.kl(ours_other)), theirs.kl_divergence(other), rtol=1e-4)


def test_sampling_statistics_and_seed_advances():
    seed = keras.random.SeedGenerator(42)
    logits = np.log(np.array([[0.1, 0.2, 0.7]], dtype="float32")).repeat(4000, axis=0)
    dist = Categorical(ops.convert_to_tensor(logits), seed=seed)
    first, second = np_(dist.sample()), np_(dist.sample())
    assert first.shape == (4000,) and np.issubdtype(first.dtype, np.integer)
    assert not np.array_equal(first, second), "the seed generator did not advance"
    freq = np.bincount(np.concatenate([first, second]), minlength=3) / 8000
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.7], atol=0.02)

    mean = np.tile(np.array([[1.0, -2.0]], "float32"), (8000, 1))
    log_std = np.log(np.array([0.5, 2.0], "float32"))
    gauss = DiagGaussian(ops.convert_to_tensor(mean), ops.convert_to_tensor(log_std), seed=seed)
    draws = np_(gauss.sample())
    assert draws.shape == (8000, 2)
    np.testing.assert_allclose(draws.mean(0), [1.0, -2.0], atol=0.1)
    np.testing.assert_allclose(draws.std(0), [0.5, 2.0], rtol=0.05)
    assert not np.array_equal(draws, np_(gauss.sample()))
