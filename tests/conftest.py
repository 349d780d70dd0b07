"""Shared fixtures. The suite runs once per backend (tox sets KERAS_BACKEND).

Backend-agnostic modules (``AGNOSTIC_MODULES``: they choose their backends
themselves or use none) get the ``agnostic`` marker: tox runs them in the ``jax``
env only (``-m "not agnostic"`` elsewhere). Child processes are read with
:class:`Child`: every read has a timeout and stderr is drained, so a hung child
fails its test instead of running until CI's cap.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading

import gymnasium as gym
import keras
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BACKENDS = ("tensorflow", "jax", "torch")

#: Modules whose tests do not depend on KERAS_BACKEND: CLI parsing and the CLI's own
#: runs (they pass --backend or test one backend's command line), grids, plots, threads,
#: mpirun command lines, README and docs pages' commands, first contact (its own JAX-only
#: machine), the tensorboard extra (its own machine).
AGNOSTIC_MODULES = {
    "test_cli.py", "test_cli_tooling.py", "test_cli_flags.py", "test_grid.py",
    "test_plot.py", "test_plot_options.py", "test_threads.py", "test_mpirun_command.py",
    "test_readme.py", "test_first_contact.py", "test_examples.py", "test_docs.py",
    "test_cli_second_contact.py", "test_tensorboard_extra.py", "test_resume_other_backend.py",
    "test_benchmark_tables.py", "test_like_for_like.py",
}


#: Modules whose every test runs child processes that import Keras (README and docs pages'
#: commands, examples, thread settings, signals, the shipped policies): marker ``slow``, out
#: of the quick subset (``pytest -m "not slow and not mpi"``). Single slow tests elsewhere
#: carry ``@pytest.mark.slow``.
SLOW_MODULES = {
    "test_docs.py", "test_readme.py", "test_examples.py", "test_threads.py",
    "test_cli_second_contact.py", "test_interrupt.py", "test_tensorboard_extra.py",
    "test_saved_models.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in AGNOSTIC_MODULES:
            item.add_marker(pytest.mark.agnostic)
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


class Child:
    """A child process whose stdout lines and stderr are read by threads.

    ``line(timeout)`` waits for the next stdout line at most ``timeout`` seconds
    (failing the test with the child's stderr otherwise); ``finish(timeout)``
    waits for the exit and returns ``(stdout_rest, stderr)``. The child is killed
    if the test leaves without finishing it (use as a context manager).
    """

    def __init__(self, args, **kwargs):
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, **kwargs)
        self._lines: queue.Queue = queue.Queue()
        self._err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self._lines.put, True),
                             daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, self._err.append),
                             daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _pump(stream, put, end_mark=False):
        for line in stream:
            put(line)
        if end_mark:
            put(None)  # end of stdout

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def line(self, timeout: float = 300) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            pytest.fail(f"no output line within {timeout} s; stderr:\n{self.stderr[-3000:]}")
        if line is None:
            self.process.wait(timeout=30)
            pytest.fail(f"child exited ({self.process.returncode}) before printing a line; "
                        f"stderr:\n{self.stderr[-3000:]}")
        return line

    def finish(self, timeout: float = 300) -> tuple[str, str]:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"child still running after {timeout} s; stderr:\n{self.stderr[-3000:]}")
        for thread in self._threads:
            thread.join(timeout=30)
        rest = []
        while not self._lines.empty():
            line = self._lines.get()
            if line is not None:
                rest.append(line)
        return "".join(rest), self.stderr

    @property
    def returncode(self):
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


@pytest.fixture
def backend() -> str:
    return keras.backend.backend()


def run_python(code: str, backend: str, cwd=None, timeout: float = 300) -> str:
    """Run ``code`` in a fresh interpreter on ``backend``; return its stdout (fail loudly)."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{backend} subprocess failed:\n{result.stderr[-3000:]}"
    return result.stdout


class ScriptedEnv(gym.Env):
    """Deterministic env: obs = [step index within the episode, episode index].

    Reward at step t of an episode is ``t + 1``. The episode terminates after
    ``terminate_at`` steps (if set); otherwise a TimeLimit truncates it.
    """

    metadata = {"render_modes": []}

    def __init__(self, terminate_at: int | None = 5, discrete: bool = True):
        self.observation_space = gym.spaces.Box(-1e6, 1e6, (2,), np.float32)
        self.action_space = (
            gym.spaces.Discrete(2) if discrete else gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        )
        self.terminate_at = terminate_at
        self.t = 0
        self.episode = -1

    def _obs(self):
        return np.array([self.t, self.episode], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.episode += 1
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        return self._obs(), float(self.t), terminated, False, {}


@pytest.fixture
def tiny_vpg_kwargs(tmp_path):
    """Small, fast VPG settings writing under tmp_path."""
    return dict(
        steps_per_epoch=200, train_v_iters=2, ac_kwargs=dict(hidden_sizes=(16,)),
        logger_kwargs=dict(output_dir=str(tmp_path / "run"), exp_name="test"),
    )
