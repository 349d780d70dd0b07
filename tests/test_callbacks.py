"""EvalCallback, TensorBoard (Keras's and ours), and callback columns in progress.txt."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_vpg
from keras_vpg.callbacks import EVAL_COLUMNS
from keras_vpg.logger import PROGRESS_COLUMNS, EpochLogger


def cartpole():
    return gym.make("CartPole-v1")


def read_progress(path):
    lines = Path(path).read_text().splitlines()
    header = lines[0].split("\t")
    return header, [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def plain_episode_return(model, seed: int) -> tuple[float, int]:
    """One deterministic CartPole episode, one observation at a time (the reference)."""
    env = cartpole()
    obs, _ = env.reset(seed=seed)
    total, length, done = 0.0, 0, False
    while not done:
        action = model.act(np.asarray(obs, np.float32)[None], deterministic=True)[0]
        obs, reward, terminated, truncated, _ = env.step(action)
        total, length, done = total + reward, length + 1, terminated or truncated
    env.close()
    return total, length


@pytest.mark.slow
def test_eval_callback_columns_history_and_best_model(tmp_path, tiny_vpg_kwargs):
    best = tmp_path / "best_model.keras"
    seen_by_earlier_callback = []
    eval_callback = keras_vpg.EvalCallback(cartpole, eval_freq=2, n_eval_episodes=3,
                                           best_model_path=str(best), verbose=0, seed=100)
    agent = keras_vpg.VPG(cartpole, seed=1, **tiny_vpg_kwargs)
    history = agent.fit(epochs=4, verbose=0, callbacks=[
        # Listed before the EvalCallback, yet sees its columns (the agent runs it first).
        keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: seen_by_earlier_callback.append(dict(logs))),
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
        eval_callback,
    ])
    header, rows = read_progress(tmp_path / "run" / "progress.txt")
    assert header[:len(PROGRESS_COLUMNS)] == list(PROGRESS_COLUMNS)
    assert header[len(PROGRESS_COLUMNS):] == list(EVAL_COLUMNS)
    evaluated = [math.isfinite(float(r["EvalAverageEpRet"])) for r in rows]
    assert evaluated == [False, True, False, True]  # after epochs 2 and 4

    # History has one value per epoch, the same as progress.txt (NaN where no eval).
    assert len(history.history["EvalAverageEpRet"]) == 4
    np.testing.assert_allclose(history.history["EvalAverageEpRet"],
                               [float(r["EvalAverageEpRet"]) for r in rows], rtol=1e-6)
    assert all("EvalStdEpRet" in logs for logs in seen_by_earlier_callback)
    with open(tmp_path / "log.csv") as f:
        assert "EvalEpLen" in next(csv.DictReader(f))

    # Each logged evaluation equals plain one-env episodes of the policy of that time.
    for record, row in zip(eval_callback.evaluations, [rows[1], rows[3]]):
        assert float(row["EvalAverageEpRet"]) == pytest.approx(record["returns"].mean())
        assert float(row["EvalStdEpRet"]) == pytest.approx(record["returns"].std())
        assert float(row["EvalEpLen"]) == pytest.approx(record["lengths"].mean())
    final = [plain_episode_return(agent.ac, 100 + k) for k in range(3)]
    np.testing.assert_allclose(eval_callback.evaluations[-1]["returns"], [r for r, _ in final])

    # The best model loads and scores the best logged return, by the plain reference too.
    loaded = keras.saving.load_model(best)
    best_logged = max(float(rows[1]["EvalAverageEpRet"]), float(rows[3]["EvalAverageEpRet"]))
    assert eval_callback.best_mean_reward == pytest.approx(best_logged)
    replay = np.mean([plain_episode_return(loaded, 100 + k)[0] for k in range(3)])
    assert replay == pytest.approx(best_logged)


def test_evaluate_policy_matches_one_env_at_a_time():
    env = cartpole()
    ac = keras_vpg.MLPActorCritic(env.observation_space, env.action_space, hidden_sizes=(8,))
    returns, lengths = keras_vpg.evaluate_policy(ac, cartpole, n_eval_episodes=4, seed=7)
    reference = [plain_episode_return(ac, 7 + k) for k in range(4)]
    np.testing.assert_allclose(returns, [r for r, _ in reference])
    np.testing.assert_array_equal(lengths, [n for _, n in reference])
    short, short_lengths = keras_vpg.evaluate_policy(ac, cartpole, 2, seed=7, max_ep_len=3)
    assert list(short_lengths) == [3, 3] and list(short) == [3.0, 3.0]


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(eval_freq=0), "eval_freq"),
    (dict(n_eval_episodes=1.5), "n_eval_episodes"),
    (dict(best_model_path="best.h5"), "best_model_path"),
])
def test_eval_callback_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_vpg.EvalCallback(cartpole, **kwargs)
    with pytest.raises(TypeError, match="env_fn"):
        keras_vpg.EvalCallback("CartPole-v1")


def test_a_column_first_seen_in_a_later_epoch_is_added_to_progress(tmp_path):
    logger = EpochLogger(str(tmp_path))
    logger.dump_tabular({"Epoch": 0, "AverageEpRet": 1.0})
    logger.dump_tabular({"Epoch": 1, "AverageEpRet": 2.0, "Extra": 5.0})
    header, rows = read_progress(tmp_path / "progress.txt")
    assert header == ["Epoch", "AverageEpRet", "Extra"]
    assert [r["Extra"] for r in rows] == ["nan", "5"]


# -- TensorBoard --------------------------------------------------------------------------
def read_scalars(log_dir) -> dict[str, dict[int, float]]:
    """``{tag: {step: value}}`` from every event file under ``log_dir`` (tensorboard's reader)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    scalars: dict[str, dict[int, float]] = {}
    files = [p for p in Path(log_dir).rglob("*") if "tfevents" in p.name]
    assert files, f"no event files under {log_dir}"
    for path in files:
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    number = value.simple_value
                elif value.HasField("tensor"):
                    number = float(tensor_util.make_ndarray(value.tensor))
                else:
                    continue
                scalars.setdefault(value.tag, {})[event.step] = number
    return scalars


def test_keras_tensorboard_callback_works_with_fit(tmp_path, tiny_vpg_kwargs):
    pytest.importorskip("tensorflow", reason="keras.callbacks.TensorBoard needs TensorFlow")
    agent = keras_vpg.VPG(cartpole, **tiny_vpg_kwargs)
    history = agent.fit(epochs=2, verbose=0,
                        callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "tb"))])
    scalars = read_scalars(tmp_path / "tb")
    logged = scalars["epoch_AverageEpRet"]
    assert sorted(logged) == [0, 1]
    np.testing.assert_allclose([logged[0], logged[1]], history.history["AverageEpRet"],
                               rtol=1e-6)


