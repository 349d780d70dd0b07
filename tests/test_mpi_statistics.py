"""The all-ranks statistics under ``mpirun -np 2`` (tox env ``mpi``).

Advantage normalization, ``mpi_statistics_scalar`` with unequal and empty ranks, the
observation normalizer's sums, and exploration noise for Discrete actions: each could
silently become per-rank and every single-process test would stay green.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_mpi import mpirun_command

SCRIPT = Path(__file__).parent / "mpi_scripts" / "statistics_check.py"

pytestmark = pytest.mark.mpi


def run_check(mode: str, backend: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        mpirun_command() + [sys.executable, str(SCRIPT), mode, str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )


@pytest.mark.parametrize("mode, backend", [
    ("scalar", "jax"),
    ("advantages", "jax"),
    ("normalizer", "jax"),
    ("discrete", "jax"),
    ("discrete", "torch"),
    ("discrete", "tensorflow"),
])
def test_statistics_pool_every_rank(mode, backend, tmp_path):
    result = run_check(mode, backend, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "CHECK OK" in result.stdout
