"""The policy-and-value model: a ``keras.Model`` that saves as ``.keras`` and exports.

Shapes: ``B`` is the batch, ``O...`` the observation shape, ``A`` the action
dimension of a Box space. Inference methods (:meth:`ActorCritic.act`,
:meth:`ActorCritic.step`) take numpy and give numpy, for one observation
(shape ``O...``) or a batch (shape ``(B, *O...)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import keras
import numpy as np
from keras import ops

from keras_vpg.distributions import Categorical, DiagGaussian, Distribution


def check_observation_space(space: gym.Space) -> None:
    """Raise ``TypeError`` unless ``space`` is a Box observation space we can flatten."""
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(
            f"observation_space {space!r} is not supported: keras-vpg's MLP needs a "
            "gymnasium.spaces.Box observation space (any shape; it is flattened). "
            "Wrap the env, e.g. with gymnasium.wrappers.FlattenObservation.")


def check_action_space(space: gym.Space) -> None:
    """Raise ``TypeError`` unless ``space`` is a Discrete or Box action space."""
    if not (isinstance(space, gym.spaces.Discrete)
            or isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
        raise TypeError(
            f"action_space {space!r} is not supported: keras-vpg supports "
            "gymnasium.spaces.Discrete or gymnasium.spaces.Box with a 1-D shape (categorical "
            "and diagonal-Gaussian policies).")


def space_to_config(space: gym.Space) -> dict[str, Any]:
    """A JSON-able description of a Discrete or Box space (for ``get_config``)."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    return {"type": "Box", "low": space.low.tolist(), "high": space.high.tolist(),
            "shape": list(space.shape), "dtype": str(space.dtype)}


def space_from_config(config: dict[str, Any] | gym.Space) -> gym.Space:
    """Inverse of :func:`space_to_config` (a space passes through unchanged)."""
    if isinstance(config, gym.Space):
        return config
    if config["type"] == "Discrete":
        return gym.spaces.Discrete(config["n"], start=config.get("start", 0))
    dtype = np.dtype(config["dtype"])
    return gym.spaces.Box(np.asarray(config["low"], dtype), np.asarray(config["high"], dtype),
                          shape=tuple(config["shape"]), dtype=dtype)


@keras.saving.register_keras_serializable(package="keras_vpg")
class ObservationNormalizer(keras.layers.Layer):
    """Standardizes observations with a running mean and variance (non-trainable).

    ``call(obs)`` returns ``clip((obs - mean) / sqrt(var + 1e-8), -clip, clip)``
    once the statistics have taken in data; before that (``count == 0``, e.g. the
    first epoch's collection) it returns the observations unchanged, unclipped:
    clipping raw values at the initial mean 0 and variance 1 would cut large
    observations such as MuJoCo velocities.
    The statistics change only through :meth:`update`, which merges a batch's
    moments (Chan et al.'s parallel algorithm); under MPI the agent passes
    moments summed over all ranks.

    Parameters
    ----------
    observation_shape : tuple of int
    clip : float
        Bound on the standardized values.
    """

    def __init__(self, observation_shape: Sequence[int], clip: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.observation_shape = tuple(int(d) for d in observation_shape)
        self.clip = float(clip)
        self.mean, self.var, self.count = (
            self.add_weight(shape=shape, initializer=init, trainable=False, name=name)
            for name, shape, init in (("mean", self.observation_shape, "zeros"),
                                      ("var", self.observation_shape, "ones"),
                                      ("count", (), "zeros")))
        self.built = True

    def call(self, obs):
        z = (obs - self.mean) / ops.sqrt(self.var + 1e-8)
        # Before any data the statistics are (0, 1): pass observations through unclipped.
        return ops.where(self.count > 0, ops.clip(z, -self.clip, self.clip), obs)

    def update(self, total: np.ndarray, total_sq: np.ndarray, count: float) -> None:
        """Merge a batch given its sum ``(O...)``, sum of squares ``(O...)`` and size."""
        if count <= 0:
            return
        batch_mean = total / count
        batch_var = np.maximum(total_sq / count - batch_mean**2, 0.0)
        old_mean = ops.convert_to_numpy(self.mean).astype(np.float64)
        old_var = ops.convert_to_numpy(self.var).astype(np.float64)
        old_count = float(ops.convert_to_numpy(self.count))
        new_count = old_count + count
        delta = batch_mean - old_mean
        mean = old_mean + delta * count / new_count
        m2 = old_var * old_count + batch_var * count + delta**2 * old_count * count / new_count
        self.mean.assign(mean.astype("float32"))
        self.var.assign((m2 / new_count).astype("float32"))
        self.count.assign(np.float32(new_count))

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), observation_shape=list(self.observation_shape),
                    clip=self.clip)


