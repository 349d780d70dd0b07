"""``--tensorboard`` after ``pip install "keras-vpg[jax]"`` then ``"keras-vpg[tensorboard]"``.

The machine has JAX and the tensorboard extra, no TensorFlow and no PyTorch, and a
``keras.json`` saying ``"tensorflow"`` (as Keras writes it). In the full test envs
a ``sitecustomize`` hides TensorFlow and PyTorch (``None`` in ``sys.modules``, what
Python does for a missing package); tox's ``jax-tensorboard`` env really lacks them.
Needs no conftest fixture (that env runs it with ``--noconftest``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fake_machine import UNSET, machine_env

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")

MISSING = ("tensorflow", "torch")


@pytest.fixture(scope="module")
def machine(tmp_path_factory) -> dict[str, str]:
    return machine_env(tmp_path_factory.mktemp("jax_tensorboard"), MISSING,
                       unset=(*UNSET, "TF_CPP_MIN_LOG_LEVEL"))


def test_tensorboard_writes_what_the_tensorboard_command_reads(machine, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "keras_vpg", "train", "--env", "CartPole-v1", "--epochs", "2",
         "--steps-per-epoch", "300", "--train-v-iters", "2", "--hid", "8", "--exp-name", "tb",
         "--verbose", "0", "--tensorboard"],
        cwd=tmp_path, env=machine, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ""
    assert "on jax (" in result.stdout
    log_dir = tmp_path / "data" / "tb" / "tb_s0" / "tensorboard"

    # The README's `tensorboard --logdir` command exists after the extra, and finds the scalars.
    command = Path(sys.executable).with_name("tensorboard")
    command = str(command) if command.exists() else shutil.which("tensorboard")
    assert command, "the tensorboard extra installs no `tensorboard` command"
    inspect = subprocess.run([command, "--inspect", "--logdir", str(log_dir)], env=machine,
                             capture_output=True, text=True, timeout=300)
    assert "AverageEpRet" in inspect.stdout + inspect.stderr, inspect.stdout + inspect.stderr

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = log_dir.glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    assert [e.step for e in accumulator.Scalars("AverageEpRet")] == [300, 600]
