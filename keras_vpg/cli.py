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
import contextlib
import difflib
import functools
import json
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

from keras_vpg import __version__, _backend, config
from keras_vpg.files import run_directory

#: Environment variable: when set (to anything but 0), user errors show their traceback.
DEBUG_ENV = "KERAS_VPG_DEBUG"


class CLIError(Exception):
    """A user error: printed as one line on stderr, exit status 2."""


@contextlib.contextmanager
def _user_errors(*types: type[Exception]):
    """Inside, an error of one of ``types`` is the user's: a :class:`CLIError` with its message.

    (The message already says what is wrong: a missing file, a bad value, an extra
    that is not installed.)
    """
    try:
        yield
    except types as error:
        raise CLIError(str(error)) from error


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but a usage error is one line (not the usage block), exit 2,
    and an unknown flag is reported by the command it was given to, with the nearest of
    that command's flags (``--pi_lr``: did you mean --pi-lr?)."""

    def parse_known_args(self, args=None, namespace=None):
        # argparse hands a subcommand's unknown words up to the top parser, whose error
        # would name neither the command nor its flags: the subcommand reports them.
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    def error(self, message: str):
        if message.startswith("unrecognized arguments:"):
            message += _flag_hint(message.split(":", 1)[1].split(), self.flags())
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def flags(self) -> list[str]:
        """Every option string of this parser (``--pi-lr``, ``-h``, ...)."""
        return [flag for action in self._actions for flag in action.option_strings]


def _flag_hint(words: list[str], flags: list[str]) -> str:
    """``"; did you mean --pi-lr?"`` for the unknown ``--pi_lr`` among ``words``, else ``""``."""
    # Long flags, compared without their two dashes (a bare "--" or "-h" leaves "").
    typed = [word.split("=", 1)[0].replace("_", "-")[2:] for word in words if word[:2] == "--"]
    long_flags = [flag[2:] for flag in flags if flag[:2] == "--"]
    close = _nearest([word for word in typed if word], long_flags, per_word=1, cutoff=0.75)
    return _did_you_mean([f"--{name}" for name in close])


def _nearest(typed: list[str], known, per_word: int = 2, cutoff: float = 0.6) -> list[str]:
    """The known names nearest to those typed (difflib's similarity), without repeats."""
    return list(dict.fromkeys(name for word in typed
                              for name in difflib.get_close_matches(word, known, per_word, cutoff)))


def _did_you_mean(names: list[str]) -> str:
    return f"; did you mean {', '.join(names)}?" if names else ""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows ``(default: ...)`` after each option's help, except for flags and unset defaults."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        if default is False or default in (None, argparse.SUPPRESS) or not action.option_strings:
            return action.help or ""
        shown = " ".join(map(str, default)) if isinstance(default, list) else "%(default)s"
        return f"{action.help} (default: {shown})"


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


# -- train ---------------------------------------------------------------------------------
#: train flags that may take several values: the run set is every combination of them
#: (and of --seed), named Spinning Up's way with these shorthands, in this order.
GRID_FLAGS = {"act": "act", "steps_per_epoch": "spe", "num_envs": "ne", "gamma": "gamma",
              "lam": "lam", "pi_lr": "pi", "vf_lr": "vf", "train_v_iters": "tv",
              "max_ep_len": "len"}
