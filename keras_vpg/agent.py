"""Vanilla Policy Gradient with GAE-Lambda: the :class:`VPG` agent and :func:`vpg`.

Each epoch follows Spinning Up's pseudocode, in :meth:`VPG._train`, top to bottom:

1. collect ``steps_per_epoch`` steps with the current policy (in chunks),
2. compute values, then GAE-Lambda advantages and rewards-to-go,
3. take one policy-gradient step, then ``train_v_iters`` value-function steps,
4. log the epoch (callbacks first, then the progress.txt row) and checkpoint.

Collection needs only the policy: values are computed for the whole batch
after it. So where the backend's value steps run without holding the GIL (see
``VPG(overlap_update=...)``), the value steps of epoch ``k`` run in a background
thread while epoch ``k + 1`` is collected with the already-updated policy -- the
same computation as one after the other. Epoch ``k`` is then finished (step 4)
in one place: once epoch ``k + 1`` is collected, before its values are computed.
Everything an epoch logs travels in its :class:`EpochRecord`.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import random
import shlex
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

from keras_vpg import checkpoint, mpi
from keras_vpg.actor_critic import (
    ActorCritic,
    MLPActorCritic,
    check_action_space,
    check_observation_space,
)
from keras_vpg.buffer import Transitions, VPGBuffer, gae_lambda
from keras_vpg.checkpoint import CheckpointError, NonFiniteError
from keras_vpg.config import DEFAULT_EPOCHS, VPGConfig, _integer, load_config
from keras_vpg.files import atomic_write, run_directory
from keras_vpg.interrupt import Interrupted, StopOnSignals, print_line
from keras_vpg.logger import EpochLogger, ProgressBar, resuming
from keras_vpg.rollout import EpochRollout, RolloutCollector, make_vector_env
from keras_vpg.trainers import UPDATE_METRICS, compat, configure_threads, get_trainer
from keras_vpg.trainers.numpy_policy import PolicySampler

LearningRate = keras.optimizers.schedules.LearningRateSchedule


@dataclass
class EpochRecord:
    """One epoch between its collection and its progress.txt row.

    ``values`` ``(T, N)`` are those of its observations; ``value_steps`` gives the
    value steps' metrics (done, or running in the background).
    """

    epoch: int
    rollout: EpochRollout
    values: np.ndarray
    policy_metrics: dict[str, float]
    value_steps: Future


class _CallbackList(keras.callbacks.CallbackList):
    """Keras's ``CallbackList``, but ``on_epoch_end`` hands every callback the same ``logs``.

    Keras passes the callbacks a sorted copy; here keys a callback adds (e.g. an
    evaluation's return) reach the later callbacks, ``History`` and progress.txt.
    """

    def on_epoch_end(self, epoch, logs=None):
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)


class VPG:
    """Vanilla Policy Gradient (with GAE-Lambda) on any Keras backend.

    Parameters follow Spinning Up's ``vpg`` (names and defaults). Each
    hyperparameter is defined once, in :class:`keras_vpg.config.VPGConfig`
    (type, default, valid range), which validates them and writes ``config.json``.

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
    pi_lr : float or keras.optimizers.schedules.LearningRateSchedule
        Adam learning rate of the policy. A schedule is called with the optimizer's
        step count: the policy optimizer steps once per epoch. config.json keeps
        schedules in Keras's serialized form (:func:`keras_vpg.load_config`).
    vf_lr : float or keras.optimizers.schedules.LearningRateSchedule
        Adam learning rate of the value function, whose optimizer steps
        ``train_v_iters`` times per epoch (a schedule sees that step count).
    train_v_iters : int
        Value-function gradient steps per epoch.
    lam : float
        GAE-Lambda, in [0, 1].
    max_ep_len : int or None
        Episodes are truncated (and bootstrapped) after this many steps; 0 or
        ``None`` leaves only the env's own time limit.
    logger_kwargs : dict
        ``output_dir`` and ``exp_name`` of the run (default
        ``data/<exp_name>/<exp_name>_s<seed>``, or with ``_<YYYYmmdd-HHMMSS>`` appended
        if that directory exists; ``exp_name`` ``"vpg"``).
    save_freq : int
        Every ``save_freq`` epochs (and at the end of ``fit``, and on Ctrl-C /
        SIGTERM) write ``model.keras`` and a full checkpoint
        (``checkpoints/ckpt_<epochs done>/``, see :mod:`keras_vpg.checkpoint`).
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
        ``k`` then runs once epoch ``k + 1`` is collected (a callback that changes
        the policy there changes it from epoch ``k + 2``'s collection on).
        ``True`` needs a single process and a policy and value function that
        share no variables.
    fast_paths : bool or None
        Use the fast paths: numpy sampling of plain-MLP policies (see
        :mod:`keras_vpg.trainers.numpy_policy`), PyTorch's TorchScript value steps and plain-torch
        MLP calls, JAX's compiler options for small calls. ``False`` runs plain
        Keras on every backend. ``None``: on unless ``KERAS_VPG_FAST_PATHS=0``.
        Which sampler a run used is recorded in ``config.json`` (``"sampler"``).
    keep_checkpoints : int
        Full checkpoints kept in ``checkpoints/`` (the newest; older ones are removed).
    tune_threads : bool
        Apply keras-vpg's thread and dispatch defaults for the backend when the
        first ``VPG`` of the process is built (see
        :func:`keras_vpg.trainers.configure_threads`; ``KERAS_VPG_THREADS=0``
        also turns them off). Importing keras_vpg changes nothing.
    """

    @mpi.abort_on_exception()  # one failing rank must not leave the others hanging
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
        fast_paths: bool | None = None,
        tune_threads: bool = True,
        keep_checkpoints: int = 3,
    ):
        arguments = dict(locals())  # the hyperparameters, each once, for VPGConfig
        if not callable(env_fn):
            raise TypeError(
                f"env_fn must be a callable returning a gymnasium.Env (e.g. "
                f"lambda: gym.make('CartPole-v1')), got {env_fn!r}"
            )
        if not callable(actor_critic):
            raise TypeError(f"actor_critic must be callable, got {actor_critic!r}")
        config = VPGConfig.from_arguments(arguments)  # validates: errors name the field
        self.config = config
        if config.tune_threads:
            configure_threads()  # first VPG of the process: before the backend computes
        ac_kwargs = dict(config.ac_kwargs or {})
        logger_kwargs = dict(config.logger_kwargs or {})

        # Every rank seeds differently but starts from rank 0's parameters.
        self.rank, self.num_procs = mpi.proc_id(), mpi.num_procs()
        self.seed = config.seed + 10000 * self.rank
        keras.utils.set_random_seed(self.seed)

        probe = env_fn()
        try:
            observation_space, action_space = probe.observation_space, probe.action_space
            env_spec = _spec_json(probe)
        finally:
            probe.close()
        check_observation_space(observation_space)
        check_action_space(action_space)

        self.num_envs = config.num_envs
        self.steps_per_env = _steps_per_env(config.steps_per_epoch, self.num_envs, self.num_procs)
        self.envs = make_vector_env(env_fn, self.num_envs, config.max_ep_len, config.vector_mode)

        if config.normalize_obs:
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

        # The learner (updates) and the sampler (collection) of this model.
        self.trainer = get_trainer(
            self.ac,
            keras.optimizers.Adam(learning_rate=config.pi_lr),
            keras.optimizers.Adam(learning_rate=config.vf_lr),
            config.train_v_iters,
            allreduce=mpi.allreduce_mean if self.num_procs > 1 else None,
            fast_paths=config.fast_paths,
        )
        self.sampler = PolicySampler(self.ac, self.trainer)
        self.buffer = VPGBuffer(
            observation_space.shape,
            action_space.shape,
            np.int32 if isinstance(action_space, gym.spaces.Discrete) else np.float32,
            self.steps_per_env,
            self.num_envs,
        )
        self.collector = RolloutCollector(self.envs, self.sampler, self.buffer, self.seed)
        self.overlap_update = self._choose_overlap(config.overlap_update)
        self._background = None  # the value steps' thread, made on first use

        exp_name = logger_kwargs.get("exp_name") or "vpg"
        output_dir = logger_kwargs.get("output_dir") or _default_output_dir(exp_name, config.seed)
        self.logger = EpochLogger(output_dir, exp_name)
        # Record the model's effective settings, defaults included (e.g. activation),
        # and the paths this run takes.
        record = config.to_json()
        record["ac_kwargs"] = {**_keyword_defaults(actor_critic), **ac_kwargs}
        self.logger.save_config(dict(
            record, env_fn=env_fn, actor_critic=actor_critic, env_spec=env_spec,
            num_procs=self.num_procs, backend=keras.backend.backend(),
            sampler=self.sampler.path, overlap_update_effective=self.overlap_update,
        ))
        self.output_dir = Path(output_dir)

        self.epoch = 0
        self.total_env_interacts = 0
        self._elapsed = 0.0
        self._update_seconds = 0.0  # time the loop waited for updates (for benchmarks)
        self._streams_at_collection = None  # (epoch, random streams at its collection start)
        self._fit_target_epochs = None  # of the fit that wrote the checkpoint resumed

    def _choose_overlap(self, requested: bool | None) -> bool:
        """Whether value steps run in the background during the next collection."""
        if requested and self.num_procs > 1:
            raise ValueError(
                f"overlap_update=True needs a single process (this run has {self.num_procs}); "
                "under MPI each rank has its own core"
            )
        # In the background, value steps would change shared weights mid-collection.
        shared = self.ac.shared_variables
        if requested and shared:
            raise ValueError(
                "overlap_update=True needs a policy and a value function that share no "
                f"variables; this actor_critic shares {len(shared)}"
            )
        if requested is None:
            return (self.trainer.overlaps_with(self.sampler.path) and self.num_procs == 1
                    and mpi.usable_cores() >= 2 and not shared)
        return requested

    # -- training -----------------------------------------------------------------------
    @mpi.abort_on_exception()  # one failing rank must not leave the others hanging
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
            but ``Epoch``, before the epoch's row is written: keys a callback adds
            to ``logs`` become columns (appended to the header of a new run).
            ``callback.model`` is the ActorCritic. They run on rank 0;
            ``model.stop_training`` ends training on every rank. Callbacks with
            ``adds_epoch_logs = True`` (:class:`keras_vpg.EvalCallback`) run
            first, so the others see the keys they add.
        verbose : int
            0 silent, 1 progress bar and summary line per epoch, 2 summary line only.

        Returns
        -------
        keras.callbacks.History
            ``history.history[key]`` holds one value per epoch of this call.
        """
        _integer(1)("epochs", epochs)  # VPGConfig's check of integers: errors name epochs
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
        self._callbacks = _CallbackList(
            callbacks + [history], model=self.ac, epochs=epochs, verbose=verbose
        )
        self.ac.stop_training = False
        self._last_epoch = self.epoch + epochs - 1
        self.logger.update_config(epochs=self._last_epoch + 1)  # what --config reruns

        self._callbacks.on_train_begin()
        self._callbacks.on_epoch_begin(self.epoch)
        self._clock = time.perf_counter()
        self._running: EpochRecord | None = None  # value steps in the background
        try:
            with StopOnSignals() as signals:  # SIGINT / SIGTERM stop at a safe point
                self._train(signals)
                signals.check()  # a signal during the last update: stop (checkpointed)
        except BaseException as error:
            self._finish_interrupted_epoch()
            self._after_exception(error)  # on an interruption: a checkpoint
            raise
        self._callbacks.on_train_end()
        return history

    def _train(self, signals: StopOnSignals) -> None:
        """The epochs of one ``fit``, as Spinning Up's pseudocode (see the module docstring).

        ``signals`` records SIGINT / SIGTERM, checked between chunks of the collection.
        """
        chunk_rows = max(1, self.steps_per_env // 20)  # the progress bar's and signals' pace
        while True:
            previous = self._running  # its value steps run during this collection
            if previous is not None and (previous.epoch + 1) % self.config.save_freq == 0:
                # Its checkpoint, written after this collection, resumes from these streams.
                self._streams_at_collection = (previous.epoch + 1, self._random_streams())
            # 1. Collect the epoch, in chunks; between chunks, stop on a signal (under
            #    MPI every rank checks, so that they agree).
            for steps in self.collector.chunks(chunk_rows):
                if signals.received or self.num_procs > 1:
                    signals.check()
                if previous is None and self._progress_bar is not None:
                    self._progress_bar.on_collect_progress(steps)
            # The previous epoch ends here (4. below); a stop keeps this epoch's rows
            # for the next fit.
            if previous is not None:
                self._running = None
                if self._end_epoch(previous):
                    return
            rollout = self.collector.finish_epoch()

            started = time.perf_counter()
            # 2. Values, then GAE-Lambda advantages and rewards-to-go.
            batch, values = self._compute_advantages(rollout.transitions)
            # The last epoch has no next collection to run its value steps beside.
            overlap = self.overlap_update and self.epoch < self._last_epoch
            # 3. One policy step, at the parameters that collected the data (value steps
            #    first would move a trunk shared with the value function); then the value
            #    steps, on observations normalized now (in the background when
            #    overlapping: they read and change only the value network); then the
            #    observation normalizer takes in the epoch.
            policy_metrics = self.trainer.update_policy(batch)
            value_steps = self._start_value_steps(self._value_batch(batch), overlap)
            if self.ac.obs_normalizer is not None:
                self._update_obs_normalizer(batch["obs"])
            record = EpochRecord(self.epoch, rollout, values, policy_metrics, value_steps)
            self._update_seconds += time.perf_counter() - started

            # 4. Log and checkpoint now, or, with the value steps in the background,
            #    once the next epoch is collected.
            if overlap:
                self._running = record
            elif self._end_epoch(record) or record.epoch == self._last_epoch:
                return

    def _compute_advantages(self, data: Transitions) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The epoch's training batch, and the values ``(T, N)`` of its observations.

        Values of every observation and of each final observation to bootstrap,
        GAE-Lambda advantages and rewards-to-go (per env column), advantages
        normalized with the global mean and std. ``batch`` has ``obs (M, *O)``,
        ``act``, ``ret (M,)``, ``adv (M,)``, ``logp (M,)``, ``M = T * N``.
        """
        obs = _rows(data.obs)
        values = self.trainer.value(obs).reshape(data.rew.shape)
        last_values = self.trainer.value(data.bootstrap_obs()).tolist()
        path_ends = data.path_ends_with_values(last_values)
        adv, ret = gae_lambda(data.rew, values, path_ends, self.config.gamma, self.config.lam)
        adv_mean, adv_std = self._statistics(adv, with_min_and_max=False)
        adv = ((adv - adv_mean) / (adv_std + 1e-8)).astype(np.float32)
        return {"obs": obs, "act": _rows(data.act), "ret": _rows(ret), "adv": _rows(adv),
                "logp": _rows(data.logp)}, values

    def _value_batch(self, batch) -> dict[str, np.ndarray]:
        """What the value steps take: ``obs (M, *O)`` through the normalizer, ``ret (M,)``.

        Normalizing here, on this thread, fixes the statistics the value steps use,
        so the normalizer may take in the epoch while they run.
        """
        obs = batch["obs"]
        if self.ac.obs_normalizer is not None:
            obs = keras.ops.convert_to_numpy(self.ac.normalize(keras.ops.convert_to_tensor(obs)))
        return {"obs": obs, "ret": batch["ret"]}

    def _start_value_steps(self, batch, overlap: bool) -> Future:
        """The value steps, started in the background when overlapping (else run now)."""
        if overlap:
            if self._background is None:  # (also after close(): a fit may follow it)
                self._background = ThreadPoolExecutor(1, thread_name_prefix="keras-vpg-update")
            return self._background.submit(self.trainer.update_value, batch)
        done = Future()
        done.set_result(self.trainer.update_value(batch))
        return done

    def _end_epoch(self, record: EpochRecord) -> bool:
        """4. Callbacks, the progress.txt row, the checkpoint; begin the next. True to stop."""
        logs = self._epoch_logs(record)
        self.epoch = record.epoch + 1  # the epoch is done (callbacks see the count)
        try:
            self._check_finite(logs)  # a NaN loss or weight stops before any save
            # Callbacks first: keys they add to `logs` (e.g. an evaluation) are logged too.
            self._callbacks.on_epoch_end(record.epoch, logs)
        finally:  # the row is written even if a callback raises
            self.logger.dump_tabular({"Epoch": record.epoch, **logs})
        stop = bool(self.ac.stop_training)
        if self.num_procs > 1:
            stop = mpi.broadcast_object(stop)
        last = stop or record.epoch == self._last_epoch
        # The run directory now holds a consistent state: save the policy and a checkpoint.
        if self.epoch % self.config.save_freq == 0 or last:
            self.logger.save_model(self.ac, record.epoch)
            self._save_checkpoint()
        if not last:
            self._callbacks.on_epoch_begin(self.epoch)
        return stop

    def _finish_interrupted_epoch(self) -> None:
        """After an exception in ``fit``: let running value steps finish, and log their epoch.

        Nothing then runs on behind the caller's back, and the next ``fit`` goes on
        from a consistent model and epoch count (no callbacks: ``fit`` is failing).
        """
        record, self._running = self._running, None
        if record is None:
            return
        with contextlib.suppress(Exception):  # the exception propagating is the one to report
            self.logger.dump_tabular({"Epoch": record.epoch, **self._epoch_logs(record)})
            self.epoch = record.epoch + 1

    def _update_obs_normalizer(self, obs: np.ndarray) -> None:
        """Merge this epoch's observations (all ranks) into the running statistics."""
        obs = obs.astype(np.float64)
        total = mpi.mpi_sum(obs.sum(axis=0))
        total_sq = mpi.mpi_sum(np.square(obs).sum(axis=0))
        self.ac.obs_normalizer.update(total, total_sq, float(mpi.mpi_sum(len(obs))))

    def _statistics(self, x, with_min_and_max: bool = True) -> tuple[float, ...]:
        """Mean and std (and min, max) of ``x`` over all ranks (NaN without data)."""
        if self.num_procs > 1:
            return mpi.mpi_statistics_scalar(x, with_min_and_max)
        x = np.asarray(x, dtype=np.float64).ravel()
        reductions = (np.mean, np.std, np.min, np.max)[:4 if with_min_and_max else 2]
        return tuple(float(f(x)) if x.size else math.nan for f in reductions)

    def _epoch_logs(self, record: EpochRecord) -> dict[str, float]:
        """Wait for the epoch's value steps, advance the time and step counters, and
        return the epoch's progress.txt columns (but ``Epoch``), in progress.txt's order."""
        waited = time.perf_counter()
        value_metrics = record.value_steps.result()  # waits; re-raises the thread's exception
        now = time.perf_counter()
        self._update_seconds += now - waited
        seconds, self._clock = now - self._clock, now
        self._elapsed += seconds
        steps = record.rollout.env_steps * self.num_procs  # every rank steps as many
        self.total_env_interacts += steps
        ret_mean, ret_std, ret_min, ret_max = self._statistics(record.rollout.episode_returns)
        v_mean, v_std, v_min, v_max = self._statistics(record.values)
        ep_len_mean, _ = self._statistics(record.rollout.episode_lengths, with_min_and_max=False)
        metrics = {**record.policy_metrics, **value_metrics}
        if self.num_procs > 1:
            metrics = {k: mpi.mpi_avg(v) for k, v in metrics.items()}
        return {
            "AverageEpRet": ret_mean, "StdEpRet": ret_std, "MaxEpRet": ret_max,
            "MinEpRet": ret_min, "EpLen": ep_len_mean,
            "AverageVVals": v_mean, "StdVVals": v_std, "MaxVVals": v_max, "MinVVals": v_min,
            "TotalEnvInteracts": self.total_env_interacts,
            **{k: float(metrics[k]) for k in UPDATE_METRICS},
            "Time": self._elapsed, "StepsPerSecond": steps / max(seconds, 1e-9),
        }

    def close(self) -> None:
        """Close the environments (``AsyncVectorEnv`` subprocesses included), end the thread."""
        self.envs.close()
        if self._background is not None:
            self._background.shutdown()
            self._background = None

    # -- checkpoints (the format on disk: keras_vpg.checkpoint) ----------------------------
    # A checkpoint holds the state after ``E`` completed epochs: every variable of the
    # model and both optimizers (bit-exact), the counters, the target epoch count of the
    # fit that wrote it, the run's config.json, and each rank's random streams as they
    # were at the start of epoch E's collection, so a resume draws the same actions as
    # the original run would have, given the same observations. (Where a checkpoint is
    # due while E is collected -- overlap -- `_train` notes them at that start; a
    # checkpoint nobody could foresee, on Ctrl-C or a callback's stop during E's
    # collection, holds the streams of the moment it is written.) Environments cannot be
    # snapshotted in general: a resume resets them with a seed derived from the run's
    # seed and E (`_resume_env_seed`), so two resumes from one checkpoint are identical.
    def _variable_groups(self) -> dict[str, list]:
        return {
            "model": list(self.ac.variables),
            "pi_optimizer": list(self.trainer.pi_optimizer.variables),
            "vf_optimizer": list(self.trainer.vf_optimizer.variables),
        }

    def _random_streams(self) -> dict[str, Any]:
        """This rank's random streams now, as JSON-able values."""
        sampler = self.sampler.numpy  # plain-MLP policies only
        np_state, py_state = np.random.get_state(), random.getstate()
        return {
            "seed_generator": self.ac.seed_generator.state.numpy().tolist(),
            "numpy_sampler": None if sampler is None else sampler.rng.bit_generator.state,
            "numpy_global": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python_random": [py_state[0], list(py_state[1]), py_state[2]],
            "action_space": compat.space_generator_state(self.envs.action_space),
            "single_action_space": compat.space_generator_state(self.envs.single_action_space),
        }

    def _set_random_streams(self, streams: dict[str, Any]) -> None:
        seed_state = self.ac.seed_generator.state
        seed_state.assign(np.asarray(streams["seed_generator"]).astype(seed_state.dtype))
        if self.sampler.numpy is not None and streams["numpy_sampler"] is not None:
            self.sampler.numpy.rng.bit_generator.state = streams["numpy_sampler"]
        name, keys, *rest = streams["numpy_global"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        version, internal, gauss = streams["python_random"]
        random.setstate((version, tuple(internal), gauss))
        for key in ("action_space", "single_action_space"):
            if streams.get(key) is not None:
                getattr(self.envs, key).np_random.bit_generator.state = streams[key]

    def _save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/ckpt_<self.epoch>`` (prune to ``keep_checkpoints``).

        Call on every rank (the ranks' random streams are gathered); rank 0
        writes and gets the path, the other ranks ``None``.

        Raises
        ------
        NonFiniteError
            If a weight is NaN or Inf (the last good checkpoint is never replaced by it).
        """
        bad = _non_finite_weights(self.ac)
        if bad:
            raise NonFiniteError(
                f"not saving a checkpoint of epoch {self.epoch}: non-finite values in {bad}"
            )
        noted = self._streams_at_collection
        # Epoch E's collection not started yet: now is its start.
        mine = noted[1] if noted is not None and noted[0] == self.epoch else self._random_streams()
        streams = mpi.gather_object(mine)
        if self.rank != 0:
            return None
        groups = self._variable_groups()
        arrays = {f"{group}/{i}": v.numpy()
                  for group, variables in groups.items() for i, v in enumerate(variables)}
        seed_index = next(i for i, v in enumerate(groups["model"])
                          if v is self.ac.seed_generator.state)
        arrays[f"model/{seed_index}"] = np.asarray(  # as at the collection start, too
            streams[0]["seed_generator"], dtype=arrays[f"model/{seed_index}"].dtype)
        config_file = self.output_dir / "config.json"
        state = {
            "epoch": int(self.epoch),
            "total_env_interacts": int(self.total_env_interacts),
            "elapsed": float(self._elapsed),
            "target_epochs": int(self._last_epoch) + 1 if hasattr(self, "_last_epoch") else None,
            "backend": keras.backend.backend(),
            "num_procs": self.num_procs,
            "seed": int(self.config.seed),
            "written": time.strftime("%Y-%m-%d %H:%M:%S"),
            "variables": {group: [[v.path, list(v.shape)] for v in variables]
                          for group, variables in groups.items()},
            "random_streams": streams,
            "config": json.loads(config_file.read_text()) if config_file.exists() else {},
        }
        return checkpoint.write_checkpoint(self.output_dir, self.epoch, arrays, state,
                                           self.config.keep_checkpoints)

    def _restore_checkpoint(self, path: Path) -> None:
        """Load the checkpoint at ``path`` into this agent (built with the same settings).

        Restores every variable of the model and both optimizers bit for bit, the
        epoch, ``TotalEnvInteracts``, elapsed time and this rank's random streams;
        resets the envs with :func:`_resume_env_seed`; truncates ``progress.txt``
        after the checkpoint's epoch; moves checkpoints newer than this one aside.

        Raises
        ------
        CheckpointError
            If the checkpoint is damaged or its variables do not match the agent's.
        """
        state, arrays = checkpoint.read_checkpoint(path)
        if state["backend"] != keras.backend.backend():
            warnings.warn(
                f"{path} was written with the {state['backend']} backend, this is "
                f"{keras.backend.backend()}: weights and optimizer state are restored, the "
                "sampling stream may not repeat", stacklevel=3,
            )
        groups = self._variable_groups()
        for group, variables in groups.items():
            saved = state["variables"][group]
            if len(saved) != len(variables):
                raise CheckpointError(
                    f"{path}: {group} has {len(saved)} variables, this agent's "
                    f"{len(variables)} (was it built with other ac_kwargs or another "
                    "actor_critic?)"
                )
            for i, (variable, (name, _shape)) in enumerate(zip(variables, saved)):
                value = arrays[f"{group}/{i}"]
                if tuple(value.shape) != tuple(variable.shape):
                    raise CheckpointError(
                        f"{path}: {group} variable {name} has shape {tuple(value.shape)}, "
                        f"this agent's {variable.path} {tuple(variable.shape)}"
                    )
        for group, variables in groups.items():
            for i, variable in enumerate(variables):
                variable.assign(arrays[f"{group}/{i}"])
        self.epoch = int(state["epoch"])
        self.total_env_interacts = int(state["total_env_interacts"])
        self._elapsed = float(state["elapsed"])
        self._fit_target_epochs = state["target_epochs"]
        self.collector.restart_episodes(_resume_env_seed(self.seed, self.epoch))
        streams = state["random_streams"]
        if len(streams) != self.num_procs and self.rank == 0:
            warnings.warn(
                f"{path} holds the random streams of {len(streams)} process(es), this run "
                f"has {self.num_procs}: ranks without one keep their fresh seeding",
                stacklevel=3,
            )
        if self.rank < len(streams):
            self._set_random_streams(streams[self.rank])
        self._streams_at_collection = None
        self.logger.resume_from(self.epoch)
        if self.rank == 0:
            checkpoint.set_aside_newer(path, self.epoch)

    @classmethod
    def restore(cls, run_dir: str | os.PathLike, env_fn: Callable[[], gym.Env] | None = None,
                **overrides) -> VPG:
        """Rebuild the agent of ``run_dir`` from its newest checkpoint; ``fit`` continues it.

        ``env_fn=None`` rebuilds the env from the gymnasium spec in the run's
        ``config.json``; ``overrides`` replace saved constructor arguments. The
        model, both optimizers, the counters and the random streams are those of
        the checkpoint; ``progress.txt`` is cut after its epoch.
        """
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"run directory {run_dir} does not exist")
        path = mpi.broadcast_object(
            checkpoint.latest_checkpoint(run_dir) if mpi.proc_id() == 0 else None)
        if path is None:
            raise FileNotFoundError(
                f"{run_dir} holds no usable checkpoint ({checkpoint.CHECKPOINTS}/ckpt_<epoch>); "
                "start a new run instead"
            )
        parameters = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        unknown = sorted(set(overrides) - set(parameters))
        if unknown:
            raise TypeError(f"VPG.restore got unknown arguments {unknown}; VPG takes {parameters}")
        config_file = run_dir / "config.json"
        if not config_file.exists() and mpi.proc_id() == 0:  # put back the checkpoint's copy
            text = json.dumps(checkpoint.read_checkpoint(path)[0]["config"], indent=2,
                              sort_keys=True)
            atomic_write(config_file, lambda p: Path(p).write_text(text))
        mpi.broadcast_object(None)  # the other ranks read config.json after rank 0 restored it
        kwargs = load_config(run_dir, make_env=env_fn is None)
        env_fn = env_fn or kwargs.pop("env_fn", None)  # load_config adds it only if None
        if env_fn is None:
            raise ValueError(
                f"the config.json of {run_dir} holds no gymnasium spec of the env (it was not "
                "made by gym.make, or its kwargs are not JSON); pass env_fn="
            )
        if isinstance(kwargs.get("actor_critic"), str) and "actor_critic" not in overrides:
            raise TypeError(
                f"cannot import actor_critic={kwargs['actor_critic']!r} recorded in "
                f"{config_file}; pass actor_critic= to VPG.restore"
            )
        exp_name = json.loads(config_file.read_text()).get("exp_name")
        kwargs["logger_kwargs"] = {"output_dir": str(run_dir), "exp_name": exp_name}
        kwargs.update(overrides)
        with resuming(run_dir):
            agent = cls(env_fn, **kwargs)
        agent._restore_checkpoint(path)
        return agent

    # -- stopping: signals, non-finite numbers -------------------------------------------
    def _check_finite(self, logs: dict[str, float]) -> None:
        """After an epoch is logged: stop on a non-finite loss or weight.

        Raises
        ------
        NonFiniteError
            Naming the losses / variables, the epoch and the last good checkpoint.
        """
        bad = [f"{k} = {logs[k]}" for k in ("LossPi", "LossV") if not math.isfinite(logs[k])]
        weights = _non_finite_weights(self.ac)
        if weights:
            bad.append(f"non-finite weights in {weights}")
        if bad:
            raise self._non_finite_error(bad)

    def _non_finite_error(self, what: list[str]) -> NonFiniteError:
        # Apart from _check_finite: built only on an error, off the epoch's reading path.
        last = checkpoint.latest_checkpoint(self.output_dir) if self.rank == 0 else None
        return NonFiniteError(
            f"training stopped at epoch {self.epoch - 1}: {', '.join(what)}. Nothing from this "
            f"epoch was saved; the last good checkpoint is {last} (resume: keras-vpg train "
            f"--resume {shlex.quote(str(self.output_dir))}). Check the env's rewards and "
            "observations or lower pi_lr / vf_lr."
        )

    def _after_exception(self, error: BaseException) -> None:
        """In ``fit``'s exception path: on an interruption, checkpoint and say so.

        An :class:`~keras_vpg.interrupt.Interrupted` comes from a safe point: the
        model is that of the last completed update, so it is checkpointed (and
        ``model.keras`` written). Any other ``KeyboardInterrupt`` (a second Ctrl-C)
        may have hit mid-update: nothing is written. Other exceptions write nothing.
        """
        if not isinstance(error, KeyboardInterrupt):
            return
        run = shlex.quote(str(self.output_dir))
        bar = self._progress_bar is not None  # a bar line to end first
        if isinstance(error, Interrupted):
            try:
                existing = checkpoint.checkpoint_dir(self.output_dir) / f"ckpt_{self.epoch}"
                if self.rank == 0 and existing.is_dir() and checkpoint.is_usable(existing):
                    path = existing
                    mpi.gather_object(None)  # keep the ranks' collective calls paired
                else:
                    path = self._save_checkpoint()
                self.logger.save_model(self.ac)
            except NonFiniteError:
                path = None
            error.checkpoint = None if path is None else str(path)
            if self.rank == 0:
                name = "SIGTERM" if error.exit_status == 143 else "Ctrl-C"
                where = path or checkpoint.latest_checkpoint(self.output_dir)
                print_line(f"{name}: stopped with {self.epoch} epoch(s) done; checkpoint "
                           f"{where}; resume with: keras-vpg train --resume {run}", bar)
        elif self.rank == 0:
            print_line(f"Stopped at once, no new checkpoint (last: "
                       f"{checkpoint.latest_checkpoint(self.output_dir)}); resume with: "
                       f"keras-vpg train --resume {run}", bar)

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
    epochs: int = DEFAULT_EPOCHS,
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

    Extra keyword arguments (``num_envs``, ``vector_mode``, ``normalize_obs``, ...: see
    :class:`keras_vpg.config.VPGConfig`) go to :class:`VPG`;
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


def resume_run(
    run_dir: str | os.PathLike,
    epochs: int | None = None,
    env_fn: Callable[[], gym.Env] | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 1,
    **overrides,
) -> VPG:
    """Finish an interrupted run: restore ``run_dir`` and train up to ``epochs`` in total.

    What ``keras-vpg train --resume RUN_DIR [--epochs TOTAL]`` runs.

    Parameters
    ----------
    run_dir : str or path
        The run's ``output_dir``.
    epochs : int or None
        Total epochs of the run (counting those already done); ``None``: the
        total of the ``fit`` that wrote the checkpoint.
    env_fn : callable or None
        ``None``: rebuilt from the gymnasium spec in the run's config.
    callbacks, verbose
        As in :meth:`VPG.fit`.
    **overrides
        VPG constructor arguments replacing the saved ones.

    Returns
    -------
    VPG
        The agent, trained to ``epochs`` (not trained if the run is complete).
    """
    agent = VPG.restore(run_dir, env_fn=env_fn, **overrides)
    total = epochs if epochs is not None else agent._fit_target_epochs
    if total is None:
        raise ValueError(f"the checkpoint of {run_dir} records no epoch total; pass epochs=")
    if agent.epoch >= total:
        if agent.rank == 0:
            print(f"{run_dir} has already run {agent.epoch} of {total} epochs; nothing to do")
        return agent
    agent.fit(epochs=total - agent.epoch, callbacks=callbacks, verbose=verbose)
    return agent


def _non_finite_weights(model: keras.Model) -> list[str]:
    """Paths of ``model``'s floating-point variables holding NaN or Inf."""
    values = [(v.path, v.numpy()) for v in model.variables]
    return [path for path, x in values if x.dtype.kind == "f" and not np.isfinite(x).all()]


def _rows(x: np.ndarray) -> np.ndarray:
    """``(T, N, ...)`` -> ``(T * N, ...)``: one row per transition."""
    return x.reshape((-1,) + x.shape[2:])


def _resume_env_seed(seed: int, epoch: int) -> int:
    """Seed of the envs' first reset when a rank with ``seed`` resumes at ``epoch``."""
    return int(np.random.SeedSequence([int(seed), int(epoch), 17]).generate_state(1)[0])


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
    try:
        return env.spec.to_json()
    except Exception:  # no spec (None), or kwargs that JSON cannot hold (callables, objects)
        return None


def _default_output_dir(exp_name: str, seed: int) -> str:
    path = run_directory(exp_name, seed)
    if path.exists():
        path = path.with_name(f"{path.name}_{time.strftime('%Y%m%d-%H%M%S')}")
    return str(path)
