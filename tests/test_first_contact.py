"""A new user's first commands after ``pip install "keras-vpg[jax]"``.

The machine of this module has JAX only and a ``keras.json`` saying
``"tensorflow"`` (Keras writes that file on its first import). Every command
runs in a subprocess whose HOME holds that keras.json and where TensorFlow and
PyTorch (and the tensorboard extra) cannot be imported (a ``sitecustomize`` maps them to ``None`` in
``sys.modules``, exactly what Python does for a missing package), so the
module tests the same thing in the full test envs and in tox's ``jax-only`` env,
where they are really absent. It needs no conftest fixture (the ``jax-only`` env
runs it with ``--noconftest``: conftest imports Keras on the configured backend).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fake_machine import machine_env

# Nor the tensorboard extra's packages (tox's jax-only env really lacks them all).
MISSING = ("tensorflow", "torch", "tensorboard", "tensorboardX")
NOTICE = "the tensorflow backend"  # the one-line fallback notice


@pytest.fixture(scope="module")
def machine(tmp_path_factory) -> dict[str, str]:
    """Environment variables of a JAX-only machine whose keras.json says tensorflow."""
    return machine_env(tmp_path_factory.mktemp("jax_only"), MISSING)


def run(machine, args, cwd, extra_env=None, timeout=300) -> subprocess.CompletedProcess:
    """``args`` (a list: argv after the interpreter) in a subprocess on ``machine``."""
    env = dict(machine, **(extra_env or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def cli(machine, *args, cwd, extra_env=None) -> subprocess.CompletedProcess:
    return run(machine, ["-m", "keras_vpg", *args], cwd, extra_env)


def assert_one_line_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    """Non-zero exit, no traceback, exactly one error line holding every ``expected``."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    for text in expected:
        assert text in errors[0], errors[0]


def test_the_machine_really_lacks_tensorflow_torch_and_tensorboard(machine, tmp_path):
    code = ("import importlib.util as u; "
            f"print([u.find_spec(m) is None for m in {MISSING!r}])")
    result = run(machine, ["-c", code], tmp_path)
    assert result.stdout.strip() == str([True] * len(MISSING)), result.stderr


