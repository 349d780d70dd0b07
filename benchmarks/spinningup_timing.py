"""Wall-clock of Spinning Up's own PyTorch VPG against keras-vpg, side by side (issue #15).

Both train HalfCheetah-v5 with Spinning Up's benchmark settings: (64, 32) tanh
MLPs, ``steps_per_epoch`` 4000, every other argument at its default (80 value
steps, ``pi_lr`` 3e-4, ``vf_lr`` 1e-3, ``lam`` 0.97, one process). Each run is a
fresh subprocess:

- Spinning Up: ``spinup.algos.pytorch.vpg.vpg.vpg``, imported at run time from
  ``--spinup-dir`` (nothing of Spinning Up is copied here), with a few shims
  (below), its logger writing to a temporary directory;
- keras-vpg: the public CLI, ``keras-vpg train --env HalfCheetah-v5 --hid 64 32
  --act tanh --backend jax --verbose 0 --seed 0 --epochs N+W --data-dir TMP``.

The runs alternate (Spinning Up, keras-vpg, Spinning Up, keras-vpg for
``--repeats 2``) so that machine noise hits both. Per-epoch seconds come from
each run's progress.txt ``Time`` column (seconds since training started): the
first ``--warmup`` epochs are dropped, and so is the last interval, and a run's
epoch time is ``(Time[-2] - Time[W-1]) / (N - 1)`` over its N timed epochs; the
figure reported is the median over the repeats. keras-vpg runs an epoch's value
steps in the background during the next collection and writes the epoch's row
once that collection is done, so row ``k`` lands about one collection after its
epoch's update: the default W is 2, not 1, because row 0 (whose value steps
include JAX's compilation) lands near the end of epoch 1; and the last row comes
right after the one before it (nothing is left to collect), so the last interval
is far shorter than an epoch. Between the two, the rows are one epoch apart.
Spinning Up writes each row at its epoch's end; the same rule is applied to it.
750 epochs (3M steps, Spinning Up's HalfCheetah benchmark length) times that is
the extrapolated wall time; start-up and warm-up (a few seconds) are left out.
This is a timing of a few epochs and an extrapolation, not a 3M-step run.

A random-action loop of the same env (``--raw-steps`` steps, gymnasium API) is
timed before and after the runs, and each trainer's steps/s is also given as a
share of that raw loop: absolute times depend on the machine (and its load),
the shares and the keras-vpg / Spinning Up ratio travel better.

Shims for Spinning Up (it was written for the old ``gym`` API and TF1), installed
only in its worker process:

- ``gym``: a module whose ``make`` returns the gymnasium env behind the old API
  (``reset() -> obs``, the first reset seeded with ``--seed``; ``step -> (obs,
  reward, terminated or truncated, info)``), and ``gym.spaces`` =
  ``gymnasium.spaces`` (``core.py`` checks ``isinstance`` against ``Box`` and
  ``Discrete``);
- ``spinup``: the package is registered without running ``spinup/__init__.py``,
  which imports the TF1 algorithms (``tf.train.AdamOptimizer`` fails on TF 2);
- ``joblib`` (only if it is not installed): ``dump`` as ``pickle.dump``, used by
  ``Logger.save_state``.

``mpi4py`` runs as a one-process world: ``setup_pytorch_for_mpi``,
``sync_params`` and ``mpi_avg_grads`` are no-ops then, as in a plain
``python vpg.py --cpu 1``.

Getting Spinning Up (the ``spinup/`` package is all that is needed)::

    git clone https://github.com/openai/spinningup /tmp/spinningup
    # or, from a bare mirror:
    mkdir -p /tmp/spinningup
    git --git-dir=/path/to/spinningup.git archive HEAD spinup | tar -x -C /tmp/spinningup

Run (about 3 minutes on 2 cores)::

    python benchmarks/spinningup_timing.py --spinup-dir /tmp/spinningup \\
        --json benchmarks/results_spinningup_timing.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import pickle
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from typing import Any

from keras_vpg.plot import read_progress  # numpy only: no Keras

ENV_ID = "HalfCheetah-v5"
STEPS_PER_EPOCH = 4000
HIDDEN = (64, 32)
TARGET_STEPS = 3_000_000  # Spinning Up's HalfCheetah benchmark length
TRAINERS = ("spinningup", "keras-vpg")


# --------------------------------------------------------------------------- #
# Spinning Up worker (runs in its own process)
# --------------------------------------------------------------------------- #


class OldGymApi:
    """A gymnasium env behind the old gym API that Spinning Up was written for."""

    def __init__(self, env: Any, seed: int | None) -> None:
        self.env = env
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self._seed = seed

    def reset(self) -> Any:
        obs, _ = self.env.reset(seed=self._seed)
        self._seed = None  # seeded once, as gym's env.seed(s) then reset()
        return obs

    def step(self, action: Any) -> tuple[Any, float, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float(reward), bool(terminated or truncated), info

    def close(self) -> None:
        self.env.close()


def install_spinup_shims(spinup_dir: str, seed: int) -> list[str]:
    """Make ``spinup.algos.pytorch.vpg.vpg`` importable here; the shims installed."""
    import gymnasium

    installed = []
    gym = types.ModuleType("gym")
    gym.spaces = gymnasium.spaces  # type: ignore[attr-defined]
    gym.make = lambda env_id, **kwargs: OldGymApi(gymnasium.make(env_id, **kwargs), seed)  # type: ignore[attr-defined]
    sys.modules["gym"] = gym
    sys.modules["gym.spaces"] = gymnasium.spaces
    installed.append("gym (old API over gymnasium; gym.spaces = gymnasium.spaces)")

    package = types.ModuleType("spinup")
    package.__path__ = [os.path.join(spinup_dir, "spinup")]  # type: ignore[attr-defined]
    sys.modules["spinup"] = package
    installed.append("spinup package without __init__ (its TF1 algorithm imports)")

    try:
        import joblib  # noqa: F401
    except ImportError:
        joblib = types.ModuleType("joblib")

        def dump(obj: Any, path: str) -> None:
            with open(path, "wb") as f:
                pickle.dump(obj, f)

        joblib.dump = dump  # type: ignore[attr-defined]
        sys.modules["joblib"] = joblib
        installed.append("joblib.dump = pickle.dump (joblib not installed)")
    sys.path.insert(0, spinup_dir)
    return installed


def spinup_worker(
    spinup_dir: str, out_dir: str, epochs: int, seed: int, threads: int | None
) -> None:
    """Spinning Up's PyTorch VPG with its benchmark settings, logging to ``out_dir``."""
    shims = install_spinup_shims(spinup_dir, seed)
    import gym  # the shim
    import torch
    from spinup.algos.pytorch.vpg import core
    from spinup.algos.pytorch.vpg.vpg import vpg

    if threads:
        torch.set_num_threads(threads)

    print(f"shims: {shims}; torch threads: {torch.get_num_threads()}", flush=True)
    vpg(
        lambda: gym.make(ENV_ID),
        actor_critic=core.MLPActorCritic,
        ac_kwargs=dict(hidden_sizes=HIDDEN, activation=torch.nn.Tanh),
        seed=seed,
        steps_per_epoch=STEPS_PER_EPOCH,
        epochs=epochs,
        logger_kwargs=dict(output_dir=out_dir, exp_name="spinup_vpg"),
    )


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #


