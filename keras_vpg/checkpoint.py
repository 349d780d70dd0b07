"""Full checkpoints of a VPG run, exact resume, and the interruption path of ``fit``.

A checkpoint is a directory ``RUN_DIR/checkpoints/ckpt_<E>/`` holding the state
after ``E`` completed epochs (epochs ``0 .. E-1``; a resume runs epoch ``E`` next):

- ``arrays.npz``: every variable of the ActorCritic (weights, ``log_std``, the
  observation normalizer's mean/var/count, the sampling ``SeedGenerator``
  state) and of both optimizers (``iterations``, learning rate, Adam moments),
  as raw numpy arrays (bit-exact);
- ``state.json``, written last: the epoch, ``TotalEnvInteracts``, elapsed time,
  the target epoch count of the ``fit`` that wrote it, the run's config
  (``config.json``), every random stream of every rank (the numpy sampler's
  generator, numpy's and Python's global generators, the ``SeedGenerator``
  state, the env action spaces' generators), variable names and shapes, and
  the SHA-256 of ``arrays.npz``.

Why a directory: the arrays stay in numpy's own format (exact, any size) and
the metadata readable JSON; the directory is written under a temporary name
and renamed into place in one atomic ``rename``, so a kill at any moment leaves
either the complete new checkpoint or none (the previous ones untouched). The
hash catches a checkpoint damaged afterwards (a truncated copy, a full disk):
:func:`latest_checkpoint` then warns and takes the previous one.

The random streams stored are those at the start of epoch ``E``'s collection,
so a resume draws the same actions as the original run would have, given the
same observations. Environments cannot be snapshotted in general: a resume
resets them with a seed derived from the run's seed and ``E``
(:func:`resume_env_seed`), so two resumes from one checkpoint are identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import random
import re
import shlex
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import keras
import numpy as np

from keras_vpg import logger as logger_module
from keras_vpg import mpi
from keras_vpg.files import atomic_write
from keras_vpg.interrupt import Interrupted, StopOnSignals, print_line

if TYPE_CHECKING:
    from keras_vpg.agent import VPG

CHECKPOINTS = "checkpoints"
FORMAT_VERSION = 1
DEFAULT_KEEP = 3  # VPG(keep_checkpoints=3), keras_vpg.config.VPGConfig
_NAME = re.compile(r"^ckpt_(\d+)$")
_ARRAYS, _STATE = "arrays.npz", "state.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (damaged, or for another model)."""


class NonFiniteError(FloatingPointError):
    """A non-finite loss or weight: training stopped, nothing non-finite was saved.

    ``all_ranks``: under MPI every rank sees the same (averaged) losses and
    weights, so every rank raises it at the same point.
    """

    all_ranks = True


