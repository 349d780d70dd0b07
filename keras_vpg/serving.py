"""Run and ship trained policies: load a run directory, roll out episodes, export."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import gymnasium as gym
import keras
import numpy as np

from keras_vpg import actor_critic  # noqa: F401  (registers ActorCritic with Keras's loader)
from keras_vpg._backend import is_installed
from keras_vpg.config import load_config
from keras_vpg.rollout import EpisodeStats, batched_policy, episode_line, play_episodes

__all__ = ["EpisodeStats", "batched_policy", "export", "load_policy_and_env", "run_episodes",
           "run_policy"]


def saved_policy_path(run_dir: str | Path, itr: int | str = "last") -> Path:
    """A run's saved policy: ``model.keras`` for ``"last"``/``-1``, else ``model_<itr>.keras``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {str(run_dir)!r} does not exist")
    last = itr in ("last", -1, "-1", None)
    path = run_dir / ("model.keras" if last else f"model_{int(itr)}.keras")
    if not path.exists():
        saved = sorted(p.name for p in run_dir.glob("model*.keras"))
        runs = sorted(str(p.parent) for p in run_dir.glob("*/model.keras"))
        if not saved and runs:  # an experiment folder: name the runs below it
            raise FileNotFoundError(f"{str(run_dir)!r} is an experiment folder, not a run; "
                                    f"pass one of its runs: {', '.join(runs)}")
        found = ", ".join(saved) if saved else "no model*.keras"
        raise FileNotFoundError(f"no saved policy {path.name} in {str(run_dir)!r} "
                                f"(it holds {found})")
    return path


def load_model(path: str | Path) -> keras.Model:
    """``keras.saving.load_model`` with a clear error for a missing or damaged file."""
    try:
        return keras.saving.load_model(path)
    except FileNotFoundError:
        raise
    except Exception as error:
        raise ValueError(f"could not load the policy from {str(path)!r}: {error}") from error


def make_env_from_run(run_dir: str | Path, **make_kwargs) -> gym.Env:
    """Rebuild the env of a run from the gymnasium spec in its ``config.json``."""
    env_fn = load_config(run_dir).get("env_fn")
    if env_fn is None:
        raise ValueError(f"the config.json of {str(run_dir)!r} has no gymnasium env spec (the env "
                         "was not made with gym.make); pass an env explicitly")
    return env_fn(**make_kwargs)


def load_policy_and_env(fpath: str | Path, itr: int | str = "last", deterministic: bool = False
                        ) -> tuple[gym.Env | None, Callable[[np.ndarray], np.ndarray]]:
    """Load a run's policy and rebuild its env, as Spinning Up's ``load_policy_and_env``.

    Returns
    -------
    env : gymnasium.Env or None
        ``None`` (with a warning) when the env cannot be rebuilt from ``config.json``.
    get_action : callable
        ``obs -> action`` (numpy), the mode of the policy when ``deterministic``.
    """
    ac = load_model(saved_policy_path(fpath, itr))
    try:
        env = make_env_from_run(fpath)
    except Exception as error:
        warnings.warn(f"could not rebuild the env of {str(fpath)!r}: {error}", stacklevel=2)
        env = None
    return env, lambda obs: ac.act(obs, deterministic=deterministic)


