"""Full checkpoints: bit-exact round trip, resume, pruning, damage, NaN guard, run-dir reuse."""

from __future__ import annotations

import json
import shutil
import threading

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_vpg
from keras_vpg import checkpoint
from keras_vpg.agent import _non_finite_weights, resume_run
from keras_vpg.checkpoint import (
    NonFiniteError,
    latest_checkpoint,
    list_checkpoints,
    read_checkpoint,
)
from keras_vpg.interrupt import (
    Interrupted,
    StopOnSignals,
    Terminated,
    exit_on_interrupt,
    exit_status,
)

STEPS = 200
TIMING = {"Time", "StepsPerSecond"}


def pendulum():
    return gym.make("Pendulum-v1")


def make_agent(run_dir, env_fn=None, **kwargs):
    settings = dict(steps_per_epoch=STEPS, train_v_iters=3, ac_kwargs=dict(hidden_sizes=(16,)),
                    logger_kwargs=dict(output_dir=str(run_dir), exp_name="ckpt"), save_freq=2,
                    normalize_obs=True)
    settings.update(kwargs)
    return keras_vpg.VPG(env_fn or (lambda: gym.make("CartPole-v1")), **settings)


def arrays(agent):
    return {group: [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
            for group, variables in agent._variable_groups().items()}


def progress(run_dir):
    lines = (run_dir / "progress.txt").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


@pytest.mark.parametrize("env_fn, schedule", [(None, False), (pendulum, True)],
                         ids=["discrete", "box-schedule"])
def test_round_trip_is_bit_exact(env_fn, schedule, tmp_path):
    run = tmp_path / "run"
    lr = keras.optimizers.schedules.ExponentialDecay(3e-3, 2, 0.5) if schedule else 3e-4
    agent = make_agent(run, env_fn, pi_lr=lr)
    agent.fit(epochs=3, verbose=0)  # checkpoints after epochs 2 and 3 (the end of fit)
    assert [e for e, _ in list_checkpoints(run)] == [2, 3]
    saved = arrays(agent)
    streams = agent._random_streams()
    # The state is not trivial: Adam has stepped, the normalizer has counted observations.
    iterations = [v for v in agent.trainer.pi_optimizer.variables if "iteration" in v.path]
    assert int(keras.ops.convert_to_numpy(iterations[0])) == 3
    assert float(keras.ops.convert_to_numpy(agent.ac.obs_normalizer.count)) == 3 * STEPS

    restored = keras_vpg.VPG.restore(run, env_fn=env_fn)
    assert (restored.epoch, restored.total_env_interacts) == (3, 3 * STEPS)
    assert restored._elapsed == agent._elapsed
    for group, values in arrays(restored).items():
        assert len(values) == len(saved[group])
        for mine, theirs in zip(values, saved[group]):
            assert mine.dtype == theirs.dtype
            np.testing.assert_array_equal(mine, theirs, err_msg=group)
    if schedule:  # rebuilt from config.json, it goes on from the restored step count
        assert isinstance(restored.trainer.pi_optimizer._learning_rate,
                          keras.optimizers.schedules.ExponentialDecay)
    restored_streams = restored._random_streams()
    for key in ("seed_generator", "numpy_sampler", "numpy_global", "python_random"):
        assert restored_streams[key] == streams[key], key


@pytest.mark.slow
def test_resume_from_a_middle_checkpoint_logs_every_epoch_once(tmp_path):
    run = tmp_path / "run"
    make_agent(run).fit(epochs=6, verbose=0)
    shutil.rmtree(run / "checkpoints" / "ckpt_6")  # as if killed before writing it
    with pytest.warns(UserWarning, match=r"dropped 2 row\(s\).*epochs \[4, 5\]"):
        agent = keras_vpg.VPG.restore(run)
    assert agent.epoch == 4
    assert [int(r["Epoch"]) for r in progress(run)] == [0, 1, 2, 3]
    agent.fit(epochs=2, verbose=0)
    rows = progress(run)
    assert [int(r["Epoch"]) for r in rows] == list(range(6))
    assert [int(r["TotalEnvInteracts"]) for r in rows] == [STEPS * (i + 1) for i in range(6)]
    iterations = [v for v in agent.trainer.vf_optimizer.variables if "iteration" in v.path]
    assert int(keras.ops.convert_to_numpy(iterations[0])) == 6 * 3  # train_v_iters per epoch


@pytest.mark.slow
def test_two_resumes_from_one_checkpoint_are_identical(tmp_path):
    run = tmp_path / "run"
    make_agent(run).fit(epochs=2, verbose=0)
    copies = []
    for name in ("a", "b"):
        copy = tmp_path / name
        shutil.copytree(run, copy)
        keras_vpg.VPG.restore(copy).fit(epochs=2, verbose=0)
        copies.append(without_timing(progress(copy)))
    assert len(copies[0]) == 4
    assert copies[0] == copies[1]
    # ... and they are not a copy of each other by construction: the restored epochs differ.
    assert copies[0][2]["LossV"] != copies[0][3]["LossV"]


@pytest.mark.slow
def test_resume_run_finishes_to_the_total_and_then_does_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    make_agent(run).fit(epochs=3, verbose=0)
    agent = resume_run(run, epochs=5, verbose=0)
    assert agent.epoch == 5 and [int(r["Epoch"]) for r in progress(run)] == list(range(5))
    again = resume_run(run, verbose=0)  # the total of the fit that wrote the checkpoint: 5
    assert again.epoch == 5 and "nothing to do" in capsys.readouterr().out
    assert len(progress(run)) == 5


@pytest.mark.slow
def test_only_the_last_keep_checkpoints_are_kept(tmp_path):
    run = tmp_path / "run"
    make_agent(run, save_freq=1, keep_checkpoints=2).fit(epochs=4, verbose=0)
    assert [e for e, _ in list_checkpoints(run)] == [3, 4]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    make_agent(tmp_path / "default", save_freq=1).fit(epochs=4, verbose=0)
    assert [e for e, _ in list_checkpoints(tmp_path / "default")] == [2, 3, 4]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate_arrays", "truncate_state", "missing_arrays"])
def test_a_damaged_newest_checkpoint_is_skipped_for_the_previous(damage, tmp_path):
    run = tmp_path / "run"
    make_agent(run).fit(epochs=4, verbose=0)
    newest = run / "checkpoints" / "ckpt_4"
    target = newest / ("state.json" if damage == "truncate_state" else "arrays.npz")
    if damage == "missing_arrays":
        target.unlink()
    else:
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match=target.name):
        read_checkpoint(newest)
    with pytest.warns(UserWarning, match="skipping checkpoint .*ckpt_4"):
        assert latest_checkpoint(run) == run / "checkpoints" / "ckpt_2"
    with pytest.warns(UserWarning):
        agent = keras_vpg.VPG.restore(run)
    assert agent.epoch == 2
    agent.fit(epochs=2, verbose=0)  # writes a good ckpt_4 over the damaged one's name
    read_checkpoint(run / "checkpoints" / "ckpt_4")
    assert [int(r["Epoch"]) for r in progress(run)] == [0, 1, 2, 3]


