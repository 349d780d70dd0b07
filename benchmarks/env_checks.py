"""Cost of the env data checks (keras_vpg.env_checks): collection steps/s with vs without.

Builds the same agent twice in this process, once with every env wrapped in
``CheckEnvData`` (the default) and once without, and times
``RolloutCollector.collect`` of one epoch for each, alternating, after a warm-up.
Prints the median steps/s of each and their ratio (checked / unchecked; 1.0 = free).

    KERAS_BACKEND=jax python benchmarks/env_checks.py --env CartPole-v1 --steps 4000 --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from unittest import mock

import gymnasium as gym

import keras_vpg
from keras_vpg import rollout


def build(env_id: str, steps: int, num_envs: int, checked: bool, tmp: str):
    patch = (mock.patch.object(rollout, "CheckEnvData", lambda env: env) if not checked
             else mock.patch.object(rollout, "CheckEnvData", rollout.CheckEnvData))
    with patch:
        agent = keras_vpg.VPG(lambda: gym.make(env_id), steps_per_epoch=steps,
                              num_envs=num_envs, train_v_iters=1,
                              logger_kwargs=dict(output_dir=f"{tmp}/{int(checked)}"))
    wrapped = any(isinstance(e, rollout.CheckEnvData) or isinstance(
        getattr(e, "env", None), rollout.CheckEnvData) for e in agent.envs.envs)
    assert wrapped == checked
    return agent


def collect_seconds(agent) -> float:
    start = time.perf_counter()
    agent.collector.collect()
    seconds = time.perf_counter() - start
    agent.buffer.compute_advantages(agent.trainer.value)
    agent.buffer.get()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--num-envs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        agents = {c: build(args.env, args.steps, args.num_envs, c, tmp) for c in (True, False)}
        for agent in agents.values():
            collect_seconds(agent)  # warm-up
        times = {True: [], False: []}
        for _ in range(args.repeats):
            for checked, agent in agents.items():
                times[checked].append(collect_seconds(agent))
    rate = {c: args.steps / statistics.median(t) for c, t in times.items()}
    print(f"{args.env}, {args.num_envs} env(s), {args.steps} steps x {args.repeats}: "
          f"checked {rate[True]:.0f} steps/s, unchecked {rate[False]:.0f} steps/s, "
          f"ratio {rate[True] / rate[False]:.3f}")


if __name__ == "__main__":
    main()
