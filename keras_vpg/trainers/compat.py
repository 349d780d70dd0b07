"""Every private framework entry point keras-vpg uses, each with a public fallback.

A framework upgrade may rename or remove a private attribute. Each function
here tries the private path, and if it is missing takes a public fallback that
still gives correct results (maybe slower) and warns once, naming what was lost.
Nothing outside this module touches a private framework API.

- :func:`jax_cpu_client_started`: ``jax._src.xla_bridge._backends`` (is the CPU
  client made yet? the dispatch flag is read when it is made);
- :func:`keras_adam_state`: Keras ``Adam``'s ``_momentums``, ``_velocities``,
  ``_get_variable_index`` and ``_learning_rate``, read by the PyTorch trainer's
  fused value steps (:class:`keras_vpg.trainers.torch.FusedValueSteps`);
- :func:`space_generator_state`: gymnasium ``Space._np_random`` (a space's
  generator, read without creating one), for checkpoints' random streams.
"""

from __future__ import annotations

import warnings
from typing import Any

_warned: set[str] = set()


def warn_fallback(name: str, consequence: str) -> None:
    """Warn once per process that the private path ``name`` is unavailable."""
    if name in _warned:
        return
    _warned.add(name)
    warnings.warn(
        f"keras-vpg: {name} is not available in this framework version; {consequence}",
        RuntimeWarning,
        stacklevel=3,
    )


def jax_cpu_client_started() -> bool:
    """Whether JAX has made its backends (clients) yet.

    Private: ``jax._src.xla_bridge._backends``. Fallback: assume not started
    (setting the dispatch flag after the client exists has no effect, and no
    harm: only the recorded setting may then be wrong).
    """
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge._backends)
    except (ImportError, AttributeError):
        warn_fallback("jax._src.xla_bridge._backends",
                      "the JAX dispatch setting is applied without checking the client")
        return False


def keras_adam_state(optimizer, variables) -> dict[str, Any] | None:
    """Keras ``Adam``'s per-variable slots and learning-rate variable, or ``None``.

    Returns ``{"momentums": [...], "velocities": [...], "learning_rate": Variable}``
    aligned with ``variables``. Private: ``optimizer._momentums``,
    ``_velocities``, ``_get_variable_index``, ``_learning_rate``. Fallback
    (``None``, warned once): the caller steps the optimizer through its public
    ``apply`` (the PyTorch value steps then run eagerly, not overlapped).
    """
    try:
        index = optimizer._get_variable_index
        state = {
            "momentums": [optimizer._momentums[index(v)] for v in variables],
            "velocities": [optimizer._velocities[index(v)] for v in variables],
            "learning_rate": optimizer._learning_rate,
        }
    except (AttributeError, KeyError, IndexError, TypeError):
        warn_fallback("keras.optimizers.Adam's slot variables",
                      "PyTorch value steps run eagerly and do not overlap collection")
        return None
    import keras

    if not isinstance(state["learning_rate"], keras.Variable):
        return None  # a schedule: the fused loop would not follow it (not a version issue)
    return state


def space_generator_state(space) -> dict | None:
    """The state of a gymnasium space's random generator, or ``None`` if it has none yet.

    Private: ``space._np_random`` (``None`` until the space is seeded or
    sampled). Fallback (warned once): the public ``space.np_random``, which
    gives an unseeded space a generator first (from OS entropy): the state is
    still the one the space samples from next.
    """
    try:
        rng = space._np_random
    except AttributeError:
        warn_fallback("gymnasium Space._np_random",
                      "an unseeded action space gets a generator when a checkpoint is taken")
        rng = space.np_random
    return None if rng is None else rng.bit_generator.state
