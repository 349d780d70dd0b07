"""ExperimentGrid: Spinning Up's names and variants; runs in subprocesses, K at a time, MPI."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import keras_vpg
from keras_vpg.grid import GridRunError, setup_logger_kwargs, summary_table, valid_str
from keras_vpg.mpi import usable_cores


def spinning_up_example(name="hc"):
    """The grid of Spinning Up's own run_utils.test_eg, plus seeds."""
    grid = keras_vpg.ExperimentGrid(name)
    grid.add("test:a", [1, 2, 3], "ta", True)
    grid.add("test:b", [1, 2, 3])
    grid.add("some", [4, 5])
    grid.add("why", [True, False])
    grid.add("huh", 5)
    grid.add("no", 6, in_name=True)
    grid.add("seed", [0, 10])
    return grid


def test_variants_nest_colon_keys_and_vary_the_first_key_slowest():
    variants = spinning_up_example().variants()
    assert len(variants) == 3 * 3 * 2 * 2 * 2
    assert variants[0] == {"test": {"a": 1, "b": 1}, "some": 4, "why": True, "huh": 5,
                           "no": 6, "seed": 0}
    assert variants[1]["seed"] == 10 and variants[-1]["test"] == {"a": 3, "b": 3}


def test_variant_names_are_spinning_ups():
    grid = spinning_up_example()
    names = [grid.variant_name(v) for v in grid.variants()]
    # Shorthands: given ("ta"), else 3 letters of each ':' part; True booleans by name
    # only; single values only with in_name; never the seed.
    assert names[0] == names[1] == "hc_ta1_tes-b1_som4_why_no6"
    assert grid.variant_name({"test": {"a": 3, "b": 2}, "some": 5, "why": False, "huh": 5,
                              "no": 6, "seed": 0}) == "hc_ta3_tes-b2_som5_no6"
    assert len(set(names)) == len(names) // 2  # the two seeds of a variant share its name
    assert valid_str(0.001) == "0-001" and valid_str((64, 64)) == "64-64"
    assert valid_str(keras_vpg.vpg) == "vpg" and valid_str("Hopper-v5") == "hopper-v5"
    assert keras_vpg.ExperimentGrid("").variant_name({}) == ""


def test_print_counts_variants_with_and_without_seeds(capsys):
    spinning_up_example().print()
    out = capsys.readouterr().out
    assert "ExperimentGrid [hc] runs over parameters:" in out
    assert "[tes-b]" in out
    assert out.split("Variants, counting seeds:")[1].split()[0] == "72"
    assert out.split("Variants, not counting seeds:")[1].split()[0] == "36"


def test_run_directories_and_arguments(tmp_path):
    grid = keras_vpg.ExperimentGrid("cp")
    grid.add("pi_lr", [1e-3, 3e-3])
    grid.add("ac_kwargs:hidden_sizes", [(16,)], "hid")
    runs = grid.experiments(keras_vpg.vpg, data_dir=str(tmp_path))
    assert [run.output_dir for run in runs] == [
        str(tmp_path / "cp_pi0-001" / "cp_pi0-001_s0"),
        str(tmp_path / "cp_pi0-003" / "cp_pi0-003_s0"),
    ]
    assert runs[0].kwargs == {"pi_lr": 1e-3, "ac_kwargs": {"hidden_sizes": (16,)}, "seed": 0,
                              "logger_kwargs": {"output_dir": runs[0].output_dir,
                                                "exp_name": "cp_pi0-001"}}
    stamped = setup_logger_kwargs("cp", 3, str(tmp_path), datestamp=True)["output_dir"]
    assert Path(stamped).parent.name.endswith("_cp") and stamped.endswith("-cp_s3")


