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


def run_case(name: str, output_dir: str | Path) -> str:
    """Run case ``name`` into ``output_dir``; return its progress.txt without timings."""
    import keras_vpg

    env_id, kwargs = CASES[name]
    agent = keras_vpg.VPG(lambda: gym.make(env_id), **COMMON, **kwargs,
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
