"""VPGConfig: one definition of every hyperparameter (VPG, vpg(), CLI flags, config.json)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json

import gymnasium as gym
import keras
import pytest

import keras_vpg
from keras_vpg.config import DEFAULT_EPOCHS, VPGConfig, add_arguments


def test_vpg_and_vpg_function_signatures_use_the_config_defaults():
    defaults = VPGConfig()
    vpg_params = inspect.signature(keras_vpg.VPG.__init__).parameters
    fields = [f.name for f in dataclasses.fields(VPGConfig)]
    for name in fields:
        assert vpg_params[name].default == getattr(defaults, name), name
    # VPG takes every field, and nothing else but the two callables.
    assert set(vpg_params) - {"self"} == set(fields) | {"env_fn", "actor_critic"}
    fn_params = inspect.signature(keras_vpg.vpg).parameters
    for name in fn_params:
        if name in fields:
            assert fn_params[name].default == getattr(defaults, name), name
    assert fn_params["epochs"].default == DEFAULT_EPOCHS



def test_every_vpg_argument_reaches_its_config(tmp_path):
    """A value other than the default, for every field, is the one VPG's config holds."""
    chosen = dict(ac_kwargs=dict(hidden_sizes=(8,)), seed=3, steps_per_epoch=40, gamma=0.9,
                  pi_lr=1e-2, vf_lr=2e-3, train_v_iters=2, lam=0.9, max_ep_len=30,
                  logger_kwargs=dict(output_dir=str(tmp_path)), save_freq=2, num_envs=2,
                  vector_mode="sync", normalize_obs=True, overlap_update=False,
                  fast_paths=False, tune_threads=False, keep_checkpoints=1)
    assert set(chosen) == {f.name for f in dataclasses.fields(VPGConfig)}
    defaults = VPGConfig()
    changed = [name for name, value in chosen.items() if value != getattr(defaults, name)]
    assert set(changed) == set(chosen) - {"vector_mode"}  # (async would start processes)
    agent = keras_vpg.VPG(lambda: gym.make("CartPole-v1"), **chosen)
    agent.close()
    assert agent.config == VPGConfig(**chosen)

@pytest.mark.parametrize("name, value, error", [
    ("gamma", 1.5, ValueError), ("lam", True, ValueError), ("pi_lr", float("nan"), ValueError),
    ("seed", -1, ValueError), ("seed", 1.0, TypeError), ("max_ep_len", "10", TypeError),
    ("ac_kwargs", [1], TypeError), ("normalize_obs", 1, TypeError),
    ("overlap_update", 1, TypeError), ("fast_paths", "no", TypeError),
    ("tune_threads", None, TypeError), ("vector_mode", "threads", ValueError),
])
def test_invalid_values_name_the_field(name, value, error):
    with pytest.raises(error, match=name):
        VPGConfig(**{name: value})


def test_json_round_trip_keeps_every_field_schedules_included():
    schedule = keras.optimizers.schedules.ExponentialDecay(3e-4, 100, 0.9)
    config = VPGConfig(ac_kwargs=dict(hidden_sizes=(16, 16), activation="relu"), seed=4,
                       pi_lr=schedule, max_ep_len=None, normalize_obs=True, fast_paths=False)
    back = VPGConfig.from_json(json.loads(json.dumps(config.to_json())))
    for f in dataclasses.fields(VPGConfig):
        if f.name != "pi_lr":
            assert getattr(back, f.name) == getattr(config, f.name), f.name
    assert back.pi_lr.get_config() == schedule.get_config()
    # Keys of a run's config.json that are not hyperparameters are ignored.
    assert VPGConfig.from_json({"gamma": 0.9, "env_spec": "{}", "backend": "jax"}).gamma == 0.9


