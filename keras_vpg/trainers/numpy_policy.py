"""The sampler collection uses, and its fast path: a plain-MLP policy sampled in numpy.

Collection needs only the policy's actions and log-probs. :class:`PolicySampler`
chooses once per agent between two paths, recorded in ``config.json`` (``"sampler"``):

- ``"numpy-mlp"``: plain-MLP policies sampled in numpy on weights read once per
  chunk of collection (:class:`NumpyPolicySampler`). At one observation per call, a
  framework's fixed cost per call is most of a small policy's time (figures in
  ``benchmarks/README.md``). Only models made of Flatten and Dense layers with a
  known activation qualify (:func:`mlp_layers`), and only when the numpy forward
  pass matches the model on numbers;
- ``"<backend>-compiled"``: the backend trainer's compiled batched call
  (``Trainer.sample``), for every other model, or when fast paths are off
  (``VPG(fast_paths=False)`` or ``KERAS_VPG_FAST_PATHS=0``).
"""

from __future__ import annotations

import keras
import numpy as np

from keras_vpg.actor_critic import ActorCritic
from keras_vpg.distributions import HALF_LOG_2PI


def _float32(variable) -> np.ndarray | None:
    """A Keras variable's value as a float32 numpy array (``None`` stays ``None``)."""
    return None if variable is None else np.asarray(keras.ops.convert_to_numpy(variable),
                                                    np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


#: numpy versions of the Keras activations a plain MLP may use (``None``: identity).
ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": _sigmoid,
    "linear": None,
    "elu": lambda x: np.where(x > 0.0, x, np.expm1(np.minimum(x, 0.0))),
    "silu": lambda x: x * _sigmoid(x),
}
#: The ActorCritic methods between an observation and a sampled action: a subclass
#: overriding any of them samples differently from the numpy copy of the maths.
_SAMPLING_METHODS = ("distribution", "normalize", "sample_tensors")


def mlp_layers(net: keras.Model, activations) -> list | None:
    """``[(kernel, bias or None, activation name) | "flatten"]`` of a plain MLP, or ``None``.

    Only single-input, single-output models made of Flatten and Dense layers whose
    activation is a key of ``activations`` qualify; ``kernel`` and ``bias`` are
    the layers' Keras variables. This reads the layers in order: whether they
    also run in that order, once each, is checked on numbers by
    :meth:`NumpyPolicySampler.for_model`.
    """
    if len(net.inputs) != 1 or len(net.outputs) != 1:
        return None
    steps = []
    for layer in net.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Flatten):
            steps.append("flatten")
        elif isinstance(layer, keras.layers.Dense):
            name = keras.activations.serialize(layer.activation)
            name = name if isinstance(name, str) else getattr(layer.activation, "__name__", "")
            if name not in activations:
                return None
            steps.append((layer.kernel, layer.bias if layer.use_bias else None, name))
        else:
            return None
    return steps


