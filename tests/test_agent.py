"""The VPG agent: API, output files, callbacks, determinism, argument checks, learning."""

from __future__ import annotations

import csv
import json
import platform
import threading

import gymnasium as gym
import keras
import numpy as np
import pytest
from conftest import ScriptedEnv

import keras_vpg
from keras_vpg import mpi
from keras_vpg.logger import PROGRESS_COLUMNS

SPINNING_UP_COLUMNS = list(PROGRESS_COLUMNS[:18])


def cartpole():
    return gym.make("CartPole-v1")


def read_progress(path):
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return header, [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def test_fit_history_progress_config_and_checkpoints(tmp_path, tiny_vpg_kwargs):
    csv_path = tmp_path / "history.csv"
    seen = []
    agent = keras_vpg.VPG(cartpole, save_freq=2, **tiny_vpg_kwargs)
    history = agent.fit(epochs=3, verbose=0, callbacks=[
        keras.callbacks.CSVLogger(str(csv_path)),
        keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((epoch, logs))),
    ])
    run = tmp_path / "run"
    header, rows = read_progress(run / "progress.txt")
    assert header[:18] == SPINNING_UP_COLUMNS
    assert isinstance(history, keras.callbacks.History)
    assert set(history.history) == set(header) - {"Epoch"}
    assert all(len(values) == 3 for values in history.history.values())
    assert [int(r["Epoch"]) for r in rows] == [0, 1, 2]
    assert [int(r["TotalEnvInteracts"]) for r in rows] == [200, 400, 600]
    np.testing.assert_allclose(history.history["AverageEpRet"],
                               [float(r["AverageEpRet"]) for r in rows], rtol=1e-6)
    assert [epoch for epoch, _ in seen] == [0, 1, 2] and "LossPi" in seen[0][1]
    with open(csv_path) as f:
        csv_rows = list(csv.DictReader(f))
    np.testing.assert_allclose([float(r["LossV"]) for r in csv_rows], history.history["LossV"],
                               rtol=1e-6)

    config = json.loads((run / "config.json").read_text())
    assert config["gamma"] == 0.99 and config["steps_per_epoch"] == 200
    assert config["backend"] == keras.backend.backend() and config["num_procs"] == 1
    assert config["ac_kwargs"]["activation"] == "tanh"
    assert json.loads(config["env_spec"])["id"] == "CartPole-v1"
    # Which code made the run (#23): versions of keras-vpg, Keras, the backend, gymnasium.
    versions = config["versions"]
    assert versions["keras_vpg"] == keras_vpg.__version__
    assert versions["keras"] == keras.__version__ and versions["gymnasium"] == gym.__version__
    assert versions[keras.backend.backend()]
    assert versions["git_commit"] is None or len(versions["git_commit"].split("+")[0]) == 40
    # ... and on which CPU: its rounding may decide a long run's numbers.
    assert versions["cpu"].endswith(")") and f"({platform.machine()}" in versions["cpu"]
    assert (run / "model_1.keras").exists() and (run / "model_2.keras").exists()
    assert not (run / "model_0.keras").exists()

    loaded = keras.saving.load_model(run / "model.keras")
    obs = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    np.testing.assert_array_equal(loaded.act(obs, deterministic=True),
                                  agent.ac.act(obs, deterministic=True))
    np.testing.assert_allclose(loaded.v(obs), agent.ac.v(obs), rtol=1e-6)

    # Fitting again continues: epochs and TotalEnvInteracts carry on.
    agent.fit(epochs=1, verbose=0)
    _, rows = read_progress(run / "progress.txt")
    assert [int(r["Epoch"]) for r in rows] == [0, 1, 2, 3]
    assert int(rows[-1]["TotalEnvInteracts"]) == 800


def test_functional_form_returns_the_trained_agent(tiny_vpg_kwargs):
    agent = keras_vpg.vpg(cartpole, epochs=1, verbose=0, **tiny_vpg_kwargs)
    assert isinstance(agent, keras_vpg.VPG) and agent.epoch == 1