def test_restore_refuses_a_run_without_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        keras_vpg.VPG.restore(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no usable checkpoint"):
        keras_vpg.VPG.restore(tmp_path / "empty")


def test_restore_rejects_a_checkpoint_of_another_model(tmp_path):
    run = tmp_path / "run"
    make_agent(run).fit(epochs=2, verbose=0)
    with pytest.raises(checkpoint.CheckpointError, match="shape"):
        keras_vpg.VPG.restore(run, ac_kwargs=dict(hidden_sizes=(8,)))
    with pytest.raises(TypeError, match="unknown arguments.*'hidden'"):
        keras_vpg.VPG.restore(run, hidden=3)


def test_nan_in_the_gradient_stops_training_and_keeps_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    agent = make_agent(run, save_freq=1)
    agent.fit(epochs=2, verbose=0)
    update_policy = agent.trainer.update_policy

    def poisoned_update_policy(batch):  # a NaN advantage: NaN policy loss and gradient
        batch["adv"][0] = np.nan
        return update_policy(batch)

    agent.trainer.update_policy = poisoned_update_policy
    with pytest.raises(NonFiniteError, match=r"epoch 2: LossPi = nan.*ckpt_2"):
        agent.fit(epochs=2, verbose=0)
    assert _non_finite_weights(agent.ac)  # the weights did go NaN
    assert latest_checkpoint(run) == run / "checkpoints" / "ckpt_2"
    with pytest.raises(NonFiniteError, match="not saving"):
        agent._save_checkpoint()
    assert [e for e, _ in list_checkpoints(run)] == [1, 2]
    policy = keras.saving.load_model(run / "model.keras")
    assert not _non_finite_weights(policy)
    with pytest.warns(UserWarning, match=r"dropped 1 row\(s\).*epochs \[2\]"):
        restored = keras_vpg.VPG.restore(run)  # the NaN epoch's row goes
    assert restored.epoch == 2 and not _non_finite_weights(restored.ac)


@pytest.mark.slow
def test_a_new_run_moves_an_old_run_aside(tmp_path):
    run = tmp_path / "run"
    make_agent(run).fit(epochs=2, verbose=0)
    old_files = sorted(p.relative_to(run) for p in run.rglob("*"))
    with pytest.warns(UserWarning, match=r"already held a run: moved it to .*\.old.run_"):
        agent = make_agent(run, seed=1)
    siblings = [p for p in (tmp_path / ".old").iterdir() if p.name.startswith("run_")]
    assert len(siblings) == 1
    assert sorted(p.relative_to(siblings[0]) for p in siblings[0].rglob("*")) == old_files
    assert not (run / "progress.txt").exists() and not (run / "checkpoints").exists()
    agent.fit(epochs=1, verbose=0)
    assert [int(r["Epoch"]) for r in progress(run)] == [0]
    assert [int(r["Epoch"]) for r in progress(siblings[0])] == [0, 1]


def test_config_records_keep_checkpoints_and_checkpoint_holds_config(tmp_path):
    run = tmp_path / "run"
    make_agent(run, keep_checkpoints=5).fit(epochs=2, verbose=0)
    state, _ = read_checkpoint(run / "checkpoints" / "ckpt_2")
    assert state["config"] == json.loads((run / "config.json").read_text())
    assert state["config"]["keep_checkpoints"] == 5 and state["target_epochs"] == 2


# -- the interruption helpers (signals in a subprocess: test_interrupt.py) ----------------------
def test_exit_status_maps_interruptions():
    assert exit_status(Terminated()) == 143
    assert exit_status(Interrupted()) == 130
    assert exit_status(KeyboardInterrupt()) == 130
    assert exit_status(ValueError()) is None
    assert isinstance(Terminated(), KeyboardInterrupt)
    for error, status in ((Terminated(), 143), (Interrupted(), 130)):
        with pytest.raises(SystemExit) as info, exit_on_interrupt():
            raise error
        assert info.value.code == status


def test_handlers_are_installed_only_during_the_block_and_in_the_main_thread():
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with StopOnSignals() as guard:
        assert signal.getsignal(signal.SIGTERM) == guard._handle
        guard._handle(signal.SIGTERM, None)
        with pytest.raises(Terminated):
            guard.check()
    assert signal.getsignal(signal.SIGTERM) == before

    seen = []

    def in_thread():
        with StopOnSignals() as guard:
            seen.append(guard._previous)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert seen == [{}]


@pytest.mark.parametrize("overlap", [True, False])
def test_checkpoints_hold_the_random_streams_of_their_epochs_start(overlap, tmp_path):
    # With overlap the end of epoch E-1 (and its checkpoint) comes while epoch E is being
    # collected: the streams saved must be those from before E's first action.
    run = tmp_path / "run"
    agent = make_agent(run, save_freq=1, overlap_update=overlap)
    at_start = {}
    chunks = agent.collector.chunks

    def recording_chunks(*args, **kwargs):  # called before the epoch's first action
        if agent.buffer.ptr == 0:
            at_start[len(at_start)] = agent._random_streams()
        return chunks(*args, **kwargs)

    agent.collector.chunks = recording_chunks
    agent.fit(epochs=3, verbose=0)
    assert agent.overlap_update == overlap and sorted(at_start) == [0, 1, 2]
    for epoch in (1, 2):
        state, arrays = read_checkpoint(run / "checkpoints" / f"ckpt_{epoch}")
        saved = state["random_streams"][0]
        for key in ("numpy_sampler", "seed_generator", "numpy_global"):
            assert saved[key] == at_start[epoch][key], (epoch, key)
        # The stream collection draws from moved on since the previous epoch's start.
        drawn = "numpy_sampler" if agent.sampler.numpy is not None else "seed_generator"
        assert saved[drawn] != at_start[epoch - 1][drawn]
