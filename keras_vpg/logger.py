"""Spinning Up-style run output (progress.txt, config.json, model.keras) and the progress bar."""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_vpg import mpi
from keras_vpg.config import json_value
from keras_vpg.files import atomic_write
from keras_vpg.plot import read_progress

#: progress.txt columns, in order; more may follow (a callback's, at the end).
PROGRESS_COLUMNS = (
    "Epoch", "AverageEpRet", "StdEpRet", "MaxEpRet", "MinEpRet", "EpLen",
    "AverageVVals", "StdVVals", "MaxVVals", "MinVVals", "TotalEnvInteracts",
    "LossPi", "LossV", "DeltaLossPi", "DeltaLossV", "Entropy", "KL", "Time",
    "StepsPerSecond",
)

#: What the per-epoch summary line shows.
SUMMARY_KEYS = ("AverageEpRet", "EpLen", "LossPi", "LossV", "KL", "Entropy", "StepsPerSecond")


#: Files whose presence means a directory already holds a run.
RUN_MARKERS = ("progress.txt", "config.json", "checkpoints", "model.keras")

# The run directory a VPG being built resumes (set by :func:`resuming`), else None.
_RESUMING: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "keras_vpg_resuming", default=None
)


@contextlib.contextmanager
def resuming(output_dir: str | os.PathLike) -> Iterator[None]:
    """Inside this block an :class:`EpochLogger` of ``output_dir`` keeps the run's files.

    (Otherwise a new logger moves an earlier run's files aside.) Used by
    :meth:`keras_vpg.VPG.restore`, which builds the agent and then calls
    :meth:`EpochLogger.resume_from`.
    """
    token = _RESUMING.set(Path(output_dir).resolve())
    try:
        yield
    finally:
        _RESUMING.reset(token)


#: Where replaced runs go, inside the parent of their run directory (the experiment
#: folder). Hidden, so that readers that walk an experiment folder (``keras-vpg plot``
#: skips hidden folders, as shell globs do) never count an old run as a seed; a
#: sibling ``<exp>_old/`` would still match ``plot data/<exp>`` as a prefix, and
#: ``plot data`` would group it with the live runs under the same exp_name.
OLD_RUNS_DIR = ".old"


class RunMovedAside(UserWarning):
    """A new run found an earlier run in its directory and moved it to ``.old/``."""


