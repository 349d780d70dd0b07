"""Spinning Up's own VPG run here beside keras-vpg, and one evaluator for both (issue #23).

Four subcommands:

``spinup ENV --seed S --steps N --out RUN_DIR``
    Trains Spinning Up's PyTorch ``vpg`` (imported unchanged from a checkout,
    ``--spinup-dir``, through the old-``gym`` shims of ``spinningup_timing.py``) with
    its benchmark settings: hidden (64, 32), tanh, 4000 steps per epoch, every other
    argument at its default, one process, one torch thread. ``RUN_DIR`` receives its
    ``progress.txt``, ``config.json`` and ``pyt_save/model.pt``.

``evaluate RUN_DIR [RUN_DIR ...]``
    Scores each run's final policy with the same code, whichever library trained it
    (a keras-vpg run holds ``model.keras``, a Spinning Up run ``pyt_save/model.pt``):
    the env of the run (same id, so the same version), ``--episodes`` episodes
    (default 100), deterministic actions (the mean of the Gaussian, the most likely
    Discrete action), clipped to the action Box as MuJoCo applies them, episodes never
    cut short but by the env's own time limit. ``--envs`` envs step together, env i
    reset once with seed ``--seed + i`` and running a fixed share of the episodes.
    Writes ``RUN_DIR/eval.json`` (every episode's return and length, their mean and
    std, and the mean absolute action the env received).

``variant ENV --seed S --steps N --out RUN_DIR [--raw-cost] [--torch-init]``
    keras-vpg with the settings of ``spinup``, changed in one of the two ways its
    training differs from Spinning Up's beyond what the evaluator removes:
    ``--raw-cost`` declares the env's action Box unbounded, so keras-vpg's clip to the
    Box passes the Gaussian sample through as Spinning Up sends it (the env charges its
    control cost on the raw sample; MuJoCo still clamps the control); ``--torch-init``
    re-draws every Dense layer as PyTorch's ``nn.Linear`` starts (weights and biases
    uniform in +-1/sqrt(fan_in)) instead of Keras's Glorot-uniform kernels and zero
    biases, so the policy starts with Spinning Up's small mean actions.

``table EXP_DIR [EXP_DIR ...]``
    Prints, per experiment folder, each seed's evaluation score, the mean and the
    sample standard deviation (ddof=1).

Why an evaluator: the two libraries' training returns measure different things.
keras-vpg clips actions to the Box before ``env.step`` (gymnasium's control cost is
then charged on the action the robot really gets) and carries episodes across epoch
boundaries; Spinning Up sends the raw Gaussian sample (the cost is charged on it,
although MuJoCo clamps the control) and drops the episode the epoch end cuts. Scoring
both final policies here removes both differences.

Getting Spinning Up: see ``spinningup_timing.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spinningup_timing  # noqa: E402  (the shims)

STEPS_PER_EPOCH = 4000
HIDDEN = (64, 32)


def train_spinup(spinup_dir: str, env_id: str, seed: int, steps: int, out: str) -> None:
    """Spinning Up's PyTorch VPG with its benchmark settings, logging to ``out``."""
    spinningup_timing.install_spinup_shims(spinup_dir, seed)
    import gym  # the shim
    import torch
    from spinup.algos.pytorch.vpg import core
    from spinup.algos.pytorch.vpg.vpg import vpg

    torch.set_num_threads(1)  # one core per run, as keras-vpg's runs beside it
    vpg(lambda: gym.make(env_id), actor_critic=core.MLPActorCritic,
        ac_kwargs=dict(hidden_sizes=HIDDEN, activation=torch.nn.Tanh), seed=seed,
        steps_per_epoch=STEPS_PER_EPOCH, epochs=steps // STEPS_PER_EPOCH,
        logger_kwargs=dict(output_dir=out, exp_name=Path(out).parent.name))


def torch_default_init(ac: Any, seed: int) -> None:
    """Re-draw every Dense layer of ``ac`` as PyTorch's ``nn.Linear`` starts by default."""
    import keras

    rng = np.random.default_rng(seed)
    for net in (ac.pi_net, ac.v_net):
        for layer in net.layers:
            if isinstance(layer, keras.layers.Dense):
                bound = 1.0 / np.sqrt(layer.kernel.shape[0])
                layer.kernel.assign(rng.uniform(-bound, bound, layer.kernel.shape))
                layer.bias.assign(rng.uniform(-bound, bound, layer.bias.shape))