@pytest.mark.parametrize("writer", ["tensorflow", "tensorboardX"])
def test_tensorboard_logger_writes_every_column_against_env_steps(writer, tmp_path,
                                                                  tiny_vpg_kwargs):
    pytest.importorskip(writer)
    pytest.importorskip("tensorboard", reason="the test reads event files with tensorboard")
    agent = keras_vpg.VPG(cartpole, **tiny_vpg_kwargs)
    history = agent.fit(epochs=2, verbose=0, callbacks=[
        keras_vpg.TensorBoardLogger(str(tmp_path / "steps"), writer=writer),
        keras_vpg.TensorBoardLogger(str(tmp_path / "epochs"), x_axis="Epoch", writer=writer),
        keras_vpg.EvalCallback(cartpole, eval_freq=2, n_eval_episodes=2, verbose=0),
    ])
    by_steps = read_scalars(tmp_path / "steps")
    assert set(history.history) <= set(by_steps)  # every progress.txt column but Epoch
    assert sorted(by_steps["AverageEpRet"]) == [200, 400]
    np.testing.assert_allclose([by_steps["AverageEpRet"][s] for s in (200, 400)],
                               history.history["AverageEpRet"], rtol=1e-6)
    assert sorted(by_steps["EvalAverageEpRet"]) == [400]  # NaN epochs are left out
    assert by_steps["EvalAverageEpRet"][400] == pytest.approx(
        history.history["EvalAverageEpRet"][1], rel=1e-6)
    assert sorted(read_scalars(tmp_path / "epochs")["LossV"]) == [1, 2]


@pytest.mark.slow
def test_tensorboard_logger_without_tensorflow_uses_tensorboardx(tmp_path):
    pytest.importorskip("tensorboardX")
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"  # as if TensorFlow were not installed
        "import keras_vpg\n"
        "logger = keras_vpg.TensorBoardLogger('tb')\n"
        "print('WRITER', logger.writer)\n"
        "logger.on_epoch_end(0, {'AverageEpRet': 3.5, 'TotalEnvInteracts': 200})\n"
        "logger.on_train_end()\n"
        "print('TF', sys.modules['tensorflow'])\n"
    )
    backend = "torch" if keras.backend.backend() == "tensorflow" else keras.backend.backend()
    env = dict(os.environ, KERAS_BACKEND=backend)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WRITER tensorboardX" in done.stdout and "TF None" in done.stdout
    assert read_scalars(tmp_path / "tb")["AverageEpRet"] == {200: 3.5}


def test_tensorboard_logger_names_a_missing_x_axis(tmp_path):
    logger = keras_vpg.TensorBoardLogger(str(tmp_path), x_axis="EnvSteps")
    with pytest.raises(ValueError, match="x_axis='EnvSteps'"):
        logger.on_epoch_end(0, {"AverageEpRet": 1.0})
    with pytest.raises(ValueError, match="writer"):
        keras_vpg.TensorBoardLogger(str(tmp_path), writer="wandb")


def test_tensorboard_logger_uses_tensorboardx_where_tf_summary_lacks_tensorboard(monkeypatch,
                                                                                tmp_path):
    # TensorFlow 2.21 no longer installs `tensorboard`, without which tf.summary fails
    # at its first write (TBNotInstalledError): on any backend, tensorboardX writes.
    pytest.importorskip("tensorboardX", reason="the fallback writer is tensorboardX (the "
                                               "tensorboard extra)")
    from keras_vpg.callbacks import tensorboard_missing

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what Python does for a missing one
    assert keras_vpg.TensorBoardLogger(str(tmp_path)).writer == "tensorboardX"
    assert tensorboard_missing() is None
    assert "pip install tensorboard" in tensorboard_missing("tensorflow")
    with pytest.raises(ImportError, match="tensorboard"):
        keras_vpg.TensorBoardLogger(str(tmp_path), writer="tensorflow")


def test_tensorboard_logger_without_any_writer_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r'pip install "keras-vpg\[tensorboard\]"'):
        keras_vpg.TensorBoardLogger(str(tmp_path))