@keras.saving.register_keras_serializable(package="keras_vpg")
class ActorCritic(keras.Model):
    """A policy network and a value network behind Spinning Up's actor-critic API.

    Parameters
    ----------
    pi_net : keras.Model
        Functional model ``obs (B, *O) -> logits (B, n)`` for a Discrete action
        space, or ``obs (B, *O) -> mean (B, A)`` for a Box action space.
    v_net : keras.Model
        Functional model ``obs (B, *O) -> value (B, 1)`` or ``(B,)``. Neither
        network may have regularizers (VPG's losses do not add them; a
        ``ValueError`` names the layer). If they share variables, the value
        steps do not overlap collection (see ``VPG(overlap_update=...)``).
    action_space : gymnasium.spaces.Discrete or gymnasium.spaces.Box
        The env's action space (or its :func:`space_to_config` dict).
    log_std_init : float
        Initial value of the state-independent ``log_std`` (Box only).
    seed : int or None
        Seed of the ``SeedGenerator`` used for sampling actions.
    normalize_obs : bool
        Standardize observations with running statistics held in a
        non-trainable :class:`ObservationNormalizer` inside the model (so
        ``.keras``, SavedModel and ONNX exports carry it); the agent merges in
        each epoch's observations after that epoch's update.

    Notes
    -----
    ``call(obs)`` (and so ``predict``) is the deterministic, env-ready action:
    the distribution's mode, clipped to the Box or offset by a Discrete's
    ``start``. :meth:`step` returns the raw sample, whose log-probability is
    exact; send ``np.clip``-ed actions to the env (the agent does).
    """

    # The agent keeps its optimizers outside the model (a model attribute would be
    # saved into every .keras file). Keras callbacks read ``model.optimizer``
    # (keras.callbacks.TensorBoard logs its learning rate when it is one): say "none".
    optimizer = None

    def __init__(self, pi_net: keras.Model, v_net: keras.Model, action_space: gym.Space | dict,
                 log_std_init: float = -0.5, seed: int | None = None, normalize_obs: bool = False,
                 **kwargs):
        kwargs.pop(LOAD_NOTE_KEY, None)
        super().__init__(**kwargs)
        action_space = space_from_config(action_space)
        check_action_space(action_space)
        for name, net in (("pi_net", pi_net), ("v_net", v_net)):
            if not isinstance(net, keras.Model) or not net.built:
                raise TypeError(f"{name} must be a built keras.Model (functional), got {net!r}")
            _check_no_regularizers(name, net)
        self.pi_net, self.v_net, self.action_space = pi_net, v_net, action_space
        self.log_std_init = float(log_std_init)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.observation_shape = tuple(pi_net.inputs[0].shape[1:])
        self.log_std = None if self.discrete else self.add_weight(
            shape=action_space.shape, initializer=keras.initializers.Constant(log_std_init),
            name="log_std")
        self.seed_generator = keras.random.SeedGenerator(seed, name="sampling_seed")
        self.normalize_obs = bool(normalize_obs)
        self.obs_normalizer = (ObservationNormalizer(self.observation_shape, name="obs_normalizer")
                               if self.normalize_obs else None)
        self.built = True

    # -- variables the trainers optimise --------------------------------------------------
    @property
    def pi_variables(self) -> list:
        """Trainable variables of the policy (the ``pi_net`` weights and ``log_std``)."""
        extra = [] if self.log_std is None else [self.log_std]
        return list(self.pi_net.trainable_variables) + extra

    @property
    def v_variables(self) -> list:
        """Trainable variables of the value function."""
        return list(self.v_net.trainable_variables)

    @property
    def shared_variables(self) -> list:
        """Variables in both :attr:`pi_variables` and :attr:`v_variables` (a shared trunk)."""
        pi_ids = {id(v) for v in self.pi_variables}
        return [v for v in self.v_variables if id(v) in pi_ids]

    # -- tensor functions (differentiable, used inside compiled code) --------------------
    def distribution(self, obs) -> Distribution:
        """The policy's action distribution at ``obs`` of shape ``(B, *O)``."""
        out = self.pi_net(self.normalize(obs))
        if self.discrete:
            return Categorical(out, seed=self.seed_generator)
        return DiagGaussian(out, self.log_std, seed=self.seed_generator)

    def value(self, obs):
        """State values, a tensor of shape ``(B,)``."""
        return ops.reshape(self.v_net(self.normalize(obs)), (-1,))

    def normalize(self, obs):
        """Observations standardized by the running statistics (identity if disabled)."""
        return obs if self.obs_normalizer is None else self.obs_normalizer(obs)

    def sample_tensors(self, obs):
        """Sampled action and its log-prob for a batch; tensors of shape ``(B, ...)``."""
        dist = self.distribution(obs)
        action = dist.sample()
        return action, dist.log_prob(action)

    def env_action(self, action):
        """Map raw policy actions to what the env takes (clip to Box / add Discrete start)."""
        if self.discrete:
            start = int(self.action_space.start)
            return action + start if start else action
        low = np.asarray(self.action_space.low, "float32")
        high = np.asarray(self.action_space.high, "float32")
        return ops.clip(action, low, high)

    def call(self, obs, training=None):
        """Deterministic env-ready action for a batch ``(B, *O)``."""
        return self.env_action(self.distribution(obs).mode())

    # -- Spinning Up's API --------------------------------------------------------------
    def pi(self, obs, act=None):
        """Policy distribution at ``obs`` and, if ``act`` is given, its log-prob.

        Returns
        -------
        pi : Distribution
            Backend tensors inside (differentiable).
        logp_a : tensor of shape ``(B,)`` or None
        """
        obs = self._as_batch(obs)[0]
        dist = self.distribution(obs)
        logp_a = None if act is None else dist.log_prob(ops.convert_to_tensor(act))
        return dist, logp_a

    def v(self, obs):
        """Value estimates, shape ``(B,)`` (or ``()`` for one observation).

        Numpy (or list) in gives numpy out; a backend tensor in gives a tensor out
        (differentiable), as Spinning Up's ``ac.v`` is used inside losses.
        """
        if _is_backend_tensor(obs):
            return self.value(obs)
        batch, single = self._as_batch(obs)
        values = ops.convert_to_numpy(self.value(batch))
        return values[0] if single else values

    def step(self, obs):
        """Sample actions for ``obs``; numpy ``(a, v, logp_a)``.

        ``a`` is the raw sample (unclipped for Box); ``v`` and ``logp_a`` have
        shape ``(B,)``, or ``()`` for a single observation.
        """
        batch, single = self._as_batch(obs)
        action, logp = self.sample_tensors(batch)
        outputs = [ops.convert_to_numpy(x) for x in (action, self.value(batch), logp)]
        return tuple(x[0] for x in outputs) if single else tuple(outputs)

    def act(self, obs, deterministic: bool = False) -> np.ndarray:
        """Env-ready actions for ``obs`` (numpy); the mode when ``deterministic``.

        Discrete spaces give integers (``int64``), Box spaces ``float32`` clipped
        to the space.
        """
        batch, single = self._as_batch(obs)
        dist = self.distribution(batch)
        raw = dist.mode() if deterministic else dist.sample()
        action = ops.convert_to_numpy(self.env_action(raw))
        if self.discrete:
            action = action.astype(np.int64)
        return action[0] if single else action

    def _as_batch(self, obs):
        """(float32 batch, whether ``obs`` was a single observation)."""
        if _is_backend_tensor(obs):
            obs = ops.convert_to_numpy(obs)
        obs = np.asarray(obs, dtype="float32")
        if obs.shape == self.observation_shape:
            return obs[None], True
        if obs.shape[1:] != self.observation_shape:
            raise ValueError(
                f"obs has shape {obs.shape}; expected {self.observation_shape} (one "
                f"observation) or (batch, *{self.observation_shape})")
        return obs, False

    # -- serialization ------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dict(LOAD_NOTE, **super().get_config(),
                    pi_net=keras.saving.serialize_keras_object(self.pi_net),
                    v_net=keras.saving.serialize_keras_object(self.v_net),
                    action_space=space_to_config(self.action_space),
                    log_std_init=self.log_std_init, normalize_obs=self.normalize_obs)

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        nets = {name: keras.saving.deserialize_keras_object(config[name])
                for name in ("pi_net", "v_net")}
        return cls(**{**config, **nets})


