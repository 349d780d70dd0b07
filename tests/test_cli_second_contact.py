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
