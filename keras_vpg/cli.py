"""The ``keras-vpg`` command: train | plot | test-policy | export | benchmark.

The command parses its arguments before anything imports Keras, so ``--backend``
simply sets ``KERAS_BACKEND`` (see :mod:`keras_vpg._backend` for the order in
which the backend is chosen and the fallback when it is not installed); ``plot``
never imports Keras at all. User errors (an unknown env id, a missing run
directory, a bad value, a backend or extra that is not installed) are one line on
stderr and exit status 2; ``--debug`` or ``KERAS_VPG_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import re
import shlex
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keras_vpg import __version__
from keras_vpg._backend import BACKENDS, BackendNotInstalled, ensure_backend, install_hint

#: Environment variable: when set (to anything but 0), user errors show their traceback.
DEBUG_ENV = "KERAS_VPG_DEBUG"


class CLIError(Exception):
    """A user error: printed as one line on stderr, exit status 2."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows ``(default: ...)`` after each option's help, except for flags and unset defaults."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        default = action.default
        if default is None or default is False or default == argparse.SUPPRESS:
            return help_text
        if "%(default)" in help_text:
            return help_text
        if not action.option_strings and action.nargs not in ("?", "*"):
            return help_text
        if isinstance(default, (list, tuple)):
            shown = " ".join(str(v) for v in default)
            return f"{help_text} (default: {shown})"
        return f"{help_text} (default: %(default)s)"


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _common_parser(backend: bool) -> argparse.ArgumentParser:
    """Options every subcommand has (``--backend`` only where Keras runs)."""
    common = argparse.ArgumentParser(add_help=False)
    if backend:
        common.add_argument(
            "--backend", choices=BACKENDS,
            help="Keras backend; wins over KERAS_BACKEND; without either, keras.json's, "
                 "or the first installed of jax, torch, tensorflow",
        )
    common.add_argument("--debug", action="store_true",
                        help=f"show the traceback of errors (or set {DEBUG_ENV}=1)")
    return common


# -- train ---------------------------------------------------------------------------------
def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train`` options (Spinning Up's names; defaults those of :class:`keras_vpg.VPG`)."""
    parser.add_argument("--env", required=True,
                        help="gymnasium env id, e.g. CartPole-v1 or HalfCheetah-v5")
    parser.add_argument("--hid", type=_int_at_least(1), nargs="+", default=[64, 64],
                        help="hidden layer sizes of the policy and value MLPs")
    parser.add_argument("--act", default="tanh",
                        help="Keras activation of the hidden layers (tanh, relu, ...)")
    parser.add_argument("--seed", type=_int_at_least(0), nargs="+", default=[0],
                        help="random seed; several seeds train one run each")
    parser.add_argument("--epochs", type=_int_at_least(1), default=50,
                        help="epochs (one policy update each)")
    parser.add_argument("--steps-per-epoch", type=int, default=4000,
                        help="env steps per epoch, summed over envs and processes")
    parser.add_argument("--num-envs", type=int, default=1,
                        help="gymnasium vector envs stepped together in each process")
    parser.add_argument("--vector-mode", choices=["sync", "async"], default="sync",
                        help="step the envs in this process (sync) or in subprocesses (async)")
    parser.add_argument("--cpu", type=_int_at_least(1), default=1,
                        help="MPI processes (re-launches itself under mpirun; needs the mpi extra)")
    parser.add_argument("--exp-name",
                        help="experiment name (default: the env id in lower case)")
    parser.add_argument("--data-dir", default="data",
                        help="runs are written to DATA_DIR/EXP_NAME/EXP_NAME_sSEED")
    parser.add_argument("--gamma", type=float, default=0.99, help="discount factor")
    parser.add_argument("--lam", type=float, default=0.97, help="GAE-Lambda's lambda")
    parser.add_argument("--pi-lr", type=float, default=3e-4,
                        help="policy learning rate (Adam)")
    parser.add_argument("--vf-lr", type=float, default=1e-3,
                        help="value function learning rate (Adam)")
    parser.add_argument("--train-v-iters", type=int, default=80,
                        help="value function gradient steps per epoch")
    parser.add_argument("--max-ep-len", type=int, default=1000,
                        help="cut episodes after this many steps (0: only the env's own limit)")
    parser.add_argument("--save-freq", type=int, default=10,
                        help="write model_EPOCH.keras every this many epochs")
    parser.add_argument("--normalize-obs", action="store_true",
                        help="standardize observations with running statistics (in the model)")
    parser.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1,
                        help="0 silent, 1 progress bar and a line per epoch, 2 the line only")


