"""Thread and dispatch defaults: applied when a VPG is built (or by configure_threads), never
at import -- of keras_vpg or of keras_vpg.trainers (KERAS_VPG_THREADS, VPG(tune_threads=...))."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from keras_vpg.mpi import usable_cores

PROBE = {
    "torch": "import torch; print(json.dumps(torch.get_num_threads()))",
    "tensorflow": "import os; print(json.dumps(os.environ.get('XLA_FLAGS', '')))",
    "jax": "import jax; print(json.dumps(bool(jax.config.read('jax_cpu_enable_async_dispatch'))))",
}
TF_INTRA_OP = ("import tensorflow as tf\n"
               "print(json.dumps(tf.config.threading.get_intra_op_parallelism_threads()))")


CONFIGURE = ("import keras_vpg\n"
             "from keras_vpg.trainers import configure_threads\nconfigure_threads()\n")


def probe(backend: str, import_keras_vpg: bool, code: str | None = None, **env_vars: str):
    """The backend's setting in a fresh interpreter, with or without keras_vpg's defaults.

    ``import_keras_vpg``: import keras_vpg and apply them with ``configure_threads()``,
    as building the first VPG does.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "KERAS_VPG_THREADS", "JAX_CPU_ENABLE_ASYNC_DISPATCH",
                        "XLA_FLAGS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")}
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", **env_vars)
    code = ("import json\n" + (CONFIGURE if import_keras_vpg else "")
            + (code or PROBE[backend]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_torch_runs_one_thread_by_default_and_respects_the_knobs():
    plain = probe("torch", import_keras_vpg=False)
    assert probe("torch", import_keras_vpg=True) == 1
    assert probe("torch", import_keras_vpg=True, KERAS_VPG_THREADS="3") == 3
    # Opting out, or choosing OpenMP's threads yourself, leaves torch's own default.
    assert probe("torch", import_keras_vpg=True, KERAS_VPG_THREADS="0") == plain
    assert probe("torch", import_keras_vpg=True, OMP_NUM_THREADS="2") == 2


def test_jax_dispatches_synchronously_on_cpu_unless_told_otherwise():
    assert probe("jax", import_keras_vpg=False) is True  # JAX's own default
    assert probe("jax", import_keras_vpg=True) is False
    assert probe("jax", import_keras_vpg=True, KERAS_VPG_THREADS="0") is True
    assert probe("jax", import_keras_vpg=True, JAX_CPU_ENABLE_ASYNC_DISPATCH="1") is True


def test_tensorflow_keeps_eigen_single_threaded_inside_xla_kernels():
    assert "--xla_cpu_multi_thread_eigen=false" in probe("tensorflow", import_keras_vpg=True)
    assert probe("tensorflow", import_keras_vpg=True, KERAS_VPG_THREADS="0") == ""
    # A choice of your own is kept as it is.
    mine = "--xla_cpu_multi_thread_eigen=true"
    assert probe("tensorflow", import_keras_vpg=True, XLA_FLAGS=mine) == mine


@pytest.mark.parametrize("launcher_variable", ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"])
def test_ranks_sharing_a_machine_split_its_cores(launcher_variable):
    """Under mpirun each rank's pools get cores / local ranks threads (not the whole machine)."""
    share = max(1, usable_cores() // 2)
    assert probe("tensorflow", True, TF_INTRA_OP, **{launcher_variable: "2"}) == share
    assert probe("torch", True, **{launcher_variable: "2"}) == share
    # One process per machine (or an explicit choice) keeps the usual defaults.
    assert probe("tensorflow", True, TF_INTRA_OP, **{launcher_variable: "1"}) == 0  # TF: auto
    assert probe("tensorflow", True, TF_INTRA_OP, KERAS_VPG_THREADS="0",
                 **{launcher_variable: "2"}) == 0
    assert probe("tensorflow", True, TF_INTRA_OP, KERAS_VPG_THREADS="3",
                 **{launcher_variable: "2"}) == 3


@pytest.mark.parametrize("value", ["two", "-1"])
def test_a_bad_thread_count_names_the_variable(value):
    env = dict(os.environ, KERAS_BACKEND="torch", KERAS_VPG_THREADS=value)
    done = subprocess.run([sys.executable, "-c", CONFIGURE], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode != 0
    assert "KERAS_VPG_THREADS" in done.stderr


SNAPSHOT = """
import json, os, sys
def snapshot():
    out = {"env": dict(os.environ)}
    if "torch" in sys.modules:
        import torch
        out["torch_threads"] = [torch.get_num_threads(), torch.get_num_interop_threads()]
    if "jax" in sys.modules:
        import jax
        out["jax_async"] = bool(jax.config.read("jax_cpu_enable_async_dispatch"))
    return out
"""


@pytest.mark.parametrize("backend", ["jax", "tensorflow", "torch"])
def test_importing_keras_vpg_changes_nothing_in_the_process(backend):
    # The backend itself is imported first, so its settings can be read before and after.
    # TF_CPP_MIN_LOG_LEVEL is preset: keras_vpg/__init__ sets it only when absent.
    framework = {"jax": "jax", "tensorflow": "tensorflow", "torch": "torch"}[backend]
    code = (SNAPSHOT + f"import keras, {framework}\nbefore = snapshot()\n"
            "import keras_vpg, keras_vpg.agent, keras_vpg.trainers, keras_vpg.config\n"
            f"import keras_vpg.trainers.{framework}\n"
            "after = snapshot()\n"
            "print(json.dumps([before, after]))")
    before, after = probe(backend, False, code)
    assert after == before


def test_building_a_vpg_applies_the_defaults_unless_told_not_to(tmp_path):
    build = ("import gymnasium as gym, torch, keras_vpg\n"
             "keras_vpg.VPG(lambda: gym.make('CartPole-v1'), steps_per_epoch=8, "
             "logger_kwargs=dict(output_dir={out!r}), tune_threads={tune})\n"
             "print(json.dumps(torch.get_num_threads()))")
    plain = probe("torch", False)
    assert probe("torch", False, build.format(out=str(tmp_path / "a"), tune=True)) == 1
    assert probe("torch", False, build.format(out=str(tmp_path / "b"), tune=False)) == plain