#: What config.json records of the callbacks of ``train`` (for ``--config`` and ``--resume``).
CALLBACK_FLAGS = ("tensorboard", "eval_freq", "eval_episodes")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train`` options (Spinning Up's names; defaults those of :class:`keras_vpg.VPG`).

    Options marked "(grid)" take several values: every combination is one run.
    """
    add = parser.add_argument
    add("--env", help="gymnasium env id, e.g. CartPole-v1 or HalfCheetah-v5 "
                      "(required unless --config or --resume gives it)")
    add("--hid", type=_int_at_least(1), nargs="+", default=[64, 64],
        help="hidden layer sizes of the policy and value MLPs")
    add("--act", nargs="+", default=["tanh"],
        help="(grid) Keras activation of the hidden layers (tanh, relu, ...)")
    add("--cpu", type=_int_at_least(1), default=1,
        help="MPI processes per run (re-launches under mpirun; needs the mpi extra)")
    add("--hostfile", help="Open MPI hostfile: spread the --cpu ranks over these machines")
    add("--mpirun-args", default="",
        help="more mpirun arguments, one quoted string (e.g. \"--map-by node\")")
    add("--parallel", type=_int_at_least(1), default=1,
        help="runs of a grid (or of several seeds) trained at once, each in its own process "
             "with its share of the cores")
    add("--exp-name", help="experiment name (default: the env id in lower case)")
    add("--data-dir", default="data", help="runs are written to DATA_DIR/EXP_NAME/EXP_NAME_sSEED")
    # --epochs and every VPG hyperparameter's flag, help and default from its one definition.
    config.add_arguments(parser, grid=[*GRID_FLAGS, "seed"])
    add("--tensorboard", action=argparse.BooleanOptionalAction, default=False,
        help="write every progress.txt column to RUN_DIR/tensorboard (x axis: TotalEnvInteracts)")
    add("--eval-freq", type=_int_at_least(0), default=0,
        help="every this many epochs, evaluate the policy on a separate env "
             "(EvalAverageEpRet column; best policy in RUN_DIR/best_model.keras); 0: never")
    add("--eval-episodes", type=_int_at_least(1), default=10, help="episodes per evaluation")
    add("--config", help="a run's config.json (or its run directory): train with its settings; "
                         "flags given explicitly override them")
    add("--resume", metavar="RUN_DIR",
        help="finish an interrupted run from its last checkpoint (to its epochs, or to --epochs "
             "if given)")
    add("--verbose", type=int, choices=[0, 1, 2], default=1,
        help="0 silent, 1 progress bar and a line per epoch, 2 the line only")


def _single(value: Any) -> Any:
    """A flag's value in one run (a grid flag's list holds one value by then)."""
    if isinstance(value, list):
        (value,) = value
    return value


def default_exp_name(env_id: str) -> str:
    """``HalfCheetah-v5`` -> ``halfcheetah-v5``: a directory-friendly experiment name."""
    return re.sub(r"[^a-z0-9_.-]+", "-", env_id.lower()).strip("-") or "vpg"


def run_dir_of(args: argparse.Namespace, seed: int) -> Path:
    """``DATA_DIR/EXP_NAME/EXP_NAME_sSEED``: where seed ``seed`` of a train command goes."""
    return run_directory(args.exp_name or default_exp_name(args.env), seed, args.data_dir)


def vpg_kwargs(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The keyword arguments of :class:`keras_vpg.VPG` (all but ``env_fn``) for one seed."""
    run_dir = run_dir_of(args, seed)
    kwargs = {name: _single(getattr(args, name)) for name in config.FLAGGED_FIELDS
              if name != "seed"}
    return dict(kwargs, seed=seed,
                ac_kwargs=dict(hidden_sizes=tuple(args.hid), activation=_single(args.act)),
                logger_kwargs=dict(output_dir=str(run_dir), exp_name=run_dir.parent.name))


def grid_variants(args: argparse.Namespace) -> list[argparse.Namespace]:
    """One namespace per combination of the grid flags' values, named Spinning Up's way.

    With one value per flag this is ``[args]`` itself; otherwise each variant's
    ``exp_name`` is the experiment name followed by the shorthand and value of every
    flag that varies (e.g. ``hopper-v5_pi0-001``), so its seeds land together.
    """
    from keras_vpg.grid import ExperimentGrid

    varying = {name: getattr(args, name) for name in GRID_FLAGS if len(getattr(args, name)) > 1}
    if not varying:
        return [args]
    grid = ExperimentGrid(args.exp_name or default_exp_name(args.env))
    for name, values in varying.items():
        grid.add(name, values, shorthand=GRID_FLAGS[name], in_name=True)
    return [argparse.Namespace(**{**vars(args), **{name: [variant[name]] for name in varying},
                                  "exp_name": grid.variant_name(variant)})
            for variant in grid.variants()]


def _check_env_id(env_id: str) -> None:
    """One-line errors for an unknown env id or one whose dependencies are missing."""
    import gymnasium as gym

    if env_id not in gym.registry:
        hint = _did_you_mean(_nearest([env_id], gym.registry))
        raise CLIError(f"unknown env id {env_id!r} (not in the gymnasium registry){hint}")
    try:
        gym.make(env_id).close()
    except gym.error.DependencyNotInstalled as error:
        extra = ' (or pip install "keras-vpg[mujoco]")' if "mujoco" in str(error).lower() else ""
        raise CLIError(f"cannot make env {env_id!r}: {error}{extra}") from error


