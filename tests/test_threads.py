"""Thread and dispatch defaults applied when keras-vpg's trainers load (KERAS_VPG_THREADS).

`import keras_vpg` alone changes nothing; the trainers load on the first use of
`keras_vpg.VPG` (importing keras_vpg.trainers here does the same).
"""

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


def probe(backend: str, import_keras_vpg: bool, code: str | None = None, **env_vars: str):
    """The backend's setting in a fresh interpreter, with or without importing keras_vpg."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "KERAS_VPG_THREADS", "JAX_CPU_ENABLE_ASYNC_DISPATCH",
                        "XLA_FLAGS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")}
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", **env_vars)
    code = ("import json\n" + ("import keras_vpg.trainers\n" if import_keras_vpg else "")
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
    done = subprocess.run([sys.executable, "-c", "import keras_vpg.trainers"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode != 0
    assert "KERAS_VPG_THREADS" in done.stderr
