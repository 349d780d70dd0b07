"""VPG under ``mpirun -np 2`` on every backend (the tox env ``mpi`` runs these)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "mpi_scripts" / "vpg_mpi_check.py"
BACKENDS = ("tensorflow", "jax", "torch")

pytestmark = pytest.mark.mpi


def mpirun_command(np_: int = 2) -> list[str]:
    mpirun = Path(sys.executable).parent / "mpirun"
    assert mpirun.exists(), f"{mpirun} missing: pip install 'keras-vpg[mpi]'"
    flags = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    return [str(mpirun), "-np", str(np_), *flags]


def run_check(mode: str, backend: str, tmp_path: Path, timeout: float = 300):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    command = mpirun_command() + [sys.executable, str(SCRIPT), mode, str(tmp_path / "run")]
    start = time.monotonic()
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path
    )
    return result, time.monotonic() - start


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_keeps_ranks_identical_and_counts_all_steps(backend, tmp_path):
    result, _ = run_check("train", backend, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CHECK OK" in result.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_averaged_gradient_equals_single_process_gradient(backend, tmp_path):
    result, _ = run_check("grad", backend, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CHECK OK" in result.stdout


@pytest.mark.parametrize("backend", ["jax"])
def test_a_failing_rank_stops_every_rank(backend, tmp_path):
    result, seconds = run_check("raise", backend, tmp_path, timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "deliberate failure on rank 1" in output
    assert "should not get here" not in output
    assert seconds < 120, f"took {seconds:.0f} s to stop"
