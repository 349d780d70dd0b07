"""Every invalid VPG constructor argument: the exception type and a message naming the parameter."""

from __future__ import annotations

import gymnasium as gym
import pytest

import keras_vpg


def cartpole():
    return gym.make("CartPole-v1")


def not_an_actor_critic(observation_space, action_space, **kwargs):
    return "a string"


# (keyword arguments, exception type, regular expression the message must match)
INVALID = [
    (dict(env_fn=gym.make("CartPole-v1")), TypeError, r"env_fn must be a callable"),
    (dict(env_fn="CartPole-v1"), TypeError, r"env_fn must be a callable"),
    (dict(actor_critic=3), TypeError, r"actor_critic must be callable"),
    (dict(actor_critic=not_an_actor_critic), TypeError,
     r"actor_critic must return a keras_vpg.ActorCritic, got str"),
    (dict(ac_kwargs=[("hidden_sizes", (8,))]), TypeError, r"ac_kwargs must be a dict"),
    (dict(seed=-1), ValueError, r"seed must be >= 0, got -1"),
    (dict(seed=1.5), TypeError, r"seed must be an integer, got 1.5"),
    (dict(seed=True), TypeError, r"seed must be an integer, got True"),
    (dict(steps_per_epoch=0), ValueError, r"steps_per_epoch must be >= 1, got 0"),
    (dict(steps_per_epoch=2.5), TypeError, r"steps_per_epoch must be an integer"),
    (dict(steps_per_epoch=3, num_envs=4), ValueError,
     r"steps_per_epoch \(3\) must be at least num_envs \* num_procs"),
    (dict(gamma=1.5), ValueError, r"gamma must be a number in \[0, 1\], got 1.5"),
    (dict(gamma=-0.1), ValueError, r"gamma must be a number in \[0, 1\]"),
    (dict(gamma="0.99"), ValueError, r"gamma must be a number in \[0, 1\], got '0.99'"),
    (dict(lam=1.01), ValueError, r"lam must be a number in \[0, 1\], got 1.01"),
    (dict(pi_lr=-1.0), ValueError, r"pi_lr must be a non-negative learning rate or a .*, got -1.0"),
    (dict(pi_lr=float("nan")), ValueError, r"pi_lr must be a non-negative learning rate"),
    (dict(vf_lr=float("inf")), ValueError, r"vf_lr must be a non-negative learning rate"),
    (dict(vf_lr="fast"), ValueError, r"vf_lr must be a non-negative learning rate"),
    (dict(train_v_iters=-1), ValueError, r"train_v_iters must be >= 0, got -1"),
    (dict(train_v_iters=80.0), TypeError, r"train_v_iters must be an integer"),
    (dict(max_ep_len=-5), ValueError, r"max_ep_len must be >= 0, got -5"),
    (dict(max_ep_len="1000"), TypeError, r"max_ep_len must be an integer"),
    (dict(logger_kwargs="data/run"), TypeError, r"logger_kwargs must be a dict"),
    (dict(save_freq=0), ValueError, r"save_freq must be >= 1, got 0"),
    (dict(num_envs=0), ValueError, r"num_envs must be >= 1, got 0"),
    (dict(num_envs="2"), TypeError, r"num_envs must be an integer"),
    (dict(vector_mode="threads"), ValueError, r"vector_mode must be one of .*'threads'"),
    (dict(normalize_obs=1), TypeError, r"normalize_obs must be True or False, got 1"),
    (dict(overlap_update="yes"), TypeError, r"overlap_update must be True, False or None"),
    (dict(keep_checkpoints=0), ValueError, r"keep_checkpoints must be >= 1, got 0"),
    (dict(keep_checkpoints=None), TypeError, r"keep_checkpoints must be an integer"),
    (dict(fast_paths="on"), TypeError, r"fast_paths must be True, False or None, got 'on'"),
    (dict(fast_paths=1), TypeError, r"fast_paths must be True, False or None, got 1"),
    (dict(tune_threads=None), TypeError, r"tune_threads must be True or False, got None"),
]


def _case_id(kwargs: dict) -> str:
    """``name=value``; a function by its name (its repr's address differs between processes,
    and pytest-xdist's workers must collect the same ids)."""
    name, value = next(iter(kwargs.items()))
    return f"{name}={value.__name__}" if callable(value) and hasattr(value, "__name__") else (
        f"{name}={value!r}")


@pytest.mark.parametrize("kwargs, error, message", INVALID,
                         ids=[_case_id(k) for k, _, _ in INVALID])
def test_invalid_argument_names_the_parameter(kwargs, error, message, tmp_path):
    kwargs = dict(kwargs)
    env_fn = kwargs.pop("env_fn", cartpole)
    settings = dict(steps_per_epoch=8, ac_kwargs=dict(hidden_sizes=(4,)),
                    logger_kwargs=dict(output_dir=str(tmp_path / "run")))
    settings.update(kwargs)
    with pytest.raises(error, match=message):
        keras_vpg.VPG(env_fn, **settings)
    # Nothing was written for a refused configuration.
    assert not (tmp_path / "run" / "progress.txt").exists()


def test_the_table_covers_every_parameter():
    import inspect

    parameters = set(inspect.signature(keras_vpg.VPG.__init__).parameters) - {"self"}
    covered = {next(iter(kwargs)) for kwargs, _, _ in INVALID}
    assert parameters == covered