def test_an_epoch_without_finished_episodes_logs_nan(tmp_path):
    agent = keras_vpg.VPG(lambda: ScriptedEnv(terminate_at=None), steps_per_epoch=20,
                          max_ep_len=1000, train_v_iters=1,
                          logger_kwargs=dict(output_dir=str(tmp_path / "run")))
    history = agent.fit(epochs=2, verbose=0)
    assert np.isnan(history.history["AverageEpRet"]).all()
    assert np.isnan(history.history["EpLen"]).all()
    assert np.isfinite(history.history["LossV"]).all()


@pytest.mark.slow
def test_same_seed_same_progress_different_seed_differs(tmp_path):
    def run(seed, name):
        agent = keras_vpg.VPG(cartpole, seed=seed, steps_per_epoch=300, train_v_iters=3,
                              ac_kwargs=dict(hidden_sizes=(16,)),
                              logger_kwargs=dict(output_dir=str(tmp_path / name)))
        agent.fit(epochs=2, verbose=0)
        header, rows = read_progress(tmp_path / name / "progress.txt")
        return [{k: v for k, v in r.items() if k not in ("Time", "StepsPerSecond")} for r in rows]

    first = run(0, "a")
    assert first == run(0, "b")
    assert first != run(1, "c")


@pytest.mark.parametrize("kwargs, name, error", [
    (dict(gamma=1.5), "gamma", ValueError),
    (dict(lam=-0.1), "lam", ValueError),
    (dict(steps_per_epoch=0), "steps_per_epoch", ValueError),
    (dict(pi_lr=-1.0), "pi_lr", ValueError),
    (dict(vf_lr=-1e-3), "vf_lr", ValueError),
    (dict(num_envs=0), "num_envs", ValueError),
    (dict(train_v_iters=-1), "train_v_iters", ValueError),
    (dict(save_freq=0), "save_freq", ValueError),
    (dict(steps_per_epoch=2.5), "steps_per_epoch", TypeError),
    (dict(vector_mode="threads"), "vector_mode", ValueError),
    (dict(steps_per_epoch=3, num_envs=4), "steps_per_epoch", ValueError),
    (dict(overlap_update="yes"), "overlap_update", TypeError),
])
def test_bad_arguments_name_the_parameter(kwargs, name, error, tmp_path):
    with pytest.raises(error, match=name):
        keras_vpg.VPG(cartpole, logger_kwargs=dict(output_dir=str(tmp_path)), **kwargs)


def test_env_fn_must_be_callable_and_epochs_positive(tmp_path, tiny_vpg_kwargs):
    with pytest.raises(TypeError, match="env_fn"):
        keras_vpg.VPG(gym.make("CartPole-v1"))
    agent = keras_vpg.VPG(cartpole, **tiny_vpg_kwargs)
    with pytest.raises(ValueError, match="epochs"):
        agent.fit(epochs=0)


def test_unsupported_env_space_is_named(tmp_path):
    def env_fn():
        env = ScriptedEnv()
        env.action_space = gym.spaces.MultiDiscrete([2, 2])
        return env

    with pytest.raises(TypeError, match="action_space.*MultiDiscrete"):
        keras_vpg.VPG(env_fn, logger_kwargs=dict(output_dir=str(tmp_path)))


def test_box_actions_and_vector_envs_run(tmp_path):
    agent = keras_vpg.VPG(lambda: gym.make("Pendulum-v1"), steps_per_epoch=400, num_envs=2,
                          train_v_iters=2, normalize_obs=True,
                          logger_kwargs=dict(output_dir=str(tmp_path / "run")))
    history = agent.fit(epochs=2, verbose=0)
    assert history.history["EpLen"] == [200.0, 200.0]
    assert history.history["TotalEnvInteracts"] == [400, 800]
    assert float(keras.ops.convert_to_numpy(agent.ac.obs_normalizer.count)) == 800


@pytest.mark.slow
def test_cartpole_clearly_improves(tmp_path):
    agent = keras_vpg.VPG(cartpole, seed=0, steps_per_epoch=2000, pi_lr=1e-2, train_v_iters=40,
                          logger_kwargs=dict(output_dir=str(tmp_path / "run")))
    returns = agent.fit(epochs=12, verbose=0).history["AverageEpRet"]
    assert np.mean(returns[-2:]) > 3 * returns[0], returns