def train_variant(env_id: str, seed: int, steps: int, out: str, raw_cost: bool,
                  torch_init: bool) -> None:
    """keras-vpg, Spinning Up's settings, with the control cost or the init of Spinning Up."""
    import gymnasium as gym

    import keras_vpg

    class RawAction(gym.ActionWrapper):
        """The env with an unbounded action Box: keras-vpg's clip leaves the sample as is."""

        def __init__(self, env: gym.Env):
            super().__init__(env)
            self.action_space = gym.spaces.Box(-np.inf, np.inf, env.action_space.shape,
                                               np.float32)
            self._cached_spec = env.spec  # config.json names the env itself (scored on it)

        def action(self, action: np.ndarray) -> np.ndarray:
            return action

    def env_fn() -> gym.Env:
        return RawAction(gym.make(env_id)) if raw_cost else gym.make(env_id)

    agent = keras_vpg.VPG(env_fn, ac_kwargs=dict(hidden_sizes=HIDDEN, activation="tanh"),
                          seed=seed, steps_per_epoch=STEPS_PER_EPOCH,
                          logger_kwargs=dict(output_dir=out, exp_name=Path(out).parent.name))
    if torch_init:
        torch_default_init(agent.ac, seed)
    agent.logger.update_config(like_for_like_variant=dict(
        raw_cost=raw_cost, torch_init=torch_init,
        how="benchmarks/like_for_like.py variant (see its docstring)"))
    agent.fit(epochs=steps // STEPS_PER_EPOCH, verbose=0)
    agent.close()


def load_deterministic_policy(run_dir: Path, spinup_dir: str | None
                              ) -> Callable[[np.ndarray], np.ndarray]:
    """``obs batch -> action batch`` of a run's final policy, its deterministic action."""
    if (run_dir / "model.keras").exists():
        import keras

        import keras_vpg

        keras_vpg.MLPActorCritic  # noqa: B018  (registers the classes the .keras names)

        ac = keras.saving.load_model(run_dir / "model.keras")
        return lambda obs: np.asarray(ac.act(obs, deterministic=True))
    model_pt = run_dir / "pyt_save" / "model.pt"
    if model_pt.exists():
        if not spinup_dir:
            raise SystemExit(f"{run_dir} is a Spinning Up run: give --spinup-dir")
        spinningup_timing.install_spinup_shims(spinup_dir, 0)
        import torch

        ac = torch.load(model_pt, weights_only=False)

        def act(obs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                x = torch.as_tensor(obs, dtype=torch.float32)
                if hasattr(ac.pi, "mu_net"):  # Gaussian: its mean
                    return ac.pi.mu_net(x).numpy()
                return ac.pi.logits_net(x).argmax(-1).numpy()  # Categorical: its mode
        return act
    raise SystemExit(f"{run_dir}: no model.keras and no pyt_save/model.pt")


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int,
             num_envs: int, seed: int) -> tuple[list[float], list[int], float]:
    """Undiscounted returns and lengths of ``episodes`` episodes, env i running a fixed
    share, and the mean absolute action the envs received (after the clip)."""
    import gymnasium as gym

    envs = [gym.make(env_id) for _ in range(num_envs)]
    space = envs[0].action_space
    to_env = ((lambda a: np.clip(a, space.low, space.high))
              if isinstance(space, gym.spaces.Box) else (lambda a: a))
    quota = [(episodes + i) // num_envs for i in range(num_envs)]
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    ep_ret, ep_len = [0.0] * num_envs, [0] * num_envs
    returns: list[list[float]] = [[] for _ in range(num_envs)]
    lengths: list[list[int]] = [[] for _ in range(num_envs)]
    abs_action_sum, actions_sent = 0.0, 0
    active = [i for i in range(num_envs) if quota[i] > 0]
    while active:
        actions = policy(np.asarray([obs[i] for i in active], dtype=np.float32))
        for i, action in zip(list(active), actions):
            sent = to_env(action)
            abs_action_sum += float(np.mean(np.abs(sent)))
            actions_sent += 1
            obs[i], reward, terminated, truncated, _ = envs[i].step(sent)
            ep_ret[i] += float(reward)
            ep_len[i] += 1
            if terminated or truncated:
                returns[i].append(ep_ret[i])
                lengths[i].append(ep_len[i])
                ep_ret[i], ep_len[i] = 0.0, 0
                if len(returns[i]) == quota[i]:
                    active.remove(i)
                else:
                    obs[i] = envs[i].reset()[0]
    for env in envs:
        env.close()
    return ([r for env_returns in returns for r in env_returns],
            [n for env_lengths in lengths for n in env_lengths], abs_action_sum / actions_sent)


def run_env_id(run_dir: Path) -> str:
    config = json.loads((run_dir / "config.json").read_text())
    if "env_spec" in config:  # keras-vpg
        return json.loads(config["env_spec"])["id"]
    return config["env_id"]  # written by `spinup` below


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("spinup", "train Spinning Up's vpg"),
                            ("variant", "train keras-vpg changed one of Spinning Up's ways")):
        trainer = sub.add_parser(name, help=help_text)
        trainer.add_argument("env")
        trainer.add_argument("--seed", type=int, required=True)
        trainer.add_argument("--steps", type=int, required=True)
        trainer.add_argument("--out", required=True, help="the run directory")
        trainer.add_argument("--spinup-dir", required=name == "spinup")
    variant = sub.choices["variant"]
    variant.add_argument("--raw-cost", action="store_true",
                         help="the env charges its control cost on the raw sample")
    variant.add_argument("--torch-init", action="store_true",
                         help="Dense layers start as PyTorch's nn.Linear")
    ev = sub.add_parser("evaluate", help="score final policies, write RUN_DIR/eval.json")
    ev.add_argument("run_dirs", nargs="+")
    ev.add_argument("--episodes", type=int, default=100)
    ev.add_argument("--envs", type=int, default=10)
    ev.add_argument("--seed", type=int, default=10_000)
    ev.add_argument("--spinup-dir")
    table = sub.add_parser("table", help="evaluation scores per experiment folder")
    table.add_argument("exp_dirs", nargs="+")
    args = parser.parse_args(argv)

    if args.command == "spinup":
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        train_spinup(args.spinup_dir, args.env, args.seed, args.steps, str(out))
        # Spinning Up's config.json names the env only inside a lambda: add its id.
        config = json.loads((out / "config.json").read_text())
        config.update(env_id=args.env, spinningup_commit=spinningup_timing.spinup_commit(
            args.spinup_dir, "/work/.mirror/openai+spinningup/repo"))
        write_json(out / "config.json", config)
    elif args.command == "variant":
        train_variant(args.env, args.seed, args.steps, args.out, args.raw_cost,
                      args.torch_init)
    elif args.command == "evaluate":
        for run_dir in map(Path, args.run_dirs):
            env_id = run_env_id(run_dir)
            returns, lengths, mean_abs_action = evaluate(
                load_deterministic_policy(run_dir, args.spinup_dir), env_id, args.episodes,
                args.envs, args.seed)
            result = dict(env=env_id, episodes=len(returns), deterministic=True,
                          clipped_to_box=True, seed=args.seed,
                          mean=float(np.mean(returns)), std=float(np.std(returns, ddof=1)),
                          mean_length=float(np.mean(lengths)),
                          mean_abs_action=mean_abs_action, returns=returns, lengths=lengths)
            write_json(run_dir / "eval.json", result)
            print(f"{run_dir}: {result['mean']:.1f} +- {result['std']:.1f} "
                  f"over {len(returns)} episodes", flush=True)
    else:
        for exp_dir in map(Path, args.exp_dirs):
            scores = {p.parent.name: json.loads(p.read_text())["mean"]
                      for p in sorted(exp_dir.glob("*/eval.json"))}
            if not scores:
                continue
            values = list(scores.values())
            std = statistics.stdev(values) if len(values) > 1 else float("nan")
            per_seed = ", ".join(f"{v:.0f}" for v in values)
            print(f"| {exp_dir.name} | {statistics.mean(values):.0f} +- {std:.0f} "
                  f"| {per_seed} | {len(values)} |")


if __name__ == "__main__":
    main()