def _callbacks(run_dir: Path, env_id: str, seed: int, tensorboard: bool, eval_freq: int,
               eval_episodes: int) -> tuple[list, dict[str, Any]]:
    """The callbacks of ``--tensorboard`` and ``--eval-freq``, and what config.json records.

    ``--tensorboard``: a :class:`keras_vpg.TensorBoardLogger` writing to
    ``RUN_DIR/tensorboard``; ``--eval-freq``: an :class:`keras_vpg.EvalCallback` on a
    separate env saving ``RUN_DIR/best_model.keras``.
    """
    import gymnasium as gym

    from keras_vpg.callbacks import EvalCallback, TensorBoardLogger

    callbacks = [TensorBoardLogger(run_dir / "tensorboard")] if tensorboard else []
    if eval_freq:
        callbacks.append(EvalCallback(
            functools.partial(gym.make, env_id), eval_freq=eval_freq,
            n_eval_episodes=eval_episodes, best_model_path=str(run_dir / "best_model.keras"),
            seed=seed + 10**6))
    return callbacks, dict(tensorboard=bool(tensorboard), eval_freq=int(eval_freq),
                           eval_episodes=int(eval_episodes))


def train_run(env_id: str, epochs: int, verbose: int = 1, tensorboard: bool = False,
              eval_freq: int = 0, eval_episodes: int = 10, **vpg_kwargs: Any):
    """Build one :class:`keras_vpg.VPG` for ``env_id``, train ``epochs`` and close it.

    What a ``train`` run does, in this process or in a grid's child process, its
    callbacks included (see ``_callbacks``). Returns the ``History``.
    """
    _backend.quiet_tensorflow_startup()  # also in a grid's child process
    import gymnasium as gym

    from keras_vpg.agent import VPG
    from keras_vpg.logger import RunMovedAside

    callbacks, settings = _callbacks(Path(vpg_kwargs["logger_kwargs"]["output_dir"]), env_id,
                                     vpg_kwargs["seed"], tensorboard, eval_freq, eval_episodes)
    with warnings.catch_warnings(record=True) as caught, _user_errors(ValueError, TypeError):
        warnings.simplefilter("always", RunMovedAside)
        agent = VPG(functools.partial(gym.make, env_id), **vpg_kwargs)
    for warning in caught:  # the move of an earlier run is news, not a code warning
        if issubclass(warning.category, RunMovedAside):
            print(f"keras-vpg: {warning.message}", flush=True)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)
    with contextlib.closing(agent):
        agent.logger.update_config(**settings)  # for --config and --resume (fit adds the epochs)
        return agent.fit(epochs=epochs, callbacks=callbacks, verbose=verbose)  # rank 0 shows it


def _mpi_fork(args: argparse.Namespace) -> None:
    """Re-launch this command under mpirun and exit when ``--cpu`` > 1 (no MPI: one line)."""
    from keras_vpg import mpi

    with _user_errors(RuntimeError):
        mpi.mpi_fork(args.cpu, extra_args=shlex.split(args.mpirun_args), hostfile=args.hostfile)


def _resume(args: argparse.Namespace) -> None:
    """``train --resume RUN_DIR``: restore the last checkpoint, train to the run's total.

    The run's settings (backend, process count, callbacks) come from its
    ``config.json`` unless given as flags; ``--epochs`` (if given) is the new total.
    """
    run_dir = args.run_dir = Path(args.resume)  # args.run_dir: for a failed write
    _mpi_fork(args)
    if args.eval_freq and not args.env:
        raise CLIError(f"--eval-freq needs the env id, which {str(run_dir)!r} does not record")
    import keras

    from keras_vpg import mpi
    from keras_vpg.agent import resume_run
    from keras_vpg.grid import final_return

    callbacks, settings = _callbacks(run_dir, args.env, args.seed[0], args.tensorboard,
                                     args.eval_freq, args.eval_episodes)
    resumed = keras.callbacks.History()  # the epochs run now: their speed and steps
    start = time.perf_counter()
    with _user_errors(FileNotFoundError, ValueError, TypeError):
        agent = resume_run(run_dir, epochs=args.epochs, callbacks=callbacks + [resumed],
                           verbose=args.verbose)  # fit shows and calls back on rank 0 only
    with contextlib.closing(agent):
        agent.logger.update_config(**settings)
        if mpi.proc_id() == 0:
            new_steps = (len(resumed.history.get("TotalEnvInteracts", []))
                         * agent.steps_per_env * agent.num_envs * agent.num_procs)
            logs = {**resumed.history, "AverageEpRet": [final_return(run_dir)],
                    "TotalEnvInteracts": [agent.total_env_interacts]}  # also with no epoch run
            print(_run_summary(run_dir, logs, time.perf_counter() - start, new_steps))


