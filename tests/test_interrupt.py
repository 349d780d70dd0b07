"""SIGINT / SIGTERM to a training process: checkpoint, one line, exit 130 / 143, resume works."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import Child

import keras_vpg
from keras_vpg import checkpoint
from keras_vpg.agent import resume_run
from keras_vpg.checkpoint import read_checkpoint

SCRIPT = Path(__file__).parent / "scripts" / "train_until_signal.py"
EPOCHS = 400  # far more than runs before the signal


def progress_epochs(run_dir):
    lines = (run_dir / "progress.txt").read_text().splitlines()[1:]
    return [int(line.split("\t")[0]) for line in lines]


@pytest.mark.parametrize("signum, status, name", [(signal.SIGINT, 130, "Ctrl-C"),
                                                  (signal.SIGTERM, 143, "SIGTERM")])
def test_signal_mid_epoch_checkpoints_and_the_run_resumes(signum, status, name, tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(sys.path))
    with Child([sys.executable, str(SCRIPT), str(run), str(EPOCHS)], env=env,
               cwd=tmp_path) as process:
        assert process.line(timeout=300).strip() == "READY"  # epoch 1 done, epoch 2 collecting
        process.process.send_signal(signum)
        out, err = process.finish(timeout=120)
    assert process.returncode == status, err[-3000:]
    assert "Traceback" not in err and "FINISHED" not in out
    lines = [line for line in err.splitlines() if "resume with" in line]
    assert len(lines) == 1 and lines[0].startswith(name), err[-3000:]
    assert f"keras-vpg train --resume {run}" in lines[0]

    # The checkpoint holds the epochs logged, no more and no fewer.
    done = progress_epochs(run)
    assert done == list(range(len(done))) and 2 <= len(done) < EPOCHS
    (epoch, path), = checkpoint.list_checkpoints(run)  # save_freq=1000: only the interrupt's
    assert epoch == len(done) and str(path) in lines[0]
    state, arrays = read_checkpoint(path)
    assert state["total_env_interacts"] == 2000 * epoch and state["target_epochs"] == EPOCHS

    # The restored weights and optimizer state are the checkpoint's, bit for bit.
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    restored = keras_vpg.VPG.restore(copy)
    for group, variables in restored._variable_groups().items():
        for i, variable in enumerate(variables):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable),
                                          arrays[f"{group}/{i}"])

    total = epoch + 2
    agent = resume_run(run, epochs=total, verbose=0)
    assert progress_epochs(run) == list(range(total))
    lines = (run / "progress.txt").read_text().splitlines()[1:]
    interacts = [int(float(line.split("\t")[10])) for line in lines]
    assert interacts == [2000 * (i + 1) for i in range(total)]
    iterations = [v for v in agent.trainer.pi_optimizer.variables if "iteration" in v.path][0]
    assert int(keras.ops.convert_to_numpy(iterations)) == total  # the step counter went on
