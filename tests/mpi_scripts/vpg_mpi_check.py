"""Run under ``mpirun -np 2``: checks of VPG's MPI semantics on the active backend.

Usage: python vpg_mpi_check.py MODE OUTPUT_DIR, MODE one of
  train  - weights identical on every rank after training; TotalEnvInteracts counts all ranks
  grad   - the averaged gradient step equals the single-process step on the joined batch
  raise  - rank 1 raises mid-training; the run must end non-zero, printing the error
  noise  - ranks start from identical weights but draw independent exploration noise
           (a constant-observation continuous env: any shared noise shows as equal actions)
Prints "CHECK OK" on rank 0 when the checks pass.
"""

import sys

import gymnasium as gym
import keras
import numpy as np
from mpi4py import MPI

import keras_vpg
from keras_vpg import mpi
from keras_vpg.trainers import get_trainer

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
mode, output_dir = sys.argv[1], sys.argv[2]


def flat_weights(model):
    values = [keras.ops.convert_to_numpy(v).ravel() for v in model.trainable_variables]
    return np.concatenate(values)


class FailingEnv(gym.Wrapper):
    """Raises on rank 1 after a few steps, to test that every rank exits."""

    def __init__(self, env):
        super().__init__(env)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if rank == 1 and self.steps == 150:
            raise RuntimeError("deliberate failure on rank 1")
        return self.env.step(action)


if mode == "train":
    agent = keras_vpg.VPG(
        lambda: gym.make("CartPole-v1"), steps_per_epoch=400, train_v_iters=5, seed=3,
        logger_kwargs=dict(output_dir=output_dir),
    )
    history = agent.fit(epochs=2, verbose=0)
    weights = comm.gather(flat_weights(agent.ac), root=0)
    if rank == 0:
        assert np.array_equal(weights[0], weights[1]), "weights differ across ranks"
        total = history.history["TotalEnvInteracts"]
        assert total == [400, 800], total
        progress = open(f"{output_dir}/progress.txt").read().splitlines()
        assert len(progress) == 3, progress
        print("CHECK OK")

elif mode == "grad":
    keras.utils.set_random_seed(0)
    obs_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def make_ac():
        keras.utils.set_random_seed(0)  # same initial weights everywhere
        return keras_vpg.MLPActorCritic(obs_space, act_space, hidden_sizes=(8,))

    rng = np.random.default_rng(123)  # same joined batch on every rank
    joined = {
        "obs": rng.normal(size=(64, 3)).astype("float32"),
        "act": rng.normal(size=(64, 2)).astype("float32"),
        "adv": rng.normal(size=64).astype("float32"),
        "ret": rng.normal(size=64).astype("float32"),
        "logp": rng.normal(size=64).astype("float32"),
    }
    half = {k: v[rank * 32:(rank + 1) * 32] for k, v in joined.items()}

    def trained(batch, allreduce):
        ac = make_ac()
        trainer = get_trainer(
            ac, keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1), 3, allreduce=allreduce
        )
        trainer.update_policy(batch)
        trainer.update_value(batch)
        return flat_weights(ac)

    averaged = trained(half, mpi.allreduce_mean)
    single = trained(joined, None)
    np.testing.assert_allclose(averaged, single, rtol=1e-5, atol=1e-6)
    assert not np.allclose(averaged, flat_weights(make_ac())), "update changed nothing"
    weights = comm.gather(averaged, root=0)
    if rank == 0:
        assert np.array_equal(weights[0], weights[1])
        print("CHECK OK")

elif mode == "noise":
    class ConstantObservationEnv(gym.Env):
        """The same observation every step: actions differ only through sampling noise."""

        observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return np.full(3, 0.5, np.float32), {}

        def step(self, action):
            actions.append(np.array(action, np.float64))
            return np.full(3, 0.5, np.float32), 0.0, False, False, {}

    actions = []
    agent = keras_vpg.VPG(
        ConstantObservationEnv, steps_per_epoch=400, train_v_iters=2, max_ep_len=50, seed=7,
        logger_kwargs=dict(output_dir=output_dir),
    )
    initial = comm.gather(flat_weights(agent.ac), root=0)
    agent.fit(epochs=1, verbose=0)
    gathered = comm.gather(np.stack(actions), root=0)
    if rank == 0:
        assert np.array_equal(initial[0], initial[1]), "ranks start from different weights"
        a, b = gathered
        assert a.shape == b.shape == (200, 2), (a.shape, b.shape)
        identical = int(np.all(a == b, axis=1).sum())
        assert identical == 0, f"{identical} of 200 actions identical across ranks"
        # Per action dimension: the policy mean is the same on both ranks, only noise differs.
        corr = max(abs(np.corrcoef(a[:, i], b[:, i])[0, 1]) for i in range(2))
        assert corr < 0.3, f"actions correlate across ranks: {corr:.3f}"
        print(f"correlation {corr:.3f}")
        print("CHECK OK")

elif mode == "raise":
    agent = keras_vpg.VPG(
        lambda: FailingEnv(gym.make("CartPole-v1")), steps_per_epoch=400, train_v_iters=2,
        logger_kwargs=dict(output_dir=output_dir),
    )
    agent.fit(epochs=3, verbose=0)
    print("CHECK OK: should not get here")
else:
    raise SystemExit(f"unknown mode {mode!r}")