def _run_kwargs(args: argparse.Namespace, seed: int, verbose: int) -> dict[str, Any]:
    """The keyword arguments of ``train_run`` for one seed of ``args``."""
    return dict(env_id=args.env, epochs=args.epochs, verbose=verbose, tensorboard=args.tensorboard,
                eval_freq=args.eval_freq, eval_episodes=args.eval_episodes,
                **vpg_kwargs(args, seed))


def cmd_train(args: argparse.Namespace) -> None:
    if args.config or args.resume:  # the run's settings become the defaults: flags still win
        if args.resume:
            _check_run_dir(args.resume)
        defaults = config_defaults(args.config or args.resume)
        if args.resume:
            defaults["epochs"] = None  # the total of the interrupted fit, unless --epochs
        # In place: main() reads args.run_dir, set below, to report a failed write.
        vars(args).update(vars(build_parser(defaults).parse_args(args.argv)))
    if not (args.env or args.resume):
        raise CLIError("--env is required (or --config RUN_DIR/config.json, or --resume RUN_DIR)")
    _select_backend(args)
    from keras_vpg import mpi

    if mpi.num_procs() == 1 and not args.resume:  # once, before launching ranks
        _check_env_id(args.env)  # (a resumed run's env is the one it recorded)
    if args.tensorboard:  # one line naming the extra, on every rank (mpirun by hand too)
        from keras_vpg.callbacks import tensorboard_missing

        missing = tensorboard_missing()
        if missing:
            raise CLIError(f"--tensorboard: {missing}")
    if args.resume:
        return _resume(args)
    variants = grid_variants(args)
    runs = [(variant, seed) for variant in variants for seed in args.seed]
    if len(variants) > 1 or (args.parallel > 1 and len(runs) > 1):
        return _train_grid(args, runs)
    _mpi_fork(args)
    import keras

    rank0 = mpi.proc_id() == 0
    summaries = []
    for _, seed in runs:
        run_dir = args.run_dir = run_dir_of(args, seed)  # args.run_dir: for a failed write
        if rank0:
            print(f"keras-vpg: training {args.env} seed {seed} on {keras.backend.backend()} "
                  f"({args.backend_note}{mpi.num_procs()} process(es)) -> {run_dir}",
                  flush=True)
        start = time.perf_counter()
        history = train_run(**_run_kwargs(args, seed, args.verbose))
        summaries.append(_run_summary(run_dir, history.history, time.perf_counter() - start))
    if rank0:
        print(*summaries, _next_steps(args), sep="\n")


def _train_grid(args: argparse.Namespace, runs) -> None:
    """Every (variant, seed) in its own process, ``--parallel`` at a time; then the table."""
    from keras_vpg.grid import Experiment, GridRunError, run_experiments

    verbose = 2 if args.verbose else 0  # a line per epoch, no progress bar
    experiments = [Experiment(variant.exp_name, train_run, _run_kwargs(variant, seed, verbose))
                   for variant, seed in runs]
    print(f"keras-vpg: {len(experiments)} runs of {args.env}, {args.parallel} at a time:")
    for experiment in experiments:
        print(f"  {experiment.output_dir}")
    with _user_errors(GridRunError):
        run_experiments(experiments, num_cpu=args.cpu, parallel=args.parallel,
                        hostfile=args.hostfile, mpirun_args=shlex.split(args.mpirun_args))
    # A grid's variants share the experiment name as a prefix: plot takes prefixes.
    print(_next_steps(runs[0][0], plot_dir=run_dir_of(args, args.seed[0]).parent))