def default_exp_name(env_id: str) -> str:
    """``HalfCheetah-v5`` -> ``halfcheetah-v5``: a directory-friendly experiment name."""
    return re.sub(r"[^a-z0-9_.-]+", "-", env_id.lower()).strip("-") or "vpg"


def run_dir_of(args: argparse.Namespace, seed: int) -> Path:
    """``DATA_DIR/EXP_NAME/EXP_NAME_sSEED``: where seed ``seed`` of a train command goes."""
    exp_name = args.exp_name or default_exp_name(args.env)
    return Path(args.data_dir) / exp_name / f"{exp_name}_s{seed}"


def vpg_kwargs(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The keyword arguments of :class:`keras_vpg.VPG` (all but ``env_fn``) for one seed."""
    exp_name = args.exp_name or default_exp_name(args.env)
    return dict(
        ac_kwargs=dict(hidden_sizes=tuple(args.hid), activation=args.act),
        seed=seed, steps_per_epoch=args.steps_per_epoch, gamma=args.gamma,
        pi_lr=args.pi_lr, vf_lr=args.vf_lr, train_v_iters=args.train_v_iters,
        lam=args.lam, max_ep_len=args.max_ep_len,
        logger_kwargs=dict(output_dir=str(run_dir_of(args, seed)), exp_name=exp_name),
        save_freq=args.save_freq, num_envs=args.num_envs, vector_mode=args.vector_mode,
        normalize_obs=args.normalize_obs,
    )


def _check_env_id(env_id: str) -> None:
    """One-line errors for an unknown env id or one whose dependencies are missing."""
    import gymnasium as gym

    if env_id not in gym.registry:
        close = [name for name in gym.registry if name.lower().startswith(env_id.lower()[:4])]
        hint = f"; did you mean {', '.join(sorted(close)[:3])}?" if close else ""
        raise CLIError(f"unknown env id {env_id!r} (not in the gymnasium registry){hint}")
    try:
        gym.make(env_id).close()
    except gym.error.DependencyNotInstalled as error:
        extra = ' (or pip install "keras-vpg[mujoco]")' if "mujoco" in str(error).lower() else ""
        raise CLIError(f"cannot make env {env_id!r}: {error}{extra}") from error


def cmd_train(args: argparse.Namespace) -> None:
    _select_backend(args)
    from keras_vpg import mpi

    if mpi.num_procs() == 1:
        _check_env_id(args.env)  # once, before launching ranks
    try:
        mpi.mpi_fork(args.cpu)  # re-launches under mpirun and exits when cpu > 1
    except RuntimeError as error:  # no MPI installed
        raise CLIError(str(error)) from error
    import gymnasium as gym
    import keras

    import keras_vpg

    rank0 = mpi.proc_id() == 0
    summaries = []
    for seed in args.seed:
        run_dir = run_dir_of(args, seed)
        if rank0:
            print(f"keras-vpg: training {args.env} seed {seed} on {keras.backend.backend()} "
                  f"({mpi.num_procs()} process(es)) -> {run_dir}", flush=True)
        start = time.perf_counter()
        try:
            agent = keras_vpg.VPG(lambda: gym.make(args.env), **vpg_kwargs(args, seed))
        except (ValueError, TypeError) as error:
            raise CLIError(str(error)) from error
        try:
            history = agent.fit(epochs=args.epochs, verbose=args.verbose if rank0 else 0)
        finally:
            agent.close()
        summaries.append(_run_summary(run_dir, history.history, time.perf_counter() - start))
    if rank0:
        for line in summaries:
            print(line)
        print(_next_steps(args))


def _run_summary(run_dir: Path, logs: dict[str, list[float]], seconds: float) -> str:
    """One line: final AverageEpRet, steps and wall time, steps/s and the run directory.

    The speed is the last epoch's (the first ones include compilation).
    """
    final_return = logs.get("AverageEpRet", [math.nan])[-1]
    steps = int(logs.get("TotalEnvInteracts", [0])[-1])
    speed = logs.get("StepsPerSecond", [steps / max(seconds, 1e-9)])[-1]
    return (f"keras-vpg: done {run_dir.name}: AverageEpRet {final_return:.4g} (last epoch), "
            f"{steps:,} steps in {seconds:.1f} s ({speed:,.0f} steps/s in the last epoch) "
            f"-> {run_dir}")


def _next_steps(args: argparse.Namespace) -> str:
    first = run_dir_of(args, args.seed[0])
    exp_dir = shlex.quote(str(first.parent))
    run = shlex.quote(str(first))
    export_note = ("" if importlib.util.find_spec("tensorflow") is not None
                   else f"   # needs {install_hint('tensorflow')}")
    return "\n".join([
        "Next:",
        f"  keras-vpg plot {exp_dir} --out {shlex.quote(first.parent.name + '.png')}",
        f"  keras-vpg test-policy {run} --norender",
        f"  keras-vpg export {run}{export_note}",
    ])


# -- plot ----------------------------------------------------------------------------------
def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``plot`` options (Spinning Up's ``plot`` names)."""
    parser.add_argument(
        "logdir", nargs="+",
        help="run directories or directories of runs (searched for progress.txt); a path "
             "that does not exist is a prefix: data/hc matches data/hc-lr1e-3 too",
    )
    parser.add_argument("--legend", "-l", nargs="*",
                        help="one legend label per curve (default: the experiment names, or "
                             "the directories when names collide)")
    parser.add_argument("--xaxis", "-x", default="TotalEnvInteracts",
                        help="progress.txt column of the x axis (e.g. Epoch, Time)")
    parser.add_argument("--value", "-y", nargs="*", default=["AverageEpRet"],
                        help="progress.txt column(s) to plot; one figure each")
    parser.add_argument("--count", action="store_true",
                        help="one curve per run instead of the estimate over seeds")
    parser.add_argument("--smooth", "-s", type=_int_at_least(1), default=1,
                        help="window of a centered moving average (1: none)")
    parser.add_argument("--select", nargs="*",
                        help="keep only runs whose path contains all of these strings")
    parser.add_argument("--exclude", nargs="*",
                        help="drop runs whose path contains any of these strings")
    parser.add_argument("--est", default="mean", choices=["mean", "max", "min"],
                        help="estimate over the seeds of an experiment (band: ± std)")
    parser.add_argument("--out", "-o",
                        help="image file to write, NAME_VALUE.EXT per value when several "
                             "(default: a window; without a display LOGDIR.png)")


def cmd_plot(args: argparse.Namespace) -> None:
    from keras_vpg.plot import make_plots

    for logdir in args.logdir:
        path = Path(logdir)
        parent = path.parent if str(path.parent) else Path(".")
        if not path.exists() and not list(parent.glob(path.name + "*")):
            raise CLIError(f"run directory {logdir!r} does not exist")
    out = args.out
    if out is None and not _has_display():
        out = (Path(args.logdir[0]).resolve().name or "plot") + ".png"
        print("keras-vpg plot: no display: writing to a file (--out to choose it)",
              file=sys.stderr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            make_plots(args.logdir, legend=args.legend, xaxis=args.xaxis, values=args.value,
                       count=args.count, smooth=args.smooth, select=args.select,
                       exclude=args.exclude, estimator=args.est, out=out)
        except (ValueError, FileNotFoundError) as error:
            raise CLIError(str(error)) from error
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            print(f"keras-vpg plot: warning: {warning.message}", file=sys.stderr)
    if out is not None:
        from keras_vpg.plot import output_files

        written = ", ".join(output_files(out, args.value))
        print(f"keras-vpg: wrote {written}")
    else:
        import matplotlib.pyplot as plt

        plt.show()


def _has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


# -- test-policy ---------------------------------------------------------------------------
def add_test_policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory (holding model.keras and config.json)")
    parser.add_argument("--episodes", "-n", type=_int_at_least(1), default=100,
                        help="episodes to run (Spinning Up's default)")
    parser.add_argument("--len", "-l", type=_int_at_least(0), default=0,
                        help="cut episodes after this many steps (0: only the env's own limit)")
    parser.add_argument("--norender", "-nr", action="store_true",
                        help="run without a window, batched over --num-envs envs (fast)")
    parser.add_argument("--itr", "-i", type=int, default=-1,
                        help="checkpoint model_ITR.keras (-1: the last, model.keras)")
    parser.add_argument("--deterministic", "-d", action="store_true",
                        help="take the mode of the policy instead of sampling")
    parser.add_argument("--env", help="env id (default: rebuilt from the run's config.json)")
    parser.add_argument("--seed", type=_int_at_least(0), default=0,
                        help="seed of the envs (env i: SEED + i) and of the action sampling")
    parser.add_argument("--num-envs", type=_int_at_least(1), default=8,
                        help="envs stepped together with --norender (capped at --episodes)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also print one line per episode")


def _load_run(args: argparse.Namespace, with_env: bool = True):
    """``(ac, env_fn or None)`` of a run directory, user errors as :class:`CLIError`."""
    run_dir = _check_run_dir(args.run_dir)
    _select_backend(args)
    import gymnasium as gym

    from keras_vpg import serving

    try:
        ac = serving.load_model(serving.checkpoint_path(run_dir, args.itr))
    except (FileNotFoundError, ValueError) as error:
        raise CLIError(str(error)) from error
    if not with_env:
        return ac, None
    env_id = getattr(args, "env", None)
    if env_id:
        _check_env_id(env_id)
        return ac, lambda **kwargs: gym.make(env_id, **kwargs)
    try:
        serving.make_env_from_run(run_dir).close()
    except Exception as error:
        raise CLIError(f"cannot rebuild the env of {str(run_dir)!r} ({error}); "
                       "pass --env ID") from error
    return ac, lambda **kwargs: serving.make_env_from_run(run_dir, **kwargs)


def cmd_test_policy(args: argparse.Namespace) -> None:
    _check_run_dir(args.run_dir)
    if not args.norender and not _has_display():
        raise CLIError("no display to render to; pass --norender")
    ac, env_fn = _load_run(args)
    from keras_vpg import serving

    if not args.norender:
        try:
            env = env_fn(render_mode="human")
        except Exception as error:
            raise CLIError(f"cannot render ({error}); pass --norender") from error
        results = serving.run_policy(
            env, lambda obs: ac.act(obs, deterministic=args.deterministic),
            max_ep_len=args.len, num_episodes=args.episodes, render=True, seed=args.seed,
            verbose=False,
        )
        stats = serving.EpisodeStats([r for r, _ in results], [n for _, n in results])
    else:
        stats = serving.run_episodes(
            ac, env_fn, num_episodes=args.episodes, max_ep_len=args.len,
            deterministic=args.deterministic, num_envs=args.num_envs, seed=args.seed,
        )
    if args.verbose:
        for i, (ret, length) in enumerate(zip(stats.returns, stats.lengths)):
            print(f"Episode {i} \t EpRet {ret:.3f} \t EpLen {length}")
    print(f"keras-vpg: {stats.summary()}")


# -- export --------------------------------------------------------------------------------
def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory (holding model.keras)")
    parser.add_argument("--format", default="tf_saved_model", choices=["tf_saved_model", "onnx"],
                        help="TensorFlow SavedModel, or ONNX (needs the onnx extra)")
    parser.add_argument("--out",
                        help="output path (default: RUN_DIR/saved_model or RUN_DIR/policy.onnx)")
    parser.add_argument("--itr", type=int, default=-1,
                        help="checkpoint model_ITR.keras (-1: the last, model.keras)")


def cmd_export(args: argparse.Namespace) -> None:
    run_dir = _check_run_dir(args.run_dir)
    _select_backend(args)
    from keras_vpg.serving import missing_export_dependency

    missing = missing_export_dependency(args.format)
    if missing:
        raise CLIError(missing)
    ac, _ = _load_run(args, with_env=False)
    from keras_vpg import serving

    default = "saved_model" if args.format == "tf_saved_model" else "policy.onnx"
    out = args.out or str(run_dir / default)
    serving.export(ac, out, format=args.format)
    print(f"keras-vpg: exported {args.format} to {out}")


# -- benchmark -----------------------------------------------------------------------------
def cmd_benchmark(args: argparse.Namespace) -> None:
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "throughput.py"
    if not script.exists():
        raise CLIError(f"{script} not found: the benchmarks ship with the source tree")
    sys.exit(subprocess.call([sys.executable, str(script), *args.args]))


# -- shared --------------------------------------------------------------------------------
def _check_run_dir(run_dir: str) -> Path:
    path = Path(run_dir)
    if not path.is_dir():
        raise CLIError(f"run directory {run_dir!r} does not exist")
    return path


def _select_backend(args: argparse.Namespace) -> None:
    """Fix the Keras backend (before Keras's import); a missing one is a :class:`CLIError`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    try:
        ensure_backend(getattr(args, "backend", None))
    except (BackendNotInstalled, RuntimeError) as error:
        raise CLIError(str(error)) from error


COMMANDS = {
    "train": (cmd_train, add_train_arguments, True,
              "train a policy (one run per seed)",
              "example: keras-vpg train --env CartPole-v1 --pi-lr 0.01 --epochs 30 "
              "--exp-name cartpole"),
    "plot": (cmd_plot, add_plot_arguments, False,
             "plot learning curves of run directories (no Keras needed)",
             "example: keras-vpg plot data/cartpole --smooth 3 --out cartpole.png"),
    "test-policy": (cmd_test_policy, add_test_policy_arguments, True,
                    "run a saved policy and print its mean return and length",
                    "example: keras-vpg test-policy data/cartpole/cartpole_s0 --norender"),
    "export": (cmd_export, add_export_arguments, True,
               "export a run's policy for serving (needs the tensorflow extra)",
               "example: keras-vpg export data/cartpole/cartpole_s0"),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``keras-vpg`` parser and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="keras-vpg", formatter_class=HelpFormatter,
        description="Vanilla Policy Gradient (GAE-Lambda) on Keras 3: TensorFlow, JAX, PyTorch.",
        epilog="Run `keras-vpg COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"keras-vpg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, add_arguments, uses_keras, summary, example) in COMMANDS.items():
        sub = commands.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + ".",
            epilog=example, formatter_class=HelpFormatter,
            parents=[_common_parser(backend=uses_keras)],
        )
        add_arguments(sub)
    bench = commands.add_parser(
        "benchmark", help="run benchmarks/throughput.py (source tree only)",
        description="Run benchmarks/throughput.py with the arguments that follow.",
        formatter_class=HelpFormatter,
    )
    bench.add_argument("args", nargs=argparse.REMAINDER,
                       help="arguments of throughput.py (see its --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``keras-vpg`` and ``python -m keras_vpg``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get(DEBUG_ENV, "0") not in ("", "0")
    handler = cmd_benchmark if args.command == "benchmark" else COMMANDS[args.command][0]
    try:
        handler(args)
    except CLIError as error:
        if debug:
            traceback.print_exc()
        print(f"keras-vpg {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-vpg {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
