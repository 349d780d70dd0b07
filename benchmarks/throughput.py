"""Throughput of keras-vpg's full training loop against the environment's own speed.

Every figure that is compared is measured side by side in one worker process (on a
shared, noisy machine, ratios are what to compare):

- ``raw/s``: env steps/s of a random-action loop, one ``gym.make`` env or, with
  ``--num-envs N > 1``, a ``gymnasium.vector.SyncVectorEnv`` of N; measured
  before and after the fit, averaged;
- ``fit/s``: env steps/s of ``VPG.fit`` with Spinning Up's defaults
  (``steps_per_epoch`` 4000, ``train_v_iters`` 80, (64, 64) tanh MLPs), after one
  warm-up epoch (compilation), ``verbose=0``, output to a temporary directory;
  the wall time of the whole ``fit(epochs)`` call;
- ``ratio``: fit/s over raw/s;
- ``update``: the share of that wall time the loop spent on the update (values
  and advantages, the policy step, and the value steps or the wait for them when
  they overlap the next epoch's collection); ``value ms`` is the value steps' own
  duration per epoch, in the background or not;
- ``RSS``: the worker's peak resident memory (``getrusage``), one env per worker;
- with ``--sb3``, Stable-Baselines3 A2C (same env count, ``torch.set_num_threads(1)``)
  timed in the same worker after the fit, and our fit/s over its steps/s.

Each (backend, env, env count) runs in a fresh worker process; ``--repeats R``
runs each R times and keeps the run with the median ratio. ``--mpi N`` compares
the HalfCheetah-v5 fit under ``mpirun -np N`` (launched as ``--cpu N`` does)
with one process on keras-vpg's defaults (same total ``steps_per_epoch``;
with ``--repeats`` the pairs alternate and medians are compared).

Examples::

    KERAS_BACKEND=jax python benchmarks/throughput.py
    python benchmarks/throughput.py --backend torch --num-envs 1 8 --sb3
    python benchmarks/throughput.py --all-backends --num-envs 1 8 --sb3 --json results.json
    python benchmarks/throughput.py --mpi 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

BACKENDS = ("tensorflow", "jax", "torch")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ENVS = ("CartPole-v1", "HalfCheetah-v5")

#: Issue #5's targets: (description, check) evaluated by :func:`evaluate_targets`.
RATIO_EVERY_BACKEND_1ENV = {"CartPole-v1": 0.028, "HalfCheetah-v5": 0.18}
RATIO_FASTEST_1ENV = {"CartPole-v1": 0.057, "HalfCheetah-v5": 0.28}
RATIO_FASTEST_8ENV = {"CartPole-v1": 0.25, "HalfCheetah-v5": 0.60}
VS_SB3 = 2.0
UPDATE_SHARE_MAX = 0.15
SLOWEST_OVER_FASTEST = 0.5
RSS_MAX_MB = {"tensorflow": 2500, "jax": 1500, "torch": 1500}
MPI_SPEEDUP_2 = 1.6  # issue #6: 2 ranks vs 1 on a 2-core machine


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS), metavar="ENV_ID")
    parser.add_argument("--num-envs", nargs="+", type=int, default=[1], metavar="N",
                        help="env counts to measure (e.g. --num-envs 1 8)")
    parser.add_argument("--epochs", type=int, default=6,
                        help="timed epochs after the warm-up (the last epoch of a fit has "
                             "no next collection to overlap its value steps with)")
    parser.add_argument("--steps-per-epoch", type=int, default=4000)
    parser.add_argument("--raw-seconds", type=float, default=1.0,
                        help="duration of each raw random-action loop")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="Keras backend (default: KERAS_BACKEND, else Keras's default)")
    parser.add_argument("--all-backends", action="store_true",
                        help="measure every backend, one worker process per row")
    parser.add_argument("--sb3", action="store_true",
                        help="also time Stable-Baselines3 A2C in each worker")
    parser.add_argument("--repeats", type=int, default=1,
                        help="workers per row; the run with the median ratio is kept")
    parser.add_argument("--mpi", type=int, default=0, metavar="N",
                        help="HalfCheetah-v5 fit with N MPI processes vs 1 (issue #6)")
    parser.add_argument("--json", help="write the results (and target checks) to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # "ENV_ID:NUM_ENVS"
    return parser.parse_args(argv)


# -- measurements (inside a worker process) ------------------------------------------------
def raw_steps_per_second(env_id: str, num_envs: int, seconds: float) -> float:
    """Env steps/s of a random-action loop (one env, or a SyncVectorEnv of ``num_envs``)."""
    import gymnasium as gym

    if num_envs == 1:
        env = gym.make(env_id)
        env.reset(seed=0)
        env.action_space.seed(0)
        sample, step, reset = env.action_space.sample, env.step, env.reset
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(500):
                _, _, terminated, truncated, _ = step(sample())
                if terminated or truncated:
                    reset()
            steps += 500
        elapsed = time.perf_counter() - start
        env.close()
        return steps / elapsed
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id)] * num_envs)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    sample, step = envs.action_space.sample, envs.step
    rounds, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            step(sample())
        rounds += 100
    elapsed = time.perf_counter() - start
    envs.close()
    return rounds * num_envs / elapsed


def fit_steps_per_second(env_id: str, num_envs: int, epochs: int, steps_per_epoch: int) -> dict:
    """``VPG.fit`` steps/s with Spinning Up's defaults, and the update's share of the time."""
    import gymnasium as gym

    import keras_vpg

    with tempfile.TemporaryDirectory() as tmp:
        agent = keras_vpg.VPG(lambda: gym.make(env_id), steps_per_epoch=steps_per_epoch,
                              num_envs=num_envs, logger_kwargs=dict(output_dir=tmp))
        agent.fit(epochs=1, verbose=0)  # compile and warm up
        update_value = agent.trainer.update_value
        value_seconds = [0.0]

        def timed_update_value(batch):  # its own duration, also when in the background
            start = time.perf_counter()
            result = update_value(batch)
            value_seconds[0] += time.perf_counter() - start
            return result

        agent.trainer.update_value = timed_update_value
        waited_before = agent._update_seconds
        start = time.perf_counter()
        history = agent.fit(epochs=epochs, verbose=0)
        seconds = time.perf_counter() - start
        waited = agent._update_seconds - waited_before
        steps = agent.steps_per_env * num_envs * epochs * agent.num_procs
        close = getattr(agent, "close", None)
        if close is not None:
            close()
    return {
        "fit_steps_per_s": steps / seconds,
        "update_share": waited / seconds,
        "update_ms_per_epoch": 1000 * waited / epochs,
        "value_steps_ms_per_epoch": 1000 * value_seconds[0] / epochs,
        "overlap_update": bool(agent.overlap_update),
        "in_loop_steps_per_s": statistics.median(history.history.get("StepsPerSecond", [0.0])),
        "num_procs": agent.num_procs,
    }


def sb3_steps_per_second(env_id: str, num_envs: int, steps: int) -> float | None:
    """Stable-Baselines3 A2C steps/s (defaults, CPU, one torch thread), or None if absent."""
    try:
        import torch
        from stable_baselines3 import A2C
        from stable_baselines3.common.env_util import make_vec_env
    except ImportError:
        return None
    torch.set_num_threads(1)
    envs = make_vec_env(env_id, n_envs=num_envs, seed=0)
    model = A2C("MlpPolicy", envs, seed=0, device="cpu")
    model.learn(total_timesteps=max(500, 100 * num_envs))  # warm-up
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - start
    envs.close()
    return steps / elapsed


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def run_worker(args: argparse.Namespace) -> dict:
    """One row: raw loop, fit, raw loop again (and SB3) for one env and env count."""
    env_id, num_envs = args.worker.rsplit(":", 1)
    num_envs = int(num_envs)
    import keras

    from keras_vpg import mpi
    try:
        from keras_vpg.trainers.base import APPLIED_SETTINGS
    except ImportError:  # older keras-vpg
        APPLIED_SETTINGS = {}

    measure_raw = mpi.num_procs() == 1
    raw_before = raw_steps_per_second(env_id, num_envs, args.raw_seconds) if measure_raw else None
    fit = fit_steps_per_second(env_id, num_envs, args.epochs, args.steps_per_epoch)
    raw_after = raw_steps_per_second(env_id, num_envs, args.raw_seconds) if measure_raw else None
    row = dict(env=env_id, backend=keras.backend.backend(), num_envs=num_envs, **fit)
    row["peak_rss_mb"] = peak_rss_mb()
    if measure_raw:
        raw = (raw_before + raw_after) / 2
        row.update(raw_steps_per_s=raw, raw_before=raw_before, raw_after=raw_after,
                   ratio=row["fit_steps_per_s"] / raw)
    row["thread_settings"] = dict(APPLIED_SETTINGS)
    row["versions"] = _versions()
    if args.sb3:
        sb3 = sb3_steps_per_second(env_id, num_envs, args.epochs * args.steps_per_epoch)
        row["sb3_a2c_steps_per_s"] = sb3
        row["vs_sb3"] = None if sb3 is None else row["fit_steps_per_s"] / sb3
        if sb3 is not None and measure_raw:
            row["sb3_ratio"] = sb3 / row["raw_steps_per_s"]
    return row


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("keras", "tensorflow", "jax", "torch", "gymnasium", "mujoco", "numpy",
                 "stable-baselines3"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


# -- orchestration --------------------------------------------------------------------------
def _worker_command(args: argparse.Namespace, env_id: str, num_envs: int, out: str) -> list[str]:
    command = [sys.executable, os.path.abspath(__file__), "--worker", f"{env_id}:{num_envs}",
               "--json", out, "--epochs", str(args.epochs),
               "--steps-per-epoch", str(args.steps_per_epoch),
               "--raw-seconds", str(args.raw_seconds)]
    return command + (["--sb3"] if args.sb3 else [])


def spawn_worker(args, backend: str | None, env_id: str, num_envs: int,
                 launcher: list[str] | None = None, extra_env: dict | None = None) -> dict:
    """Run one worker (in a scratch directory: MuJoCo writes MUJOCO_LOG.TXT to the cwd)."""
    env = dict(os.environ, **(extra_env or {}))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    if backend:
        env["KERAS_BACKEND"] = backend
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "row.json")
        command = (launcher or []) + _worker_command(args, env_id, num_envs, out)
        done = subprocess.run(command, env=env, cwd=scratch, capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(out):
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            raise RuntimeError(f"benchmark worker failed: {' '.join(command)}")
        with open(out) as f:
            return json.load(f)


def measure_rows(args: argparse.Namespace) -> list[dict]:
    backends = list(BACKENDS) if args.all_backends else [args.backend]
    rows = []
    for num_envs in args.num_envs:
        for env_id in args.envs:
            for backend in backends:
                runs = [spawn_worker(args, backend, env_id, num_envs)
                        for _ in range(max(1, args.repeats))]
                runs.sort(key=lambda r: r.get("ratio", r["fit_steps_per_s"]))
                row = runs[len(runs) // 2]
                if len(runs) > 1:
                    row["repeat_ratios"] = [r.get("ratio") for r in runs]
                rows.append(row)
                print(_format_row(row), flush=True)
    return rows


def mpi_speedup(args: argparse.Namespace) -> dict:
    """HalfCheetah-v5 fit steps/s with ``args.mpi`` ranks vs 1 (same total steps per epoch).

    The one-process run uses keras-vpg's own thread defaults (what ``keras-vpg
    train`` without ``--cpu`` gets: on PyTorch the update then uses every core);
    the ranks get the environment ``keras-vpg train --cpu N`` gives them (one
    OpenMP/MKL thread each). With ``--repeats R`` the two runs alternate R times
    and the medians are compared, so a noisy spell on the machine hits both.
    """
    sys.path.insert(0, REPO)
    from keras_vpg.mpi import mpirun_command

    env_id = "HalfCheetah-v5"
    rank_env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # as mpi_fork sets
    ones, manys = [], []
    for _ in range(max(1, args.repeats)):
        ones.append(spawn_worker(args, args.backend, env_id, 1))
        manys.append(spawn_worker(args, args.backend, env_id, 1,
                                  launcher=mpirun_command(args.mpi), extra_env=rank_env))
    one = statistics.median(r["fit_steps_per_s"] for r in ones)
    many = statistics.median(r["fit_steps_per_s"] for r in manys)
    result = {"ranks": args.mpi, "backend": ones[0]["backend"],
              "steps_per_s_1": one, f"steps_per_s_{args.mpi}": many, "speedup": many / one,
              "update_ms_1": statistics.median(r["update_ms_per_epoch"] for r in ones),
              f"update_ms_{args.mpi}": statistics.median(r["update_ms_per_epoch"] for r in manys)}
    if len(ones) > 1:
        result["repeat_speedups"] = [m["fit_steps_per_s"] / o["fit_steps_per_s"]
                                     for o, m in zip(ones, manys)]
    return result


# -- targets and table ----------------------------------------------------------------------
def evaluate_targets(rows: list[dict]) -> list[dict]:
    """Issue #5's targets, checked on the rows that were measured."""
    checks = []

    def add(name, value, threshold, met):
        checks.append(dict(target=name, value=value, threshold=threshold, met=bool(met)))

    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["env"], r["num_envs"]), []).append(r)
    for (env_id, num_envs), group in groups.items():
        measured = [r for r in group if r.get("ratio") is not None]
        if not measured:
            continue
        fastest = max(measured, key=lambda r: r["ratio"])
        best = "fastest backend" if len(measured) > 1 else "only backend measured"
        if num_envs == 1 and env_id in RATIO_EVERY_BACKEND_1ENV:
            floor = RATIO_EVERY_BACKEND_1ENV[env_id]
            for r in measured:
                add(f"{env_id} 1 env {r['backend']}: ratio", r["ratio"], floor,
                    r["ratio"] >= floor)
            add(f"{env_id} 1 env {best} ({fastest['backend']}): ratio", fastest["ratio"],
                RATIO_FASTEST_1ENV[env_id], fastest["ratio"] >= RATIO_FASTEST_1ENV[env_id])
        if num_envs == 8 and env_id in RATIO_FASTEST_8ENV:
            add(f"{env_id} 8 envs {best} ({fastest['backend']}): ratio", fastest["ratio"],
                RATIO_FASTEST_8ENV[env_id], fastest["ratio"] >= RATIO_FASTEST_8ENV[env_id])
        for r in measured:
            if r.get("vs_sb3") is not None:
                add(f"{env_id} {num_envs} env(s) {r['backend']}: vs SB3 A2C", r["vs_sb3"],
                    VS_SB3, r["vs_sb3"] >= VS_SB3)
        if num_envs == 1 and env_id == "HalfCheetah-v5":
            for r in measured:
                add(f"{env_id} 1 env {r['backend']}: update share", r["update_share"],
                    UPDATE_SHARE_MAX, r["update_share"] <= UPDATE_SHARE_MAX)
        if len(measured) > 1:
            slowest = min(measured, key=lambda r: r["ratio"])
            value = slowest["ratio"] / fastest["ratio"]
            add(f"{env_id} {num_envs} env(s): slowest ({slowest['backend']}) / fastest",
                value, SLOWEST_OVER_FASTEST, value >= SLOWEST_OVER_FASTEST)
        if env_id == "HalfCheetah-v5":
            for r in measured:
                limit = RSS_MAX_MB.get(r["backend"])
                if limit:
                    add(f"{env_id} {num_envs} env(s) {r['backend']}: peak RSS MB",
                        r["peak_rss_mb"], limit, r["peak_rss_mb"] <= limit)
    return checks


