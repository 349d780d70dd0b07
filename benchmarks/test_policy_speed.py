"""test-policy's env steps per second next to training's, measured in the same run.

    KERAS_BACKEND=jax python benchmarks/test_policy_speed.py [--env CartPole-v1] [--episodes 100]

Trains a policy briefly (so episodes are not trivially short), then times, on the
same machine and policy:

- training: the collection of one epoch (``RolloutCollector.collect``, 1 env) and
  the whole training loop (``StepsPerSecond`` of progress.txt);
- ``keras_vpg.serving.run_episodes`` (``keras-vpg test-policy --norender``)
  with 8 envs and with 1;
- Spinning Up's per-step ``run_policy`` with ``ac.act`` (one framework call per
  step; what test-policy did before, and still does when rendering).

The ratios are what to read; absolute figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import keras_vpg  # noqa: E402
import keras_vpg.serving  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=5, help="training epochs before timing")
    args = parser.parse_args()

    def env_fn():
        return gym.make(args.env)

    with tempfile.TemporaryDirectory() as tmp:
        agent = keras_vpg.VPG(env_fn, seed=0, pi_lr=1e-2, logger_kwargs=dict(output_dir=tmp))
        history = agent.fit(epochs=args.epochs, verbose=0)
        loop = float(np.median(history.history["StepsPerSecond"][1:]))
        start = time.perf_counter()
        rollout = agent.collector.collect()
        collection = rollout.env_steps / (time.perf_counter() - start)
        agent.close()
        ac = agent.ac

    rows = [("training: collection of one epoch (1 env)", collection),
            ("training: whole loop (StepsPerSecond)", loop)]
    for num_envs in (8, 1):
        stats = keras_vpg.serving.run_episodes(ac, env_fn, num_episodes=args.episodes,
                                                  num_envs=num_envs)
        rows.append((f"test-policy --norender ({num_envs} env(s), {args.episodes} episodes)",
                     stats.steps_per_second))
    env = env_fn()
    episodes = max(1, args.episodes // 10)
    start = time.perf_counter()
    results = keras_vpg.run_policy(env, lambda obs: ac.act(obs), num_episodes=episodes,
                                   render=False, verbose=False)
    per_step = sum(n for _, n in results) / (time.perf_counter() - start)
    rows.append((f"per-step run_policy with ac.act ({episodes} episodes)", per_step))

    import keras

    print(f"{args.env} on {keras.backend.backend()}, mean test return "
          f"{np.mean(stats.returns):.1f}")
    print(f"{'':60s} {'steps/s':>10s}  {'/ collection':>12s}")
    for name, speed in rows:
        print(f"{name:60s} {speed:10,.0f}  {speed / collection:11.2f}x")


if __name__ == "__main__":
    main()
