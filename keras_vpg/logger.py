"""Spinning Up-style run output (progress.txt, config.json, checkpoints) and the progress bar."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_vpg import mpi
from keras_vpg.files import atomic_write

#: progress.txt columns, in order (DESIGN section 3); more may follow.
PROGRESS_COLUMNS = (
    "Epoch", "AverageEpRet", "StdEpRet", "MaxEpRet", "MinEpRet", "EpLen",
    "AverageVVals", "StdVVals", "MaxVVals", "MinVVals", "TotalEnvInteracts",
    "LossPi", "LossV", "DeltaLossPi", "DeltaLossV", "Entropy", "KL", "Time",
    "StepsPerSecond",
)

#: What the per-epoch summary line shows.
SUMMARY_KEYS = ("AverageEpRet", "EpLen", "LossPi", "LossV", "KL", "Entropy", "StepsPerSecond")


def _jsonable(obj: Any) -> Any:
    """Best-effort JSON form of a config value (callables and objects by name/repr)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "__qualname__"):
        return f"{getattr(obj, '__module__', '')}.{obj.__qualname__}"
    return repr(obj)


def _format(value: float) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.8g}"


class EpochLogger:
    """Writes a run directory the way Spinning Up's logger does (rank 0 only).

    Parameters
    ----------
    output_dir : str
        Run directory; created if missing.
    exp_name : str or None
        Experiment name stored in ``config.json``.
    """

    def __init__(self, output_dir: str, exp_name: str | None = None):
        self.output_dir = Path(output_dir)
        self.exp_name = exp_name
        self.is_writer = mpi.proc_id() == 0
        self.rows: list[dict[str, float]] = []
        self.columns: list[str] | None = None
        if self.is_writer:
            if (self.output_dir / "progress.txt").exists():
                warnings.warn(
                    f"{self.output_dir} already holds a run; its progress.txt is replaced",
                    stacklevel=3,
                )
            self.output_dir.mkdir(parents=True, exist_ok=True)

    def save_config(self, config: dict[str, Any]) -> None:
        """Write ``config.json`` (every argument of the run)."""
        if not self.is_writer:
            return
        config = _jsonable(dict(config, exp_name=self.exp_name))
        text = json.dumps(config, indent=2, sort_keys=True)
        atomic_write(self.output_dir / "config.json", lambda p: Path(p).write_text(text))

    def dump_tabular(self, row: dict[str, float]) -> None:
        """Append one epoch's row to ``progress.txt`` (the file is rewritten atomically).

        The header is the DESIGN columns present, in their order, then the other
        keys in order of appearance. A key first seen in a later row (a callback's
        column) becomes a new column at the end; earlier rows read ``nan`` there.
        Rewriting the whole file each epoch is what makes that safe: the header
        always matches every row.
        """
        if not self.is_writer:
            return
        if self.columns is None:
            extra = [k for k in row if k not in PROGRESS_COLUMNS]
            self.columns = [k for k in PROGRESS_COLUMNS if k in row] + extra
        else:
            self.columns += [k for k in row if k not in self.columns]
        self.rows.append(dict(row))
        lines = ["\t".join(self.columns)]
        nan = float("nan")
        lines += ["\t".join(_format(r.get(c, nan)) for c in self.columns) for r in self.rows]
        text = "\n".join(lines) + "\n"
        atomic_write(self.output_dir / "progress.txt", lambda p: Path(p).write_text(text))

    def save_model(self, model: keras.Model, epoch: int | None = None) -> None:
        """Checkpoint ``model.keras`` (the latest) and, with ``epoch``, ``model_<epoch>.keras``."""
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
        1: bar and summary line; 2: summary line only.
    keys : iterable of str
        Statistics shown in the summary line.
    """

    def __init__(self, epochs: int, steps_per_epoch: int, verbose: int = 1,
                 keys: Iterable[str] = SUMMARY_KEYS, initial_epoch: int = 0):
        super().__init__()
        self.epochs = epochs
        self.target = steps_per_epoch
        self.verbose = verbose
        self.keys = tuple(keys)
        self.initial_epoch = initial_epoch
        self.progbar: keras.utils.Progbar | None = None

    def on_epoch_begin(self, epoch, logs=None):
        print(f"Epoch {epoch + 1}/{self.initial_epoch + self.epochs}")
        self.progbar = keras.utils.Progbar(
            self.target, verbose=self.verbose, stateful_metrics=set(self.keys), unit_name="step"
        )

    def on_collect_progress(self, steps: int) -> None:
        """Advance the bar to ``steps`` env steps collected so far."""
        if self.progbar is not None and self.verbose == 1:
            self.progbar.update(min(steps, self.target - 1))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        values = [(k, logs[k]) for k in self.keys if k in logs]
        self.progbar.update(self.target, values=values, finalize=True)