def test_add_arguments_builds_flags_with_defaults_and_help():
    parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(["--steps-per-epoch", "300", "--normalize-obs", "--pi-lr", "1e-3"])
    assert args.steps_per_epoch == 300 and args.normalize_obs is True and args.pi_lr == 1e-3
    assert args.gamma == 0.99 and args.epochs == DEFAULT_EPOCHS and args.vector_mode == "sync"
    help_text = parser.format_help()
    assert "discount factor" in help_text and "(default: 0.99)" in help_text
    with pytest.raises(SystemExit):
        parser.parse_args(["--vector-mode", "threads"])
    grid = argparse.ArgumentParser()
    add_arguments(grid, grid=("pi_lr", "vf_lr"))
    args = grid.parse_args(["--pi-lr", "3e-4", "1e-3"])
    assert args.pi_lr == [3e-4, 1e-3] and args.vf_lr == [1e-3] and args.seed == 0


def test_config_json_records_the_sampler_and_reads_back(tmp_path, monkeypatch):
    def build(name, **kwargs):
        agent = keras_vpg.VPG(lambda: gym.make("CartPole-v1"), steps_per_epoch=20,
                              logger_kwargs=dict(output_dir=str(tmp_path / name)), **kwargs)
        agent.close()
        return json.loads((tmp_path / name / "config.json").read_text())

    monkeypatch.delenv("KERAS_VPG_FAST_PATHS", raising=False)
    fast = build("fast", gamma=0.9)
    assert fast["sampler"] == "numpy-mlp" and fast["gamma"] == 0.9
    assert VPGConfig.from_json(fast).gamma == 0.9
    backend = keras.backend.backend()
    assert build("plain", fast_paths=False)["sampler"] == f"{backend}-compiled"
    monkeypatch.setenv("KERAS_VPG_FAST_PATHS", "0")
    assert build("env_off")["sampler"] == f"{backend}-compiled"
    monkeypatch.setenv("KERAS_VPG_FAST_PATHS", "maybe")
    with pytest.raises(ValueError, match="KERAS_VPG_FAST_PATHS"):
        build("bad")


def test_fast_paths_false_runs_plain_keras_on_every_backend(tmp_path):
    agent = keras_vpg.VPG(lambda: gym.make("CartPole-v1"), steps_per_epoch=20, fast_paths=False,
                          logger_kwargs=dict(output_dir=str(tmp_path)))
    agent.close()
    assert agent.trainer.fast_paths is False and agent.sampler.numpy is None
    if keras.backend.backend() == "torch":  # no TorchScript value steps, no plain-torch MLP
        assert agent.trainer._fused_value_steps is None and agent.trainer._v_steps is None
        assert not agent.overlap_update
    agent.fit(epochs=1, verbose=0)  # and it trains


def test_load_config_reads_back_exactly_vpgs_arguments(tmp_path):
    import inspect

    keras_vpg.VPG(lambda: gym.make("CartPole-v1"), steps_per_epoch=20,
                  logger_kwargs=dict(output_dir=str(tmp_path))).close()
    parameters = set(inspect.signature(keras_vpg.VPG.__init__).parameters) - {"self", "env_fn"}
    assert set(keras_vpg.load_config(tmp_path, make_env=False)) == parameters


class AddColumn(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        logs["EvalScore"] = 10.0 * epoch


@pytest.mark.parametrize("overlap", [False, True])
def test_keys_a_callback_adds_to_logs_reach_progress_txt(tmp_path, overlap):
    agent = keras_vpg.VPG(lambda: gym.make("CartPole-v1"), steps_per_epoch=60, train_v_iters=2,
                          overlap_update=overlap, logger_kwargs=dict(output_dir=str(tmp_path)))
    history = agent.fit(epochs=3, callbacks=[AddColumn()], verbose=0)
    agent.close()
    header, *rows = (tmp_path / "progress.txt").read_text().splitlines()
    column = header.split("\t").index("EvalScore")
    assert [float(r.split("\t")[column]) for r in rows] == [0.0, 10.0, 20.0]
    assert history.history["EvalScore"] == [0.0, 10.0, 20.0]
