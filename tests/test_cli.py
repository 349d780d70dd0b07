"""The keras-vpg command end to end (subprocesses, as a user runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def keras_vpg_cli(*args, cwd, backend=None, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if backend:
        env["KERAS_BACKEND"] = backend
    return subprocess.run([sys.executable, "-m", "keras_vpg", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, backend="jax"):
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


def test_test_policy_prints_episodes_and_averages(trained):
    cwd, _ = trained
    result = keras_vpg_cli("test-policy", "data/cp/cp_s0", "--episodes", "3", "--norender",
                           "--deterministic", cwd=cwd, backend="jax")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Episode ") == 3 and "AverageEpRet" in result.stdout


def test_plot_writes_a_png(trained):
    cwd, _ = trained
    result = keras_vpg_cli("plot", "data/cp", "--value", "AverageEpRet", "LossV",
                           "--out", "curves.png", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("curves_AverageEpRet.png", "curves_LossV.png"):
        assert (cwd / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_saved_model(trained):
    cwd, _ = trained
    result = keras_vpg_cli("export", "data/cp/cp_s1", "--out", "serving", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (cwd / "serving" / "saved_model.pb").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--env", "NoSuchEnv-v9"], "NoSuchEnv-v9"),
    (["test-policy", "missing/run"], "missing/run"),
    (["export", "missing/run"], "missing/run"),
    (["plot", "missing/run"], "missing/run"),
])
def test_user_errors_exit_nonzero_naming_the_culprit(args, message, tmp_path):
    result = keras_vpg_cli(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
