"""The ``keras-vpg`` command: train | plot | test-policy | export | benchmark.

``--backend`` sets ``KERAS_BACKEND``; as importing the package already loaded
Keras, the command re-executes itself once when the backend has to change.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-vpg", description="Vanilla Policy Gradient (GAE-Lambda) on Keras 3."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a policy (one run per seed)")
    train.add_argument("--env", required=True, help="gymnasium env id, e.g. CartPole-v1")
    train.add_argument("--hid", type=int, nargs="+", default=[64, 64], help="hidden sizes")
    train.add_argument("--act", default="tanh", help="Keras activation of hidden layers")
    train.add_argument("--seed", type=int, nargs="+", default=[0], help="one run per seed")
    train.add_argument("--epochs", type=int, default=50)
    train.add_argument("--steps-per-epoch", type=int, default=4000)
    train.add_argument("--num-envs", type=int, default=1, help="vectorized envs per process")
    train.add_argument("--vector-mode", choices=["sync", "async"], default="sync")
    train.add_argument("--cpu", type=int, default=1, help="MPI processes (re-launches mpirun)")
    train.add_argument("--backend", choices=["tensorflow", "jax", "torch"],
                       help="Keras backend (default: KERAS_BACKEND or Keras's default)")
    train.add_argument("--exp-name", help="experiment name (default: from the env id)")
    train.add_argument("--data-dir", default="data", help="runs go to DATA_DIR/EXP/EXP_sSEED")
    train.add_argument("--gamma", type=float, default=0.99)
    train.add_argument("--lam", type=float, default=0.97)
    train.add_argument("--pi-lr", type=float, default=3e-4)
    train.add_argument("--vf-lr", type=float, default=1e-3)
    train.add_argument("--train-v-iters", type=int, default=80)
    train.add_argument("--max-ep-len", type=int, default=1000)
    train.add_argument("--save-freq", type=int, default=10)
    train.add_argument("--normalize-obs", action="store_true")
    train.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1)

    plot = commands.add_parser("plot", help="plot learning curves of run directories")
    plot.add_argument("logdir", nargs="+")
    plot.add_argument("--legend", "-l", nargs="*")
    plot.add_argument("--xaxis", "-x", default="TotalEnvInteracts")
    plot.add_argument("--value", "-y", nargs="*", default=["AverageEpRet"])
    plot.add_argument("--count", action="store_true")
    plot.add_argument("--smooth", "-s", type=int, default=1)
    plot.add_argument("--select", nargs="*")
    plot.add_argument("--exclude", nargs="*")
    plot.add_argument("--est", default="mean", choices=["mean", "max", "min"])
    plot.add_argument("--out", "-o", help="image file (default: show a window)")

    test = commands.add_parser("test-policy", help="run a saved policy and print returns")
    test.add_argument("run_dir")
    test.add_argument("--episodes", "-n", type=int, default=100)
    test.add_argument("--len", "-l", type=int, default=0, help="max episode length (0: env's)")
    test.add_argument("--norender", "-nr", action="store_true")
    test.add_argument("--itr", "-i", type=int, default=-1, help="checkpoint epoch (-1: last)")
    test.add_argument("--deterministic", "-d", action="store_true")
    test.add_argument("--env", help="env id (default: the run's saved gymnasium spec)")
    test.add_argument("--seed", type=int, default=0)
    test.add_argument("--backend", choices=["tensorflow", "jax", "torch"])

    export = commands.add_parser("export", help="export a run's policy for serving")
    export.add_argument("run_dir")
    export.add_argument("--format", default="tf_saved_model", choices=["tf_saved_model", "onnx"])
    export.add_argument("--out", help="output path (default: RUN_DIR/saved_model or policy.onnx)")
    export.add_argument("--itr", type=int, default=-1)
    export.add_argument("--backend", choices=["tensorflow", "jax", "torch"])

    bench = commands.add_parser("benchmark", help="run benchmarks/throughput.py")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def default_exp_name(env_id: str) -> str:
    """``HalfCheetah-v5`` -> ``halfcheetah-v5``: a directory-friendly experiment name."""
    return re.sub(r"[^a-z0-9_.-]+", "-", env_id.lower()).strip("-") or "vpg"


def _switch_backend(backend: str | None, argv: Sequence[str]) -> None:
    """Make ``backend`` the Keras backend, re-executing this command if Keras runs another."""
    if not backend:
        return
    os.environ["KERAS_BACKEND"] = backend
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            sys.stdout.flush()
            os.execv(sys.executable, [sys.executable, "-m", "keras_vpg", *argv])


def cmd_train(args: argparse.Namespace) -> None:
    if args.cpu < 1:
        raise CLIError(f"--cpu must be >= 1, got {args.cpu}")
    from keras_vpg import mpi

    mpi.mpi_fork(args.cpu)  # re-launches under mpirun and exits when cpu > 1
    import gymnasium as gym

    if args.env not in gym.registry:
        raise CLIError(f"unknown env id {args.env!r} (not in the gymnasium registry)")
    try:
        gym.make(args.env).close()
    except Exception as error:
        raise CLIError(f"cannot make env {args.env!r}: {error}") from error

    import keras_vpg

    exp_name = args.exp_name or default_exp_name(args.env)
    for seed in args.seed:
        output_dir = Path(args.data_dir) / exp_name / f"{exp_name}_s{seed}"
        if mpi.proc_id() == 0:
            print(f"keras-vpg: training {args.env} seed {seed} on "
                  f"{_backend_name()} ({mpi.num_procs()} process(es)) -> {output_dir}")
        agent = keras_vpg.VPG(
            lambda: gym.make(args.env),
            ac_kwargs=dict(hidden_sizes=tuple(args.hid), activation=args.act),
            seed=seed, steps_per_epoch=args.steps_per_epoch, gamma=args.gamma,
            pi_lr=args.pi_lr, vf_lr=args.vf_lr, train_v_iters=args.train_v_iters,
            lam=args.lam, max_ep_len=args.max_ep_len,
            logger_kwargs=dict(output_dir=str(output_dir), exp_name=exp_name),
            save_freq=args.save_freq, num_envs=args.num_envs, vector_mode=args.vector_mode,
            normalize_obs=args.normalize_obs,
        )
        agent.fit(epochs=args.epochs, verbose=args.verbose if mpi.proc_id() == 0 else 0)


def _backend_name() -> str:
    import keras

    return keras.backend.backend()


def cmd_plot(args: argparse.Namespace) -> None:
    from keras_vpg.plot import make_plots

    for logdir in args.logdir:
        path = Path(logdir)
        if not path.exists() and not list(path.parent.glob(path.name + "*")):
            raise CLIError(f"run directory {logdir!r} does not exist")
    make_plots(args.logdir, legend=args.legend, xaxis=args.xaxis, values=args.value,
               count=args.count, smooth=args.smooth, select=args.select, exclude=args.exclude,
               estimator=args.est, out=args.out)
    if args.out:
        print(f"keras-vpg: wrote {args.out}")
    else:
        import matplotlib.pyplot as plt

        plt.show()


def _check_run_dir(run_dir: str) -> Path:
    path = Path(run_dir)
    if not path.is_dir():
        raise CLIError(f"run directory {run_dir!r} does not exist")
    return path


def cmd_test_policy(args: argparse.Namespace) -> None:
    run_dir = _check_run_dir(args.run_dir)
    import gymnasium as gym

    from keras_vpg import serving

    ac = serving.load_model(serving.checkpoint_path(run_dir, args.itr))
    if args.env:
        if args.env not in gym.registry:
            raise CLIError(f"unknown env id {args.env!r} (not in the gymnasium registry)")
        env = gym.make(args.env, render_mode=None if args.norender else "human")
    else:
        try:
            env = serving.make_env_from_run(run_dir, render_mode=None if args.norender else "human")
        except Exception as error:
            raise CLIError(f"cannot rebuild the env of {str(run_dir)!r} ({error}); "
                           "pass --env ID") from error
    serving.run_policy(
        env, lambda obs: ac.act(obs, deterministic=args.deterministic),
        max_ep_len=args.len, num_episodes=args.episodes, render=not args.norender,
        seed=args.seed,
    )


def cmd_export(args: argparse.Namespace) -> None:
    run_dir = _check_run_dir(args.run_dir)
    from keras_vpg import serving

    ac = serving.load_model(serving.checkpoint_path(run_dir, args.itr))
    default = "saved_model" if args.format == "tf_saved_model" else "policy.onnx"
    out = args.out or str(run_dir / default)
    serving.export(ac, out, format=args.format)
    print(f"keras-vpg: exported {args.format} to {out}")


def cmd_benchmark(args: argparse.Namespace) -> None:
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "throughput.py"
    if not script.exists():
        raise CLIError(f"{script} not found: the benchmarks ship with the source tree")
    sys.exit(subprocess.call([sys.executable, str(script), *args.args]))


COMMANDS = {
    "train": cmd_train, "plot": cmd_plot, "test-policy": cmd_test_policy,
    "export": cmd_export, "benchmark": cmd_benchmark,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``keras-vpg`` and ``python -m keras_vpg``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    _switch_backend(getattr(args, "backend", None), argv)
    try:
        COMMANDS[args.command](args)
    except CLIError as error:
        print(f"keras-vpg {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, TypeError) as error:
        print(f"keras-vpg {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
