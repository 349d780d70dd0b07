"""Learning curves from run directories (Spinning Up's ``plot``, matplotlib only)."""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_vpg.files import atomic_write


def read_progress(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Columns of a tab-separated ``progress.txt`` as float arrays (``nan`` kept)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError(f"{str(path)!r} has no data rows")
    header = lines[0].split("\t")
    try:
        rows = np.array([[float(x) for x in line.split("\t")] for line in lines[1:]])
    except ValueError as error:
        raise ValueError(f"{str(path)!r} is malformed: {error}") from error
    if rows.shape[1] != len(header):
        raise ValueError(f"{str(path)!r} is malformed: rows do not match the header")
    return {name: rows[:, i] for i, name in enumerate(header)}


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Centered moving average over ``window`` points, ignoring NaNs (same length out)."""
    y = np.asarray(y, dtype=np.float64)
    if window <= 1:
        return y.copy()
    kernel = np.ones(window)
    valid = np.isfinite(y)
    # The centered part of the full convolution (numpy's mode="same" returns
    # max(len(y), window) points: too many when the window is the longer).
    center = slice((window - 1) // 2, (window - 1) // 2 + len(y))
    totals = np.convolve(np.where(valid, y, 0.0), kernel, mode="full")[center]
    counts = np.convolve(valid.astype(np.float64), kernel, mode="full")[center]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / counts, np.nan)


def find_runs(logdirs: Sequence[str], select: Sequence[str] | None = None,
              exclude: Sequence[str] | None = None) -> dict[str, list[Path]]:
    """Run directories (holding progress.txt) under each logdir, grouped into curves.

    A logdir that is not a directory is treated as a prefix of directories in its
    parent. Runs are grouped by experiment name (``exp_name`` of config.json,
    else the parent directory's name) within each logdir: different logdirs never
    share a curve. The keys are the experiment names, or ``logdir`` /
    ``logdir:exp_name`` where an experiment name occurs under several logdirs.
    """
    found: list[tuple[str, str, Path]] = []  # (logdir, exp_name, run)
    for logdir in logdirs:
        base = Path(logdir)
        if base.is_dir():
            roots = [base]
        else:  # Path("hc").parent is Path(".")
            roots = sorted(p for p in base.parent.glob(base.name + "*") if p.is_dir())
            if not roots:
                raise ValueError(f"no run directory matches {logdir!r}")
        for root in roots:
            for progress in sorted(root.rglob("progress.txt")):
                run = progress.parent
                if any(part.startswith(".") for part in run.relative_to(root).parts):
                    continue  # hidden folders, e.g. the .old/ of replaced runs
                if select and not all(s in str(run) for s in select):
                    continue
                if exclude and any(x in str(run) for x in exclude):
                    continue
                found.append((logdir, _experiment_name(run), run))
    if not found:
        raise ValueError(f"no progress.txt found under {list(logdirs)}")
    pairs = {(logdir, name) for logdir, name, _ in found}  # distinct (logdir, experiment)
    groups: dict[str, list[Path]] = {}
    for logdir, name, run in found:
        if sum(n == name for _, n in pairs) == 1:  # the name is under one logdir only
            key = name
        elif sum(d == logdir for d, _ in pairs) == 1:  # under several: label by directory
            key = logdir
        else:
            key = f"{logdir}:{name}"
        groups.setdefault(key, []).append(run)
    return groups


def _experiment_name(run: Path) -> str:
    """``exp_name`` of the run's config.json, else the parent directory's name."""
    try:
        return str(json.loads((run / "config.json").read_text()).get("exp_name") or run.parent.name)
    except (OSError, ValueError, AttributeError):
        return run.parent.name


def make_plots(all_logdirs: Sequence[str], legend: Sequence[str] | None = None,
               xaxis: str = "TotalEnvInteracts", values: Sequence[str] | str = ("AverageEpRet",),
               count: bool = False, smooth: int = 1, select: Sequence[str] | None = None,
               exclude: Sequence[str] | None = None, estimator: str = "mean",
               out: str | None = None, xmax: float | None = None) -> list:
    """Plot learning curves; one figure per value (mean over seeds with a ±std band).

    Parameters
    ----------
    all_logdirs : list of str
        Directories (searched recursively for progress.txt) or name prefixes.
    legend : list of str, optional
        One label per curve, in order (default: the keys of :func:`find_runs`).
    xaxis, values : str
        Columns of progress.txt for the x axis and the plotted value(s).
    count : bool
        Plot every run separately instead of the estimator over seeds. Otherwise
        the runs of a curve are cut to the shortest one (with a ``UserWarning``).
    smooth : int
        Window of the centered moving average.
    estimator : {"mean", "max", "min"}
    out : str, optional
        Save to this file (``name_<value>.ext`` when several values).
    xmax : float, optional
        Drop the epochs whose x value is above ``xmax`` (before the runs of a curve
        are cut to the shortest), to compare runs of different lengths at one budget.

    Returns
    -------
    list of matplotlib.figure.Figure
    """
    import matplotlib

    if out is not None or not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [values] if isinstance(values, str) else list(values)
    reduce = {"mean": np.nanmean, "max": np.nanmax, "min": np.nanmin}.get(estimator)
    if reduce is None:
        raise ValueError(f"estimator must be mean, max or min, got {estimator!r}")
    groups = find_runs(all_logdirs, select, exclude)
    if legend is not None and len(legend) != len(groups):
        raise ValueError(f"legend has {len(legend)} names for {len(groups)} experiments")
    labels = list(legend) if legend is not None else list(groups)
    figures = []
    for value in values:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, runs in zip(labels, groups.values()):
            data = [read_progress(run / "progress.txt") for run in runs]
            for run, columns in zip(runs, data):
                missing = [column for column in (xaxis, value) if column not in columns]
                if missing:
                    raise ValueError(f"column {missing[0]!r} is not in {run / 'progress.txt'}; "
                                     f"available: {', '.join(columns)}")
            if xmax is not None:
                data = [{key: column[columns[xaxis] <= xmax] for key, column in columns.items()}
                        for columns in data]
            if count:
                for run, columns in zip(runs, data):
                    ax.plot(columns[xaxis], _smooth(columns[value], smooth),
                            label=f"{label}/{run.name}")
                continue
            lengths = [len(columns[value]) for columns in data]
            length = min(lengths)
            if length < max(lengths) and value == values[0]:
                shortest = runs[lengths.index(length)]
                warnings.warn(f"{label}: runs have {length} to {max(lengths)} epochs; the curve "
                              f"is cut to the shortest ({shortest}); pass --count to see every "
                              "run", UserWarning, stacklevel=2)
            ys = np.stack([_smooth(columns[value][:length], smooth) for columns in data])
            x = data[0][xaxis][:length]
            center = reduce(ys, axis=0)
            (line,) = ax.plot(x, center, label=label)
            if len(ys) > 1:
                spread = np.nanstd(ys, axis=0)
                ax.fill_between(x, center - spread, center + spread, alpha=0.2,
                                color=line.get_color())
        ax.set(xlabel=xaxis, ylabel=value)
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        fig.tight_layout()
        if out is not None:
            target = output_files(out, values)[values.index(value)]
            atomic_write(target, functools.partial(fig.savefig, dpi=110))
        figures.append(fig)
    return figures


_smooth = smooth


def output_files(out: str, values: Sequence[str]) -> list[str]:
    """The files :func:`make_plots` writes for ``out``: ``out`` itself for one value,
    else ``NAME_VALUE.EXT`` per value."""
    values = [values] if isinstance(values, str) else list(values)
    if len(values) == 1:
        return [str(out)]
    path = Path(out)
    return [str(path.with_name(f"{path.stem}_{value}{path.suffix or '.png'}"))
            for value in values]
