"""The tooling as a new user meets it (#25): quiet stderr, a config.json that reproduces
its run, clean experiment folders, one-line errors before training."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = ["--env", "CartPole-v1", "--steps-per-epoch", "200", "--train-v-iters", "2",
        "--hid", "8", "--verbose", "0"]


def keras_vpg(*args: str, cwd: Path, timeout: float = 600, **env_vars: str
              ) -> subprocess.CompletedProcess:
    """The command in a subprocess, with the environment a user's shell has."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_VPG_DEBUG")}
    env.update(env_vars)
    return subprocess.run([sys.executable, "-m", "keras_vpg", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess, *expected: str) -> str:
    """Exit status 2 and exactly one stderr line (the error), holding every ``expected``."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                    reason="the noise is TensorFlow's, printed when it is installed")
def test_train_on_jax_leaves_stderr_empty_with_tensorflow_installed(tmp_path):
    # Keras imports TensorFlow on every backend (set_random_seed seeds it); its native
    # start-up lines ignore TF_CPP_MIN_LOG_LEVEL.
    result = keras_vpg("train", "--backend", "jax", *TINY, "--epochs", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ""


def read_progress(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def scalar_steps(log_dir: Path, tag: str) -> list[int]:
    """The steps of ``tag`` in the event files under ``log_dir`` (tensorboard's reader)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps = []
    for events in sorted(log_dir.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags = accumulator.Tags()
        found = ([e.step for e in accumulator.Scalars(tag)] if tag in tags["scalars"] else
                 [e.step for e in accumulator.Tensors(tag)] if tag in tags["tensors"] else [])
        steps += found
    return sorted(steps)


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="reads the event files with tensorboard")
def test_config_json_records_epochs_and_callbacks_and_resume_keeps_them(tmp_path):
    first = keras_vpg("train", *TINY, "--epochs", "2", "--exp-name", "r", "--save-freq", "1",
                      "--eval-freq", "1", "--eval-episodes", "2", "--tensorboard", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = tmp_path / "data" / "r" / "r_s0"
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["epochs"], config["eval_freq"], config["eval_episodes"],
            config["tensorboard"]) == (2, 1, 2, True)

    resumed = keras_vpg("train", "--resume", str(run_dir), "--epochs", "3", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = read_progress(run_dir / "progress.txt")
    # The summary's speed is the last epoch's, its time that of the steps since the resume.
    (summary,) = [line for line in resumed.stdout.splitlines()
                  if line.startswith("keras-vpg: done")]
    speed = f"{float(rows[-1]['StepsPerSecond']):,.0f} steps/s in the last epoch"
    assert "600 steps (200 since the resume, in " in summary and speed in summary, summary
    assert [r["Epoch"] for r in rows] == ["0", "1", "2"]
    assert all(r["EvalAverageEpRet"] != "nan" for r in rows)  # evaluated after the resume too
    assert scalar_steps(run_dir / "tensorboard", "AverageEpRet") == [200, 400, 600]
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["epochs"], config["eval_freq"], config["tensorboard"]) == (3, 1, True)


def test_a_reused_run_name_moves_the_old_run_out_of_the_plot(tmp_path):
    from keras_vpg.plot import find_runs

    for epochs in ("1", "2"):
        result = keras_vpg("train", *TINY, "--epochs", epochs, "--exp-name", "m",
                           "--verbose", "1", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    # --verbose 1 into a pipe or file: the plain per-epoch lines, no progress-bar redraws.
    assert not any(c in result.stdout for c in "\r\b\x1b"), repr(result.stdout)
    assert result.stdout.count("AverageEpRet: ") == 2
    # One epoch count for what a user sees: the console, progress.txt, model_<epoch>.keras.
    assert "Epoch 0 (1/2)" in result.stdout and "Epoch 1 (2/2)" in result.stdout
    run_dir = tmp_path / "data" / "m" / "m_s0"
    assert [r["Epoch"] for r in read_progress(run_dir / "progress.txt")] == ["0", "1"]
    assert (run_dir / "model_1.keras").is_file()
    assert "UserWarning" not in result.stderr and "warnings.warn" not in result.stderr
    notices = [line for line in result.stdout.splitlines() if "already held a run" in line]
    assert len(notices) == 1 and notices[0].startswith("keras-vpg: data/m/m_s0 ")
    exp_dir = tmp_path / "data" / "m"
    (old,) = (exp_dir / ".old").iterdir()
    assert f"keras-vpg train --resume {old.relative_to(tmp_path)}" in notices[0]
    assert len(read_progress(old / "progress.txt")) == 1  # the first run, kept whole
    assert find_runs([str(exp_dir)]) == {"m": [exp_dir / "m_s0"]}  # one seed, not two


def test_test_policy_on_an_experiment_folder_names_its_runs(tmp_path):
    result = keras_vpg("train", *TINY, "--epochs", "1", "--exp-name", "x", "--seed", "0", "1",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # With or without a display to render to, the wrong folder is the error shown.
    for render in (["--norender"], []):
        line = one_line_error(keras_vpg("test-policy", "data/x", *render, cwd=tmp_path),
                              "experiment folder")
        assert "data/x/x_s0, data/x/x_s1" in line
    if sys.platform.startswith("linux"):  # elsewhere there is no DISPLAY to check
        one_line_error(keras_vpg("test-policy", "data/x/x_s0", cwd=tmp_path, DISPLAY="",
                                 WAYLAND_DISPLAY=""), "no display to render to; pass --norender")


def test_a_bad_value_is_one_line_without_the_usage_block(tmp_path):
    line = one_line_error(keras_vpg("train", "--env", "CartPole-v1", "--epochs", "0",
                                    cwd=tmp_path), "--epochs", "must be >= 1, got 0")
    assert line.startswith("keras-vpg train: error:") and "--help" in line
    assert not (tmp_path / "data").exists()
