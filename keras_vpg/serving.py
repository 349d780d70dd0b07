"""Run and ship trained policies: load a run directory, roll out episodes, export."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import keras
import numpy as np


def checkpoint_path(run_dir: str | Path, itr: int | str = "last") -> Path:
    """A run's checkpoint: ``model.keras`` for ``"last"``/``-1``, else ``model_<itr>.keras``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {str(run_dir)!r} does not exist")
    if itr in ("last", -1, "-1", None):
        path = run_dir / "model.keras"
    else:
        path = run_dir / f"model_{int(itr)}.keras"
    if not path.exists():
        saved = sorted(p.name for p in run_dir.glob("model*.keras"))
        raise FileNotFoundError(f"no checkpoint {path.name} in {str(run_dir)!r}; found {saved}")
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
    config_file = Path(run_dir) / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{str(config_file)!r} is missing; pass an env explicitly")
    spec_json = json.loads(config_file.read_text()).get("env_spec")
    if not spec_json:
        raise ValueError(
            f"{str(config_file)!r} has no gymnasium env spec (the env was not made with "
            "gym.make); pass an env id explicitly"
        )
    return gym.make(gym.envs.registration.EnvSpec.from_json(spec_json), **make_kwargs)


def load_policy_and_env(
    fpath: str | Path, itr: int | str = "last", deterministic: bool = False
) -> tuple[gym.Env | None, Callable[[np.ndarray], np.ndarray]]:
    """Load a run's policy and rebuild its env, as Spinning Up's ``load_policy_and_env``.

    Returns
    -------
    env : gymnasium.Env or None
        ``None`` (with a warning) when the env cannot be rebuilt from ``config.json``.
    get_action : callable
        ``obs -> action`` (numpy), the mode of the policy when ``deterministic``.
    """
    ac = load_model(checkpoint_path(fpath, itr))
    try:
        env = make_env_from_run(fpath)
    except Exception as error:
        warnings.warn(f"could not rebuild the env of {str(fpath)!r}: {error}", stacklevel=2)
        env = None

    def get_action(obs: np.ndarray) -> np.ndarray:
        return ac.act(obs, deterministic=deterministic)

    return env, get_action


def run_policy(
    env: gym.Env,
    get_action: Callable[[np.ndarray], np.ndarray],
    max_ep_len: int = 0,
    num_episodes: int = 100,
    render: bool = True,
    seed: int | None = 0,
    verbose: bool = True,
) -> list[tuple[float, int]]:
    """Roll out ``num_episodes`` episodes and print each return and length.

    Returns the list of ``(return, length)``; ``max_ep_len=0`` means no cap.
    """
    if env is None:
        raise ValueError("env is None: the environment could not be rebuilt; pass one")
    results = []
    obs, _ = env.reset(seed=seed)
    ep_ret, ep_len = 0.0, 0
    while len(results) < num_episodes:
        if render:
            env.render()
        obs, reward, terminated, truncated, _ = env.step(get_action(obs))
        ep_ret += float(reward)
        ep_len += 1
        if terminated or truncated or (max_ep_len and ep_len == max_ep_len):
            results.append((ep_ret, ep_len))
            if verbose:
                print(f"Episode {len(results) - 1} \t EpRet {ep_ret:.3f} \t EpLen {ep_len}")
            obs, _ = env.reset()
            ep_ret, ep_len = 0.0, 0
    if verbose and results:
        returns = np.array([r for r, _ in results])
        lengths = np.array([n for _, n in results])
        print(f"AverageEpRet {returns.mean():.3f} \t StdEpRet {returns.std():.3f} \t "
              f"EpLen {lengths.mean():.1f}")
    return results


def export(model: keras.Model, filepath: str | Path, format: str = "tf_saved_model") -> None:
    """Export the policy for serving (``format`` as ``keras.Model.export``)."""
    model.export(str(filepath), format=format)
