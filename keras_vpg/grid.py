"""Experiment grids: Spinning Up's ``ExperimentGrid``, run one by one or K at a time.

Every run is a fresh Python process (as in Spinning Up: no state leaks from one
run into the next, and ``num_cpu > 1`` can re-launch it under ``mpirun``). The
function and its arguments are sent with ``cloudpickle`` (a gymnasium
dependency), so lambdas work as ``env_fn``.

Naming follows Spinning Up: the variant name is the grid name followed by
``_<shorthand><value>`` for every parameter with several values (or added with
``in_name=True``), seeds aside; a run writes under
``<data_dir>/<variant name>/<variant name>_s<seed>``, so the seeds of a variant
sit together for ``keras-vpg plot``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_vpg.files import run_directory
from keras_vpg.mpi import mpi_fork, usable_cores
from keras_vpg.plot import read_progress

LINE = "=" * 80


def valid_str(value: Any) -> str:
    """``value`` as a piece of a directory name (Spinning Up's rules).

    Functions and classes by their ``__name__``, sequences joined by ``-``,
    everything else lower-cased with characters other than letters, digits,
    ``-`` and ``_`` replaced by ``-`` (``0.001`` -> ``0-001``).
    """
    if hasattr(value, "__name__"):
        return valid_str(value.__name__)
    if isinstance(value, (list, tuple)):
        return "-".join(valid_str(v) for v in value)
    return re.sub(r"[^a-z0-9_-]", "-", str(value).lower())


def setup_logger_kwargs(exp_name: str, seed: int | None = None, data_dir: str | None = None,
                        datestamp: bool = False) -> dict[str, str]:
    """``logger_kwargs`` of a run, placed as Spinning Up places it (see
    :func:`keras_vpg.files.run_directory`)."""
    path = run_directory(exp_name, seed, data_dir, datestamp)
    return {"output_dir": str(path), "exp_name": exp_name}


@dataclass
class Experiment:
    """One run of a grid: the function, its keyword arguments, where it writes."""

    exp_name: str
    thunk: Callable[..., Any]
    kwargs: dict[str, Any]

    @property
    def output_dir(self) -> str:
        return self.kwargs["logger_kwargs"]["output_dir"]


@dataclass
class RunResult:
    """What a run left: its directory, final ``AverageEpRet``, wall time and exit code."""

    exp_name: str
    output_dir: str
    final_return: float
    seconds: float
    returncode: int
    log_file: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class GridRunError(RuntimeError):
    """Some runs of a grid failed; ``results`` holds every run's :class:`RunResult`."""

    def __init__(self, message: str, results: list[RunResult]):
        super().__init__(message)
        self.results = results


class ExperimentGrid:
    """Runs a function over every combination of hyperparameter values (Spinning Up's API).

    Parameters
    ----------
    name : str
        Start of every variant's name (and of its directory).

    Examples
    --------
    >>> grid = ExperimentGrid("cartpole")
    >>> grid.add("env_name", "CartPole-v1", in_name=False)
    >>> grid.add("seed", [0, 10])
    >>> grid.add("pi_lr", [3e-4, 1e-3])
    >>> grid.add("ac_kwargs:hidden_sizes", [(32,), (64, 64)], "hid")
    >>> results = grid.run(keras_vpg.vpg, data_dir="data", parallel=2)  # doctest: +SKIP
    """

    def __init__(self, name: str = ""):
        self.keys: list[str] = []
        self.vals: list[list[Any]] = []
        self.shs: list[str] = []
        self.in_names: list[bool] = []
        self.name(name)

    def name(self, _name: str) -> None:
        """Set the grid's name."""
        if not isinstance(_name, str):
            raise TypeError(f"name must be a string, got {_name!r}")
        self._name = _name

    def add(self, key: str, vals: Any, shorthand: str | None = None,
            in_name: bool = False) -> None:
        """Add a parameter and its values.

        Parameters
        ----------
        key : str
            Keyword argument of the function run; ``"a:b"`` is ``b`` inside the dict
            argument ``a`` (``"ac_kwargs:hidden_sizes"``).
        vals : value or list of values
            A list gives one value per variant; anything else is a single value
            (a tuple is one value: ``(64, 64)``).
        shorthand : str, optional
            Name in run names; default: the first three letters of each
            ``:``-separated part, non-alphanumerics dropped (``pi_lr`` -> ``pi``,
            ``ac_kwargs:hidden_sizes`` -> ``ac-hid``).
        in_name : bool
            Put the parameter in run names even with a single value.
        """
        if not isinstance(key, str) or not key:
            raise TypeError(f"key must be a non-empty string, got {key!r}")
        if shorthand is not None and not isinstance(shorthand, str):
            raise TypeError(f"shorthand must be a string, got {shorthand!r}")
        if key in self.keys:
            raise ValueError(f"key {key!r} is already in the grid")
        vals = list(vals) if isinstance(vals, list) else [vals]
        if not vals:
            raise ValueError(f"key {key!r} needs at least one value")
        self.keys.append(key)
        self.vals.append(vals)
        self.shs.append(shorthand if shorthand is not None else _default_shorthand(key))
        self.in_names.append(bool(in_name))

    def print(self) -> None:
        """Print the parameters, their shorthands and values, and the number of variants."""
        print(self.describe())

    def describe(self) -> str:
        """What :meth:`print` prints."""
        lines = [LINE, f"ExperimentGrid [{self._name}] runs over parameters:", ""]
        for key, vals, shorthand in zip(self.keys, self.vals, self.shs):
            lines += [f" {key.ljust(40)} [{shorthand}]", *(f"\t{_shown(v)}" for v in vals), ""]
        total = math.prod(len(v) for v in self.vals)
        seeds = len(self.vals[self.keys.index("seed")]) if "seed" in self.keys else 1
        lines += [" Variants, counting seeds: ".ljust(40) + str(total),
                  " Variants, not counting seeds: ".ljust(40) + str(total // seeds), LINE]
        return "\n".join(lines)

    def variant_name(self, variant: dict[str, Any]) -> str:
        """The experiment name of ``variant`` (a dict from :meth:`variants`).

        The grid name, then ``_<shorthand><value>`` for each parameter with
        several values or added with ``in_name=True``, ``seed`` never; a parameter
        whose values are all booleans appears as ``_<shorthand>`` when True only.
        """
        name = self._name
        for key, vals, shorthand, in_name in zip(self.keys, self.vals, self.shs, self.in_names):
            if key == "seed" or not (len(vals) > 1 or in_name):
                continue
            # The value in the nested variant: "a:b" -> variant["a"]["b"].
            value = functools.reduce(lambda group, part: group[part], key.split(":"), variant)
            label = valid_str(shorthand)
            if all(isinstance(v, bool) for v in vals):
                name += f"_{label}" if value else ""
            else:
                name += f"_{label}{valid_str(value)}"
        return name.lstrip("_")

    def variants(self) -> list[dict[str, Any]]:
        """Every combination of values, as keyword arguments (``"a:b"`` keys nested).

        The first parameter added varies slowest.
        """
        flat = [dict(zip(self.keys, values)) for values in itertools.product(*self.vals)]
        return [_unflatten(v) for v in flat]

    def experiments(self, thunk: Callable[..., Any] | str, data_dir: str | None = None,
                    datestamp: bool = False) -> list[Experiment]:
        """The runs :meth:`run` would launch: name, function and keyword arguments.

        Every run gets ``seed`` (0 unless the grid has one) and ``logger_kwargs``
        (its directory, see :func:`setup_logger_kwargs`). ``thunk`` may be the name
        of a grid parameter whose values are the functions to run.
        """
        if not self.keys:
            raise ValueError("the grid is empty: add parameters with grid.add(key, vals)")
        variants = self.variants()
        if isinstance(thunk, str) and thunk not in variants[0]:
            raise ValueError(f"thunk {thunk!r} is not a parameter of the grid")
        runs = []
        for variant in variants:
            exp_name = self.variant_name(variant)
            function = variant.pop(thunk) if isinstance(thunk, str) else thunk
            if not callable(function):
                raise TypeError(f"thunk must be callable, got {function!r}")
            variant.setdefault("seed", 0)
            variant.setdefault("logger_kwargs", setup_logger_kwargs(
                exp_name, variant["seed"], data_dir, datestamp))
            runs.append(Experiment(exp_name, function, variant))
        clashes = [d for d, n in Counter(run.output_dir for run in runs).items() if n > 1]
        if clashes:
            raise ValueError(
                f"several variants would write to {clashes[0]}: give the parameters that "
                "differ distinct shorthands or in_name=True")
        return runs

    def run(self, thunk: Callable[..., Any] | str, num_cpu: int = 1, data_dir: str | None = None,
            datestamp: bool = False, parallel: int = 1, hostfile: str | None = None,
            mpirun_args: Sequence[str] = (), raise_on_failure: bool = True) -> list[RunResult]:
        """Run ``thunk(**variant)`` for every variant, each in a fresh process.

        Parameters
        ----------
        thunk : callable or str
            The function (e.g. ``keras_vpg.vpg``), or the name of a grid parameter
            holding functions. A variant's ``env_name`` becomes
            ``env_fn=functools.partial(gymnasium.make, env_name)``, as in Spinning Up.
        num_cpu : int
            MPI processes per run (``mpi_fork``).
        data_dir : str, optional
            Root of the run directories (default ``data``).
        datestamp : bool
            Date-stamped directory names (see :func:`setup_logger_kwargs`).
        parallel : int
            Runs at once; see :func:`run_experiments`.
        hostfile, mpirun_args
            Passed to ``mpirun`` when ``num_cpu > 1`` (see :func:`keras_vpg.mpi.mpirun_command`).
        raise_on_failure : bool
            Raise :class:`GridRunError` (after the summary) if a run failed.

        Returns
        -------
        list of RunResult
            One per run, in the order of :meth:`variants`; the table of them is printed.
        """
        self.print()
        runs = self.experiments(thunk, data_dir, datestamp)
        print("Preparing to run the following experiments...\n")
        print("\n".join(sorted({run.exp_name for run in runs})) + "\n" + LINE)
        return run_experiments(runs, num_cpu=num_cpu, parallel=parallel, hostfile=hostfile,
                               mpirun_args=mpirun_args, raise_on_failure=raise_on_failure)


def run_experiments(
    runs: Sequence[Experiment],
    num_cpu: int = 1,
    parallel: int = 1,
    hostfile: str | None = None,
    mpirun_args: Sequence[str] = (),
    raise_on_failure: bool = True,
    python: str | None = None,
) -> list[RunResult]:
    """Run experiments in fresh processes, ``parallel`` at a time; print and return the table.

    With ``parallel > 1`` each run gets its share of this machine's cores: its
    processes see ``KERAS_VPG_THREADS = cores // (parallel * num_cpu)`` (unless
    the variable is already set), and its output goes to ``output.log`` in its
    run directory instead of the terminal (one line says where). A failing run
    does not stop the others.

    Parameters
    ----------
    runs : sequence of Experiment
        From :meth:`ExperimentGrid.experiments` (or built by hand).
    num_cpu : int
        MPI processes per run (each run calls ``mpi_fork(num_cpu)``).
    parallel : int
        Runs at once (``parallel * num_cpu`` processes in all).
    hostfile, mpirun_args
        Passed to ``mpirun`` when ``num_cpu > 1``.
    raise_on_failure : bool
        Raise :class:`GridRunError` after the table if a run failed.
    python : str, optional
        Interpreter of the runs (default this one).

    Returns
    -------
    list of RunResult
        In the order of ``runs``.
    """
    for name, value in (("num_cpu", num_cpu), ("parallel", parallel)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    import cloudpickle

    parallel = min(parallel, max(1, len(runs)))
    env = dict(os.environ)
    if parallel > 1 and "KERAS_VPG_THREADS" not in env:
        env["KERAS_VPG_THREADS"] = str(max(1, usable_cores() // (parallel * num_cpu)))
    results: list[RunResult | None] = [None] * len(runs)
    running: dict[int, tuple[subprocess.Popen, float, str | None]] = {}  # process, start, log
    pending = list(enumerate(runs))
    with tempfile.TemporaryDirectory(prefix="keras-vpg-grid-") as scratch:
        try:
            while pending or running:
                while pending and len(running) < parallel:
                    index, run = pending.pop(0)
                    payload = Path(scratch) / f"run{index}.pkl"
                    payload.write_bytes(cloudpickle.dumps(
                        (run.thunk, run.kwargs, num_cpu, hostfile, list(mpirun_args))))
                    log = None
                    if parallel > 1:
                        Path(run.output_dir).mkdir(parents=True, exist_ok=True)
                        log = str(Path(run.output_dir) / "output.log")
                        print(f"Started {run.exp_name} (seed {run.kwargs['seed']}): "
                              f"output in {log}", flush=True)
                    else:
                        print(f"{LINE}\nRunning {run.output_dir}\n{LINE}", flush=True)
                    # A session of its own: stopping the grid stops the run's whole
                    # process group (mpirun and its ranks included). The log file is
                    # the run's: this process closes its copy once the run has it.
                    with open(log, "w") if log else contextlib.nullcontext() as output:
                        process = subprocess.Popen(
                            [python or sys.executable, "-m", "keras_vpg.grid", str(payload)],
                            env=env, stdout=output, stderr=subprocess.STDOUT if log else None,
                            start_new_session=True)
                    running[index] = (process, time.monotonic(), log)
                finished = [i for i, (p, *_) in running.items() if p.poll() is not None]
                if not finished:
                    time.sleep(0.2)
                for index in finished:
                    process, start, log = running.pop(index)
                    run = runs[index]
                    results[index] = RunResult(
                        run.exp_name, run.output_dir, final_return(run.output_dir),
                        time.monotonic() - start, process.returncode, log)
                    if process.returncode and log:
                        print(f"FAILED {run.output_dir} (exit {process.returncode}); "
                              f"last lines of {log}:\n{_tail(log)}", flush=True)
                    elif log:
                        print(f"Finished {run.exp_name} (seed {run.kwargs['seed']}) in "
                              f"{results[index].seconds:.0f} s", flush=True)
        finally:  # Ctrl-C or an error here: no run is left behind
            for process, _, _ in running.values():
                _stop(process)
    print(summary_table(results), flush=True)  # (every run has its result here)
    failed = [r for r in results if not r.ok]
    if failed and raise_on_failure:
        raise GridRunError(
            f"{len(failed)} of {len(results)} runs failed: "
            + ", ".join(f"{r.output_dir} (exit {r.returncode})" for r in failed), results)
    return results


def final_return(output_dir: str | os.PathLike, column: str = "AverageEpRet") -> float:
    """The last epoch's ``column`` in ``output_dir/progress.txt`` (NaN if there is none)."""
    try:
        return float(read_progress(Path(output_dir) / "progress.txt")[column][-1])
    except (OSError, ValueError, KeyError, IndexError):
        return math.nan


def summary_table(results: Sequence[RunResult]) -> str:
    """The runs as a text table: directory, final AverageEpRet, wall time, status."""
    rows = [("Run directory", "AverageEpRet", "Time (s)", "Status")]
    rows += [(r.output_dir, f"{r.final_return:.4g}", f"{r.seconds:.1f}",
              "ok" if r.ok else f"failed (exit {r.returncode})") for r in results]
    run_width, return_width, time_width = (max(len(row[i]) for row in rows) for i in range(3))
    lines = [f"{run:<{run_width}}  {ret:>{return_width}}  {secs:>{time_width}}  {status}"
             for run, ret, secs, status in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def call_experiment(thunk: Callable[..., Any], kwargs: dict[str, Any], num_cpu: int = 1,
                    hostfile: str | None = None, mpirun_args: Sequence[str] = ()) -> Any:
    """What a run's process does: fork into ``num_cpu`` MPI ranks, then ``thunk(**kwargs)``.

    ``env_name`` in ``kwargs`` becomes ``env_fn=functools.partial(gymnasium.make, env_name)``.
    """
    kwargs = dict(kwargs)
    if "env_name" in kwargs:
        import gymnasium as gym

        kwargs["env_fn"] = functools.partial(gym.make, kwargs.pop("env_name"))
    mpi_fork(num_cpu, extra_args=mpirun_args, hostfile=hostfile)
    return thunk(**kwargs)


def _default_shorthand(key: str) -> str:
    return "-".join("".join(c for c in part[:3] if c.isalnum()) for part in key.split(":"))


def _shown(value: Any) -> str:
    try:
        return json.dumps(value)
    except TypeError:
        return getattr(value, "__name__", repr(value))


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a:b": 1}`` -> ``{"a": {"b": 1}}``."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *heads, last = key.split(":")
        group = nested
        for head in heads:
            group = group.setdefault(head, {})
            if not isinstance(group, dict):
                raise ValueError(f"{head!r} is both a parameter and a group of parameters")
        if isinstance(group.get(last), dict):
            raise ValueError(f"{last!r} is both a parameter and a group of parameters")
        group[last] = value
    return nested


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the run's process group (the agent checkpoints on it), then wait."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


if __name__ == "__main__":  # one run of a grid: ``python -m keras_vpg.grid PAYLOAD``
    import cloudpickle  # PAYLOAD: (thunk, kwargs, num_cpu, hostfile, mpirun_args), pickled

    with open(sys.argv[1], "rb") as payload_file:  # by run_experiments
        call_experiment(*cloudpickle.load(payload_file))
