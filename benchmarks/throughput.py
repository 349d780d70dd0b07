"""Throughput of keras-vpg's full training loop against the environment's own speed.

For each env, measured side by side in one process (ratios are what to compare on a
shared, noisy machine):

- ``raw``: steps/s of a random-action loop (one env, or a ``SyncVectorEnv`` of N);
- ``fit``: steps/s of ``VPG.fit`` with Spinning Up's defaults (after a warm-up epoch);
- ``ratio``: fit / raw;
- ``update share``: the part of the fit time spent in the update;
- ``peak RSS`` of the process;
- optionally (``--sb3``) Stable-Baselines3 A2C with the same env count.

Examples::

    KERAS_BACKEND=jax python benchmarks/throughput.py
    python benchmarks/throughput.py --all-backends --num-envs 8 --json results.json
    python benchmarks/throughput.py --mpi 2          # HalfCheetah-v5, 2 ranks vs 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

BACKENDS = ("tensorflow", "jax", "torch")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "HalfCheetah-v5"])
    parser.add_argument("--num-envs", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after warm-up")
    parser.add_argument("--steps-per-epoch", type=int, default=4000)
    parser.add_argument("--raw-steps", type=int, default=20000)
    parser.add_argument("--backend", choices=BACKENDS)
    parser.add_argument("--all-backends", action="store_true")
    parser.add_argument("--sb3", action="store_true", help="also time SB3 A2C")
    parser.add_argument("--mpi", type=int, default=0, help="compare N MPI ranks with 1")
    parser.add_argument("--json", help="write the results as JSON to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def raw_steps_per_second(env_id: str, num_envs: int, steps: int) -> float:
    import gymnasium as gym

    if num_envs == 1:
        env = gym.make(env_id)
        env.reset(seed=0)
        env.action_space.seed(0)
        start = time.perf_counter()
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        return steps / (time.perf_counter() - start)
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id)] * num_envs)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    rounds = max(1, steps // num_envs)
    start = time.perf_counter()
    for _ in range(rounds):
        envs.step(envs.action_space.sample())
    return rounds * num_envs / (time.perf_counter() - start)


def fit_steps_per_second(env_id: str, num_envs: int, epochs: int, steps_per_epoch: int):
    """(steps/s of fit, share of fit time in the update)."""
    import gymnasium as gym

    import keras_vpg

    with tempfile.TemporaryDirectory() as tmp:
        agent = keras_vpg.VPG(lambda: gym.make(env_id), steps_per_epoch=steps_per_epoch,
                              num_envs=num_envs, logger_kwargs=dict(output_dir=tmp))
        agent.fit(epochs=1, verbose=0)  # compile and warm up
        update = agent.trainer.update
        update_seconds = [0.0]

        def timed_update(batch):
            start = time.perf_counter()
            result = update(batch)
            update_seconds[0] += time.perf_counter() - start
            return result

        agent.trainer.update = timed_update
        start = time.perf_counter()
        agent.fit(epochs=epochs, verbose=0)
        seconds = time.perf_counter() - start
        steps = agent.steps_per_env * num_envs * epochs * agent.num_procs
    return steps / seconds, update_seconds[0] / seconds


def sb3_steps_per_second(env_id: str, num_envs: int, steps: int) -> float | None:
    try:
        import torch
        from stable_baselines3 import A2C
        from stable_baselines3.common.env_util import make_vec_env
    except ImportError:
        return None
    torch.set_num_threads(1)
    envs = make_vec_env(env_id, n_envs=num_envs, seed=0)
    model = A2C("MlpPolicy", envs, seed=0, device="cpu")
    model.learn(total_timesteps=1000)  # warm-up
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    return steps / (time.perf_counter() - start)


def measure(args) -> dict:
    import keras

    rows = []
    for env_id in args.envs:
        raw = raw_steps_per_second(env_id, args.num_envs, args.raw_steps)
        fit, update_share = fit_steps_per_second(
            env_id, args.num_envs, args.epochs, args.steps_per_epoch
        )
        row = dict(env=env_id, backend=keras.backend.backend(), num_envs=args.num_envs,
                   raw_steps_per_s=raw, fit_steps_per_s=fit, ratio=fit / raw,
                   update_share=update_share)
        if args.sb3:
            sb3 = sb3_steps_per_second(env_id, args.num_envs, args.epochs * args.steps_per_epoch)
            row.update(sb3_a2c_steps_per_s=sb3, vs_sb3=None if sb3 is None else fit / sb3)
        rows.append(row)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for row in rows:
        row["peak_rss_mb"] = peak_mb
    return {"rows": rows}


def run_backend_subprocess(backend: str, argv: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run([sys.executable, __file__, "--worker", "--json", out, *argv], env=env,
                   check=True)
    with open(out) as f:
        result = json.load(f)
    os.remove(out)
    return result


def mpi_speedup(args) -> dict:
    """HalfCheetah-v5 fit steps/s with ``args.mpi`` ranks vs 1 (same total steps per epoch)."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from keras_vpg.mpi import mpirun_command

    results = {}
    for n in (1, args.mpi):
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            out = f.name
        command = [sys.executable, __file__, "--worker", "--json", out, "--envs",
                   "HalfCheetah-v5", "--epochs", str(args.epochs), "--steps-per-epoch",
                   str(args.steps_per_epoch), "--raw-steps", "2000"]
        if n > 1:
            command = mpirun_command(n) + command
        subprocess.run(command, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        with open(out) as f:
            results[n] = json.load(f)["rows"][0]["fit_steps_per_s"]
        os.remove(out)
    return {"mpi": {"ranks": args.mpi, "steps_per_s_1": results[1],
                    f"steps_per_s_{args.mpi}": results[args.mpi],
                    "speedup": results[args.mpi] / results[1]}}


def print_table(result: dict) -> None:
    rows = result.get("rows", [])
    if rows:
        header = (f"{'env':<16}{'backend':<12}{'envs':>5}{'raw/s':>10}{'fit/s':>10}"
                  f"{'ratio':>9}{'update':>8}{'RSS MB':>8}")
        has_sb3 = any("sb3_a2c_steps_per_s" in r for r in rows)
        if has_sb3:
            header += f"{'A2C/s':>9}{'vs A2C':>8}"
        print(header)
        for r in rows:
            line = (f"{r['env']:<16}{r['backend']:<12}{r['num_envs']:>5}"
                    f"{r['raw_steps_per_s']:>10.0f}{r['fit_steps_per_s']:>10.0f}"
                    f"{100 * r['ratio']:>8.1f}%{100 * r['update_share']:>7.1f}%"
                    f"{r['peak_rss_mb']:>8.0f}")
            if has_sb3:
                sb3 = r.get("sb3_a2c_steps_per_s")
                line += "      n/a     n/a" if sb3 is None else f"{sb3:>9.0f}{r['vs_sb3']:>7.2f}x"
            print(line)
        by_env: dict[str, list[float]] = {}
        for r in rows:
            by_env.setdefault(r["env"], []).append(r["fit_steps_per_s"])
        for env_id, speeds in by_env.items():
            if len(speeds) > 1:
                print(f"{env_id}: slowest/fastest backend = {min(speeds) / max(speeds):.2f}")
    if "mpi" in result:
        m = result["mpi"]
        many = m["steps_per_s_" + str(m["ranks"])]
        print(f"HalfCheetah-v5 MPI: {m['ranks']} ranks vs 1: speedup {m['speedup']:.2f}x "
              f"({m['steps_per_s_1']:.0f} -> {many:.0f} steps/s)")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.mpi:
        result = mpi_speedup(args)
    elif args.all_backends:
        forwarded = [a for a in argv if a not in ("--all-backends",)]
        forwarded = _drop_option(forwarded, "--json")
        result = {"rows": []}
        for backend in BACKENDS:
            result["rows"] += run_backend_subprocess(backend, forwarded)["rows"]
    else:
        result = measure(args)
    if args.worker:
        from keras_vpg import mpi

        if mpi.proc_id() != 0:
            return
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    if not args.worker:
        print_table(result)


def _drop_option(argv: list[str], name: str) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == name:
            skip = True
            continue
        if a.startswith(name + "="):
            continue
        out.append(a)
    return out


if __name__ == "__main__":
    main()
