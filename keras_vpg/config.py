"""Every hyperparameter of a run, defined once: name, type, default, valid range, doc.

:class:`VPGConfig` is the single source of

- the validation of :class:`keras_vpg.VPG`'s arguments (errors name the parameter),
- the defaults of :class:`keras_vpg.VPG` and :func:`keras_vpg.vpg` (a test pins their
  signatures to these defaults; the signatures stay explicit for readers and IDEs),
- ``config.json`` (:meth:`VPGConfig.to_json` / :meth:`VPGConfig.from_json` round trip),
- the command line's flags, with defaults and help (:func:`add_arguments`),
- reading a run's ``config.json`` back as ``VPG`` arguments (:func:`load_config`), the
  env included (:func:`env_from_spec`, the one way keras-vpg rebuilds a recorded env).

The callables of a run (``env_fn``, ``actor_critic``) are not hyperparameters and
are checked by :class:`keras_vpg.VPG` itself.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib
import json
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Ways of stepping the vectorized envs (``gymnasium.vector`` classes).
VECTOR_MODES = ("sync", "async")

#: Epochs of :func:`keras_vpg.vpg` and of ``keras-vpg train`` (``VPG.fit`` takes its own).
DEFAULT_EPOCHS = 50


# -- checks: each raises TypeError / ValueError naming the parameter -------------------------
def _integer(minimum: int, optional: bool = False) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")

    return check


def _unit_interval(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _learning_rate(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        import keras  # only a non-number needs Keras (the CLI checks numbers before a backend)

        valid = isinstance(value, keras.optimizers.schedules.LearningRateSchedule)
    else:
        valid = math.isfinite(value) and value >= 0
    if not valid:
        raise ValueError(f"{name} must be a non-negative learning rate or a "
                         f"keras.optimizers.schedules.LearningRateSchedule, got {value!r}")


def _dict_or_none(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict, got {value!r}")


def _boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _tristate(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name} must be True, False or None, got {value!r}")


def _vector_mode(name: str, value: Any) -> None:
    if value not in VECTOR_MODES:
        raise ValueError(f"{name} must be one of {VECTOR_MODES}, got {value!r}")


def _param(default: Any, check: Callable[[str, Any], None], doc: str, valid: str,
           cli: dict[str, Any] | None = None) -> Any:
    """A dataclass field with its check, its valid range and its one-line doc as metadata.

    ``cli``: how :func:`add_arguments` makes its flag (``None``: no flag); its ``valid``
    key, if any, replaces ``valid`` in the flag's help (a flag cannot give a schedule).
    """
    return field(default=default, metadata={"check": check, "doc": doc, "valid": valid, "cli": cli})


#: The flag of a learning rate: a number (a schedule can only be given from Python).
_LR_FLAG = dict(type=float, valid="number >= 0; schedules: from Python")


@dataclass
class VPGConfig:
    """The hyperparameters of a :class:`keras_vpg.VPG` run (validated when made).

    Each field's metadata holds ``doc`` (one line), ``valid`` (the range, as text)
    and ``check`` (raises ``TypeError``/``ValueError`` naming the field). See
    :class:`keras_vpg.VPG` for the meaning of each in context.
    """

    ac_kwargs: dict | None = _param(
        None, _dict_or_none, "keyword arguments of actor_critic (hidden_sizes, activation)",
        "a dict or None")
    seed: int = _param(0, _integer(0), "rank r uses seed + 10000 * r", "integer >= 0",
                       cli=dict(type=int))
    steps_per_epoch: int = _param(
        4000, _integer(1), "env steps per epoch, over all envs and MPI ranks", "integer >= 1",
        cli=dict(type=int))
    gamma: float = _param(0.99, _unit_interval, "discount factor", "number in [0, 1]",
                          cli=dict(type=float))
    pi_lr: float = _param(3e-4, _learning_rate, "Adam learning rate of the policy",
                          "number >= 0 or a keras LearningRateSchedule", cli=_LR_FLAG)
    vf_lr: float = _param(1e-3, _learning_rate, "Adam learning rate of the value function",
                          "number >= 0 or a keras LearningRateSchedule", cli=_LR_FLAG)
    train_v_iters: int = _param(80, _integer(0), "value-function gradient steps per epoch",
                                "integer >= 0", cli=dict(type=int))
    lam: float = _param(0.97, _unit_interval, "GAE-Lambda", "number in [0, 1]",
                        cli=dict(type=float))
    max_ep_len: int | None = _param(
        1000, _integer(0, optional=True),
        "truncate (and bootstrap) episodes after this many steps; 0 or None: env's limit",
        "integer >= 0 or None", cli=dict(type=int, valid="integer >= 0"))
    logger_kwargs: dict | None = _param(
        None, _dict_or_none, "output_dir and exp_name of the run", "a dict or None")
    save_freq: int = _param(
        10, _integer(1), "save model.keras and a full checkpoint every save_freq epochs",
        "integer >= 1", cli=dict(type=int))
    num_envs: int = _param(1, _integer(1), "vectorized environments per process",
                           "integer >= 1", cli=dict(type=int))
    vector_mode: str = _param("sync", _vector_mode, "gymnasium SyncVectorEnv or AsyncVectorEnv",
                              f"one of {VECTOR_MODES}", cli=dict(choices=list(VECTOR_MODES)))
    normalize_obs: bool = _param(
        False, _boolean, "standardize observations with running statistics kept in the model",
        "True or False", cli=dict(action=argparse.BooleanOptionalAction))
    overlap_update: bool | None = _param(
        None, _tristate,
        "run value steps in a background thread during the next collection (None: auto)",
        "True, False or None")
    fast_paths: bool | None = _param(
        None, _tristate,
        "numpy MLP sampler and backend fast paths (None: on unless KERAS_VPG_FAST_PATHS=0)",
        "True, False or None")
    keep_checkpoints: int = _param(
        3, _integer(1), "full checkpoints kept in RUN_DIR/checkpoints (the newest)",
        "integer >= 1", cli=dict(type=int))
    tune_threads: bool = _param(
        True, _boolean,
        "apply keras-vpg's thread/dispatch defaults when the first VPG is built "
        "(KERAS_VPG_THREADS=0 also turns them off)", "True or False")

    def __post_init__(self) -> None:
        """Raise ``TypeError``/``ValueError`` naming the first invalid field."""
        for f in dataclasses.fields(self):
            f.metadata["check"](f.name, getattr(self, f.name))

    # -- config.json ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The fields as JSON-ready values (schedules as their Keras config)."""
        return {f.name: json_value(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> VPGConfig:
        """A config of the fields among ``arguments`` (e.g. a function's ``locals()``);
        other keys are ignored, missing fields take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in arguments.items() if k in names})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VPGConfig:
        """A config from :meth:`to_json`'s output (other keys, e.g. ``env_spec``, ignored)."""
        return cls.from_arguments(_from_json_values(data))


def _from_json_values(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Schedules rebuilt from their Keras config; JSON lists in ``ac_kwargs`` as tuples."""
    kwargs = dict(kwargs)
    for name in ("pi_lr", "vf_lr"):
        if isinstance(kwargs.get(name), dict):
            import keras

            kwargs[name] = keras.optimizers.schedules.deserialize(kwargs[name])
    if isinstance(kwargs.get("ac_kwargs"), dict):  # JSON has no tuples
        kwargs["ac_kwargs"] = {k: tuple(v) if isinstance(v, list) else v
                               for k, v in kwargs["ac_kwargs"].items()}
    return kwargs


def env_from_spec(spec_json: str, **make_kwargs: Any) -> Any:
    """``gymnasium.make`` of an env spec recorded as JSON (id, time limit, keyword arguments).

    ``make_kwargs`` (e.g. ``render_mode``) are passed to ``gymnasium.make``.
    """
    import gymnasium as gym

    return gym.make(gym.envs.registration.EnvSpec.from_json(spec_json), **make_kwargs)


def load_config(path: str | Path, make_env: bool = True) -> dict[str, Any]:
    """A run's ``config.json`` back as keyword arguments of :class:`keras_vpg.VPG`.

    ``keras_vpg.VPG(**load_config("data/hc/hc_s0"))`` builds the run again with
    the same settings (give ``logger_kwargs`` a new ``output_dir`` to keep the old
    run's files). Learning-rate schedules are rebuilt with
    ``keras.optimizers.schedules.deserialize``; ``actor_critic`` is imported from
    its recorded ``module.name`` (a name that cannot be imported, such as a
    lambda's, is left as that string: replace it before calling ``VPG``); JSON
    lists in ``ac_kwargs`` become tuples. Keys that are not ``VPG`` arguments
    (``env_spec``, ``backend``, ``num_procs``, ``exp_name``...) are left out.

    Parameters
    ----------
    path : str or Path
        ``config.json`` or the run directory holding it.
    make_env : bool
        Add ``env_fn`` rebuilding the env from the recorded gymnasium spec
        (:func:`env_from_spec`). Runs whose env had no spec get no ``env_fn``.

    Returns
    -------
    dict
        Keyword arguments of ``VPG`` (``env_fn`` only with ``make_env``).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no config.json at {path}")
    config = json.loads(path.read_text())
    # VPG's arguments after env_fn: actor_critic, then every field here.
    names = ["actor_critic"] + [f.name for f in dataclasses.fields(VPGConfig)]
    kwargs = _from_json_values({name: config[name] for name in names if name in config})
    if isinstance(kwargs.get("actor_critic"), str):
        module, _, name = kwargs["actor_critic"].rpartition(".")
        # Else left as the recorded name; VPG says actor_critic must be callable.
        with contextlib.suppress(ImportError, AttributeError, ValueError):
            kwargs["actor_critic"] = getattr(importlib.import_module(module), name)
    if make_env and config.get("env_spec"):
        kwargs["env_fn"] = functools.partial(env_from_spec, config["env_spec"])
    return kwargs


def json_value(obj: Any) -> Any:
    """JSON form of a config value: learning-rate schedules as their Keras config
    (``keras.optimizers.schedules.deserialize`` rebuilds them), callables and
    classes by qualified name, other objects by ``repr``."""
    if isinstance(obj, dict):
        return {str(k): json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_value(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    import keras

    if isinstance(obj, keras.optimizers.schedules.LearningRateSchedule):
        return json_value(keras.optimizers.schedules.serialize(obj))
    if hasattr(obj, "__qualname__"):
        return f"{getattr(obj, '__module__', '')}.{obj.__qualname__}"
    return repr(obj)


#: The fields with a command-line flag (``cli`` metadata), in declaration order.
FLAGGED_FIELDS = tuple(f.name for f in dataclasses.fields(VPGConfig) if f.metadata["cli"])


def _checked(name: str, cast: Callable[[str], Any], check: Callable[[str, Any], None]):
    """An argparse ``type``: ``cast`` the text, then ``check`` it (a bad value: one line)."""
    def parse(text: str) -> Any:
        value = cast(text)  # a ValueError here is argparse's "invalid int value: ..."
        try:
            check(name, value)
        except (TypeError, ValueError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    parse.__name__ = cast.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser, grid: Collection[str] = ()) -> None:
    """Add ``--epochs`` and a ``--flag`` per field with ``cli`` metadata, with help and default.

    Flags are the field names with dashes (``--steps-per-epoch``); the help is the
    field's doc and valid range, the default its declared one, and a value is
    checked as the field is (a bad one is argparse's one-line error). Fields named
    in ``grid`` take several values (``--pi-lr 3e-4 1e-3``: one run per value; the
    default is then a list of one). The parsed value's ``dest`` is the field name.
    """
    parser.add_argument("--epochs", type=_checked("epochs", int, _integer(1)),
                        default=DEFAULT_EPOCHS,
                        help="epochs (one policy update each); with --resume the total to reach")
    # The fields' declared defaults: no VPGConfig() here, whose checks import Keras
    # (the CLI builds its parser before the backend is chosen).
    for f in dataclasses.fields(VPGConfig):
        if f.name not in FLAGGED_FIELDS:
            continue
        cli = dict(f.metadata["cli"])
        valid = cli.pop("valid", f.metadata["valid"])  # what a flag can say, where it differs
        kwargs = dict(cli, default=f.default, help=f"{f.metadata['doc']} ({valid})")
        if "type" in kwargs:
            kwargs["type"] = _checked(f.name, kwargs["type"], f.metadata["check"])
        if f.name in grid:
            kwargs.update(nargs="+", default=[f.default])
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, **kwargs)
