"""Golden progress.txt files: fixed-seed short runs whose numbers a refactor must keep.

Usage (one backend per process, as Keras picks its backend once)::

    KERAS_BACKEND=jax python tests/golden/make_golden.py          # every case
    KERAS_BACKEND=jax python tests/golden/make_golden.py cartpole_1env

writes ``tests/golden/<backend>_<case>.tsv``: the run's ``progress.txt`` without
its timing columns (``Time``, ``StepsPerSecond``), which vary run to run.
``tests/test_golden.py`` reruns each case on the active backend and compares.
Regenerate only when a change is meant to alter the numbers, and say why in
that commit.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import gymnasium as gym

GOLDEN_DIR = Path(__file__).resolve().parent

#: Columns left out: wall-clock timings.
TIMING_COLUMNS = ("Time", "StepsPerSecond")

#: name -> (gymnasium id, VPG keyword arguments); 3 epochs each.
CASES: dict[str, tuple[str, dict]] = {
    # Discrete actions, one env.
    "cartpole_1env": ("CartPole-v1", dict(steps_per_epoch=600, num_envs=1)),
    # Discrete actions, a vector of 4 envs.
    "cartpole_4envs": ("CartPole-v1", dict(steps_per_epoch=800, num_envs=4)),
    # Box actions, observation normalizer, max_ep_len truncation.
    "pendulum_norm": ("Pendulum-v1", dict(steps_per_epoch=600, num_envs=1,
                                          normalize_obs=True, max_ep_len=150)),
}
EPOCHS = 3
#: fast_paths=True: the default path's numbers, also under KERAS_VPG_FAST_PATHS=0 (the
#: plain paths sample with other random streams). The files were made before the
#: argument existed, with the same (default) paths.
COMMON = dict(seed=3, train_v_iters=5, ac_kwargs=dict(hidden_sizes=(32, 32)), save_freq=100,
              fast_paths=True)


def run_case(name: str, output_dir: str | Path, **changes) -> str:
    """Run case ``name`` into ``output_dir``; return its progress.txt without timings.

    ``changes`` override the case's VPG arguments (to check that a change is caught).
    """
    import keras_vpg

    env_id, kwargs = CASES[name]
    agent = keras_vpg.VPG(lambda: gym.make(env_id), **(COMMON | kwargs | changes),
                          logger_kwargs=dict(output_dir=str(output_dir), exp_name=name))
    try:
        agent.fit(epochs=EPOCHS, verbose=0)
    finally:
        agent.close()
    return strip_timings((Path(output_dir) / "progress.txt").read_text())


def strip_timings(progress: str) -> str:
    """``progress`` (tab-separated, header first) without the :data:`TIMING_COLUMNS`."""
    rows = [line.split("\t") for line in progress.splitlines() if line]
    keep = [i for i, column in enumerate(rows[0]) if column not in TIMING_COLUMNS]
    return "".join("\t".join(row[i] for i in keep) + "\n" for row in rows)


#: Relative tolerance of a float column. Float reductions differ in their last bits
#: between CPUs, thread counts and library releases (observed: at most 3e-8 relative
#: after three epochs); a change of the maths (gamma, update order) moves them by percents.
RTOL = 3e-6
#: Columns that are small differences or sums of larger terms, compared at the scale
#: of those terms (the row's value in the named column): KL is a mean of log-prob
#: differences and LossPi a mean of log-prob x normalized-advantage products, both of
#: the size of the entropy; DeltaLossV is a difference of two LossV values.
SCALE_COLUMN = {"KL": "Entropy", "LossPi": "Entropy", "DeltaLossPi": "Entropy",
                "DeltaLossV": "LossV"}


def compare_progress(expected: str, got: str, rtol: float = RTOL) -> list[str]:
    """Differences between two progress tables (as :func:`strip_timings` returns them).

    Values written as integers (epochs, step counts, CartPole's returns) must match
    exactly; other values within ``rtol`` of ``max(|value|, |scale|)``, where the
    scale is the row's value in the column :data:`SCALE_COLUMN` names (the value
    itself for other columns). Returns one line per difference; empty when they agree.
    """
    expected_rows = [line.split("\t") for line in expected.splitlines() if line]
    got_rows = [line.split("\t") for line in got.splitlines() if line]
    if expected_rows[0] != got_rows[0]:
        return [f"columns changed: {expected_rows[0]} -> {got_rows[0]}"]
    if len(expected_rows) != len(got_rows):
        return [f"{len(expected_rows) - 1} rows expected, {len(got_rows) - 1} written"]
    header = expected_rows[0]
    problems = []
    for expected_row, got_row in zip(expected_rows[1:], got_rows[1:]):
        golden = dict(zip(header, expected_row))
        for column, e, g in zip(header, expected_row, got_row):
            if _is_integer(e):
                same = e == g
            else:
                scale = abs(float(golden[SCALE_COLUMN.get(column, column)]))
                same = abs(float(g) - float(e)) <= rtol * max(abs(float(e)), scale)
            if not same:
                problems.append(f"epoch {golden['Epoch']} {column}: golden {e}, now {g}")
    return problems


def _is_integer(text: str) -> bool:
    return text.lstrip("-").isdigit()


def golden_path(backend: str, name: str) -> Path:
    return GOLDEN_DIR / f"{backend}_{name}.tsv"


def main(names: list[str]) -> None:
    import keras

    backend = keras.backend.backend()
    for name in names or list(CASES):
        with tempfile.TemporaryDirectory() as tmp:
            text = run_case(name, tmp)
        golden_path(backend, name).write_text(text)
        print(f"wrote {golden_path(backend, name)}")


if __name__ == "__main__":
    main(sys.argv[1:])