def run_policy(env: gym.Env, get_action: Callable[[np.ndarray], np.ndarray], max_ep_len: int = 0,
               num_episodes: int = 100, render: bool = True, seed: int | None = 0,
               verbose: bool = True) -> list[tuple[float, int]]:
    """Roll out ``num_episodes`` episodes one after the other and print each return and length.

    Spinning Up's ``run_policy``: ``get_action`` takes one observation. Runs on
    :func:`keras_vpg.rollout.play_episodes` (``env`` reset with ``seed`` first).
    Returns the list of ``(return, length)``; ``max_ep_len=0`` means no cap.
    """
    if env is None:
        raise ValueError("env is None: the environment could not be rebuilt; pass one")

    count = itertools.count()

    def report(ep_ret: float, ep_len: int) -> None:
        print(episode_line(next(count), ep_ret, ep_len))

    stats = play_episodes(lambda obs: np.asarray(get_action(obs[0]))[None], [env],
                          num_episodes, max_ep_len, seed, render, report if verbose else None)
    if verbose and stats.returns:
        print(f"AverageEpRet {np.mean(stats.returns):.3f} \t StdEpRet {np.std(stats.returns):.3f} "
              f"\t EpLen {np.mean(stats.lengths):.1f}")
    return list(zip(stats.returns, stats.lengths))


def run_episodes(ac: keras.Model, env_fn: Callable[[], gym.Env], num_episodes: int = 100,
                 max_ep_len: int | None = 0, deterministic: bool = False,
                 num_envs: int | None = 8, seed: int | None = 0,
                 envs: Sequence[gym.Env] | None = None) -> EpisodeStats:
    """Run ``num_episodes`` episodes of a policy on copies of ``env_fn()``, batched.

    ``min(num_envs, num_episodes)`` envs step together with one batched policy
    call per step (:func:`keras_vpg.rollout.batched_policy`); env i is reset with
    ``seed + i`` and runs a fixed share of the episodes
    (:func:`keras_vpg.rollout.play_episodes`). ``max_ep_len``: cut episodes after
    this many steps (0 or ``None``: only the env's own limit); ``num_envs=None``: 8;
    ``seed`` also seeds the numpy sampler's draws. ``envs``: envs to use instead
    (left open). What ``keras-vpg test-policy --norender`` and
    :func:`keras_vpg.evaluate_policy` run.

    Returns
    -------
    EpisodeStats
        Episodes ordered by env, then by time.
    """
    num_envs = 8 if num_envs is None else num_envs
    for name, value, minimum in (("num_episodes", num_episodes, 1), ("num_envs", num_envs, 1),
                                 ("max_ep_len", max_ep_len or 0, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    with contextlib.ExitStack() as own_envs:  # closes the envs made here (not those passed)
        if envs is None:
            count = min(int(num_envs), int(num_episodes))
            envs = [own_envs.enter_context(contextlib.closing(env_fn())) for _ in range(count)]
        return play_episodes(batched_policy(ac, deterministic, seed), envs, int(num_episodes),
                             max_ep_len, seed)


#: What exporting needs, per format: (module to import, extra that installs it).
EXPORT_REQUIREMENTS = {
    "tf_saved_model": (("tensorflow", "tensorflow"),),
    "onnx": (("tensorflow", "onnx"), ("tf2onnx", "onnx"), ("onnx", "onnx")),
}


def export(model: keras.Model, filepath: str | Path, format: str = "tf_saved_model") -> None:
    """Export an :class:`~keras_vpg.ActorCritic` for serving without keras-vpg.

    ``format="tf_saved_model"`` writes a TensorFlow SavedModel with three
    signatures, each taking ``obs`` of shape ``(batch, *O)`` (any batch size):

    - ``serve(obs)``: the deterministic env-ready action (mode, clipped to a Box);
    - ``sample(obs, seed)``: a stochastic env-ready action, reproducible per int ``seed``;
    - ``value(obs)``: V(obs), shape ``(batch,)``.

    Observation normalization and action clipping are inside the graph. It works
    from every backend: off TensorFlow the model goes through a temporary
    ``.keras`` file into a TensorFlow subprocess. ``format="onnx"`` writes the
    ``serve`` function as ONNX (needs ``tf2onnx``/``onnx`` on the TensorFlow
    backend). The output appears only when complete (temp name, then rename).

    Raises
    ------
    ImportError
        When TensorFlow (``pip install "keras-vpg[tensorflow]"``) or, for ONNX,
        ``tf2onnx``/``onnx`` (``pip install "keras-vpg[onnx]"``) is not installed.
    """
    if format not in EXPORT_REQUIREMENTS:
        raise ValueError(f"format must be one of {tuple(EXPORT_REQUIREMENTS)}, got {format!r}")
    for module, extra in EXPORT_REQUIREMENTS[format]:
        if not is_installed(module):
            raise ImportError(f"exporting {format} needs {module}, which is not installed: "
                              f'pip install "keras-vpg[{extra}]"')
    filepath = Path(filepath)
    filepath.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{filepath.name}.", dir=filepath.parent,
                                     ignore_cleanup_errors=True) as tmp:
        target = Path(tmp) / ("export" if format == "tf_saved_model" else "policy.onnx")
        if keras.backend.backend() == "tensorflow":
            _export_on_tensorflow(model, target, format)
        else:
            model.save(Path(tmp) / "model.keras")
            _export_in_tensorflow_subprocess(Path(tmp) / "model.keras", target, format)
        if filepath.is_dir() and format == "tf_saved_model":
            shutil.rmtree(filepath)
        os.replace(target, filepath)


def _export_in_tensorflow_subprocess(model_path: Path, target: Path, format: str) -> None:
    code = (
        "import keras, keras_vpg.serving as s\n"
        f"s._export_on_tensorflow(keras.saving.load_model({str(model_path)!r}), "
        f"{str(target)!r}, {format!r})\n")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"export to {format} failed in the TensorFlow subprocess (is tensorflow "
            f'installed? pip install "keras-vpg[tensorflow]"):\n{result.stderr[-2000:]}')