def test_import_changes_nothing_and_loads_no_keras(machine, tmp_path):
    code = """
import os, sys, threading
before_env, before_threads = dict(os.environ), threading.active_count()
import keras_vpg, keras_vpg.cli, keras_vpg.plot
assert "keras" not in sys.modules, "keras was imported"
assert dict(os.environ) == before_env, "the environment changed"
assert threading.active_count() == before_threads
assert set(keras_vpg.__all__) <= set(dir(keras_vpg))
print("ok")
"""
    result = run(machine, ["-c", code], tmp_path, extra_env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    assert result.stderr == ""


@pytest.mark.slow
def test_first_use_falls_back_to_jax_with_a_notice(machine, tmp_path):
    code = "import keras_vpg; keras_vpg.VPG; import keras; print(keras.backend.backend())"
    result = run(machine, ["-c", code], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "jax"
    notices = [line for line in result.stderr.splitlines() if NOTICE in line]
    assert len(notices) == 1 and "using jax" in notices[0]


def test_a_missing_backend_requested_in_python_names_the_extra(machine, tmp_path):
    code = "import keras_vpg; keras_vpg.VPG"
    result = run(machine, ["-c", code], tmp_path, extra_env={"KERAS_BACKEND": "torch"})
    assert result.returncode != 0
    assert 'pip install "keras-vpg[torch]"' in result.stderr.splitlines()[-1]


def test_help_works(machine, tmp_path):
    script = Path(sys.executable).with_name("keras-vpg")  # the installed console script
    result = subprocess.run([str(script), "--help"], env=machine, cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "test-policy" in result.stdout, result.stderr
    for command in ("train", "plot", "test-policy", "export"):
        result = cli(machine, command, "--help", cwd=tmp_path)
        assert result.returncode == 0 and "(default:" in result.stdout, result.stderr


@pytest.fixture(scope="module")
def trained(machine, tmp_path_factory):
    """A tiny training run from the command line: (working directory, result)."""
    cwd = tmp_path_factory.mktemp("first_run")
    result = cli(machine, "train", "--env", "CartPole-v1", "--epochs", "2", "--steps-per-epoch",
                 "400", "--train-v-iters", "2", "--hid", "16", "--exp-name", "cp",
                 "--verbose", "2", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd, result


@pytest.mark.slow
def test_train_runs_on_the_installed_backend_and_says_what_next(trained):
    cwd, result = trained
    # The fallback is said once, in the line naming the backend, not on stderr.
    assert "on jax (keras.json's tensorflow is not installed; 1 process(es))" in result.stdout
    assert NOTICE not in result.stderr
    rows = (cwd / "data" / "cp" / "cp_s0" / "progress.txt").read_text().splitlines()
    assert len(rows) == 3  # header + 2 epochs
    summary = [line for line in result.stdout.splitlines() if line.startswith("keras-vpg: done")]
    assert len(summary) == 1
    assert "AverageEpRet" in summary[0] and "steps/s" in summary[0]
    assert str(Path("data/cp/cp_s0")) in summary[0]
    for command in ("keras-vpg plot data/cp", "keras-vpg test-policy data/cp/cp_s0",
                    "keras-vpg export data/cp/cp_s0"):
        assert command in result.stdout
    assert 'pip install "keras-vpg[tensorflow]"' in result.stdout  # export's requirement


def test_plot_works_without_importing_keras(machine, trained):
    cwd, _ = trained
    code = ("import sys; from keras_vpg.cli import main; "
            "status = main(['plot', 'data/cp', '--out', 'cp.png']); "
            "print(status, 'keras' in sys.modules)")
    result = run(machine, ["-c", code], cwd)
    assert result.stdout.splitlines()[-1] == "0 False", result.stderr[-2000:]
    assert (cwd / "cp.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_test_policy_prints_a_summary(machine, trained):
    cwd, _ = trained
    result = cli(machine, "test-policy", "data/cp/cp_s0", "--norender", "--episodes", "5",
                 cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "5 episodes: EpRet" in result.stdout and "Episode 0" not in result.stdout
    verbose = cli(machine, "test-policy", "data/cp/cp_s0", "--norender", "--episodes", "5",
                  "--verbose", cwd=cwd)
    assert verbose.stdout.count("Episode ") == 5


def test_requested_missing_backend_is_a_one_line_error(machine, tmp_path):
    result = cli(machine, "train", "--env", "CartPole-v1", "--backend", "torch", cwd=tmp_path)
    assert_one_line_error(result, "torch", 'pip install "keras-vpg[torch]"')
    result = cli(machine, "train", "--env", "CartPole-v1", cwd=tmp_path,
                 extra_env={"KERAS_BACKEND": "tensorflow"})
    assert_one_line_error(result, "KERAS_BACKEND", 'pip install "keras-vpg[tensorflow]"')


@pytest.mark.slow
def test_export_without_tensorflow_names_the_extra(machine, trained):
    cwd, _ = trained
    result = cli(machine, "export", "data/cp/cp_s0", cwd=cwd)
    assert_one_line_error(result, 'pip install "keras-vpg[tensorflow]"')
    assert not (cwd / "data" / "cp" / "cp_s0" / "saved_model").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--env", "NoSuchEnv-v9"], "NoSuchEnv-v9"),
    (["train", "--env", "CartPole-v1", "--num-envs", "0"], "num_envs must be >= 1, got 0"),
    (["test-policy", "missing/run"], "missing/run"),
    (["export", "missing/run"], "missing/run"),
    (["plot", "missing/run"], "missing/run"),
])
def test_user_errors_are_one_line(machine, tmp_path, args, message):
    assert_one_line_error(cli(machine, *args, cwd=tmp_path), message)


@pytest.mark.slow
def test_tensorboard_without_its_extra_is_one_line_before_training(machine, tmp_path):
    result = cli(machine, "train", "--env", "CartPole-v1", "--epochs", "1",
                 "--steps-per-epoch", "100", "--tensorboard", cwd=tmp_path)
    assert_one_line_error(result, "--tensorboard", 'pip install "keras-vpg[tensorboard]"')
    assert not (tmp_path / "data").exists(), "training started"


def test_debug_shows_the_traceback(machine, tmp_path):
    result = cli(machine, "test-policy", "missing/run", cwd=tmp_path,
                 extra_env={"KERAS_VPG_DEBUG": "1"})
    assert result.returncode == 2 and "Traceback" in result.stderr


@pytest.mark.slow
def test_keras_then_keras_vpg_loads_a_saved_policy(machine, trained):
    # Keras imported first picks its backend itself (here KERAS_BACKEND); importing
    # keras_vpg afterwards registers its classes with Keras's loader.
    cwd, _ = trained
    code = ("import keras, keras_vpg; ac = keras.saving.load_model('data/cp/cp_s0/model.keras'); "
            "print(type(ac).__name__, ac.act([0.0, 0.0, 0.0, 0.0], deterministic=True) in (0, 1))")
    result = run(machine, ["-c", code], cwd, extra_env={"KERAS_BACKEND": "jax"})
    assert result.stdout.split() == ["MLPActorCritic", "True"], result.stderr[-2000:]


def test_keras_alone_says_to_import_keras_vpg_first(machine, trained):
    # Keras imports a saved class's module only for its own packages, so it cannot
    # find MLPActorCritic; the saved config's first key says what to do.
    cwd, _ = trained
    code = "import keras; keras.saving.load_model('data/cp/cp_s0/model.keras')"
    result = run(machine, ["-c", code], cwd, extra_env={"KERAS_BACKEND": "jax"})
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "Could not locate class 'MLPActorCritic'" in message
    hint = "import keras_vpg before keras.saving.load_model"
    assert hint in message[: message.index("'trainable'")], message[:600]
