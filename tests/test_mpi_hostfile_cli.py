"""``keras-vpg train --cpu 2 --hostfile FILE``: the CLI passes the hostfile to mpirun and the
run has two processes (tox env ``mpi``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.mpi


def train_with_hostfile(tmp_path, slots: int) -> subprocess.CompletedProcess:
    """`keras-vpg train --cpu 2 --hostfile hosts.txt`, one tiny epoch, `slots` on localhost."""
    (tmp_path / "hosts.txt").write_text(f"localhost slots={slots}\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("IN_MPI", None)
    return subprocess.run(
        [sys.executable, "-m", "keras_vpg", "train", "--env", "CartPole-v1", "--epochs", "1",
         "--steps-per-epoch", "200", "--train-v-iters", "2", "--hid", "8", "--exp-name", "h",
         "--backend", "jax", "--verbose", "0", "--cpu", "2", "--hostfile", "hosts.txt"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_hostfile_from_the_cli_runs_two_ranks(tmp_path):
    done = train_with_hostfile(tmp_path, slots=2)
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((tmp_path / "data" / "h" / "h_s0" / "config.json").read_text())
    assert config["num_procs"] == 2


def test_a_missing_hostfile_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "keras_vpg", "train", "--env", "CartPole-v1", "--epochs", "1",
         "--cpu", "2", "--hostfile", "nowhere.txt", "--backend", "jax"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "nowhere.txt" in done.stderr


def test_the_hostfile_slots_bind_the_cli_run(tmp_path):
    # Without the hostfile, mpirun oversubscribes this machine and the run succeeds: a
    # refusal for lack of slots shows the hostfile reached mpirun.
    done = train_with_hostfile(tmp_path, slots=1)
    assert done.returncode != 0
    assert "not enough slots" in done.stdout + done.stderr
    assert not (tmp_path / "data" / "h" / "h_s0" / "progress.txt").exists()