def config_defaults(path: str) -> dict[str, Any]:
    """``train``'s option values that reproduce a run, read from its ``config.json``.

    ``path`` is the file or the run directory. Used by ``--config`` and ``--resume``:
    these become the defaults, so flags given explicitly override them.
    """
    file = Path(path)
    if file.is_dir():
        file = file / "config.json"
    try:
        saved = json.loads(file.read_text())
    except FileNotFoundError:
        raise CLIError(f"no config.json at {str(file)!r}") from None
    except (OSError, json.JSONDecodeError) as error:
        raise CLIError(f"cannot read {str(file)!r}: {error}") from error
    if not isinstance(saved, dict):
        raise CLIError(f"{str(file)!r} is not a keras-vpg config.json")
    defaults: dict[str, Any] = {}
    for name in (*config.FLAGGED_FIELDS, "epochs", *CALLBACK_FLAGS):
        if name in saved:
            if isinstance(saved[name], dict):  # a learning-rate schedule: no flag can say it
                raise CLIError(f"{name} in {str(file)!r} is a schedule; rerun it from Python "
                               "with keras_vpg.load_config")
            defaults[name] = [saved[name]] if name in GRID_FLAGS or name == "seed" else saved[name]
    if saved.get("env_spec"):
        defaults["env"] = json.loads(saved["env_spec"])["id"]
    ac_kwargs = saved.get("ac_kwargs") or {}
    if "hidden_sizes" in ac_kwargs:
        defaults["hid"] = list(ac_kwargs["hidden_sizes"])
    if "activation" in ac_kwargs:
        defaults["act"] = [ac_kwargs["activation"]]
    if saved.get("exp_name"):  # the logger records it with every run
        defaults["exp_name"] = saved["exp_name"]
    if saved.get("backend") in _backend.BACKENDS:
        defaults["backend"] = saved["backend"]
    if int(saved.get("num_procs") or 1) > 1:
        defaults["cpu"] = int(saved["num_procs"])
    return defaults


def _run_summary(run_dir: Path, logs: dict[str, list[float]], seconds: float,
                 resumed_steps: int | None = None) -> str:
    """One line: final AverageEpRet, steps and wall time, steps/s and the run directory.

    The speed is the last epoch's (the first ones include compilation). After a
    resume, ``resumed_steps`` are the steps run since it, in ``seconds``.
    """
    final_return = logs["AverageEpRet"][-1]
    steps = int(logs["TotalEnvInteracts"][-1])
    speed = logs.get("StepsPerSecond", [0])[-1]  # none: a resume with no epoch left to run
    done = (f"{steps:,} steps ({resumed_steps:,} since the resume, in {seconds:.1f} s; "
            if resumed_steps is not None else f"{steps:,} steps in {seconds:.1f} s (")
    return (f"keras-vpg: done {run_dir.name}: AverageEpRet {final_return:.4g} (last epoch), "
            f"{done}{speed:,.0f} steps/s in the last epoch) -> {run_dir}")


def _next_steps(args: argparse.Namespace, plot_dir: Path | None = None) -> str:
    first = run_dir_of(args, args.seed[0])
    run = shlex.quote(str(first))
    export_note = ("" if _backend.is_installed("tensorflow")
                   else f"   # needs {_backend.install_hint('tensorflow')}")
    return "\n".join([
        "Next:",
        f"  keras-vpg plot {shlex.quote(str(plot_dir or first.parent))} "
        f"--out {shlex.quote(first.parent.name + '.png')}",
        f"  keras-vpg test-policy {run} --norender",
        f"  keras-vpg export {run}{export_note}",
    ])


