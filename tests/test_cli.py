"""The keras-vpg command end to end (subprocesses, as a user runs it) and its parser."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys

import pytest

from keras_vpg import cli


def keras_vpg_cli(*args, cwd, backend=None, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if backend:
        env["KERAS_BACKEND"] = backend
    return subprocess.run([sys.executable, "-m", "keras_vpg", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.mark.parametrize("command", ["train", "plot", "test-policy", "export"])
def test_every_option_is_documented_with_its_default(command):
    parser = subcommands()[command]
    text = parser.format_help()
    for action in parser._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
        shows_default = action.option_strings and not (
            action.default is None or action.default is False
            or action.default == argparse.SUPPRESS)
        if shows_default:
            default = action.default
            shown = " ".join(map(str, default)) if isinstance(default, list) else str(default)
            assert f"(default: {shown})" in " ".join(text.split()), (command, action.dest)


def test_train_defaults_are_those_of_vpg():
    import keras_vpg

    args = subcommands()["train"].parse_args(["--env", "CartPole-v1"])
    kwargs = cli.vpg_kwargs(args, seed=0)
    signature = inspect.signature(keras_vpg.VPG).parameters
    for name, value in kwargs.items():
        if name in ("ac_kwargs", "logger_kwargs"):
            continue
        assert value == signature[name].default, name
    assert args.epochs == inspect.signature(keras_vpg.vpg).parameters["epochs"].default
    mlp = inspect.signature(keras_vpg.MLPActorCritic).parameters
    assert kwargs["ac_kwargs"]["hidden_sizes"] == mlp["hidden_sizes"].default
    assert kwargs["ac_kwargs"]["activation"] == mlp["activation"].default


def test_vpg_kwargs_follow_the_flags():
    args = subcommands()["train"].parse_args([
        "--env", "Hopper-v5", "--hid", "32", "--act", "relu", "--gamma", "0.9",
        "--num-envs", "4", "--data-dir", "runs", "--normalize-obs",
    ])
    kwargs = cli.vpg_kwargs(args, seed=7)
    assert kwargs["ac_kwargs"] == dict(hidden_sizes=(32,), activation="relu")
    assert kwargs["gamma"] == 0.9 and kwargs["num_envs"] == 4 and kwargs["seed"] == 7
    assert kwargs["normalize_obs"] is True
    assert kwargs["logger_kwargs"] == dict(output_dir=os.path.join("runs", "hopper-v5",
                                                                   "hopper-v5_s7"),
                                           exp_name="hopper-v5")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny CLI training run (two seeds) shared by the tests below."""
    cwd = tmp_path_factory.mktemp("cli")
    result = keras_vpg_cli("train", "--env", "CartPole-v1", "--epochs", "2", "--steps-per-epoch",
                           "300", "--train-v-iters", "2", "--hid", "16", "--act", "relu",
                           "--seed", "0", "1", "--exp-name", "cp", "--backend", "torch",
                           "--verbose", "2", cwd=cwd, backend="jax")
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd, result


def test_train_writes_runs_per_seed_with_the_requested_backend(trained):
    cwd, result = trained
    for seed in (0, 1):
        run = cwd / "data" / "cp" / f"cp_s{seed}"
        assert (run / "progress.txt").exists() and (run / "model.keras").exists()
        config = json.loads((run / "config.json").read_text())
        assert config["seed"] == seed and config["ac_kwargs"]["activation"] == "relu"
        assert config["ac_kwargs"]["hidden_sizes"] == [16]
    assert "on torch" in result.stdout  # --backend torch won over KERAS_BACKEND=jax
    assert "AverageEpRet" in result.stdout


def test_train_ends_with_one_summary_per_run_and_the_next_commands(trained):
    cwd, result = trained
    lines = result.stdout.splitlines()
    done = [line for line in lines if line.startswith("keras-vpg: done")]
    assert [line.split()[2] for line in done] == ["cp_s0:", "cp_s1:"]
    for seed, line in enumerate(done):
        progress = (cwd / "data" / "cp" / f"cp_s{seed}" / "progress.txt").read_text()
        header, *rows = progress.splitlines()
        final = float(rows[-1].split("\t")[header.split("\t").index("AverageEpRet")])
        assert f"AverageEpRet {final:.4g} " in line and line.endswith(f"cp_s{seed}")
    next_steps = "\n".join(lines[lines.index("Next:"):])
    for command in ("plot data/cp", "test-policy data/cp/cp_s0", "export data/cp/cp_s0"):
        assert f"keras-vpg {command}" in next_steps


@pytest.mark.slow
def test_test_policy_prints_a_summary_and_episodes_when_verbose(trained):
    cwd, _ = trained
    result = keras_vpg_cli("test-policy", "data/cp/cp_s0", "--episodes", "3", "--norender",
                           "--deterministic", "--verbose", cwd=cwd, backend="jax")
    assert result.returncode == 0, result.stderr[-3000:]
    episodes = [line for line in result.stdout.splitlines() if line.startswith("Episode ")]
    assert len(episodes) == 3
    lengths = [int(line.split()[-1]) for line in episodes]
    mean = sum(lengths) / 3
    assert f"3 episodes: EpRet {mean:.4g} ±" in result.stdout  # CartPole: return == length


def test_plot_writes_a_png(trained):
    cwd, _ = trained
    result = keras_vpg_cli("plot", "data/cp", "--value", "AverageEpRet", "LossV",
                           "--xmax", "1e9", "--out", "curves.png", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("curves_AverageEpRet.png", "curves_LossV.png"):
        assert (cwd / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert name in result.stdout


@pytest.mark.slow
def test_export_saved_model(trained):
    cwd, _ = trained
    result = keras_vpg_cli("export", "data/cp/cp_s1", "--out", "serving", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (cwd / "serving" / "saved_model.pb").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--env", "NoSuchEnv-v9"], "NoSuchEnv-v9"),
    (["train", "--env", "CartPole-v1", "--gamma", "2"], "gamma must be a number in [0, 1]"),
    (["test-policy", "missing/run"], "missing/run"),
    (["export", "missing/run"], "missing/run"),
    (["plot", "missing/run"], "missing/run"),
    (["train", "--env", "CartPole-v1", "--pi_lr", "0.1"], "did you mean --pi-lr?"),
    (["test-policy", "run", "--epsiodes", "3"], "test-policy: error: unrecognized arguments: "
                                                "--epsiodes 3; did you mean --episodes?"),
    (["test-policy", "run", "--pi_lr", "1"], "test-policy: error: unrecognized arguments: "
                                             "--pi_lr 1 (see"),  # a flag of train only
    (["train", "--env", "CartPol-v1"], "did you mean CartPole-v1"),
])
def test_user_errors_exit_nonzero_naming_the_culprit(args, message, tmp_path):
    result = keras_vpg_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_no_command_prints_the_commands(capsys):
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: keras-vpg") and "error" not in err
    assert all(command in err for command in cli.COMMANDS)


def test_a_mistyped_top_level_flag_is_named_not_the_missing_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--verison"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --verison; did you mean --version?" in err
    assert "COMMAND" not in err
    # argparse's abbreviations of a top-level flag still work (--vers: --version).
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--vers"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("keras-vpg ")


def test_a_flag_unlike_any_gets_no_suggestion():
    flags = subcommands()["train"].flags()
    assert cli._flag_hint(["--frob", "2"], flags) == ""
    assert cli._flag_hint(["--"], flags) == ""  # not "--" for -h, both empty without dashes
    assert cli._flag_hint(["--pi_lr=0.1", "--vf_lr", "3"], flags) == (
        "; did you mean --pi-lr, --vf-lr?")