# Keras imports the module of a saved class only for its own packages, so a `.keras` file
# loaded before `import keras_vpg` fails with "Could not locate class ..." followed by
# the saved config. This key comes first in that config: the fix is in the message.
LOAD_NOTE_KEY = "load_with"
LOAD_NOTE = {LOAD_NOTE_KEY: "import keras_vpg before keras.saving.load_model: importing it "
             "registers keras-vpg's classes with Keras"}


def _check_no_regularizers(name: str, net: keras.Model) -> None:
    """Raise if a layer of ``net`` has a regularizer: VPG's losses do not include them."""
    stack = list(net.layers)
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []))
        for attr in dir(type(layer)) + list(vars(layer)):
            if attr.endswith("_regularizer") and getattr(layer, attr, None) is not None:
                raise ValueError(
                    f"{name}: layer {layer.name!r} has {attr}; the policy and value "
                    "losses do not add regularization penalties, so it would be ignored")


def _is_backend_tensor(x) -> bool:
    return not isinstance(x, (np.ndarray, list, tuple, float, int, np.generic)) and (
        keras.ops.is_tensor(x))


def mlp(input_shape: Sequence[int], hidden_sizes: Sequence[int], activation: str,
        output_size: int, name: str = "mlp") -> keras.Model:
    """A functional MLP ``(B, *input_shape) -> (B, output_size)``; the input is flattened."""
    inputs = keras.Input(shape=tuple(input_shape), name="obs")
    x = keras.layers.Flatten()(inputs) if len(input_shape) != 1 else inputs
    for i, units in enumerate(hidden_sizes):
        x = keras.layers.Dense(int(units), activation=activation, name=f"hidden_{i}")(x)
    outputs = keras.layers.Dense(output_size, name="out")(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="keras_vpg")
