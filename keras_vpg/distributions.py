"""Action distributions written with ``keras.ops``, so they run on every backend.

Both classes follow the same small interface: ``sample()``, ``log_prob(x)``,
``entropy()``, ``kl(other)`` and ``mode()``. Shapes use ``B`` for the batch and
``A`` for the action dimension of a Box space.
"""

from __future__ import annotations

import math

import keras
from keras import ops

#: log(2 pi) / 2, the Gaussian log-density's constant.
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class Distribution:
    """Base class of the policy distributions.

    Parameters
    ----------
    seed : keras.random.SeedGenerator or int or None
        Source of randomness for :meth:`sample`. Pass the model's
        ``SeedGenerator`` so sampling inside a compiled JAX function advances
        its state instead of repeating the same draw.
    """

    def __init__(self, seed: keras.random.SeedGenerator | int | None = None):
        self.seed = seed

    def sample(self):
        """Draw one action per batch row."""
        raise NotImplementedError

    def log_prob(self, x):
        """Log-density of actions ``x``; shape ``(B,)``."""
        raise NotImplementedError

    def entropy(self):
        """Entropy per batch row; shape ``(B,)``."""
        raise NotImplementedError

    def kl(self, other: Distribution):
        """``KL(self || other)`` per batch row; shape ``(B,)``."""
        raise NotImplementedError

    def mode(self):
        """Most likely action per batch row."""
        raise NotImplementedError


class Categorical(Distribution):
    """Categorical distribution over ``n`` actions, parameterised by logits.

    Parameters
    ----------
    logits : tensor, shape ``(B, n)``
        Unnormalised log-probabilities.
    seed : keras.random.SeedGenerator or int or None
        Randomness for :meth:`sample`.
    """

    def __init__(self, logits, seed=None):
        super().__init__(seed)
        self.logits = logits
        self.log_probs = ops.log_softmax(logits, axis=-1)

    def sample(self):
        """Integer actions, shape ``(B,)``, dtype ``int32``."""
        draws = keras.random.categorical(self.logits, 1, seed=self.seed, dtype="int32")
        return ops.squeeze(draws, axis=-1)

    def log_prob(self, x):
        """Log-probability of integer actions ``x`` of shape ``(B,)``."""
        n = ops.shape(self.logits)[-1]
        one_hot = ops.one_hot(ops.cast(x, "int32"), n, dtype=self.log_probs.dtype)
        return ops.sum(one_hot * self.log_probs, axis=-1)

    def entropy(self):
        probs = ops.exp(self.log_probs)
        return -ops.sum(probs * self.log_probs, axis=-1)

    def kl(self, other: Categorical):
        probs = ops.exp(self.log_probs)
        return ops.sum(probs * (self.log_probs - other.log_probs), axis=-1)

    def mode(self):
        """Integer actions, shape ``(B,)``, dtype ``int32``."""
        return ops.cast(ops.argmax(self.logits, axis=-1), "int32")


class DiagGaussian(Distribution):
    """Gaussian with diagonal covariance, for Box action spaces.

    Parameters
    ----------
    mean : tensor, shape ``(B, A)``
    log_std : tensor, shape ``(A,)`` or ``(B, A)``
        Natural log of the standard deviation (state-independent in
        :class:`~keras_vpg.MLPActorCritic`).
    seed : keras.random.SeedGenerator or int or None
        Randomness for :meth:`sample`.
    """

    def __init__(self, mean, log_std, seed=None):
        super().__init__(seed)
        self.mean = mean
        self.log_std = ops.broadcast_to(log_std, ops.shape(mean))
        self.std = ops.exp(self.log_std)

    def sample(self):
        """Unclipped actions, shape ``(B, A)``."""
        noise = keras.random.normal(ops.shape(self.mean), seed=self.seed, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def log_prob(self, x):
        """Log-density of actions ``x`` of shape ``(B, A)``, summed over ``A``."""
        z = (ops.cast(x, self.mean.dtype) - self.mean) / self.std
        return ops.sum(-0.5 * ops.square(z) - self.log_std - HALF_LOG_2PI, axis=-1)

    def entropy(self):
        return ops.sum(self.log_std + 0.5 + HALF_LOG_2PI, axis=-1)

    def kl(self, other: DiagGaussian):
        var_ratio = ops.square(self.std / other.std)
        mean_term = ops.square((self.mean - other.mean) / other.std)
        return ops.sum(0.5 * (var_ratio + mean_term - 1.0) - ops.log(self.std / other.std), axis=-1)

    def mode(self):
        """The mean, shape ``(B, A)``."""
        return self.mean