def test_async_vector_envs_count_every_env(tmp_path):
    agent = keras_vpg.VPG(cartpole, steps_per_epoch=400, num_envs=2, vector_mode="async",
                          train_v_iters=2, logger_kwargs=dict(output_dir=str(tmp_path / "run")))
    try:
        history = agent.fit(epochs=2, verbose=0)
    finally:
        agent.close()
    assert history.history["TotalEnvInteracts"] == [400, 800]
    assert all(length > 5 for length in history.history["EpLen"])


def progress_rows(path):
    """progress.txt rows without the wall-clock columns."""
    _, rows = read_progress(path)
    return [{k: v for k, v in r.items() if k not in ("Time", "StepsPerSecond")} for r in rows]


def overlap_run(tmp_path, name, overlap, fits, callbacks=(), prepare=None):
    """A small CartPole run; ``fits`` is the list of ``epochs`` of successive fit calls."""
    agent = keras_vpg.VPG(cartpole, seed=3, steps_per_epoch=200, num_envs=2, train_v_iters=5,
                          ac_kwargs=dict(hidden_sizes=(16,)), overlap_update=overlap,
                          normalize_obs=True, save_freq=100,
                          logger_kwargs=dict(output_dir=str(tmp_path / name)))
    if prepare is not None:
        prepare(agent)
    histories = []
    for n in fits:
        histories.append(agent.fit(epochs=n, verbose=0, callbacks=list(callbacks)))
    agent.close()
    return agent, histories, progress_rows(tmp_path / name / "progress.txt")


class RecordEpochs(keras.callbacks.Callback):
    """Records the order of epoch callbacks; stops training at the end of ``stop_at``."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.events, self.stop_at = [], stop_at

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("end", epoch))
        if epoch == self.stop_at:
            self.model.stop_training = True


def record_value_step_threads(agent, threads):
    update_value = agent.trainer.update_value

    def recorded(batch):
        threads.append(threading.current_thread() is threading.main_thread())
        return update_value(batch)

    agent.trainer.update_value = recorded


@pytest.mark.slow
def test_overlapped_value_steps_give_the_sequential_results(tmp_path):
    # The value steps of epoch k run in a background thread while epoch k + 1 is
    # collected (the last epoch's have nothing to overlap): same numbers as one
    # after the other, observation normalizer included, and the callbacks still
    # alternate begin/end in order.
    record, on_main = RecordEpochs(), []
    agent, _, overlapped = overlap_run(
        tmp_path, "overlap", True, [4], [record],
        prepare=lambda agent: record_value_step_threads(agent, on_main),
    )
    assert agent.overlap_update is True
    assert on_main == [False, False, False, True]
    _, _, sequential = overlap_run(tmp_path, "sequential", False, [4])
    assert len(overlapped) == 4
    assert overlapped == sequential
    assert record.events == [(kind, e) for e in range(4) for kind in ("begin", "end")]


def value_steps_done_before_collecting(agent):
    """Epoch k ends at the first chunk of epoch k + 1's collection."""
    start = agent._start_value_steps

    def finished_first(batch, overlap):
        future = start(batch, overlap)
        future.result()
        return future

    agent._start_value_steps = finished_first


def value_steps_done_after_collecting(agent):
    """Epoch k's value steps finish only once epoch k + 1's collection has returned."""
    collected = threading.Event()
    start, update_value, chunks = agent._start_value_steps, agent.trainer.update_value, \
        agent.collector.chunks

    def start_blocked(batch, overlap):
        collected.clear()
        return start(batch, overlap)

    def update_after_collection(batch):
        if threading.current_thread() is not threading.main_thread():  # not a last epoch
            assert collected.wait(timeout=60), "collection never finished"
        return update_value(batch)

    def collect_then_release(*args):
        yield from chunks(*args)
        collected.set()

    agent._start_value_steps = start_blocked
    agent.trainer.update_value = update_after_collection
    agent.collector.chunks = collect_then_release