# -- where checkpoints are -------------------------------------------------------------------
def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    """``RUN_DIR/checkpoints``."""
    return Path(run_dir) / CHECKPOINTS


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``[(epoch, path)]`` of the ``ckpt_<epoch>`` directories, oldest first (unchecked)."""
    directory = checkpoint_dir(run_dir)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _NAME.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The checkpoint's ``state.json`` and arrays, after checking its hash.

    Raises
    ------
    CheckpointError
        Naming the file that is missing, truncated or altered.
    """
    path = Path(path)
    state_file, arrays_file = path / _STATE, path / _ARRAYS
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{state_file} is missing or damaged ({error})") from error
    if state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{state_file}: unknown checkpoint format {state.get('format')!r}")
    try:
        data = arrays_file.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{arrays_file} is missing ({error})") from error
    if len(data) != state["arrays_bytes"] or hashlib.sha256(data).hexdigest() != state[
        "arrays_sha256"
    ]:
        raise CheckpointError(
            f"{arrays_file} is truncated or altered ({len(data)} bytes, "
            f"{state['arrays_bytes']} written)"
        )
    import io

    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return state, arrays


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest usable checkpoint of ``run_dir``, or ``None`` if there is none.

    A damaged newer checkpoint is skipped with a warning naming it.
    """
    for _epoch, path in reversed(list_checkpoints(run_dir)):
        try:
            read_checkpoint(path)
        except CheckpointError as error:
            warnings.warn(f"skipping checkpoint {path}: {error}; trying the previous one",
                          stacklevel=2)
            continue
        return path
    return None


# -- what a checkpoint holds -----------------------------------------------------------------
def _variable_groups(agent: VPG) -> dict[str, list]:
    return {
        "model": list(agent.ac.variables),
        "pi_optimizer": list(agent.trainer.pi_optimizer.variables),
        "vf_optimizer": list(agent.trainer.vf_optimizer.variables),
    }


def _numpy(variable) -> np.ndarray:
    return np.array(keras.ops.convert_to_numpy(variable))


def _generator_state(space: gym.Space) -> dict | None:
    rng = getattr(space, "_np_random", None)  # None until the space is seeded or sampled
    return None if rng is None else rng.bit_generator.state


def random_streams(agent: VPG) -> dict[str, Any]:
    """This rank's random streams now, as JSON-able values."""
    sampler = agent.sampler.numpy  # plain-MLP policies only
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "seed_generator": _numpy(agent.ac.seed_generator.state).tolist(),
        "numpy_sampler": None if sampler is None else sampler.rng.bit_generator.state,
        "numpy_global": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python_random": [py_state[0], list(py_state[1]), py_state[2]],
        "action_space": _generator_state(agent.envs.action_space),
        "single_action_space": _generator_state(agent.envs.single_action_space),
    }


