"""VPG under ``mpirun -np 2`` on every backend (the tox env ``mpi`` runs these)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Child

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
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_keeps_ranks_identical_and_counts_all_steps(backend, tmp_path):
    result = run_check("train", backend, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CHECK OK" in result.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_averaged_gradient_equals_single_process_gradient(backend, tmp_path):
    result = run_check("grad", backend, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CHECK OK" in result.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_ranks_share_weights_but_not_exploration_noise(backend, tmp_path):
    result = run_check("noise", backend, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CHECK OK" in result.stdout


@pytest.mark.parametrize("backend", ["jax"])
def test_a_failing_rank_stops_every_rank(backend, tmp_path):
    # A hang (rank 0 waiting forever in a collective) fails through the timeout; no
    # wall-clock bound beyond that: the assertions are on what the ranks printed.
    result = run_check("raise", backend, tmp_path, timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert output.count("deliberate failure on rank 1") >= 1
    assert "should not get here" not in output


def test_cpu_flag_and_mpirun_write_the_same_progress(tmp_path):
    common = ["-m", "keras_vpg", "train", "--env", "CartPole-v1", "--epochs", "2",
              "--steps-per-epoch", "400", "--train-v-iters", "2", "--hid", "16",
              "--exp-name", "cp", "--verbose", "0", "--backend", "jax"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("IN_MPI", None)
    forked = subprocess.run([sys.executable, *common, "--cpu", "2", "--data-dir", "a"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert forked.returncode == 0, forked.stderr[-3000:]
    launched = subprocess.run(mpirun_command() + [sys.executable, *common, "--data-dir", "b"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0, launched.stderr[-3000:]

    def table(root):
        lines = (tmp_path / root / "cp" / "cp_s0" / "progress.txt").read_text().splitlines()
        header = lines[0].split("\t")
        keep = [i for i, name in enumerate(header) if name not in ("Time", "StepsPerSecond")]
        return [[line.split("\t")[i] for i in keep] for line in lines]

    a, b = table("a"), table("b")
    assert a == b
    assert [row[a[0].index("TotalEnvInteracts")] for row in a[1:]] == ["400", "800"]
    config = json.loads((tmp_path / "a" / "cp" / "cp_s0" / "config.json").read_text())
    assert config["num_procs"] == 2


def test_ranks_launched_by_keras_vpg_get_a_core_each_and_their_share_of_threads(tmp_path):
    """``--cpu N`` / the benchmark launch with keras_vpg.mpi.mpirun_command: ranks that fit
    are bound to distinct cores, and each sizes its thread pools to its share."""
    from keras_vpg.mpi import mpirun_command as launcher
    from keras_vpg.mpi import usable_cores

    code = ("import json, os, keras_vpg\n"
            "from keras_vpg.trainers import configure_threads\n"
            "APPLIED_SETTINGS = configure_threads()  # as building the first VPG does\n"
            "print('RANK', json.dumps([sorted(os.sched_getaffinity(0)), APPLIED_SETTINGS]))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "KERAS_VPG_THREADS")}
    env.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(launcher(2) + [sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads(line[5:]) for line in done.stdout.splitlines() if line.startswith("RANK ")]
    assert len(ranks) == 2
    cores = usable_cores()
    if cores >= 2:
        (a, _), (b, _) = ranks
        assert len(a) == len(b) == 1 and a != b  # one core each, not the same one
    for _, applied in ranks:
        assert applied["tf.intra_op_threads"] == str(max(1, cores // 2))


RESUME_SCRIPT = Path(__file__).parent / "mpi_scripts" / "resume_mpi_check.py"


@pytest.mark.parametrize("backend", ["jax"])
def test_sigterm_to_one_rank_stops_every_rank_and_the_run_resumes(backend, tmp_path):
    import signal

    run = tmp_path / "run"
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    with Child(mpirun_command() + [sys.executable, str(RESUME_SCRIPT), "train", str(run)],
               env=env, cwd=tmp_path) as process:
        line = process.line(timeout=300).split()
        assert line[:1] == ["READY"], process.stderr[-3000:]
        os.kill(int(line[2]), signal.SIGTERM)  # rank 1 only, as a scheduler might
        out, err = process.finish(timeout=300)
    assert process.returncode != 0 and "FINISHED" not in out
    assert "Traceback" not in err, err[-3000:]
    assert sum("resume with" in line for line in err.splitlines()) == 1  # rank 0's line
    checkpoints = sorted((run / "checkpoints").glob("ckpt_*"))
    assert len(checkpoints) == 1
    state = json.loads((checkpoints[0] / "state.json").read_text())
    epoch = state["epoch"]
    assert len(state["random_streams"]) == 2
    assert state["random_streams"][0]["numpy_sampler"] != state["random_streams"][1][
        "numpy_sampler"]
    assert state["total_env_interacts"] == 2000 * epoch

    result = subprocess.run(
        mpirun_command() + [sys.executable, str(RESUME_SCRIPT), "resume", str(run),
                            str(epoch + 2)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"RESUMED {epoch + 2}" in result.stdout
    rows = (run / "progress.txt").read_text().splitlines()[1:]
    assert [int(r.split("\t")[0]) for r in rows] == list(range(epoch + 2))


def _session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] not in "ZX":
                found.append(int(entry))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_ranks_exit_when_the_cpu_launcher_is_killed(tmp_path):
    """``kill -9`` of the `keras-vpg train --cpu 2` process alone (as the OOM killer does)
    must not leave mpirun and its ranks training on (mpirun starts each rank in a process
    group of its own, so a group kill does not reach them either)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("IN_MPI", None)
    command = [sys.executable, "-m", "keras_vpg", "train", "--env", "CartPole-v1", "--epochs",
               "500", "--steps-per-epoch", "400", "--hid", "16", "--exp-name", "k",
               "--verbose", "0", "--backend", "jax", "--cpu", "2"]
    launcher = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        progress = tmp_path / "data" / "k" / "k_s0" / "progress.txt"
        for _ in range(3000):  # the ranks are training once rank 0 logged an epoch
            if progress.exists() or launcher.poll() is not None:
                break
            time.sleep(0.1)
        assert launcher.poll() is None and progress.exists(), "the run did not start training"
        assert len(_session_processes(launcher.pid)) >= 3  # launcher, mpirun, 2 ranks
        os.kill(launcher.pid, signal.SIGKILL)  # the launcher only: mpirun survives it
        launcher.wait(timeout=30)
        for _ in range(600):  # the ranks notice within a second; wait at most a minute
            left = _session_processes(launcher.pid)
            if not left:
                break
            time.sleep(0.1)
        assert not left, f"processes left running after kill -9 of the launcher: {left}"
    finally:
        for pid in _session_processes(launcher.pid):
            os.kill(pid, signal.SIGKILL)
        launcher.wait(timeout=30)