def raw_steps_per_second(steps: int, seed: int) -> float:
    """Env steps/s of a random-action gymnasium loop on ``ENV_ID``."""
    import gymnasium

    env = gymnasium.make(ENV_ID)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    seconds = time.perf_counter() - start
    env.close()
    return steps / seconds


def find_progress(root: str) -> str:
    for folder, _, files in os.walk(root):
        if "progress.txt" in files:
            return os.path.join(folder, "progress.txt")
    raise FileNotFoundError(f"no progress.txt under {root}")


def keras_vpg_command(epochs: int, data_dir: str, seed: int) -> list[str]:
    cli = os.path.join(os.path.dirname(sys.executable), "keras-vpg")
    if not os.path.exists(cli):
        cli = shutil.which("keras-vpg") or "keras-vpg"
    return [
        cli, "train", "--env", ENV_ID, "--hid", *map(str, HIDDEN), "--act", "tanh",
        "--epochs", str(epochs), "--steps-per-epoch", str(STEPS_PER_EPOCH),
        "--backend", "jax", "--verbose", "0", "--data-dir", data_dir,
        "--exp-name", "kvpg", "--seed", str(seed),
    ]


def spinup_command(args: argparse.Namespace, epochs: int, out_dir: str) -> list[str]:
    return [
        sys.executable, os.path.abspath(__file__), "--spinup-dir", args.spinup_dir,
        "--seed", str(args.seed), "--_spinup-worker", out_dir, "--_worker-epochs", str(epochs),
        *(["--spinup-threads", str(args.spinup_threads)] if args.spinup_threads else []),
    ]