def move_run_aside(directory: Path) -> Path:
    """Move everything in ``directory`` to ``<parent>/.old/<name>_<timestamp>``.

    Returns the new place. Nothing is deleted: the directory is renamed (or, when
    that is not possible, e.g. it is the working directory, its entries are
    moved one by one) and ``directory`` is then created empty.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    old_runs = directory.parent / OLD_RUNS_DIR
    old_runs.mkdir(parents=True, exist_ok=True)
    target = old_runs / f"{directory.name}_{stamp}"
    suffix = 1
    while target.exists():
        target = old_runs / f"{directory.name}_{stamp}_{suffix}"
        suffix += 1
    try:
        if Path.cwd().resolve().is_relative_to(directory.resolve()):
            raise OSError("the working directory is inside it")
        os.rename(directory, target)
    except OSError:
        target.mkdir()
        for entry in directory.iterdir():
            os.rename(entry, target / entry.name)
    directory.mkdir(parents=True, exist_ok=True)
    return target


def _format(value: float) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return "nan" if value is None else f"{value:.8g}"  # NaN formats as "nan"


class EpochLogger:
    """Writes a run directory the way Spinning Up's logger does (rank 0 only).

    Parameters
    ----------
    output_dir : str
        Run directory; created if missing.
    exp_name : str or None
        Experiment name stored in ``config.json``.

    Notes
    -----
    A new run in a directory that already holds one (``progress.txt``,
    ``config.json``, ``checkpoints/`` or ``model.keras``) first moves the old
    run's files to ``<parent>/.old/<dir>_<timestamp>`` (see :data:`OLD_RUNS_DIR`),
    named in a :class:`RunMovedAside` warning, so two runs never mix. A resumed
    run (built inside :func:`resuming`) keeps them and appends to ``progress.txt``
    (see :meth:`resume_from`).
    """

    def __init__(self, output_dir: str, exp_name: str | None = None):
        self.output_dir = Path(output_dir)
        self.exp_name = exp_name
        self.is_writer = mpi.proc_id() == 0
        self.rows: list[dict[str, float]] = []
        self.columns: list[str] | None = None
        self.resumed = _RESUMING.get() == self.output_dir.resolve()
        if self.is_writer:
            # (A file that is not a directory holds none of RUN_MARKERS.)
            if not self.resumed and any((self.output_dir / n).exists() for n in RUN_MARKERS):
                old = move_run_aside(self.output_dir)
                # stacklevel 4: the caller of VPG(...).
                warnings.warn(f"{self.output_dir} already held a run: moved it to {old} (to "
                              f"continue that run instead: keras-vpg train --resume {old})",
                              RunMovedAside, stacklevel=4)
            self.output_dir.mkdir(parents=True, exist_ok=True)

    def resume_from(self, epoch: int) -> None:
        """Continue ``progress.txt`` after ``epoch`` completed epochs (rows ``0 .. epoch - 1``).

        Rows of later epochs (logged after the checkpoint being resumed) are
        dropped with a warning; the file is rewritten atomically. New rows keep
        the file's columns.
        """
        path = self.output_dir / "progress.txt"
        if not self.is_writer or not path.exists():
            return
        columns = read_progress(path)  # the one reader (keras_vpg.plot)
        later = columns["Epoch"] >= epoch
        if later.any():
            dropped = columns["Epoch"][later].astype(int).tolist()
            warnings.warn(f"{path}: dropped {len(dropped)} row(s) logged after the checkpoint of "
                          f"epoch {epoch} (epochs {dropped}); they will be logged again",
                          stacklevel=2)
        # Whole numbers back as ints, written as they were (not 1e+08 for 100000000).
        self.columns = list(columns)
        self.rows = [{c: int(v) if v.is_integer() else float(v) for c, v in zip(columns, row)}
                     for row, drop in zip(zip(*columns.values()), later) if not drop]
        if self.rows:
            self._write_progress()
        else:
            path.unlink()
            self.columns = None

    def save_config(self, config: dict[str, Any]) -> None:
        """Write ``config.json`` (every argument of the run).

        A resumed run keeps the entries recorded after construction (``epochs``,
        the command line's ``tensorboard`` and ``eval_*``, see :meth:`update_config`).
        """
        if not self.is_writer:
            return
        config = dict(config, exp_name=self.exp_name, versions=run_versions())
        self._write_config({**self._read_config(), **config} if self.resumed else config)

    def update_config(self, **entries: Any) -> None:
        """Add ``entries`` to ``config.json``: what ``--config`` needs beyond the
        constructor's arguments (the run's ``epochs``, its callbacks' settings)."""
        if not self.is_writer:
            return
        self._write_config({**self._read_config(), **entries})

    def _read_config(self) -> dict[str, Any]:
        try:
            config = json.loads((self.output_dir / "config.json").read_text())
        except (OSError, ValueError):
            return {}
        return config if isinstance(config, dict) else {}

    def _write_config(self, config: dict[str, Any]) -> None:
        text = json.dumps(json_value(config), indent=2, sort_keys=True)
        atomic_write(self.output_dir / "config.json", lambda p: Path(p).write_text(text))

    def dump_tabular(self, row: dict[str, float]) -> None:
        """Append one epoch's row to ``progress.txt`` (the file is rewritten atomically).

        The header is the :data:`PROGRESS_COLUMNS` present, in their order, then the other
        keys in order of appearance. A key first seen in a later row (a callback's
        column) becomes a new column at the end; earlier rows read ``nan`` there.
        Rewriting the whole file each epoch is what makes that safe: the header
        always matches every row.
        """
        if not self.is_writer:
            return
        if self.columns is None:
            self.columns = [k for k in PROGRESS_COLUMNS if k in row]
        self.columns += [k for k in row if k not in self.columns]
        self.rows.append(dict(row))
        self._write_progress()

    def _write_progress(self) -> None:
        nan = float("nan")
        lines = ["\t".join(self.columns)]
        lines += ["\t".join(_format(r.get(c, nan)) for c in self.columns) for r in self.rows]
        text = "\n".join(lines) + "\n"
        atomic_write(self.output_dir / "progress.txt", lambda p: Path(p).write_text(text))

    def save_model(self, model: keras.Model, epoch: int | None = None) -> None:
        """Save the policy as ``model.keras`` and, with ``epoch``, ``model_<epoch>.keras``."""
        if not self.is_writer:
            return
        names = ["model.keras"] + ([f"model_{epoch}.keras"] if epoch is not None else [])
        for name in names:
            atomic_write(self.output_dir / name, model.save)


class ProgressBar(keras.callbacks.Callback):
    """A Keras ``Progbar`` per epoch, ending in a summary line of the key statistics.

    Parameters
    ----------
    epochs : int
        Epochs in this ``fit`` call (for the ``Epoch i/n`` header).
    steps_per_epoch : int
        Env steps per epoch on this rank (the bar's target).
    verbose : int
        1: bar and summary line (summary line only when stdout is not a terminal);
        2: summary line only.
    initial_epoch : int
        Epochs done before this ``fit`` call (a second ``fit``, a resume).
    """

    def __init__(self, epochs: int, steps_per_epoch: int, verbose: int = 1,
                 initial_epoch: int = 0):
        super().__init__()
        self.epochs = epochs
        self.target = steps_per_epoch
        # Keras's Progbar redraws with control characters even into a file; there,
        # the per-epoch lines alone (verbose 2), as a log file wants.
        self.verbose = 2 if verbose == 1 and not _is_terminal(sys.stdout) else verbose
        self.initial_epoch = initial_epoch
        self.progbar: keras.utils.Progbar | None = None

    def on_epoch_begin(self, epoch, logs=None):
        # The epoch's number as progress.txt's Epoch column and model_<epoch>.keras give
        # it (Spinning Up's, from 0), then how far the run is: "Epoch 9 (10/10)".
        print(f"Epoch {epoch} ({epoch + 1}/{self.initial_epoch + self.epochs})")
        self.progbar = keras.utils.Progbar(self.target, verbose=self.verbose, unit_name="step",
                                           stateful_metrics=set(SUMMARY_KEYS))

    def on_collect_progress(self, steps: int) -> None:
        """Advance the bar to ``steps`` env steps collected so far."""
        if self.progbar is not None and self.verbose == 1:
            self.progbar.update(min(steps, self.target - 1))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        values = [(k, logs[k]) for k in SUMMARY_KEYS if k in logs]
        self.progbar.update(self.target, values=values, finalize=True)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def run_versions() -> dict[str, str | None]:
    """Which code made a run: keras-vpg's version and git commit (when imported from a
    checkout; ``+dirty`` with uncommitted changes), Python and the libraries whose
    numbers a run depends on (``None``: not installed), and the CPU: float kernels may
    round differently on another CPU, and a long run (MuJoCo's above all) grows those
    last bits into different numbers, so a run is expected to repeat exactly only on the
    same CPU."""
    import importlib.metadata
    import platform
    import subprocess

    from keras_vpg._version import __version__

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    package_dir = Path(__file__).resolve().parent

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(package_dir), *args], capture_output=True,
                              text=True, timeout=10)

    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        # Only where this package is a tracked file of the checkout (not a venv inside one).
        tracked = git("ls-files", "--error-unmatch", "__init__.py").returncode == 0
        head = git("rev-parse", "HEAD")
        if tracked and head.returncode == 0:
            dirty = git("status", "--porcelain", "--", ".").stdout.strip()
            commit = head.stdout.strip() + ("+dirty" if dirty else "")
    backend = keras.backend.backend()
    # The backend's distribution, else its -cpu one (e.g. tensorflow-cpu).
    return {
        "keras_vpg": __version__, "git_commit": commit, "python": platform.python_version(),
        "keras": keras.__version__, backend: version(backend) or version(f"{backend}-cpu"),
        "numpy": np.__version__, "gymnasium": version("gymnasium"), "mujoco": version("mujoco"),
        "cpu": _cpu(),
    }


def _cpu() -> str:
    """The CPU's model, its architecture and widest vector extension, e.g. ``AMD EPYC
    (x86_64, avx512f)``: from /proc/cpuinfo on Linux (x86 ``model name``/``flags``, Arm
    ``CPU implementer``/``CPU part``/``Features``), sysctl on macOS, else the platform."""
    import platform
    import subprocess

    info = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    model = info.get("model name") or " ".join(
        f"{k} {info[k]}" for k in ("CPU implementer", "CPU part") if k in info)
    if not model and platform.system() == "Darwin":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            model = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
    flags = (info.get("flags") or info.get("Features") or "").split()
    simd = [f for f in ("avx512f", "avx2", "avx", "sve2", "sve", "asimd") if f in flags][:1]
    return f"{model or platform.processor() or 'unknown CPU'} " \
           f"({', '.join([platform.machine(), *simd])})"