class NumpyPolicySampler:
    """Samples ``(action, logp)`` like ``ac.sample_tensors``, in numpy.

    Build it with :meth:`for_model` (``None`` if the policy is not a plain MLP).
    :meth:`begin` reads the weights (and normalizer statistics) into numpy;
    :meth:`sample` then needs no framework call. Random draws come from a numpy
    ``Generator`` seeded from the model's sampling seed, so runs repeat.
    """

    def __init__(self, ac: ActorCritic, steps: list):
        self.ac = ac
        self.steps = steps
        seed_state = keras.ops.convert_to_numpy(ac.seed_generator.state)
        self.rng = np.random.default_rng(seed_state.astype(np.uint64).tolist())
        self.cache = None

    @classmethod
    def for_model(cls, ac: ActorCritic) -> NumpyPolicySampler | None:
        """The sampler of ``ac``, or ``None`` when numpy would not reproduce its policy."""
        if any(getattr(type(ac), name) is not getattr(ActorCritic, name)
               for name in _SAMPLING_METHODS):
            return None  # a subclass changes how actions are drawn
        steps = mlp_layers(ac.pi_net, ACTIVATIONS)
        if steps is None:
            return None
        sampler = cls(ac, steps)
        return sampler if sampler._reproduces_policy_net() else None

    def _reproduces_policy_net(self) -> bool:
        """Whether the numpy forward pass matches ``pi_net`` on a random batch.

        Reading ``pi_net.layers`` in order misses a layer called twice or layers
        wired other than in a chain; comparing outputs catches anything of that kind.
        """
        obs = np.random.default_rng(0).normal(size=(8, *self.ac.observation_shape))
        obs = obs.astype(np.float32)
        expected = keras.ops.convert_to_numpy(self.ac.pi_net(self.ac.normalize(obs)))
        self.begin()
        got = self._policy_outputs(obs)
        self.end()
        return got.shape == expected.shape and np.allclose(got, expected, rtol=1e-4, atol=1e-5)

    def begin(self) -> None:
        """Read the current weights (call before a run of :meth:`sample` calls)."""
        layers = [step if step == "flatten" else (_float32(step[0]), _float32(step[1]),
                                                   ACTIVATIONS[step[2]]) for step in self.steps]
        cache = {"layers": layers, "norm": None}
        norm = self.ac.obs_normalizer
        # As ObservationNormalizer.call: no statistics yet -> observations unchanged.
        if norm is not None and float(keras.ops.convert_to_numpy(norm.count)) > 0:
            cache["norm"] = (_float32(norm.mean), np.sqrt(_float32(norm.var) + np.float32(1e-8)),
                             np.float32(norm.clip))
        if not self.ac.discrete:
            log_std = _float32(self.ac.log_std)
            cache["std"] = np.exp(log_std)
            # logp of mean + std * noise = -0.5 * sum(noise^2) - sum(log_std + log(2 pi) / 2)
            cache["logp_const"] = np.float32(-(log_std + HALF_LOG_2PI).sum())
        self.cache = cache

    def end(self) -> None:
        self.cache = None

    def sample(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Actions ``(B, ...)`` and their log-probs ``(B,)`` for observations ``(B, *O)``."""
        x = self._policy_outputs(obs)
        if self.ac.discrete:
            shifted = x - x.max(axis=-1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
            # Gumbel-max: argmax(log-probs + Gumbel noise) is a categorical draw.
            gumbel = self.rng.gumbel(size=log_probs.shape).astype(np.float32)
            action = np.argmax(log_probs + gumbel, axis=-1).astype(np.int32)
            return action, log_probs[np.arange(len(action)), action]
        noise = self.rng.standard_normal(x.shape, dtype=np.float32)
        action = x + self.cache["std"] * noise
        logp = np.square(noise).sum(axis=-1) * np.float32(-0.5) + self.cache["logp_const"]
        return action, logp.astype(np.float32)

    def mode(self, obs: np.ndarray) -> np.ndarray:
        """The most likely actions ``(B, ...)`` (raw: not clipped or offset for the env)."""
        x = self._policy_outputs(obs)
        if self.ac.discrete:
            return np.argmax(x, axis=-1).astype(np.int32)
        return x

    def _policy_outputs(self, obs: np.ndarray) -> np.ndarray:
        """``pi_net``'s output ``(B, A)`` (logits or means) for observations ``(B, *O)``."""
        cache = self.cache
        x = np.asarray(obs, dtype=np.float32)
        if cache["norm"] is not None:
            mean, scale, clip = cache["norm"]
            x = np.clip((x - mean) / scale, -clip, clip)
        for step in cache["layers"]:
            if step == "flatten":
                x = x.reshape(x.shape[0], -1)
                continue
            kernel, bias, activation = step
            x = x @ kernel if bias is None else x @ kernel + bias
            x = x if activation is None else activation(x)
        return x


class PolicySampler:
    """``(action, logp)`` for a batch of observations, from the current policy.

    The path is chosen once, here: :attr:`begin`, :attr:`sample` and :attr:`end`
    are the chosen sampler's own methods, so collection calls them directly.

    Parameters
    ----------
    ac : ActorCritic
    trainer : keras_vpg.trainers.Trainer
        Its compiled ``sample`` (with ``begin_collection``/``end_collection``) is
        the path when numpy does not apply; its ``fast_paths`` says whether the
        numpy path may be used.

    Attributes
    ----------
    begin : callable
        ``() -> None``, before a run of :attr:`sample` calls: reads the policy's
        current weights where the path caches them (numpy, JAX), else does nothing.
    sample : callable
        ``obs (B, *O) -> (action (B, ...), logp (B,))``, numpy in and out.
    end : callable
        ``() -> None``, after the run: drops cached weights, writes cached state
        (the seed) back.
    numpy : NumpyPolicySampler or None
        The numpy sampler, when it applies.
    path : str
        ``"numpy-mlp"`` or ``"<backend>-compiled"``.
    """

    def __init__(self, ac: ActorCritic, trainer):
        self.numpy = NumpyPolicySampler.for_model(ac) if trainer.fast_paths else None
        if self.numpy is not None:
            self.path = "numpy-mlp"
            self.begin, self.sample, self.end = self.numpy.begin, self.numpy.sample, self.numpy.end
        else:
            self.path = f"{keras.backend.backend()}-compiled"
            self.begin, self.sample = trainer.begin_collection, trainer.sample
            self.end = trainer.end_collection