def run_once(trainer: str, args: argparse.Namespace, workdir: str, index: int) -> dict[str, Any]:
    """One training subprocess; its timed epochs from progress.txt."""
    epochs = args.epochs + args.warmup
    out_dir = os.path.join(workdir, f"{trainer}_{index}")
    os.makedirs(out_dir)
    if trainer == "spinningup":
        command = spinup_command(args, epochs, out_dir)
    else:
        command = keras_vpg_command(epochs, out_dir, args.seed)
    log_path = os.path.join(workdir, f"{trainer}_{index}.log")
    start = time.perf_counter()
    with open(log_path, "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        with open(log_path) as log:
            tail = log.read()[-3000:]
        raise RuntimeError(f"{trainer} exited {result.returncode}:\n{tail}")
    progress = read_progress(find_progress(out_dir))
    times = progress["Time"].tolist()
    if len(times) != epochs:
        raise RuntimeError(f"{trainer}: {len(times)} progress rows, expected {epochs}")
    w = args.warmup
    diffs = [b - a for a, b in zip(times[w - 1:-1], times[w:])]
    returns = progress["AverageEpRet"].tolist() if "AverageEpRet" in progress else []
    with open(log_path) as log:
        log_text = log.read()
    threads = re.search(r"torch threads: (\d+)", log_text)
    return {
        "log_notes": {
            "torch_threads": int(threads.group(1)) if threads else None,
            "could_not_pickle_state": "could not pickle" in log_text,
        } if trainer == "spinningup" else {},
        "epoch_seconds": (times[-2] - times[w - 1]) / (args.epochs - 1),
        "epoch_diffs": diffs,
        "warmup_seconds": times[w - 1],
        "process_seconds": wall,
        "average_ep_ret": returns,
        "trained": len(returns) == epochs and all(math.isfinite(r) for r in returns),
    }


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def spinup_commit(spinup_dir: str, git_dir: str | None) -> str | None:
    for command in (
        ["git", "-C", spinup_dir, "rev-parse", "HEAD"],
        ["git", f"--git-dir={git_dir}", "rev-parse", "HEAD"] if git_dir else None,
    ):
        if command is None:
            continue
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            return result.stdout.strip()
    return None


def summarize(runs: dict[str, list[dict[str, Any]]], raw: float, epochs_3m: int) -> dict:
    summary: dict[str, Any] = {}
    for trainer, results in runs.items():
        epoch_s = statistics.median(r["epoch_seconds"] for r in results)
        steps_s = STEPS_PER_EPOCH / epoch_s
        summary[trainer] = {
            "epoch_seconds_median": epoch_s,
            "epoch_seconds_per_run": [r["epoch_seconds"] for r in results],
            "epoch_diffs_per_run": [r["epoch_diffs"] for r in results],
            "steps_per_second": steps_s,
            "share_of_raw": steps_s / raw,
            "minutes_3m_steps": epochs_3m * epoch_s / 60,
            "warmup_seconds_per_run": [r["warmup_seconds"] for r in results],
            "process_seconds_per_run": [r["process_seconds"] for r in results],
            "average_ep_ret_per_run": [r["average_ep_ret"] for r in results],
            "trained": all(r["trained"] for r in results),
            "log_notes_per_run": [r["log_notes"] for r in results],
        }
    summary["ratio_keras_vpg_over_spinningup_speed"] = (
        summary["keras-vpg"]["steps_per_second"] / summary["spinningup"]["steps_per_second"]
    )
    return summary


def pair_figures(runs: dict[str, list[dict[str, Any]]], raw_between: list[float]) -> dict:
    """Each (Spinning Up, keras-vpg) pair of consecutive runs, beside the raw loop around it.

    ``raw_between[k]`` is the raw loop timed just before run ``k`` (runs alternate
    Spinning Up, keras-vpg), ``raw_between[-1]`` after the last: each run's speed is
    also given as a share of the mean of the raw loops on either side of it, and each
    pair gives one keras-vpg / Spinning Up speed ratio, so a machine whose speed drifts
    between pairs still compares like with like within a pair.
    """
    per_pair = []
    for index, (su, kv) in enumerate(zip(runs["spinningup"], runs["keras-vpg"])):
        k = 2 * index  # Spinning Up's run; keras-vpg's is k + 1
        raws = raw_between[k:k + 3]
        su_speed, kv_speed = (STEPS_PER_EPOCH / r["epoch_seconds"] for r in (su, kv))
        per_pair.append({
            "raw_steps_per_second": raws,
            "spinningup_share_of_raw": su_speed / ((raws[0] + raws[1]) / 2),
            "keras_vpg_share_of_raw": kv_speed / ((raws[1] + raws[2]) / 2),
            "ratio_keras_vpg_over_spinningup": kv_speed / su_speed,
            "spinningup_minutes_per_1m_steps": 1e6 / su_speed / 60,
            "keras_vpg_minutes_per_1m_steps": 1e6 / kv_speed / 60,
        })
    ratios = [p["ratio_keras_vpg_over_spinningup"] for p in per_pair]
    return {"per_pair": per_pair, "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios)}


def print_pairs(pairs: dict) -> None:
    print("| pair | raw loop before / between / after (steps/s) | Spinning Up min per 1M "
          "(share of raw) | keras-vpg min per 1M (share of raw) | keras-vpg / Spinning Up |")
    print("|---|---|---|---|---|")
    for i, p in enumerate(pairs["per_pair"]):
        raws = " / ".join(f"{r:.0f}" for r in p["raw_steps_per_second"])
        print(f"| {i + 1} | {raws} | {p['spinningup_minutes_per_1m_steps']:.1f} "
              f"({100 * p['spinningup_share_of_raw']:.0f} %) | "
              f"{p['keras_vpg_minutes_per_1m_steps']:.1f} "
              f"({100 * p['keras_vpg_share_of_raw']:.0f} %) | "
              f"{p['ratio_keras_vpg_over_spinningup']:.2f}x |")
    print(f"keras-vpg / Spinning Up speed per pair: median {pairs['ratio_median']:.2f}x "
          f"(range {pairs['ratio_min']:.2f}-{pairs['ratio_max']:.2f})")


def print_table(summary: dict, raw_before: float, raw_after: float, epochs_3m: int) -> None:
    print(f"\n{ENV_ID}, {STEPS_PER_EPOCH} steps/epoch, hid {HIDDEN} tanh; raw loop "
          f"{raw_before:.0f} / {raw_after:.0f} steps/s (before / after)")
    print(f"| trainer | s/epoch (median) | per run | steps/s | share of raw | "
          f"{epochs_3m} epochs (3M steps) |")
    print("|---|---|---|---|---|---|")
    for trainer in TRAINERS:
        s = summary[trainer]
        per_run = ", ".join(f"{x:.2f}" for x in s["epoch_seconds_per_run"])
        print(f"| {trainer} | {s['epoch_seconds_median']:.3f} | {per_run} | "
              f"{s['steps_per_second']:.0f} | {100 * s['share_of_raw']:.1f} % | "
              f"{s['minutes_3m_steps']:.1f} min |")
    print(f"keras-vpg / Spinning Up speed: "
          f"{summary['ratio_keras_vpg_over_spinningup_speed']:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--spinup-dir", required=True,
                        help="a Spinning Up checkout (the directory holding spinup/)")
    parser.add_argument("--spinup-git-dir", default="/work/.mirror/openai+spinningup/repo",
                        help="git dir to read Spinning Up's commit from when --spinup-dir "
                             "is not a git checkout")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per run")
    parser.add_argument("--warmup", type=int, default=2,
                        help="epochs run first and not timed (>= 1; see the module docstring)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of each trainer, alternating")
    parser.add_argument("--raw-steps", type=int, default=20000,
                        help="steps of the random-action loop (before and after)")
    parser.add_argument("--spinup-threads", type=int,
                        help="torch.set_num_threads for Spinning Up (default: torch's own, "
                             "as Spinning Up leaves it with one process)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--_spinup-worker", dest="spinup_worker", help=argparse.SUPPRESS)
    parser.add_argument("--_worker-epochs", dest="worker_epochs", type=int,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.spinup_worker:
        spinup_worker(args.spinup_dir, args.spinup_worker, args.worker_epochs, args.seed,
                      args.spinup_threads)
        return
    if args.warmup < 1 or args.epochs < 2 or args.repeats < 1:
        parser.error("--warmup and --repeats must be >= 1, --epochs >= 2")
    if not os.path.isdir(os.path.join(args.spinup_dir, "spinup")):
        parser.error(f"no spinup/ package in {args.spinup_dir}")

    load_before = os.getloadavg()
    raw_before = raw_steps_per_second(args.raw_steps, args.seed)
    print(f"raw loop: {raw_before:.0f} steps/s", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TRAINERS}
    raw_between = [raw_before]  # the raw loop before each run, and after the last
    with tempfile.TemporaryDirectory(prefix="spinup_timing_") as workdir:
        for index in range(args.repeats):
            for trainer in TRAINERS:
                if index or trainer != TRAINERS[0]:  # before the first run: raw_before
                    raw_between.append(raw_steps_per_second(args.raw_steps, args.seed))
                result = run_once(trainer, args, workdir, index)
                runs[trainer].append(result)
                diffs = " ".join(f"{d:.2f}" for d in result["epoch_diffs"])
                print(f"{trainer} run {index + 1}: {result['epoch_seconds']:.3f} s/epoch "
                      f"(epochs: {diffs}; warm-up {result['warmup_seconds']:.1f} s, "
                      f"process {result['process_seconds']:.1f} s; raw loop before "
                      f"{raw_between[-1]:.0f} steps/s)", flush=True)
    raw_after = raw_steps_per_second(args.raw_steps, args.seed)
    raw_between.append(raw_after)
    pairs = pair_figures(runs, raw_between)
    load_after = os.getloadavg()
    raw = (raw_before + raw_after) / 2
    epochs_3m = TARGET_STEPS // STEPS_PER_EPOCH
    summary = summarize(runs, raw, epochs_3m)
    print_table(summary, raw_before, raw_after, epochs_3m)
    print_pairs(pairs)
    for trainer in TRAINERS:
        if not summary[trainer]["trained"]:
            print(f"warning: {trainer}'s progress.txt lacks finite AverageEpRet rows")

    if args.json:
        figures = {
            "env": ENV_ID, "steps_per_epoch": STEPS_PER_EPOCH, "hidden_sizes": HIDDEN,
            "activation": "tanh", "timed_epochs": args.epochs, "warmup_epochs": args.warmup,
            "repeats": args.repeats, "seed": args.seed, "spinup_threads": args.spinup_threads,
            "extrapolated_epochs": epochs_3m,
            "raw_steps_per_second": {"before": raw_before, "after": raw_after, "mean": raw},
            **summary,
            "pairs": pairs,
            "machine": {
                "nproc": os.cpu_count(), "platform": platform.platform(),
                "python": platform.python_version(),
                "loadavg_before": load_before, "loadavg_after": load_after,
                **{name: package_version(name) for name in
                   ("torch", "jax", "keras", "gymnasium", "mujoco", "mpi4py", "keras-vpg")},
                "spinningup_commit": spinup_commit(args.spinup_dir, args.spinup_git_dir),
            },
        }
        directory = os.path.dirname(os.path.abspath(args.json))
        with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".tmp", delete=False) as f:
            json.dump(figures, f, indent=2)
            f.write("\n")
        os.replace(f.name, args.json)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