def _set_random_streams(agent: VPG, streams: dict[str, Any]) -> None:
    seed_state = agent.ac.seed_generator.state
    seed_state.assign(np.asarray(streams["seed_generator"]).astype(_numpy(seed_state).dtype))
    sampler = agent.sampler.numpy
    if sampler is not None and streams["numpy_sampler"] is not None:
        sampler.rng.bit_generator.state = streams["numpy_sampler"]
    name, keys, *rest = streams["numpy_global"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = streams["python_random"]
    random.setstate((version, tuple(internal), gauss))
    for key, space in (("action_space", agent.envs.action_space),
                       ("single_action_space", agent.envs.single_action_space)):
        if streams.get(key) is not None:
            space.np_random.bit_generator.state = streams[key]


def note_collection_start(agent: VPG, epoch: int) -> None:
    """Agent hook: epoch ``epoch``'s collection starts now; remember the random streams.

    A checkpoint of ``epoch`` completed epochs written later (mid-collection:
    Ctrl-C, or the end of the previous epoch while its update overlapped this
    collection) stores these, the streams its resume must start from.
    """
    if agent.buffer.ptr == 0:
        agent._streams_at_collection = (epoch, random_streams(agent))


def _streams_for_checkpoint(agent: VPG) -> dict[str, Any]:
    noted = getattr(agent, "_streams_at_collection", None)
    if noted is not None and noted[0] == agent.epoch:
        return noted[1]
    return random_streams(agent)  # epoch E's collection has not started: now is its start


def non_finite_variables(model: keras.Model) -> list[str]:
    """Paths of ``model``'s floating-point variables holding NaN or Inf."""
    bad = []
    for variable in model.variables:
        value = _numpy(variable)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            bad.append(variable.path)
    return bad


# -- saving ----------------------------------------------------------------------------------
def save_checkpoint(agent: VPG, keep: int | None = None) -> Path | None:
    """Write ``checkpoints/ckpt_<agent.epoch>`` atomically and prune to the last ``keep``.

    Call on every rank (the ranks' random streams are gathered); rank 0 writes
    and gets the path, the other ranks ``None``. ``keep`` defaults to the
    agent's ``keep_checkpoints`` (3).

    Raises
    ------
    NonFiniteError
        If a weight is NaN or Inf (the last good checkpoint is never replaced by it).
    """
    bad = non_finite_variables(agent.ac)
    if bad:
        raise NonFiniteError(
            f"not saving a checkpoint of epoch {agent.epoch}: non-finite values in {bad}"
        )
    streams = mpi.gather_object(_streams_for_checkpoint(agent))
    if mpi.proc_id() != 0:
        return None
    keep = int(keep if keep is not None else getattr(agent, "keep_checkpoints", DEFAULT_KEEP))
    run_dir = Path(agent.output_dir)
    groups = _variable_groups(agent)
    arrays, names = {}, {}
    for group, variables in groups.items():
        names[group] = [[v.path, list(v.shape)] for v in variables]
        for i, variable in enumerate(variables):
            arrays[f"{group}/{i}"] = _numpy(variable)
    seed_index = next(i for i, v in enumerate(groups["model"])
                      if v is agent.ac.seed_generator.state)
    arrays[f"model/{seed_index}"] = np.asarray(
        streams[0]["seed_generator"], dtype=arrays[f"model/{seed_index}"].dtype
    )
    config_file = run_dir / "config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    last_epoch = getattr(agent, "_last_epoch", None)
    state = {
        "format": FORMAT_VERSION,
        "epoch": int(agent.epoch),
        "total_env_interacts": int(agent.total_env_interacts),
        "elapsed": float(agent._elapsed),
        "target_epochs": None if last_epoch is None else int(last_epoch) + 1,
        "backend": keras.backend.backend(),
        "num_procs": mpi.num_procs(),
        "seed": int(agent.config.seed),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "variables": names,
        "random_streams": streams,
        "config": config,
    }
    return _write(checkpoint_dir(run_dir), agent.epoch, arrays, state, keep)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(directory: Path, epoch: int, arrays, state, keep: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".tmp_ckpt_{epoch}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        np.savez(tmp / _ARRAYS, **arrays)
        data = (tmp / _ARRAYS).read_bytes()
        state = dict(state, arrays_bytes=len(data), arrays_sha256=hashlib.sha256(data).hexdigest())
        (tmp / _STATE).write_text(json.dumps(state, indent=1))
        for name in (_ARRAYS, _STATE):
            _fsync(tmp / name)
        final = directory / f"ckpt_{epoch}"
        if final.exists():  # same epoch again (e.g. a damaged one): swap, then remove the old
            old = directory / f".old_ckpt_{epoch}_{os.getpid()}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old)
        else:
            os.rename(tmp, final)
        _fsync(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(directory, keep)
    return final


def _prune(directory: Path, keep: int) -> None:
    """Keep the ``keep`` newest checkpoints; remove leftovers of interrupted writes."""
    for entry in directory.iterdir():
        if entry.name.startswith((".tmp_ckpt_", ".old_ckpt_")):
            pid = entry.name.rsplit("_", 1)[-1]
            if pid != str(os.getpid()):
                shutil.rmtree(entry, ignore_errors=True)
    checkpoints = list_checkpoints(directory.parent)
    for _, path in checkpoints[: max(0, len(checkpoints) - keep)]:
        shutil.rmtree(path)


# -- restoring -------------------------------------------------------------------------------
def resume_env_seed(seed: int, epoch: int) -> int:
    """Seed of the envs' first reset when a rank with ``seed`` resumes at ``epoch``."""
    return int(np.random.SeedSequence([int(seed), int(epoch), 17]).generate_state(1)[0])


def restore_into(agent: VPG, path: str | os.PathLike) -> VPG:
    """Load the checkpoint at ``path`` into ``agent`` (built with the same settings).

    Restores every variable of the model and both optimizers bit for bit, the
    epoch, ``TotalEnvInteracts``, elapsed time and this rank's random streams;
    resets the envs with :func:`resume_env_seed`; truncates ``progress.txt``
    after the checkpoint's epoch; moves checkpoints newer than this one aside
    (to ``checkpoints/superseded_<time>/``) so later pruning cannot remove them.

    Raises
    ------
    CheckpointError
        If the checkpoint is damaged or its variables do not match the agent's.
    """
    path = Path(path)
    state, arrays = read_checkpoint(path)
    if state["backend"] != keras.backend.backend():
        warnings.warn(
            f"{path} was written with the {state['backend']} backend, this is "
            f"{keras.backend.backend()}: weights and optimizer state are restored, the "
            "sampling stream may not repeat", stacklevel=2,
        )
    for group, variables in _variable_groups(agent).items():
        saved = state["variables"][group]
        if len(saved) != len(variables):
            raise CheckpointError(
                f"{path}: {group} has {len(saved)} variables, this agent's {len(variables)} "
                "(was it built with other ac_kwargs or another actor_critic?)"
            )
        for i, (variable, (name, _shape)) in enumerate(zip(variables, saved)):
            value = arrays[f"{group}/{i}"]
            if tuple(value.shape) != tuple(variable.shape):
                raise CheckpointError(
                    f"{path}: {group} variable {name} has shape {tuple(value.shape)}, "
                    f"this agent's {variable.path} {tuple(variable.shape)}"
                )
        for i, variable in enumerate(variables):
            variable.assign(arrays[f"{group}/{i}"])
    epoch = int(state["epoch"])
    agent.epoch = epoch
    agent.total_env_interacts = int(state["total_env_interacts"])
    agent._elapsed = float(state["elapsed"])
    agent._fit_target_epochs = state["target_epochs"]
    agent.collector.restart_episodes(resume_env_seed(agent.seed, epoch))
    streams = state["random_streams"]
    if len(streams) != agent.num_procs and agent.rank == 0:
        warnings.warn(
            f"{path} holds the random streams of {len(streams)} process(es), this run has "
            f"{agent.num_procs}: ranks without one keep their fresh seeding", stacklevel=2,
        )
    if agent.rank < len(streams):
        _set_random_streams(agent, streams[agent.rank])
    agent._streams_at_collection = None
    agent.logger.resume_from(epoch)
    if agent.rank == 0:
        _set_aside_newer(path, epoch)
    return agent


def _set_aside_newer(path: Path, epoch: int) -> None:
    newer = [p for e, p in list_checkpoints(path.parent.parent) if e > epoch]
    if not newer:
        return
    aside = path.parent / f"superseded_{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir(exist_ok=True)
    for p in newer:
        os.rename(p, aside / p.name)
    warnings.warn(f"checkpoints newer than {path.name} (not resumed) moved to {aside}",
                  stacklevel=3)


def restore_agent(cls: type, run_dir: str | os.PathLike, env_fn=None, **overrides) -> VPG:
    """Implementation of :meth:`keras_vpg.VPG.restore` (see there)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    path = mpi.broadcast_object(str(latest_checkpoint(run_dir)) if mpi.proc_id() == 0 else None)
    if path == "None":
        raise FileNotFoundError(
            f"{run_dir} holds no usable checkpoint ({CHECKPOINTS}/ckpt_<epoch>); start a new "
            "run instead"
        )
    parameters = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(overrides) - set(parameters))
    if unknown:
        raise TypeError(f"VPG.restore got unknown arguments {unknown}; VPG takes {parameters}")
    config_file = run_dir / "config.json"
    if not config_file.exists() and mpi.proc_id() == 0:  # put back the checkpoint's copy
        state, _ = read_checkpoint(path)
        text = json.dumps(state["config"], indent=2, sort_keys=True)
        atomic_write(config_file, lambda p: Path(p).write_text(text))
    mpi.broadcast_object(None)  # the other ranks read config.json after rank 0 restored it
    kwargs = logger_module.load_config(run_dir, make_env=env_fn is None)
    env_fn = env_fn or kwargs.pop("env_fn", None)
    kwargs.pop("env_fn", None)
    if env_fn is None:
        raise ValueError(
            f"the config.json of {run_dir} holds no gymnasium spec of the env (it was not "
            "made by gym.make, or its kwargs are not JSON); pass env_fn="
        )
    if isinstance(kwargs.get("actor_critic"), str) and "actor_critic" not in overrides:
        raise TypeError(
            f"cannot import actor_critic={kwargs['actor_critic']!r} recorded in {config_file}; "
            "pass actor_critic= to VPG.restore"
        )
    exp_name = json.loads(config_file.read_text()).get("exp_name")
    kwargs["logger_kwargs"] = {"output_dir": str(run_dir), "exp_name": exp_name}
    kwargs.update(overrides)
    with logger_module.resuming(run_dir):
        agent = cls(env_fn, **kwargs)
    return restore_into(agent, path)


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
        As in :meth:`keras_vpg.VPG.fit`.
    **overrides
        VPG constructor arguments replacing the saved ones.

    Returns
    -------
    VPG
        The agent, trained to ``epochs`` (not trained if the run is complete).
    """
    from keras_vpg.agent import VPG

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


# -- hooks of the training loop --------------------------------------------------------------
@contextlib.contextmanager
def stop_on_signals(agent: VPG) -> Iterator[None]:
    """Agent hook around the epochs of ``fit``: SIGINT / SIGTERM stop at a safe point."""
    with StopOnSignals() as guard:
        agent._stop_signals = guard
        try:
            yield
            guard.check()  # a signal during the last update: stop (the checkpoint is written)
        finally:
            agent._stop_signals = None


def check_interrupt(agent: VPG) -> None:
    """Agent hook at a safe point (between chunks of env steps): raise if a signal came."""
    guard = getattr(agent, "_stop_signals", None)
    if guard is not None:
        guard.check()


def check_finite(agent: VPG, logs: dict[str, float]) -> None:
    """Agent hook after an epoch is logged: stop on a non-finite loss or weight.

    Raises
    ------
    NonFiniteError
        Naming the losses / variables, the epoch and the last good checkpoint.
    """
    losses = [f"{k} = {logs[k]}" for k in ("LossPi", "LossV")
              if k in logs and not math.isfinite(logs[k])]
    variables = non_finite_variables(agent.ac)
    if not losses and not variables:
        return
    what = ", ".join(losses + ([f"non-finite weights in {variables}"] if variables else []))
    last = latest_checkpoint(agent.output_dir) if agent.rank == 0 else None
    raise NonFiniteError(
        f"training stopped at epoch {agent.epoch - 1}: {what}. Nothing from this epoch "
        f"was saved; the last good checkpoint is {last} (resume: keras-vpg train --resume "
        f"{shlex.quote(str(agent.output_dir))}). Check the env's rewards and observations "
        "or lower pi_lr / vf_lr."
    )


def after_exception(agent: VPG, error: BaseException) -> None:
    """Agent hook in ``fit``'s exception path: on an interruption, checkpoint and say so.

    An :class:`~keras_vpg.interrupt.Interrupted` comes from a safe point: the
    model is that of the last completed update, so it is checkpointed (and
    ``model.keras`` written). Any other ``KeyboardInterrupt`` (a second Ctrl-C)
    may have hit mid-update: nothing is written. Other exceptions write nothing.
    """
    if not isinstance(error, KeyboardInterrupt):
        return
    run = shlex.quote(str(agent.output_dir))
    bar = getattr(agent, "_progress_bar", None) is not None  # a bar line to end first
    if isinstance(error, Interrupted):
        try:
            existing = checkpoint_dir(agent.output_dir) / f"ckpt_{agent.epoch}"
            if agent.rank == 0 and existing.is_dir() and _usable(existing):
                path = existing
                mpi.gather_object(None)  # keep the ranks' collective calls paired
            else:
                path = save_checkpoint(agent)
            agent.logger.save_model(agent.ac)
        except NonFiniteError:
            path = None
        error.checkpoint = None if path is None else str(path)
        if agent.rank == 0:
            name = "SIGTERM" if error.exit_status == 143 else "Ctrl-C"
            where = path or latest_checkpoint(agent.output_dir)
            print_line(f"{name}: stopped with {agent.epoch} epoch(s) done; checkpoint {where}; "
                       f"resume with: keras-vpg train --resume {run}", bar)
    elif agent.rank == 0:
        print_line(f"Stopped at once, no new checkpoint (last: "
                   f"{latest_checkpoint(agent.output_dir)}); resume with: "
                   f"keras-vpg train --resume {run}", bar)


def _usable(path: Path) -> bool:
    try:
        read_checkpoint(path)
    except CheckpointError:
        return False
    return True
