"""Resuming a run on another backend works: weights and optimizer state carry over exactly,
the run continues its epochs and counters, and one warning line says why its numbers may
differ from a same-backend resume (the sampling stream)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from keras_vpg.plot import read_progress

pytestmark = pytest.mark.slow

CHECK_WEIGHTS = """
import sys, numpy as np, keras
import keras_vpg
from keras_vpg.checkpoint import latest_checkpoint, read_checkpoint
run = sys.argv[1]
state, arrays = read_checkpoint(latest_checkpoint(run))
agent = keras_vpg.VPG.restore(run + "_copy")
for i, v in enumerate(agent.ac.variables):
    if "seed" not in v.path:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), arrays[f"model/{i}"])
print("WEIGHTS OK", state["backend"], keras.backend.backend())
"""


def cli(*args, cwd, backend=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if backend:
        env["KERAS_BACKEND"] = backend
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("first, then", [("jax", "torch"), ("torch", "tensorflow")])
def test_resume_on_another_backend_continues_the_run(first, then, tmp_path):
    run = tmp_path / "data" / "x" / "x_s0"
    done = cli("-m", "keras_vpg", "train", "--env", "Pendulum-v1", "--epochs", "2",
               "--steps-per-epoch", "200", "--train-v-iters", "2", "--hid", "8",
               "--max-ep-len", "50", "--exp-name", "x", "--backend", first, "--verbose", "0",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    import shutil

    shutil.copytree(run, str(run) + "_copy")
    loaded = cli("-c", CHECK_WEIGHTS, str(run), cwd=tmp_path, backend=then)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert f"WEIGHTS OK {first} {then}" in loaded.stdout

    resumed = cli("-m", "keras_vpg", "train", "--resume", str(run), "--epochs", "4",
                  "--backend", then, "--verbose", "0", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    notes = [line for line in resumed.stderr.splitlines()
             if f"written with the {first} backend" in line]
    assert len(notes) == 1 and then in notes[0] and "sampling stream" in notes[0], (
        resumed.stderr[-2000:])
    columns = read_progress(run / "progress.txt")
    assert columns["Epoch"].tolist() == [0, 1, 2, 3]
    assert columns["TotalEnvInteracts"].tolist() == [200, 400, 600, 800]
    assert np.isfinite(columns["LossV"]).all()