# An epoch whose value steps overlap the next collection ends once that collection is
# done, however early the steps finish: all of epoch 2's rows are kept either way.
@pytest.mark.slow
@pytest.mark.parametrize("when, rows_kept", [
    (value_steps_done_before_collecting, "all"),
    (value_steps_done_after_collecting, "all"),
])
def test_stopping_while_the_next_epoch_collects_keeps_its_steps_for_the_next_fit(
    tmp_path, when, rows_kept
):
    # stop_training at the end of epoch 1 arrives once epoch 2 is collected: its
    # steps are kept, and the next fit goes on exactly as one fit would.
    record, kept = RecordEpochs(stop_at=1), []

    def prepare(agent):
        when(agent)
        fit = agent.fit

        def fit_and_record(**kwargs):
            history = fit(**kwargs)
            kept.append(agent.buffer.ptr)
            return history

        agent.fit = fit_and_record

    _, (first, second), resumed = overlap_run(tmp_path, "stopped", True, [5, 2], [record],
                                              prepare=prepare)
    rows = 200 // 2
    assert (0 < kept[0] < rows) if rows_kept == "some" else kept[0] == rows
    assert len(first.history["LossV"]) == 2 and len(second.history["LossV"]) == 2
    assert second.history["TotalEnvInteracts"] == [600, 800]
    _, _, straight = overlap_run(tmp_path, "straight", True, [4])
    assert resumed == straight
    assert record.events == [(kind, e) for e in range(4) for kind in ("begin", "end")]


def test_overlap_is_on_by_default_with_two_cores(tmp_path):
    def overlap(**kwargs):
        agent = keras_vpg.VPG(cartpole, steps_per_epoch=40, train_v_iters=1,
                              logger_kwargs=dict(output_dir=str(tmp_path / "run")), **kwargs)
        agent.close()
        return agent.overlap_update

    # Every backend's default (MLP, Adam) value steps run without the GIL.
    expected = mpi.usable_cores() >= 2
    assert overlap() == expected
    assert overlap(overlap_update=False) is False
    assert overlap(overlap_update=True) is True


def shared_trunk_actor_critic(observation_space, action_space, **kwargs):
    obs = keras.Input(observation_space.shape)
    trunk = keras.layers.Dense(8, activation="tanh")
    pi_net = keras.Model(obs, keras.layers.Dense(int(action_space.n))(trunk(obs)))
    v_net = keras.Model(obs, keras.layers.Dense(1)(trunk(obs)))
    return keras_vpg.ActorCritic(pi_net, v_net, action_space, **kwargs)


def test_no_overlap_when_policy_and_value_share_variables(tmp_path):
    # The background value steps would race the policy step over the trunk.
    kwargs = dict(actor_critic=shared_trunk_actor_critic, steps_per_epoch=40, train_v_iters=1,
                  logger_kwargs=dict(output_dir=str(tmp_path / "run")))
    agent = keras_vpg.VPG(cartpole, **kwargs)
    agent.close()
    assert agent.overlap_update is False
    with pytest.raises(ValueError, match="share no variables"):
        keras_vpg.VPG(cartpole, overlap_update=True, **kwargs)


def test_an_exception_during_collection_finishes_the_running_value_steps(tmp_path):
    # Epoch 0's value steps are running when collecting epoch 1 fails: they finish
    # and epoch 0 is logged, so a later fit goes on from a consistent state.
    calls, broke = [], threading.Event()

    def failing_env():
        env = gym.make("CartPole-v1")
        step = env.step

        def step_or_fail(action):
            calls.append(1)
            if len(calls) == 150:
                broke.set()
                raise RuntimeError("env broke")
            return step(action)

        env.step = step_or_fail
        return env

    agent = keras_vpg.VPG(failing_env, steps_per_epoch=100, train_v_iters=5,
                          overlap_update=True,
                          logger_kwargs=dict(output_dir=str(tmp_path / "run")))
    update_value = agent.trainer.update_value

    def update_value_after_the_failure(batch):
        assert broke.wait(timeout=60)
        return update_value(batch)

    agent.trainer.update_value = update_value_after_the_failure
    with pytest.raises(RuntimeError, match="env broke"):
        agent.fit(epochs=3, verbose=0)
    assert agent.epoch == 1 and agent._running is None
    _, rows = read_progress(tmp_path / "run" / "progress.txt")
    assert [r["Epoch"] for r in rows] == ["0"]
    agent.close()
