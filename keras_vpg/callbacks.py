"""Keras callbacks of our own: evaluation during training and TensorBoard scalars.

Both are ordinary ``keras.callbacks.Callback`` objects for ``VPG.fit(callbacks=[...])``;
their ``model`` is the ActorCritic. Under MPI the agent gives callbacks to rank 0 only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import keras
import numpy as np

from keras_vpg import mpi
from keras_vpg._backend import is_installed
from keras_vpg.files import atomic_write
from keras_vpg.serving import run_episodes

#: Columns :class:`EvalCallback` adds to every epoch's logs (NaN on epochs without an eval).
EVAL_COLUMNS = ("EvalAverageEpRet", "EvalStdEpRet", "EvalEpLen")


def evaluate_policy(model, env_fn: Callable[[], gym.Env], n_eval_episodes: int = 10,
                    deterministic: bool = True, seed: int = 0, max_ep_len: int | None = None,
                    envs: Sequence[gym.Env] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of ``n_eval_episodes`` episodes of ``model``'s policy.

    The episodes run side by side, one env each, on the one episode runner
    (:func:`keras_vpg.serving.run_episodes`, one batched policy call per step,
    the numpy sampler for a plain MLP), and episode ``k`` starts from
    ``reset(seed=seed + k)``: the same policy always scores the same.

    Parameters
    ----------
    model : ActorCritic
        Anything with ``act(obs_batch, deterministic=...)`` returning env actions.
    env_fn : callable
        ``() -> gymnasium.Env``; called ``n_eval_episodes`` times unless ``envs`` is given.
    n_eval_episodes : int
        Episodes to run.
    deterministic : bool
        Act with the mode of the policy (else sample).
    seed : int
        Episode ``k`` is reset with ``seed + k``.
    max_ep_len : int or None
        Cut episodes after this many steps (the env's own time limit applies anyway).
    envs : sequence of gymnasium.Env, optional
        ``n_eval_episodes`` envs to reuse (left open); else made here and closed.

    Returns
    -------
    returns, lengths : numpy arrays of shape ``(n_eval_episodes,)``
    """
    stats = run_episodes(model, env_fn, n_eval_episodes, max_ep_len, deterministic,
                         n_eval_episodes, seed, envs)
    return np.asarray(stats.returns), np.asarray(stats.lengths, dtype=np.int64)