HEADER = (f"{'env':<16}{'backend':<12}{'envs':>5}{'raw/s':>10}{'fit/s':>9}{'ratio':>8}"
          f"{'update':>8}{'value ms':>9}{'RSS MB':>8}{'A2C/s':>8}{'A2C ratio':>10}{'vs A2C':>8}")


def _percent(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ms(x) -> str:
    return "n/a" if x is None else f"{x:.0f}"


def _format_row(r: dict) -> str:
    raw = r.get("raw_steps_per_s")
    raw_text = "n/a" if raw is None else f"{raw:.0f}"
    line = (f"{r['env']:<16}{r['backend']:<12}{r['num_envs']:>5}{raw_text:>10}"
            f"{r['fit_steps_per_s']:>9.0f}{_percent(r.get('ratio')):>8}"
            f"{_percent(r['update_share']):>8}{_ms(r.get('value_steps_ms_per_epoch')):>9}"
            f"{r['peak_rss_mb']:>8.0f}")
    sb3 = r.get("sb3_a2c_steps_per_s")
    if sb3:
        line += f"{sb3:>8.0f}{_percent(r.get('sb3_ratio')):>10}{r['vs_sb3']:>7.2f}x"
    return line


def print_table(result: dict) -> None:
    rows = result.get("rows", [])
    if rows:
        print()
        print(HEADER)
        for r in rows:
            print(_format_row(r))
        groups: dict[tuple[str, int], list[dict]] = {}
        for r in rows:
            if r.get("ratio") is not None:
                groups.setdefault((r["env"], r["num_envs"]), []).append(r)
        for (env_id, num_envs), group in groups.items():
            if len(group) > 1:
                ratios = [r["ratio"] for r in group]
                print(f"{env_id}, {num_envs} env(s): slowest/fastest backend = "
                      f"{min(ratios) / max(ratios):.2f}")
    if result.get("targets"):
        print("\nIssue #5 targets:")
        for c in result["targets"]:
            value, threshold = c["value"], c["threshold"]
            fmt = (lambda x: f"{100 * x:.1f}%") if threshold < 1 else (lambda x: f"{x:.2f}")
            if "RSS" in c["target"]:
                fmt = lambda x: f"{x:.0f}"  # noqa: E731
            print(f"  [{'met' if c['met'] else 'NOT met'}] {c['target']}: {fmt(value)} "
                  f"(target {'<=' if 'share' in c['target'] or 'RSS' in c['target'] else '>='} "
                  f"{fmt(threshold)})")
    if "mpi" in result:
        m = result["mpi"]
        many = m["steps_per_s_" + str(m["ranks"])]
        met = "met" if m["speedup"] >= MPI_SPEEDUP_2 or m["ranks"] != 2 else "NOT met"
        print(f"HalfCheetah-v5 on {m['backend']}, {m['ranks']} MPI processes vs 1: speedup "
              f"{m['speedup']:.2f}x ({m['steps_per_s_1']:.0f} -> {many:.0f} steps/s)"
              + (f" [{met}: issue #6 target >= {MPI_SPEEDUP_2}x]" if m["ranks"] == 2 else ""))
        print(f"  update per epoch: {m['update_ms_1']:.0f} ms with 1 process, "
              f"{m['update_ms_' + str(m['ranks'])]:.0f} ms per rank with {m['ranks']}"
              + (f"; speedup of each pair: {', '.join(f'{x:.2f}' for x in m['repeat_speedups'])}"
                 if "repeat_speedups" in m else ""))


def main(argv=None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend  # before any Keras import
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.worker:
        row = run_worker(args)
        from keras_vpg import mpi

        if mpi.proc_id() == 0 and args.json:
            write_json(args.json, row)
        return
    result: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                "python": platform.python_version()},
                    "settings": {"epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
                                 "raw_seconds": args.raw_seconds, "repeats": args.repeats}}
    if args.mpi:
        result["mpi"] = mpi_speedup(args)
    else:
        print(HEADER, flush=True)
        result["rows"] = measure_rows(args)
        result["targets"] = evaluate_targets(result["rows"])
    print_table(result)
    if args.json:
        write_json(args.json, result)


def write_json(path: str, data: dict) -> None:
    """Write ``data`` to a temporary name beside ``path``, then rename (never half-written)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