@pytest.mark.parametrize(("setup", "error", "message"), [
    (lambda g: g.add("lr", [0.001, "0.001"]), ValueError, "several variants would write"),
    (lambda g: g.add("seed", [1, 2]) or g.add("seed", 3), ValueError, "already in the grid"),
    (lambda g: g.add(3, [1]), TypeError, "key"),
    (lambda g: g.add("a", []), ValueError, "at least one value"),
])
def test_bad_grids_are_named(setup, error, message, tmp_path):
    grid = keras_vpg.ExperimentGrid("g")
    with pytest.raises(error, match=message):
        setup(grid)
        grid.experiments(keras_vpg.vpg, data_dir=str(tmp_path))


@pytest.mark.slow
def test_a_grid_of_two_values_by_two_seeds_runs_two_at_a_time(tmp_path, capsys):
    events = tmp_path / "events.log"  # "start PID" / "end PID" lines, in the order they happened

    def train_and_record(**kwargs):
        import fcntl
        import json
        import os
        import time

        import keras_vpg

        def log(what):
            with open(events, "a+") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                f.write(f"{what} {os.getpid()}\n")
                f.seek(0)
                return f.read().split()[::2]

        def running(kinds):
            return kinds.count("start") - kinds.count("end")

        kinds = log("start")
        # Wait (bounded by polls, not asserted on time) for a second run to be running, unless
        # every other run has ended: a grid that runs one at a time shows as max 1 below.
        for _ in range(600):
            if running(kinds) >= 2 or kinds.count("end") >= 3:
                break
            time.sleep(0.1)
            kinds = log("poll")
        keras_vpg.vpg(**kwargs)
        record = {"pid": os.getpid(), "threads": os.environ.get("KERAS_VPG_THREADS")}
        out = os.path.join(kwargs["logger_kwargs"]["output_dir"], "record.json")
        with open(out, "w") as f:
            json.dump(record, f)
        log("end")

    grid = keras_vpg.ExperimentGrid("cp")
    grid.add("env_name", "CartPole-v1")
    grid.add("seed", [0, 1])
    grid.add("pi_lr", [1e-3, 3e-3])
    for key, value in dict(steps_per_epoch=200, epochs=2, train_v_iters=2, verbose=0,
                           ac_kwargs=dict(hidden_sizes=(16,))).items():
        grid.add(key, value)
    os.environ.pop("KERAS_VPG_THREADS", None)
    results = grid.run(train_and_record, data_dir=str(tmp_path), parallel=2)

    expected = [tmp_path / f"cp_pi{lr}" / f"cp_pi{lr}_s{seed}"
                for seed in (0, 1) for lr in ("0-001", "0-003")]
    assert [r.output_dir for r in results] == [str(p) for p in expected]
    records = []
    for result, run_dir in zip(results, expected):
        lines = (run_dir / "progress.txt").read_text().splitlines()
        header, last = lines[0].split("\t"), lines[-1].split("\t")
        assert len(lines) == 3 and result.ok and result.seconds > 0
        assert result.final_return == pytest.approx(float(last[header.index("AverageEpRet")]))
        assert json.loads((run_dir / "config.json").read_text())["pi_lr"] in (1e-3, 3e-3)
        assert (run_dir / "output.log").exists()
        records.append(json.loads((run_dir / "record.json").read_text()))
    # Two at a time, by the order of the runs' start and end events (no clocks).
    concurrent, most = 0, 0
    for kind in events.read_text().split()[::2]:
        concurrent += {"start": 1, "end": -1}.get(kind, 0)
        most = max(most, concurrent)
    assert most == 2 and concurrent == 0
    assert len({r["pid"] for r in records}) == 4
    assert {r["threads"] for r in records} == {str(max(1, usable_cores() // 2))}
    table = capsys.readouterr().out.split("Run directory")[-1]
    for result in results:
        assert result.output_dir in table and f"{result.final_return:.4g}" in table


def test_a_failing_run_is_reported_and_the_others_still_run(tmp_path, capfd):
    def thunk(seed, logger_kwargs):
        import os

        if seed == 1:
            raise RuntimeError("deliberate failure of seed 1")
        os.makedirs(logger_kwargs["output_dir"], exist_ok=True)
        with open(os.path.join(logger_kwargs["output_dir"], "progress.txt"), "w") as f:
            f.write("Epoch\tAverageEpRet\n0\t1.5\n1\t2.5\n")

    grid = keras_vpg.ExperimentGrid("f")
    grid.add("seed", [1, 2])
    with pytest.raises(GridRunError, match="1 of 2 runs failed") as failure:
        grid.run(thunk, data_dir=str(tmp_path))
    first, second = failure.value.results
    assert not first.ok and math.isnan(first.final_return)
    assert second.ok and second.final_return == 2.5
    out = capfd.readouterr()  # the run's own stderr is the terminal's (parallel=1)
    assert "failed (exit 1)" in out.out
    assert "deliberate failure of seed 1" in out.err


def test_summary_table_lines_up():
    from keras_vpg.grid import RunResult

    text = summary_table([RunResult("a", "data/a/a_s0", 12.5, 3.25, 0),
                          RunResult("b", "data/b/b_s10", math.nan, 1.0, 2)])
    lines = text.splitlines()
    assert lines[0].split() == ["Run", "directory", "AverageEpRet", "Time", "(s)", "Status"]
    assert lines[2].split() == ["data/a/a_s0", "12.5", "3.2", "ok"]
    assert lines[3].split() == ["data/b/b_s10", "nan", "1.0", "failed", "(exit", "2)"]


@pytest.mark.mpi
def test_grid_runs_across_a_hostfile_with_global_counts(tmp_path):
    """``num_cpu=2`` with a hostfile of ``localhost slots=2``: mpirun through mpi_fork."""
    if not (Path(sys.executable).parent / "mpirun").exists():
        pytest.fail("mpirun missing beside python: pip install 'keras-vpg[mpi]'")
    hostfile = tmp_path / "hosts.txt"
    hostfile.write_text("localhost slots=2\n")
    grid = keras_vpg.ExperimentGrid("mh")
    grid.add("env_name", "CartPole-v1")
    for key, value in dict(steps_per_epoch=400, epochs=2, train_v_iters=2, verbose=0,
                           ac_kwargs=dict(hidden_sizes=(16,))).items():
        grid.add(key, value)
    # Callbacks run on rank 0 only; its evaluation columns reach the one progress.txt.
    evaluate = keras_vpg.EvalCallback(functools.partial(gym.make, "CartPole-v1"), eval_freq=2,
                                      n_eval_episodes=2, verbose=0)
    grid.add("callbacks", [[evaluate]])
    (result,) = grid.run(keras_vpg.vpg, num_cpu=2, data_dir=str(tmp_path),
                         hostfile=str(hostfile))
    run_dir = tmp_path / "mh" / "mh_s0"
    lines = (run_dir / "progress.txt").read_text().splitlines()
    header = lines[0].split("\t")
    assert [line.split("\t")[header.index("TotalEnvInteracts")] for line in lines[1:]] == [
        "400", "800"]
    assert json.loads((run_dir / "config.json").read_text())["num_procs"] == 2
    evaluated = [line.split("\t")[header.index("EvalAverageEpRet")] for line in lines[1:]]
    assert evaluated[0] == "nan" and float(evaluated[1]) > 0
    assert result.ok


def test_an_agent_without_logger_kwargs_writes_where_a_grid_would(tmp_path, monkeypatch):
    """One place makes DATA/EXP/EXP_sSEED (files.run_directory); a taken one gets a stamp."""
    monkeypatch.chdir(tmp_path)
    agents = [keras_vpg.VPG(lambda: gym.make("CartPole-v1"), seed=4, steps_per_epoch=8)
              for _ in range(2)]
    for agent in agents:
        agent.close()
    expected = Path(setup_logger_kwargs("vpg", 4)["output_dir"])
    assert expected == Path("data") / "vpg" / "vpg_s4"
    assert agents[0].output_dir == expected and (tmp_path / expected / "config.json").exists()
    # The second finds the first's directory taken: same folder, a timestamped name.
    assert agents[1].output_dir.parent == expected.parent
    assert agents[1].output_dir.name.startswith("vpg_s4_")
