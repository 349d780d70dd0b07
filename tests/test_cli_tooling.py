"""``keras-vpg train``'s tooling flags: grids, --parallel, --tensorboard, --eval-freq, --config."""

from __future__ import annotations

import csv
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keras_vpg import cli

TINY = ["--env", "CartPole-v1", "--steps-per-epoch", "300", "--train-v-iters", "2",
        "--verbose", "0"]


def keras_vpg(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "keras_vpg", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def read_progress(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_grid_variants_name_runs_the_spinning_up_way():
    parser = cli.build_parser()
    args = parser.parse_args(["train", *TINY, "--pi-lr", "3e-4", "1e-3", "--lam", "0.9", "0.97",
                              "--exp-name", "cp"])
    variants = cli.grid_variants(args)
    names = [v.exp_name for v in variants]
    # In GRID_FLAGS' order, the first varying slowest.
    assert names == ["cp_lam0-9_pi0-0003", "cp_lam0-9_pi0-001",
                     "cp_lam0-97_pi0-0003", "cp_lam0-97_pi0-001"]
    kwargs = cli.vpg_kwargs(variants[1], seed=5)
    assert (kwargs["pi_lr"], kwargs["lam"]) == (1e-3, 0.9)
    assert kwargs["logger_kwargs"]["output_dir"] == str(
        Path("data") / "cp_lam0-9_pi0-001" / "cp_lam0-9_pi0-001_s5")
    single = parser.parse_args(["train", *TINY])
    assert cli.grid_variants(single) == [single]


@pytest.mark.slow
def test_a_grid_from_the_command_line_names_each_run_and_sums_them_up(tmp_path):
    """Two values by two seeds with --parallel 2: a directory per run and a summary row each
    (that two run at a time is test_grid.py's business, on the same grid.run)."""
    result = keras_vpg("train", *TINY, "--epochs", "1", "--exp-name", "g", "--pi-lr", "3e-4",
                       "1e-3", "--seed", "0", "10", "--parallel", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = [tmp_path / "data" / f"g_pi{lr}" / f"g_pi{lr}_s{seed}"
                for lr in ("0-0003", "0-001") for seed in (0, 10)]
    for run_dir in expected:
        rows = read_progress(run_dir / "progress.txt")
        assert [r["Epoch"] for r in rows] == ["0"], run_dir
        assert str(run_dir.relative_to(tmp_path)) in result.stdout  # the summary table
    assert "AverageEpRet" in result.stdout and "ok" in result.stdout


@pytest.mark.slow
def test_tensorboard_eval_and_config_round_trip(tmp_path):
    first = keras_vpg("train", *TINY, "--epochs", "4", "--exp-name", "a", "--seed", "3",
                      "--tensorboard", "--eval-freq", "2", "--eval-episodes", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    run_dir = tmp_path / "data" / "a" / "a_s3"
    rows = read_progress(run_dir / "progress.txt")
    evaluated = [r["EvalAverageEpRet"] for r in rows]
    assert evaluated[0] == "nan" and evaluated[2] == "nan"
    assert float(evaluated[1]) > 0 and float(evaluated[3]) > 0
    assert (run_dir / "best_model.keras").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))

    # --config: the same run again (epochs, evaluation and TensorBoard included);
    # explicit flags win.
    again = keras_vpg("train", "--config", str(run_dir / "config.json"), "--exp-name", "b",
                      "--verbose", "0", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    rerun = read_progress(tmp_path / "data" / "b" / "b_s3" / "progress.txt")
    columns = [c for c in rows[0] if c not in ("Time", "StepsPerSecond")]
    assert "EvalAverageEpRet" in columns
    assert [[r[c] for c in columns] for r in rerun] == [[r[c] for c in columns] for r in rows]
    assert list((tmp_path / "data" / "b" / "b_s3" / "tensorboard").glob("events.out.*"))

    changed = keras_vpg("train", "--config", str(run_dir), "--exp-name", "c", "--epochs", "1",
                        "--gamma", "0.9", "--verbose", "0", cwd=tmp_path)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    import json

    config = json.loads((tmp_path / "data" / "c" / "c_s3" / "config.json").read_text())
    assert config["gamma"] == 0.9 and config["steps_per_epoch"] == 300


def test_config_that_does_not_exist_is_one_line(tmp_path):
    result = keras_vpg("train", "--config", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "config.json" in result.stderr


# SIGTERM (what a batch scheduler sends) through the command line; both signals, on every
# backend, with the checkpoint's contents checked: test_interrupt.py.
@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143)])
def test_train_stops_on_a_signal_and_resume_finishes_the_run(signum, status, tmp_path):
    run_dir = tmp_path / "data" / "s" / "s_s0"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_vpg", "train", *TINY, "--steps-per-epoch", "2000",
         "--epochs", "400", "--exp-name", "s", "--save-freq", "1000"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            progress = run_dir / "progress.txt"
            if progress.exists() and len(read_progress(progress)) >= 2:
                break
            time.sleep(0.5)
        process.send_signal(signum)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == status, err[-3000:]
    assert "Traceback" not in err
    hints = [line for line in err.splitlines() if "resume with" in line]
    relative = run_dir.relative_to(tmp_path)
    assert len(hints) == 1 and f"keras-vpg train --resume {relative}" in hints[0]
    done = len(read_progress(run_dir / "progress.txt"))
    assert 2 <= done < 400

    resumed = keras_vpg("train", "--resume", str(run_dir.relative_to(tmp_path)), "--epochs",
                        str(done + 2), "--verbose", "0", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rows = read_progress(run_dir / "progress.txt")
    assert [int(r["Epoch"]) for r in rows] == list(range(done + 2))
    assert [int(float(r["TotalEnvInteracts"])) for r in rows] == [
        2000 * (i + 1) for i in range(done + 2)]


def test_a_failed_checkpoint_write_is_one_line_naming_the_checkpoint_still_usable(
        tmp_path, monkeypatch, capsys):
    """A full disk at the second checkpoint: exit 1, one line that says which checkpoint a
    --resume starts from (the first, still readable), no traceback."""
    from keras_vpg import checkpoint

    real, epochs = checkpoint.write_checkpoint, []

    def full_disk(run_dir, epoch, *args, **kwargs):
        epochs.append(epoch)
        if len(epochs) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(run_dir, epoch, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "write_checkpoint", full_disk)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["train", *TINY, "--epochs", "4", "--save-freq", "1", "--hid", "8",
                     "--exp-name", "full", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    run_dir = tmp_path / "full" / "full_s0"
    usable = run_dir / "checkpoints" / "ckpt_1"
    assert code == 1 and epochs == [1, 2] and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"keras-vpg train: error: [Errno {errno.ENOSPC}] {os.strerror(errno.ENOSPC)}; the newest "
        f"usable checkpoint is {usable} (keras-vpg train --resume {run_dir} continues from it)")
    checkpoint.read_checkpoint(usable)  # and it reads

    # The same from --resume (which re-reads its flags with the run's config as defaults):
    # from ckpt_1, the write of ckpt_2 works and that of ckpt_3 fails.
    epochs.clear()
    code = cli.main(["train", "--resume", str(run_dir), "--epochs", "4"])
    err = capsys.readouterr().err
    usable = run_dir / "checkpoints" / "ckpt_2"
    assert code == 1 and epochs == [2, 3] and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith(
        f"; the newest usable checkpoint is {usable} (keras-vpg train --resume {run_dir} "
        "continues from it)")