# -- plot ----------------------------------------------------------------------------------
def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``plot`` options (Spinning Up's ``plot`` names)."""
    add = parser.add_argument
    add("logdir", nargs="+",
        help="run directories or directories of runs (searched for progress.txt); a path that "
             "does not exist is a prefix: data/hc matches data/hc-lr1e-3 too")
    add("--legend", "-l", nargs="*",
        help="one legend label per curve (default: the experiment names, or the directories "
             "when names collide)")
    add("--xaxis", "-x", default="TotalEnvInteracts",
        help="progress.txt column of the x axis (e.g. Epoch, Time)")
    add("--value", "-y", nargs="*", default=["AverageEpRet"],
        help="progress.txt column(s) to plot; one figure each")
    add("--count", action="store_true", help="one curve per run instead of the estimate over seeds")
    add("--smooth", "-s", type=_int_at_least(1), default=1,
        help="window of a centered moving average (1: none)")
    add("--select", nargs="*", help="keep only runs whose path contains all of these strings")
    add("--exclude", nargs="*", help="drop runs whose path contains any of these strings")
    add("--est", default="mean", choices=["mean", "max", "min"],
        help="estimate over the seeds of an experiment (band: ± std)")
    add("--xmax", type=float,
        help="plot only up to this x value (compare runs of different lengths at one budget)")
    add("--out", "-o", help="image file to write, NAME_VALUE.EXT per value when several "
                            "(default: a window; without a display LOGDIR.png)")


def cmd_plot(args: argparse.Namespace) -> None:
    from keras_vpg.plot import make_plots, output_files

    out = args.out
    if out is None and not _has_display():
        out = (Path(args.logdir[0]).resolve().name or "plot") + ".png"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _user_errors(ValueError, FileNotFoundError):
            make_plots(args.logdir, legend=args.legend, xaxis=args.xaxis, values=args.value,
                       count=args.count, smooth=args.smooth, select=args.select,
                       exclude=args.exclude, estimator=args.est, out=out, xmax=args.xmax)
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            print(f"keras-vpg plot: warning: {warning.message}", file=sys.stderr)
    if out is None:
        import matplotlib.pyplot as plt

        plt.show()
        return
    if not args.out:
        print("keras-vpg plot: no display: writing to a file (--out to choose it)",
              file=sys.stderr)
    print(f"keras-vpg: wrote {', '.join(output_files(out, args.value))}")


def _has_display() -> bool:
    """On Linux, whether DISPLAY or WAYLAND_DISPLAY names one; elsewhere assumed."""
    on_linux = sys.platform.startswith("linux")
    return not on_linux or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# -- test-policy ---------------------------------------------------------------------------
def add_test_policy_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("run_dir", help="a run directory (holding model.keras and config.json)")
    add("--episodes", "-n", type=_int_at_least(1), default=100,
        help="episodes to run (Spinning Up's default)")
    add("--len", "-l", type=_int_at_least(0), default=0,
        help="cut episodes after this many steps (0: only the env's own limit)")
    add("--norender", "-nr", action="store_true",
        help="run without a window, batched over --num-envs envs (fast)")
    add("--itr", "-i", type=int, default=-1,
        help="saved policy model_ITR.keras (-1: the last, model.keras)")
    add("--deterministic", "-d", action="store_true",
        help="take the mode of the policy instead of sampling")
    add("--env", help="env id (default: rebuilt from the run's config.json)")
    add("--seed", type=_int_at_least(0), default=0,
        help="seed of the envs (env i: SEED + i) and of the action sampling")
    add("--num-envs", type=_int_at_least(1), default=8,
        help="envs stepped together with --norender (capped at --episodes)")
    add("--verbose", "-v", action="store_true", help="also print one line per episode")


def _load_policy(args: argparse.Namespace):
    """The saved policy of ``args.run_dir`` (``--itr``), user errors as :class:`CLIError`."""
    run_dir = _check_run_dir(args.run_dir)
    _select_backend(args)
    from keras_vpg import serving

    with _user_errors(FileNotFoundError, ValueError):
        return serving.load_model(serving.saved_policy_path(run_dir, args.itr))


def cmd_test_policy(args: argparse.Namespace) -> None:
    ac = _load_policy(args)  # a wrong run directory is the error to see first
    if not args.norender and not _has_display():
        raise CLIError("no display to render to; pass --norender")
    import gymnasium as gym

    from keras_vpg import serving
    from keras_vpg.rollout import batched_policy, episode_line, play_episodes

    if args.env:
        _check_env_id(args.env)
        env_fn = functools.partial(gym.make, args.env)
    else:
        try:
            serving.make_env_from_run(args.run_dir).close()
        except Exception as error:
            raise CLIError(f"cannot rebuild the env of {args.run_dir!r} ({error}); "
                           "pass --env ID") from error
        env_fn = functools.partial(serving.make_env_from_run, args.run_dir)
    if args.norender:
        stats = serving.run_episodes(ac, env_fn, args.episodes, args.len, args.deterministic,
                                     args.num_envs, args.seed)
    else:
        try:
            env = env_fn(render_mode="human")
        except Exception as error:
            raise CLIError(f"cannot render ({error}); pass --norender") from error
        stats = play_episodes(batched_policy(ac, args.deterministic, args.seed), [env],
                              args.episodes, args.len, args.seed, render=True)
    if args.verbose:
        for i, (ret, length) in enumerate(zip(stats.returns, stats.lengths)):
            print(episode_line(i, ret, length))
    print(f"keras-vpg: {stats.summary()}")


# -- export --------------------------------------------------------------------------------
def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("run_dir", help="a run directory (holding model.keras)")
    add("--format", default="tf_saved_model", choices=["tf_saved_model", "onnx"],
        help="TensorFlow SavedModel, or ONNX (needs the onnx extra)")
    add("--out", help="output path (default: RUN_DIR/saved_model or RUN_DIR/policy.onnx)")
    add("--itr", type=int, default=-1,
        help="saved policy model_ITR.keras (-1: the last, model.keras)")


def cmd_export(args: argparse.Namespace) -> None:
    ac = _load_policy(args)
    from keras_vpg import serving

    default = "saved_model" if args.format == "tf_saved_model" else "policy.onnx"
    out = args.out or str(Path(args.run_dir) / default)
    with _user_errors(ImportError):  # the extra that is missing
        serving.export(ac, out, format=args.format)
    print(f"keras-vpg: exported {args.format} to {out}")


# -- shared --------------------------------------------------------------------------------
def _check_run_dir(run_dir: str) -> Path:
    path = Path(run_dir)
    if not path.is_dir():
        raise CLIError(f"run directory {run_dir!r} does not exist")
    return path


def _select_backend(args: argparse.Namespace) -> None:
    """Fix the Keras backend (before Keras's import); a missing one is a :class:`CLIError`.

    A fallback from an uninstalled configured backend is said by ``train`` in its
    first line (``args.backend_note``), not on stderr by every command.
    """
    _backend.quiet_tensorflow_startup()
    with _user_errors(_backend.BackendNotInstalled, RuntimeError):
        choice = _backend.apply_backend(getattr(args, "backend", None))
    configured = _backend.keras_json_backend()
    missing = f"keras.json's {configured}" if configured else "Keras's default tensorflow"
    args.backend_note = f"{missing} is not installed; " if choice.source == "fallback" else ""


def _usable_checkpoint(args: argparse.Namespace) -> str:
    """After a failed write in a training: the checkpoint a ``--resume`` would start from."""
    run_dir = getattr(args, "run_dir", None)
    if args.command != "train" or run_dir is None:  # test-policy/export: their own run_dir
        return ""
    from keras_vpg import checkpoint

    with warnings.catch_warnings():  # a damaged newer checkpoint: skipped silently here
        warnings.simplefilter("ignore")
        latest = checkpoint.latest_checkpoint(run_dir)
    if latest is None:
        return f"; {run_dir} has no usable checkpoint yet"
    return (f"; the newest usable checkpoint is {latest} "
            f"(keras-vpg train --resume {run_dir} continues from it)")


#: Each command: its function, the function adding its options, whether it uses Keras
#: (then it takes --backend), its summary and an example (the epilog of its --help).
COMMANDS = {
    "train": (cmd_train, add_train_arguments, True, "train a policy (one run per seed)",
              "keras-vpg train --env CartPole-v1 --pi-lr 0.01 --epochs 30 --exp-name cartpole"),
    "plot": (cmd_plot, add_plot_arguments, False,
             "plot learning curves of run directories (no Keras needed)",
             "keras-vpg plot data/cartpole --smooth 3 --out cartpole.png"),
    "test-policy": (cmd_test_policy, add_test_policy_arguments, True,
                    "run a saved policy and print its mean return and length",
                    "keras-vpg test-policy data/cartpole/cartpole_s0 --norender"),
    "export": (cmd_export, add_export_arguments, True,
               "export a run's policy for serving (needs the tensorflow extra)",
               "keras-vpg export data/cartpole/cartpole_s0"),
}


def version_text() -> str:
    """What ``keras-vpg --version`` prints: keras-vpg's version and what a bug report needs.

    Read from the installed distributions' metadata: nothing is imported (no Keras).
    """
    import importlib.metadata
    import platform

    def version(*names: str) -> str:  # of the first of these distributions installed
        for name in names:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                return importlib.metadata.version(name.lower())
        return "not installed"

    try:
        choice = _backend.resolve_backend()
        in_use = f"{choice.backend} (from {choice.source})"
    except _backend.BackendNotInstalled as error:
        in_use = f"none ({error})"
    return "\n".join([
        f"keras-vpg {__version__}",
        f"Python {platform.python_version()} ({platform.system()} {platform.machine()})",
        f"Keras {version('keras')}",
        f"tensorflow {version('tensorflow', 'tensorflow-cpu')}",
        *(f"{name} {version(name)}" for name in ("jax", "torch")),
        f"backend: {in_use}",
        *(f"{name} {version(name)}" for name in ("gymnasium", "MuJoCo", "numpy", "mpi4py")),
    ])


def build_parser(train_defaults: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    """The ``keras-vpg`` parser and its subcommands (``train_defaults``: see ``--config``)."""
    parser = ArgumentParser(
        prog="keras-vpg", formatter_class=HelpFormatter,
        description="Vanilla Policy Gradient (GAE-Lambda) on Keras 3: TensorFlow, JAX, PyTorch.",
        epilog="Run `keras-vpg COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=version_text(),
                        help="show keras-vpg's version and those of Keras, the installed "
                             "backends, gymnasium and MuJoCo, then exit")
    # Not required=True: argparse would then say "COMMAND is required" before reporting an
    # unknown flag (--verison); main() asks for the command once the flags are read.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, add_arguments, uses_keras, summary, example) in COMMANDS.items():
        sub = commands.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + ".",
            epilog=f"example: {example}", formatter_class=HelpFormatter)
        if uses_keras:
            sub.add_argument(
                "--backend", choices=_backend.BACKENDS,
                help="Keras backend; wins over KERAS_BACKEND; without either, keras.json's, "
                     "or the first installed of jax, torch, tensorflow")
        sub.add_argument("--debug", action="store_true",
                         help=f"show the traceback of errors (or set {DEBUG_ENV}=1)")
        add_arguments(sub)
        if name == "train" and train_defaults:
            sub.set_defaults(**train_defaults)
    bench = commands.add_parser(
        "benchmark", help="run benchmarks/throughput.py (source tree only)",
        description="Run benchmarks/throughput.py with the arguments that follow.",
        formatter_class=HelpFormatter)
    bench.add_argument("args", nargs=argparse.REMAINDER,
                       help="arguments of throughput.py (see its --help)")
    return parser


def _benchmark(args: Sequence[str]) -> int:
    """``keras-vpg benchmark ARGS``: ``benchmarks/throughput.py ARGS`` (source tree only)."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "throughput.py"
    if not script.exists():
        print(f"keras-vpg benchmark: error: {script} not found: the benchmarks ship with the "
              "source tree", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, str(script), *args])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``keras-vpg`` and ``python -m keras_vpg``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["benchmark"]:  # every argument is throughput.py's, its --help included
        return _benchmark(argv[1:])
    parser = build_parser()
    if not argv:  # a first try: the commands, not an error
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("the following arguments are required: COMMAND")
    args.argv = argv
    debug = getattr(args, "debug", False) or os.environ.get(DEBUG_ENV, "0") not in ("", "0")
    try:
        COMMANDS[args.command][0](args)
    except (CLIError, OSError) as error:  # OSError: a full disk, a read-only directory
        if debug:
            traceback.print_exc()
        usable = "" if isinstance(error, CLIError) else _usable_checkpoint(args)
        print(f"keras-vpg {args.command}: error: {error}{usable}", file=sys.stderr)
        return 2 if isinstance(error, CLIError) else 1
    except KeyboardInterrupt as error:
        from keras_vpg.interrupt import Interrupted, exit_status

        # fit() has already said where its checkpoint is and how to resume.
        if not isinstance(error, Interrupted):
            print(f"keras-vpg {args.command}: interrupted", file=sys.stderr)
        return exit_status(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
