"""Vanilla Policy Gradient with GAE-Lambda: the :class:`VPG` agent and :func:`vpg`.

Each epoch follows Spinning Up's pseudocode:

1. collect ``steps_per_epoch`` steps with the current policy,
2. compute values, rewards-to-go and GAE-Lambda advantages,
3. take one policy-gradient step, then ``train_v_iters`` value-function steps,
4. log the epoch and checkpoint the policy.

Collection needs only the policy: values are computed for the whole batch
after it. So where the backend's value steps run without holding the GIL (see
``VPG(overlap_update=...)``), the value steps of epoch ``k`` run in a background thread while epoch
``k + 1`` is collected with the already-updated policy -- the same computation
as one after the other, with epoch ``k``'s logs and callbacks following as soon
as its value steps finish.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import keras
import numpy as np

from keras_vpg import mpi
from keras_vpg.actor_critic import (
    ActorCritic,
    MLPActorCritic,
    check_action_space,
    check_observation_space,
)
from keras_vpg.buffer import VPGBuffer
from keras_vpg.files import atomic_write
from keras_vpg.logger import EpochLogger, ProgressBar
from keras_vpg.rollout import VECTOR_MODES, EpochRollout, RolloutCollector, make_vector_env
from keras_vpg.trainers import UPDATE_METRICS, configure_threads, get_trainer

LearningRate = keras.optimizers.schedules.LearningRateSchedule


@dataclass
class _Updating:
    """An epoch whose value steps are running (in the background or done)."""

    epoch: int
    rollout: EpochRollout
    policy_metrics: dict[str, float]
    value_steps: Future


class VPG:
    """Vanilla Policy Gradient (with GAE-Lambda) on any Keras backend.

    Parameters follow Spinning Up's ``vpg`` (names and defaults).

    Parameters
    ----------
    env_fn : callable
        ``() -> gymnasium.Env``; called once per vectorized copy (and once to
        read the spaces and spec).
    actor_critic : callable
        ``(observation_space, action_space, **ac_kwargs) -> ActorCritic``.
    ac_kwargs : dict
        Keyword arguments of ``actor_critic`` (e.g. ``hidden_sizes``, ``activation``).
    seed : int
        Rank ``r`` uses ``seed + 10000 * r`` for Keras, numpy, the envs' reset
        and the action space.
    steps_per_epoch : int
        Env steps per epoch, in total over envs and MPI ranks. Rounded down to a
        multiple of ``num_envs * num_procs`` (with a warning) when it does not divide.
    gamma : float
        Discount factor, in [0, 1].
    pi_lr, vf_lr : float or keras.optimizers.schedules.LearningRateSchedule
        Adam learning rates of the policy and of the value function. A schedule
        is called with the optimizer's step count: the policy optimizer steps once
        per epoch, the value optimizer ``train_v_iters`` times. config.json keeps
        schedules in Keras's serialized form (:func:`keras_vpg.load_config`).
    train_v_iters : int
        Value-function gradient steps per epoch.
    lam : float
        GAE-Lambda, in [0, 1].
    max_ep_len : int or None
        Episodes are truncated (and bootstrapped) after this many steps; 0 or
        ``None`` leaves only the env's own time limit.
    logger_kwargs : dict
        ``output_dir`` and ``exp_name`` of the run (default
        ``data/<exp_name>/<exp_name>_s<seed>``, ``exp_name`` ``"vpg"``).
    save_freq : int
        Checkpoint ``model.keras`` every ``save_freq`` epochs (and at the end of ``fit``).
    num_envs : int
        Environments per process, stepped as one gymnasium vector env.
    vector_mode : {"sync", "async"}
        ``gymnasium.vector.SyncVectorEnv`` or ``AsyncVectorEnv``.
    normalize_obs : bool
        Standardize observations with running statistics (over all ranks) kept
        inside the model, so saved and exported policies carry them. Passed to
        ``actor_critic`` as ``normalize_obs=True``. The statistics take in each
        epoch's observations after that epoch's update.
    overlap_update : bool or None
        Run each epoch's value-function steps in a background thread while the
        next epoch is collected (the policy step is done before collection
        resumes, so it uses the updated policy, and values are computed after
        collection: the results are those of running one after the other).
        ``None`` (default): where the value steps run without holding the GIL
        (JAX; TensorFlow with an MLP policy; PyTorch with an MLP value function
        and Keras's plain ``Adam``, as with the defaults), in one process with
        two or more cores. Callbacks' ``on_epoch_end`` for epoch
        ``k`` then runs while epoch ``k + 1`` is being collected, between chunks
        of env steps (a callback that changes the policy there changes it for
        the rest of that collection). ``True`` needs a single process and a
        policy and value function that share no variables.
    tune_threads : bool
        Apply keras-vpg's thread and dispatch defaults for the backend when the
        first ``VPG`` of the process is built (see
        :func:`keras_vpg.trainers.configure_threads`; ``KERAS_VPG_THREADS=0``
        also turns them off). Importing keras_vpg changes nothing.
    """

    def __init__(
        self,
        env_fn: Callable[[], gym.Env],
        actor_critic: Callable[..., ActorCritic] = MLPActorCritic,
        ac_kwargs: dict[str, Any] | None = None,
        seed: int = 0,
        steps_per_epoch: int = 4000,
        gamma: float = 0.99,
        pi_lr: float | LearningRate = 3e-4,
        vf_lr: float | LearningRate = 1e-3,
        train_v_iters: int = 80,
        lam: float = 0.97,
        max_ep_len: int | None = 1000,
        logger_kwargs: dict[str, Any] | None = None,
        save_freq: int = 10,
        num_envs: int = 1,
        vector_mode: str = "sync",
        normalize_obs: bool = False,
        overlap_update: bool | None = None,
        tune_threads: bool = True,
    ):
        config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        with mpi.abort_on_exception():  # one failing rank must not leave the others hanging
            self._build(**config)

    def _build(
        self, env_fn, actor_critic, ac_kwargs, seed, steps_per_epoch, gamma, pi_lr, vf_lr,
        train_v_iters, lam, max_ep_len, logger_kwargs, save_freq, num_envs, vector_mode,
        normalize_obs, overlap_update, tune_threads,
    ) -> None:
        config = {k: v for k, v in locals().items() if k != "self"}
        ac_kwargs = dict(ac_kwargs or {})
        logger_kwargs = dict(logger_kwargs or {})
        _check_arguments(config)
        self.config = config
        self.gamma, self.lam, self.save_freq = gamma, lam, save_freq
        if tune_threads:
            configure_threads()  # first VPG of the process: before the backend computes

        # Every rank seeds differently but starts from rank 0's parameters.
        self.rank, self.num_procs = mpi.proc_id(), mpi.num_procs()
        self.seed = seed + 10000 * self.rank
        keras.utils.set_random_seed(self.seed)

        probe = env_fn()
        try:
            observation_space, action_space = probe.observation_space, probe.action_space
            env_spec = _spec_json(probe)
        finally:
            probe.close()
        check_observation_space(observation_space)
        check_action_space(action_space)

        self.num_envs = num_envs
        self.steps_per_env = _steps_per_env(steps_per_epoch, num_envs, self.num_procs)
        self.envs = make_vector_env(env_fn, num_envs, max_ep_len, vector_mode)

        if normalize_obs:
            ac_kwargs["normalize_obs"] = True
        self.ac = actor_critic(observation_space, action_space, **ac_kwargs)
        if not isinstance(self.ac, ActorCritic):
            raise TypeError(
                f"actor_critic must return a keras_vpg.ActorCritic, got {type(self.ac).__name__}"
            )
        # Ranks start from rank 0's weights (parameters and normalizer statistics) but
        # keep their own random streams: `weights`, unlike `variables`, leaves out the
        # sampling SeedGenerator, whose copy would give every rank the same noise.
        mpi.sync_variables(self.ac.weights)

        allreduce = mpi.allreduce_mean if self.num_procs > 1 else None
        self.trainer = get_trainer(
            self.ac,
            keras.optimizers.Adam(learning_rate=pi_lr),
            keras.optimizers.Adam(learning_rate=vf_lr),
            train_v_iters,
            allreduce=allreduce,
        )
        self.buffer = VPGBuffer(
            observation_space.shape,
            action_space.shape,
            np.int32 if isinstance(action_space, gym.spaces.Discrete) else np.float32,
            self.steps_per_env,
            num_envs,
            gamma,
            lam,
        )
        self.collector = RolloutCollector(self.envs, self.trainer, self.buffer, self.seed)
        if overlap_update and self.num_procs > 1:
            raise ValueError(
                f"overlap_update=True needs a single process (this run has {self.num_procs}); "
                "under MPI each rank has its own core"
            )
        # The value steps would race the policy step over a shared variable.
        shared = self.ac.shared_variables
        if overlap_update and shared:
            raise ValueError(
                "overlap_update=True needs a policy and a value function that share no "
                f"variables; this actor_critic shares {len(shared)}"
            )
        if overlap_update is None:
            overlap_update = (self.trainer.overlaps_collection and self.num_procs == 1
                              and mpi.usable_cores() >= 2 and not shared)
        self.overlap_update = overlap_update
        self._background = None  # the value steps' thread, made on first use
        self._updating: _Updating | None = None

        exp_name = logger_kwargs.get("exp_name") or "vpg"
        output_dir = logger_kwargs.get("output_dir") or _default_output_dir(exp_name, seed)
        self.logger = EpochLogger(output_dir, exp_name)
        # Record the model's effective settings, defaults included (e.g. activation).
        config["ac_kwargs"] = {**_keyword_defaults(actor_critic), **ac_kwargs}
        self.logger.save_config(dict(config, env_spec=env_spec, num_procs=self.num_procs,
                                     backend=keras.backend.backend()))
        self.output_dir = Path(output_dir)

        self.epoch = 0
        self.total_env_interacts = 0
        self._elapsed = 0.0
        self._update_seconds = 0.0  # time the loop waited for updates (for benchmarks)

    # -- training -----------------------------------------------------------------------
    def fit(
        self,
        epochs: int = 50,
        callbacks: list[keras.callbacks.Callback] | None = None,
        verbose: int = 1,
    ) -> keras.callbacks.History:
        """Train for ``epochs`` more epochs (a second call continues, as ``Model.fit``).

        Parameters
        ----------
        epochs : int
            Number of epochs of this call.
        callbacks : list of keras.callbacks.Callback
            Receive ``on_epoch_end(epoch, logs)`` with every progress.txt column
            but ``Epoch``; ``callback.model`` is the ActorCritic. They run on
            rank 0; ``model.stop_training`` ends training on every rank. Keys a
            callback adds to ``logs`` become extra progress.txt columns; callbacks
            with ``adds_epoch_logs = True`` (:class:`keras_vpg.EvalCallback`) run
            first, so the others see those keys.
        verbose : int
            0 silent, 1 progress bar and summary line per epoch, 2 summary line only.

        Returns
        -------
        keras.callbacks.History
            ``history.history[key]`` holds one value per epoch of this call.
        """
        with mpi.abort_on_exception():  # one failing rank must not leave the others hanging
            return self._fit(epochs, callbacks, verbose)

    def _fit(self, epochs, callbacks, verbose) -> keras.callbacks.History:
        _check_int("epochs", epochs, minimum=1)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        history = keras.callbacks.History()
        callbacks = list(callbacks or []) if self.rank == 0 else []
        # Callbacks that add columns to the logs (EvalCallback) run before the others,
        # so that TensorBoard, CSVLogger and History see those columns too.
        callbacks.sort(key=lambda callback: not getattr(callback, "adds_epoch_logs", False))
        self._progress_bar = None
        if verbose and self.rank == 0:
            self._progress_bar = ProgressBar(
                epochs, self.steps_per_env * self.num_envs, verbose, initial_epoch=self.epoch
            )
            callbacks.insert(0, self._progress_bar)
        self._callbacks = keras.callbacks.CallbackList(
            callbacks + [history], model=self.ac, epochs=epochs, verbose=verbose
        )
        self.ac.stop_training = False
        self._last_epoch = self.epoch + epochs - 1

        self._callbacks.on_train_begin()
        self._callbacks.on_epoch_begin(self.epoch)
        self._clock = time.perf_counter()
        try:
            self._epochs()
        except BaseException:
            self._finish_interrupted_epoch()
            raise
        self._callbacks.on_train_end()
        return history

    def _epochs(self) -> None:
        every = max(1, self.steps_per_env // 20)
        while True:
            rollout = self.collector.collect(self._between_chunks, every)  # 1. collect
            if rollout is None or self._end_epoch(wait=True):
                break  # stopped by a callback; the steps collected are kept for the next fit
            start = time.perf_counter()
            self.buffer.compute_advantages(self.trainer.value)  # 2. values, GAE-Lambda
            batch = self.buffer.get()
            # 3. one policy step, at the parameters that collected the data (value steps
            #    first would move a trunk shared with the value function); then the
            #    value steps (in the background when overlapping: they read and change
            #    only the value network); then the normalizer takes in the epoch.
            policy_metrics = self.trainer.update_policy(batch)
            value_steps = self._value_steps(self.trainer.value_batch(batch))
            self._update_obs_normalizer(batch["obs"])
            self._updating = _Updating(self.epoch, rollout, policy_metrics, value_steps)
            self._update_seconds += time.perf_counter() - start
            if self.epoch == self._last_epoch or not self.overlap_update:
                if self._end_epoch(wait=True) or self.epoch > self._last_epoch:
                    break

    def _value_steps(self, batch) -> Future:
        """The value steps, started in the background when overlapping (else run now)."""
        if self.overlap_update and self.epoch < self._last_epoch:
            if self._background is None:
                self._background = ThreadPoolExecutor(1, thread_name_prefix="keras-vpg-update")
            return self._background.submit(self.trainer.update_value, batch)
        done = Future()
        done.set_result(self.trainer.update_value(batch))
        return done

    def _between_chunks(self, steps: int) -> bool:
        """Called by the collector: end the updating epoch if its value steps are done."""
        if self._updating is not None and self._updating.value_steps.done():
            if self._end_epoch(wait=False):
                return True
        if self._updating is None and self._progress_bar is not None:
            self._progress_bar.on_collect_progress(steps)
        return False

    def _end_epoch(self, wait: bool) -> bool:
        """4. Log and checkpoint the updating epoch, then begin the next; True to stop."""
        updating, self._updating = self._updating, None
        if updating is None:
            return False
        start = time.perf_counter()
        value_metrics = updating.value_steps.result()  # re-raises the thread's exception
        if wait:
            self._update_seconds += time.perf_counter() - start
        epoch, logs = self._log_epoch(updating, value_metrics, self._on_epoch_end)
        stop = mpi.broadcast_object(bool(self.ac.stop_training))
        if (epoch + 1) % self.save_freq == 0 or epoch == self._last_epoch or stop:
            self.logger.save_model(self.ac, epoch)
        if not stop and epoch < self._last_epoch:
            self._callbacks.on_epoch_begin(epoch + 1)
        return stop

    def _on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """``CallbackList.on_epoch_end`` on ``logs`` itself (Keras's passes each callback
        a copy), so that keys a callback adds reach the later callbacks and progress.txt."""
        for callback in self._callbacks.callbacks:
            callback.on_epoch_end(epoch, logs)

    def _log_epoch(self, updating: _Updating, value_metrics: dict[str, float],
                   on_epoch_end: Callable[[int, dict], None] | None = None):
        """Count the epoch done, run ``on_epoch_end``, write its progress row; ``(epoch, logs)``.

        The row is written after the callbacks so that keys they add to ``logs``
        (``EvalCallback``'s ``EvalAverageEpRet``...) become progress.txt columns;
        it is written even if a callback raises.
        """
        now = time.perf_counter()
        metrics = {**updating.policy_metrics, **value_metrics}
        logs = self._epoch_logs(updating.rollout, {k: metrics[k] for k in UPDATE_METRICS},
                                now - self._clock)
        self._clock = now
        self.epoch = updating.epoch + 1
        try:
            if on_epoch_end is not None:
                on_epoch_end(updating.epoch, logs)
        finally:
            self.logger.dump_tabular({"Epoch": updating.epoch, **logs})
        return updating.epoch, logs

    def _finish_interrupted_epoch(self) -> None:
        """After an exception in ``fit``: let running value steps finish, and log their epoch.

        Nothing then runs on behind the caller's back, and the next ``fit`` goes on
        from a consistent model and epoch count (no callbacks: ``fit`` is failing).
        """
        updating, self._updating = self._updating, None
        if updating is None:
            return
        try:
            self._log_epoch(updating, updating.value_steps.result())
        except Exception:  # the exception already propagating is the one to report
            pass

    def _update_obs_normalizer(self, obs: np.ndarray) -> None:
        """Merge this epoch's observations (all ranks) into the running statistics."""
        if self.ac.obs_normalizer is None:
            return
        obs = obs.astype(np.float64)
        total = mpi.mpi_sum(obs.sum(axis=0))
        total_sq = mpi.mpi_sum(np.square(obs).sum(axis=0))
        self.ac.obs_normalizer.update(total, total_sq, float(mpi.mpi_sum(len(obs))))

    def _epoch_logs(self, rollout, update: dict[str, float], seconds: float) -> dict[str, float]:
        """Global (all-ranks) statistics of one epoch, keyed like progress.txt."""
        returns = np.asarray(rollout.episode_returns, dtype=np.float64)
        lengths = np.asarray(rollout.episode_lengths, dtype=np.float64)
        ret_mean, ret_std, ret_min, ret_max = mpi.mpi_statistics_scalar(returns, True)
        len_mean, _ = mpi.mpi_statistics_scalar(lengths)
        v_mean, v_std, v_min, v_max = mpi.mpi_statistics_scalar(self.buffer.val, True)
        epoch_steps = int(mpi.mpi_sum(rollout.env_steps))
        self.total_env_interacts += epoch_steps
        self._elapsed += seconds
        logs = {
            "AverageEpRet": ret_mean, "StdEpRet": ret_std, "MaxEpRet": ret_max,
            "MinEpRet": ret_min, "EpLen": len_mean,
            "AverageVVals": v_mean, "StdVVals": v_std, "MaxVVals": v_max, "MinVVals": v_min,
            "TotalEnvInteracts": self.total_env_interacts,
        }
        logs.update({k: float(mpi.mpi_avg(v)) for k, v in update.items()})
        logs["Time"] = self._elapsed
        logs["StepsPerSecond"] = epoch_steps / max(seconds, 1e-9)
        return {k: (v if isinstance(v, int) else float(v)) for k, v in logs.items()}

    def close(self) -> None:
        """Close the environments (``AsyncVectorEnv`` subprocesses included), end the thread."""
        self.envs.close()
        if self._background is not None:
            self._background.shutdown()
            self._background = None

    # -- saving -------------------------------------------------------------------------
    def save(self, filepath: str) -> None:
        """Save the ActorCritic as a ``.keras`` file (written to a temp name, then renamed)."""
        if not str(filepath).endswith(".keras"):
            raise ValueError(f"filepath must end in .keras, got {filepath!r}")
        if self.rank == 0:
            atomic_write(filepath, self.ac.save)

    def export(self, filepath: str, format: str = "tf_saved_model") -> None:
        """Export the policy for serving; see :func:`keras_vpg.serving.export`."""
        from keras_vpg.serving import export

        if self.rank == 0:
            export(self.ac, filepath, format=format)


def vpg(
    env_fn: Callable[[], gym.Env],
    actor_critic: Callable[..., ActorCritic] = MLPActorCritic,
    ac_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    steps_per_epoch: int = 4000,
    epochs: int = 50,
    gamma: float = 0.99,
    pi_lr: float | LearningRate = 3e-4,
    vf_lr: float | LearningRate = 1e-3,
    train_v_iters: int = 80,
    lam: float = 0.97,
    max_ep_len: int | None = 1000,
    logger_kwargs: dict[str, Any] | None = None,
    save_freq: int = 10,
    **kwargs,
) -> VPG:
    """Spinning Up's functional form: build a :class:`VPG`, train ``epochs``, return it.

    Extra keyword arguments (``num_envs``, ``vector_mode``) go to :class:`VPG`;
    ``verbose`` and ``callbacks`` go to :meth:`VPG.fit`.
    """
    fit_kwargs = {k: kwargs.pop(k) for k in ("verbose", "callbacks") if k in kwargs}
    agent = VPG(
        env_fn, actor_critic=actor_critic, ac_kwargs=ac_kwargs, seed=seed,
        steps_per_epoch=steps_per_epoch, gamma=gamma, pi_lr=pi_lr, vf_lr=vf_lr,
        train_v_iters=train_v_iters, lam=lam, max_ep_len=max_ep_len,
        logger_kwargs=logger_kwargs, save_freq=save_freq, **kwargs,
    )
    agent.fit(epochs=epochs, **fit_kwargs)
    return agent


# -- argument checks ------------------------------------------------------------------------
def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_arguments(config: dict[str, Any]) -> None:
    if not callable(config["env_fn"]):
        raise TypeError(
            f"env_fn must be a callable returning a gymnasium.Env (e.g. "
            f"lambda: gym.make('CartPole-v1')), got {config['env_fn']!r}"
        )
    if not callable(config["actor_critic"]):
        raise TypeError(f"actor_critic must be callable, got {config['actor_critic']!r}")
    for name in ("gamma", "lam"):
        value = config[name]
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    for name in ("pi_lr", "vf_lr"):
        value = config[name]
        if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
            continue
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value < 0):
            raise ValueError(
                f"{name} must be a non-negative learning rate or a "
                f"keras.optimizers.schedules.LearningRateSchedule, got {value!r}"
            )
    _check_int("seed", config["seed"], minimum=0)
    _check_int("steps_per_epoch", config["steps_per_epoch"], minimum=1)
    _check_int("train_v_iters", config["train_v_iters"], minimum=0)
    _check_int("save_freq", config["save_freq"], minimum=1)
    _check_int("num_envs", config["num_envs"], minimum=1)
    if config["max_ep_len"] is not None:
        _check_int("max_ep_len", config["max_ep_len"], minimum=0)
    for name in ("ac_kwargs", "logger_kwargs"):
        if config[name] is not None and not isinstance(config[name], dict):
            raise TypeError(f"{name} must be a dict, got {config[name]!r}")
    if not isinstance(config["normalize_obs"], bool):
        raise TypeError(f"normalize_obs must be True or False, got {config['normalize_obs']!r}")
    if not isinstance(config["tune_threads"], bool):
        raise TypeError(f"tune_threads must be True or False, got {config['tune_threads']!r}")
    if config["overlap_update"] not in (None, True, False):
        raise TypeError(
            f"overlap_update must be True, False or None, got {config['overlap_update']!r}"
        )
    if config["vector_mode"] not in VECTOR_MODES:
        raise ValueError(
            f"vector_mode must be one of {VECTOR_MODES}, got {config['vector_mode']!r}"
        )


def _steps_per_env(steps_per_epoch: int, num_envs: int, num_procs: int) -> int:
    """Rows of the buffer: each of ``num_envs * num_procs`` envs takes an equal share."""
    workers = num_envs * num_procs
    if steps_per_epoch < workers:
        raise ValueError(
            f"steps_per_epoch ({steps_per_epoch}) must be at least num_envs * num_procs "
            f"({num_envs} * {num_procs})"
        )
    if steps_per_epoch % workers and mpi.proc_id() == 0:
        warnings.warn(
            f"steps_per_epoch={steps_per_epoch} is not a multiple of num_envs * num_procs "
            f"= {workers}; each epoch collects {steps_per_epoch // workers * workers} steps",
            stacklevel=3,
        )
    return steps_per_epoch // workers


def _keyword_defaults(fn: Callable) -> dict[str, Any]:
    """Default values of ``fn``'s keyword parameters (after the two spaces)."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())[2:]
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _spec_json(env: gym.Env) -> str | None:
    """The env's gymnasium spec as JSON (to rebuild it later), if it has one."""
    spec = getattr(env, "spec", None)
    if spec is None:
        return None
    try:
        return spec.to_json()
    except Exception:  # kwargs that JSON cannot hold (callables, objects)
        return None


def _default_output_dir(exp_name: str, seed: int) -> str:
    path = Path("data") / exp_name / f"{exp_name}_s{seed}"
    if path.exists():
        path = path.with_name(f"{path.name}_{time.strftime('%Y%m%d-%H%M%S')}")
    return str(path)