class EvalCallback(keras.callbacks.Callback):
    """Evaluate the policy on separate envs every ``eval_freq`` epochs (Stable-Baselines3's names).

    After epochs ``eval_freq - 1``, ``2 * eval_freq - 1``, ... it runs
    ``n_eval_episodes`` episodes (see :func:`evaluate_policy`) and puts
    ``EvalAverageEpRet``, ``EvalStdEpRet`` and ``EvalEpLen`` in the epoch's logs;
    on other epochs these keys are NaN, so ``History`` has one value per epoch
    and progress.txt has the three columns (after the standard columns) from the
    first row. ``VPG.fit`` runs this callback before the others, so TensorBoard
    and ``CSVLogger`` see the columns.

    Parameters
    ----------
    env_fn : callable
        ``() -> gymnasium.Env`` for evaluation (not the training envs).
    eval_freq : int
        Evaluate every this many epochs.
    n_eval_episodes : int
        Episodes per evaluation; they run side by side in ``n_eval_episodes`` envs.
    deterministic : bool
        Evaluate the mode of the policy (else sampled actions).
    best_model_path : str or None
        Save the policy with the best ``EvalAverageEpRet`` so far here (a ``.keras``
        file, written atomically); ``None`` saves nothing.
    verbose : int
        1 prints one line per evaluation, 0 nothing.
    seed : int
        Episode ``k`` of every evaluation starts from ``reset(seed=seed + k)``: every
        evaluation sees the same start states, so evaluations compare policies, not luck.
    max_ep_len : int or None
        Cut evaluation episodes after this many steps.

    Attributes
    ----------
    best_mean_reward : float
        Best ``EvalAverageEpRet`` so far (``-inf`` before the first evaluation).
    last_mean_reward : float
        ``EvalAverageEpRet`` of the latest evaluation.
    evaluations : list of dict
        ``{"epoch", "returns", "lengths"}`` of every evaluation.
    """

    #: ``VPG.fit`` runs callbacks that add to the logs before the others.
    adds_epoch_logs = True

    def __init__(self, env_fn: Callable[[], gym.Env], eval_freq: int = 10,
                 n_eval_episodes: int = 10, deterministic: bool = True,
                 best_model_path: str | os.PathLike | None = None, verbose: int = 1,
                 seed: int = 0, max_ep_len: int | None = None):
        super().__init__()
        if not callable(env_fn):
            raise TypeError(f"env_fn must be a callable returning a gymnasium.Env, got {env_fn!r}")
        for name, value in (("eval_freq", eval_freq), ("n_eval_episodes", n_eval_episodes)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if best_model_path is not None and not str(best_model_path).endswith(".keras"):
            raise ValueError(f"best_model_path must end in .keras, got {str(best_model_path)!r}")
        if max_ep_len is not None and max_ep_len < 0:
            raise ValueError(f"max_ep_len must be >= 0 or None, got {max_ep_len!r}")
        self.env_fn = env_fn
        self.eval_freq = int(eval_freq)
        self.n_eval_episodes = int(n_eval_episodes)
        self.deterministic = bool(deterministic)
        self.best_model_path = None if best_model_path is None else Path(best_model_path)
        self.verbose = verbose
        self.seed = int(seed)
        self.max_ep_len = max_ep_len
        self.best_mean_reward = -math.inf
        self.last_mean_reward = math.nan
        self.evaluations: list[dict[str, Any]] = []
        self._envs: list[gym.Env] | None = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or mpi.proc_id() != 0:
            return
        logs.update(dict.fromkeys(EVAL_COLUMNS, math.nan))
        if (epoch + 1) % self.eval_freq:
            return
        if self._envs is None:  # made once, kept for the run (closed in on_train_end)
            self._envs = [self.env_fn() for _ in range(self.n_eval_episodes)]
        returns, lengths = evaluate_policy(
            self.model, self.env_fn, self.n_eval_episodes, self.deterministic, self.seed,
            self.max_ep_len, envs=self._envs)
        mean = float(returns.mean())
        logs.update(EvalAverageEpRet=mean, EvalStdEpRet=float(returns.std()),
                    EvalEpLen=float(lengths.mean()))
        self.evaluations.append({"epoch": epoch, "returns": returns, "lengths": lengths})
        self.last_mean_reward = mean
        improved = mean > self.best_mean_reward
        if improved:
            self.best_mean_reward = mean
            if self.best_model_path is not None:
                atomic_write(self.best_model_path, self.model.save)
        if self.verbose:
            note = " (new best)" if improved else ""
            print(f"Eval after epoch {epoch}: return {mean:.2f} +/- {returns.std():.2f}, "
                  f"length {lengths.mean():.1f} over {len(returns)} episodes{note}", flush=True)

    def on_train_end(self, logs=None):
        for env in self._envs or ():
            env.close()
        self._envs = None


#: The packages each writer needs. tf.summary raises TBNotInstalledError at its first
#: write without `tensorboard`.
_WRITER_PACKAGES = {"tensorflow": ("tensorflow", "tensorboard"), "tensorboardX": ("tensorboardX",)}
_WRITERS = ("auto", *_WRITER_PACKAGES)
_INSTALL_EXTRA = 'pip install "keras-vpg[tensorboard]"'


class TensorBoardLogger(keras.callbacks.Callback):
    """Every numeric log value as a TensorBoard scalar, against env steps or epochs.

    Unlike ``keras.callbacks.TensorBoard`` (which also works with ``VPG.fit`` where
    TensorFlow is installed), the x axis can be ``TotalEnvInteracts``, and it runs
    on every backend with or without TensorFlow. ``pip install "keras-vpg[tensorboard]"``
    installs what it needs on any install: ``tensorboardX`` (the writer without
    TensorFlow) and ``tensorboard`` (the ``tensorboard --logdir`` viewer, which
    ``tf.summary`` also needs since TensorFlow 2.21 stopped installing it). NaN
    values (an epoch without a finished episode or without an evaluation) are left
    out rather than plotted.

    Parameters
    ----------
    log_dir : str
        Directory of the event files (created if missing).
    x_axis : str
        ``"TotalEnvInteracts"`` (env steps), ``"Epoch"`` (1-based, as Keras's
        TensorBoard counts), or any other numeric log key.
    writer : {"auto", "tensorflow", "tensorboardX"}
        ``"auto"``: ``tf.summary`` on the TensorFlow backend, else ``tensorboardX``
        (importing TensorFlow into a JAX or PyTorch process costs seconds, memory
        and thread pools); whichever of the two is usable if only one is.
        ``tf.summary`` is usable when TensorFlow and ``tensorboard`` are installed.
    prefix : str
        Put before every tag (e.g. ``"vpg/"`` to group the scalars).

    Raises
    ------
    ImportError
        When no writer is usable; its message is the ``pip install`` that fixes it
        (see :func:`tensorboard_missing`).
    """

    def __init__(self, log_dir: str | os.PathLike, x_axis: str = "TotalEnvInteracts",
                 writer: str = "auto", prefix: str = ""):
        super().__init__()
        if writer not in _WRITERS:
            raise ValueError(f"writer must be one of {_WRITERS}, got {writer!r}")
        if not isinstance(x_axis, str) or not x_axis:
            raise ValueError(
                f"x_axis must be a log key such as 'TotalEnvInteracts', got {x_axis!r}")
        self.log_dir = str(log_dir)
        self.x_axis = x_axis
        self.writer = _choose_writer(writer)
        self.prefix = prefix
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if mpi.proc_id() != 0:
            return
        logs = dict(logs or {})
        if self.x_axis == "Epoch":
            step = epoch + 1
        elif self.x_axis in logs:
            step = int(logs[self.x_axis])
        else:
            raise ValueError(
                f"x_axis={self.x_axis!r} is not a log key; available: {sorted(logs)} or 'Epoch'")
        scalars = {}
        for key, value in logs.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue  # not a number (Keras's logs may hold other things)
            if math.isfinite(value):
                scalars[self.prefix + key] = value
        if self._writer is None:  # made at the first epoch
            # The directory first, by us: a path that cannot be one is then an OSError
            # (one line from the CLI), whatever the writer.
            Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        if self.writer == "tensorflow":
            import tensorflow as tf

            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default():
                for tag, value in scalars.items():
                    tf.summary.scalar(tag, value, step=step)
        else:
            from tensorboardX import SummaryWriter

            if self._writer is None:
                self._writer = SummaryWriter(self.log_dir)
            for tag, value in scalars.items():
                self._writer.add_scalar(tag, value, global_step=step)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _usable_writers() -> list[str]:
    """The writers whose packages are installed (checked without importing them)."""
    return [writer for writer, packages in _WRITER_PACKAGES.items()
            if all(is_installed(package) for package in packages)]


def tensorboard_missing(writer: str = "auto") -> str | None:
    """What to install for :class:`TensorBoardLogger` with ``writer``, or ``None`` if usable.

    Checks installed packages only (imports neither TensorFlow nor tensorboardX),
    so the command line can say it in one line before training starts.

    Parameters
    ----------
    writer : {"auto", "tensorflow", "tensorboardX"}
        As for :class:`TensorBoardLogger`.

    Returns
    -------
    str or None
        A sentence ending in the ``pip install`` command, or ``None``.
    """
    usable = _usable_writers()
    if writer == "tensorflow" and "tensorflow" not in usable:
        missing = "tensorboard" if is_installed("tensorflow") else "tensorflow-cpu tensorboard"
        return f"writer='tensorflow' (tf.summary) needs {missing}: pip install {missing}"
    if writer == "tensorboardX" and "tensorboardX" not in usable:
        return f"writer='tensorboardX' needs tensorboardX: {_INSTALL_EXTRA}"
    if writer == "auto" and not usable:
        return f"TensorBoard logging needs the tensorboard extra: {_INSTALL_EXTRA}"
    return None


def _choose_writer(writer: str) -> str:
    missing = tensorboard_missing(writer)
    if missing:
        raise ImportError(missing)
    if writer != "auto":
        return writer
    usable = _usable_writers()
    if keras.backend.backend() == "tensorflow" and "tensorflow" in usable:
        return "tensorflow"
    return "tensorboardX" if "tensorboardX" in usable else "tensorflow"