class _DiscreteModeForOnnx(keras.Model):
    """A Discrete policy's ``call`` (its env-ready mode) with TensorFlow's own argmax.

    Keras's argmax on TensorFlow tells -0.0 from 0.0 through a ``Bitcast``, an op
    ONNX Runtime does not run; TensorFlow's argmax has none (and takes the first of
    equal logits, as numpy does). Used only while exporting ONNX, on TensorFlow.
    """

    def __init__(self, ac: keras.Model):
        super().__init__(name="discrete_mode")  # the default name, from the class, is invalid
        self.ac = ac
        self.built = True  # nothing of its own to build: the variables are the policy's

    def call(self, obs):
        import tensorflow as tf

        logits = self.ac.distribution(obs).logits
        return self.ac.env_action(tf.argmax(logits, axis=-1, output_type=tf.int32))


def _export_on_tensorflow(ac: keras.Model, target: str | Path, format: str) -> None:
    """Write the export with the TensorFlow backend active (TF code is fine here)."""
    import tensorflow as tf

    obs_spec = tf.TensorSpec((None, *ac.observation_shape), tf.float32, name="obs")
    if format == "onnx":
        served = _DiscreteModeForOnnx(ac) if ac.discrete else ac
        try:
            served.export(str(target), format="onnx", input_signature=[obs_spec], verbose=False)
        except ImportError as error:
            raise ImportError(
                f"ONNX export needs extra packages: {error}. pip install tf2onnx onnx"
            ) from error
        return

    def sample(obs, seed):
        dist = ac.distribution(obs)
        seed_pair = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
        if ac.discrete:
            action = tf.random.stateless_categorical(dist.logits, 1, seed_pair, tf.int32)[:, 0]
        else:
            noise = tf.random.stateless_normal(tf.shape(dist.mean), seed_pair)
            action = dist.mean + dist.std * noise
        return ac.env_action(action)

    archive = keras.export.ExportArchive()
    archive.track(ac)
    archive.add_endpoint("serve", lambda obs: ac(obs), input_signature=[obs_spec])
    archive.add_endpoint(
        "sample", sample, input_signature=[obs_spec, tf.TensorSpec((), tf.int32, name="seed")])
    archive.add_endpoint("value", ac.value, input_signature=[obs_spec])
    archive.write_out(str(target), verbose=False)
