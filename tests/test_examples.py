"""examples/*.py run as a user runs them (subprocesses in a scratch directory).

train_cartpole.py runs with its epochs and steps scaled down (VPG's constructor and fit
wrapped before the script runs: the script's text is what is tested); load_and_act.py on
the shipped CartPole policy under every backend; serve_saved_model.py on an export.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from script_module import ROOT

EXAMPLES = ROOT / "examples"

SMALL_TRAIN = """
import runpy, sys
import keras_vpg
init, fit = keras_vpg.VPG.__init__, keras_vpg.VPG.fit
def small_init(self, *args, **kwargs):
    kwargs["steps_per_epoch"] = 200
    init(self, *args, **kwargs)
def small_fit(self, epochs=1, **kwargs):
    return fit(self, epochs=min(epochs, 2), **kwargs)
keras_vpg.VPG.__init__, keras_vpg.VPG.fit = small_init, small_fit
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run(args, cwd, backend="jax"):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_every_example_is_covered():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == [
        "load_and_act.py", "serve_saved_model.py", "train_cartpole.py"]


@pytest.mark.slow
def test_train_cartpole(tmp_path):
    out = run(["-c", SMALL_TRAIN, str(EXAMPLES / "train_cartpole.py")], tmp_path)
    assert "AverageEpRet per epoch:" in out and "Deterministic policy, one episode" in out
    assert (tmp_path / "data" / "cartpole" / "cartpole.keras").exists()
    assert (tmp_path / "data" / "cartpole" / "cartpole_s0" / "history.csv").exists()


@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow"])
def test_load_and_act(backend, tmp_path):
    out = run([str(EXAMPLES / "load_and_act.py"),
               str(ROOT / "saved_models" / "cartpole" / "model.keras"), "CartPole-v1"],
              tmp_path, backend)
    assert out.count("episode ") == 3 and f"backend {backend}: step()" in out


@pytest.mark.slow
def test_serve_saved_model(tmp_path):
    pytest.importorskip("tensorflow", reason="export writes a SavedModel with TensorFlow")
    run(["-m", "keras_vpg", "export", str(ROOT / "saved_models" / "cartpole"), "--out",
         str(tmp_path / "serving")], tmp_path)
    out = run([str(EXAMPLES / "serve_saved_model.py"), str(tmp_path / "serving"),
               "CartPole-v1"], tmp_path)
    assert "CartPole-v1: return" in out
