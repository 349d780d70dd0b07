"""Run under ``mpirun -np 2``: the all-ranks statistics VPG relies on.

Usage: python statistics_check.py MODE OUTPUT_DIR, MODE one of
  scalar     - keras_vpg.mpi.mpi_statistics_scalar with unequal and empty ranks
  advantages - the advantages the policy step gets are normalized with the all-ranks mean
               and std (ranks whose rewards differ tenfold: per-rank normalization fails)
  normalizer - the observation normalizer takes in every rank's observations (sums, squares,
               count) and stays identical on the ranks
  discrete   - ranks draw independent exploration noise for Discrete actions
Prints "CHECK OK" on rank 0 when the checks pass.
"""

import sys

import gymnasium as gym
import keras
import numpy as np
from mpi4py import MPI

import keras_vpg
from keras_vpg import mpi

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
assert comm.Get_size() == 2
mode, output_dir = sys.argv[1], sys.argv[2]


class RankEnv(gym.Env):
    """obs = [t, 100 * rank + t]; reward (1 + 9 * rank) * t: ranks see different scales."""

    observation_space = gym.spaces.Box(-1e4, 1e4, (2,), np.float32)

    def __init__(self, discrete=False):
        self.action_space = (gym.spaces.Discrete(5) if discrete
                             else gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
        self.t = 0

    def _obs(self):
        return np.array([self.t, 100.0 * rank + self.t], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), float((1 + 9 * rank) * self.t), self.t >= 10, False, {}


def captured_update_batches(agent):
    """The batches of the policy step (the trainer's update_policy), this rank's."""
    batches = []
    update = agent.trainer.update_policy

    def spy(batch):
        batches.append({k: np.array(v) for k, v in batch.items()})
        return update(batch)

    agent.trainer.update_policy = spy
    return batches


if mode == "scalar":
    cases = {
        "unequal": ([1.0, 2.0, 3.0], [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]),
        "rank 0 empty": ([], [5.0, 7.0, 12.0]),
        "rank 1 empty": ([4.0, -6.0], []),
    }
    for name, parts in cases.items():
        joined = np.concatenate([np.asarray(p, np.float64) for p in parts])
        got = mpi.mpi_statistics_scalar(np.asarray(parts[rank]), with_min_and_max=True)
        want = (joined.mean(), joined.std(), joined.min(), joined.max())
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)
        mean_std = mpi.mpi_statistics_scalar(np.asarray(parts[rank]))
        np.testing.assert_allclose(mean_std, want[:2], rtol=1e-12, err_msg=name)
    nothing = mpi.mpi_statistics_scalar(np.array([]), with_min_and_max=True)
    assert len(nothing) == 4 and np.all(np.isnan(nothing)), nothing
    if rank == 0:
        print("CHECK OK")

elif mode == "advantages":
    agent = keras_vpg.VPG(RankEnv, steps_per_epoch=400, train_v_iters=2, seed=1,
                          ac_kwargs=dict(hidden_sizes=(8,)),
                          logger_kwargs=dict(output_dir=output_dir))
    batches = captured_update_batches(agent)
    agent.fit(epochs=1, verbose=0)
    advantages = comm.gather(batches[0]["adv"].astype(np.float64), root=0)
    if rank == 0:
        a, b = advantages
        assert a.shape == b.shape == (200,), (a.shape, b.shape)
        joined = np.concatenate([a, b])
        np.testing.assert_allclose(joined.mean(), 0.0, atol=1e-5)
        np.testing.assert_allclose(joined.std(), 1.0, rtol=1e-4)
        # Rank 1's rewards are ten times rank 0's: with the global statistics its
        # advantages spread far wider (per-rank normalization would give both std 1).
        assert b.std() > 2 * a.std(), (a.std(), b.std())
        print("CHECK OK")

elif mode == "normalizer":
    agent = keras_vpg.VPG(RankEnv, steps_per_epoch=400, train_v_iters=2, seed=1,
                          normalize_obs=True, ac_kwargs=dict(hidden_sizes=(8,)),
                          logger_kwargs=dict(output_dir=output_dir))
    batches = captured_update_batches(agent)
    agent.fit(epochs=2, verbose=0)
    norm = agent.ac.obs_normalizer
    state = [keras.ops.convert_to_numpy(v).astype(np.float64) for v in (norm.mean, norm.var,
                                                                         norm.count)]
    observations = comm.gather(np.concatenate([b["obs"] for b in batches]), root=0)
    states = comm.gather(state, root=0)
    if rank == 0:
        for x, y in zip(*states):
            np.testing.assert_array_equal(x, y)  # identical on the ranks
        joined = np.concatenate(observations).astype(np.float64)
        mean, var, count = states[0]
        assert count == len(joined) == 800, (count, len(joined))
        np.testing.assert_allclose(mean, joined.mean(0), rtol=1e-4)
        np.testing.assert_allclose(var, joined.var(0), rtol=1e-3)
        print("CHECK OK")

elif mode == "discrete":
    class ConstantObservationEnv(RankEnv):
        def _obs(self):
            return np.full(2, 0.5, np.float32)

        def step(self, action):
            actions.append(int(action))
            return self._obs(), 0.0, False, False, {}

    actions = []
    agent = keras_vpg.VPG(lambda: ConstantObservationEnv(discrete=True), steps_per_epoch=400,
                          train_v_iters=2, max_ep_len=50, seed=7,
                          logger_kwargs=dict(output_dir=output_dir))
    agent.fit(epochs=1, verbose=0)
    gathered = comm.gather(np.array(actions), root=0)
    if rank == 0:
        a, b = gathered
        assert a.shape == b.shape == (200,), (a.shape, b.shape)
        assert len(set(a.tolist())) >= 3, "the policy is not exploring"
        # Five actions near-uniform: independent ranks agree on about 1 in 5 steps
        # (40 +- 6 of 200); a shared noise stream agrees on all 200.
        same = int((a == b).sum())
        assert same < 100, f"{same} of 200 actions identical across ranks"
        print(f"identical {same} of 200")
        print("CHECK OK")
else:
    raise SystemExit(f"unknown mode {mode!r}")