class MLPActorCritic(ActorCritic):
    """Separate policy and value MLPs, as Spinning Up's ``MLPActorCritic``.

    Parameters
    ----------
    observation_space : gymnasium.spaces.Box
        Observations of any shape (flattened at the input).
    action_space : gymnasium.spaces.Discrete or gymnasium.spaces.Box
        Categorical policy for Discrete, diagonal Gaussian with a
        state-independent ``log_std`` (initialised to ``-0.5``) for Box.
    hidden_sizes : sequence of int
        Hidden layer widths of both MLPs.
    activation : str
        Keras activation name of the hidden layers (``"tanh"``, ``"relu"`` ...).
    log_std_init, seed, normalize_obs
        As :class:`ActorCritic`.
    """

    def __init__(self, observation_space: gym.Space | dict, action_space: gym.Space | dict,
                 hidden_sizes: Sequence[int] = (64, 64), activation: str = "tanh",
                 log_std_init: float = -0.5, seed: int | None = None, normalize_obs: bool = False,
                 **kwargs):
        observation_space = space_from_config(observation_space)
        action_space = space_from_config(action_space)
        check_observation_space(observation_space)
        check_action_space(action_space)
        hidden_sizes = tuple(int(h) for h in hidden_sizes)
        if any(h < 1 for h in hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive integers, got {hidden_sizes}")
        try:
            keras.activations.get(activation)
        except Exception as error:
            raise ValueError(f"activation {activation!r} is not a Keras activation") from error
        pi_out = int(action_space.n if isinstance(action_space, gym.spaces.Discrete)
                     else action_space.shape[0])
        pi_net = mlp(observation_space.shape, hidden_sizes, activation, pi_out, name="pi_net")
        v_net = mlp(observation_space.shape, hidden_sizes, activation, 1, name="v_net")
        super().__init__(pi_net, v_net, action_space, log_std_init=log_std_init, seed=seed,
                         normalize_obs=normalize_obs, **kwargs)
        self.observation_space, self.hidden_sizes = observation_space, hidden_sizes
        self.activation = activation

    def get_config(self) -> dict[str, Any]:
        return dict(LOAD_NOTE, **keras.Model.get_config(self),
                    observation_space=space_to_config(self.observation_space),
                    action_space=space_to_config(self.action_space),
                    hidden_sizes=list(self.hidden_sizes), activation=self.activation,
                    log_std_init=self.log_std_init, normalize_obs=self.normalize_obs)

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        return cls(**config)
