"""GAE-Lambda and rewards-to-go against a plain reference loop."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ScriptedEnv

from keras_vpg.buffer import VPGBuffer, discount_cumsum
from keras_vpg.rollout import RolloutCollector, make_vector_env
from keras_vpg.trainers import Trainer

GAMMA, LAM = 0.9, 0.8


def reference_path(rews, vals, last_val, gamma=GAMMA, lam=LAM):
    """Explicit double sums: adv_t = sum_k (g*l)^k delta_{t+k}, ret_t = sum_k g^k r_{t+k} + tail."""
    n = len(rews)
    v_ext = list(vals) + [last_val]
    deltas = [rews[t] + gamma * v_ext[t + 1] - v_ext[t] for t in range(n)]
    adv = [sum((gamma * lam) ** (k - t) * deltas[k] for k in range(t, n)) for t in range(n)]
    ret = [
        sum(gamma ** (k - t) * rews[k] for k in range(t, n)) + gamma ** (n - t) * last_val
        for t in range(n)
    ]
    return np.array(adv), np.array(ret)


def test_discount_cumsum_matches_definition():
    x = np.array([1.0, -2.0, 3.5, 0.25])
    expected = [sum(0.7 ** (k - t) * x[k] for k in range(t, 4)) for t in range(4)]
    np.testing.assert_allclose(discount_cumsum(x, 0.7), expected)


def test_gae_terminated_truncated_and_cutoff_paths_over_three_envs():
    rng = np.random.default_rng(0)
    steps, num_envs = 7, 3
    buf = VPGBuffer((2,), (), np.int32, steps, num_envs, GAMMA, LAM)
    rews = rng.normal(size=(steps, num_envs)).astype(np.float32)
    vals = rng.normal(size=(steps, num_envs)).astype(np.float32)
    # env 0: terminates after step 2 (bootstrap 0), then cut-off at the epoch end (V=0.5)
    # env 1: truncated after step 4 (bootstrap V(final)=1.7), then cut-off (V=-0.3)
    # env 2: one path cut off at the epoch end (V=2.0)
    ends = {(2, 0): 0.0, (4, 1): 1.7}
    for t in range(steps):
        buf.store(np.zeros((num_envs, 2)), np.zeros(num_envs), rews[t], np.zeros(num_envs), vals[t])
        for (end_t, env), last_val in ends.items():
            if t == end_t:
                buf.finish_path(env, last_val)
    cutoff = {0: 0.5, 1: -0.3, 2: 2.0}
    for env, last_val in cutoff.items():
        buf.finish_path(env, last_val)

    paths = [(0, 0, 3, 0.0), (0, 3, 7, 0.5), (1, 0, 5, 1.7), (1, 5, 7, -0.3), (2, 0, 7, 2.0)]
    for env, start, end, last_val in paths:
        adv, ret = reference_path(rews[start:end, env], vals[start:end, env], last_val)
        np.testing.assert_allclose(buf.adv[start:end, env], adv, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(buf.ret[start:end, env], ret, rtol=1e-5, atol=1e-5)

    raw_adv = buf.adv.copy()
    data = buf.get()
    assert data["obs"].shape == (steps * num_envs, 2)
    np.testing.assert_allclose(data["adv"].mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(data["adv"].std(), 1.0, atol=1e-4)
    normalized = (raw_adv - raw_adv.mean()) / raw_adv.std()
    np.testing.assert_allclose(data["adv"], normalized.reshape(-1), rtol=1e-4, atol=1e-4)


def test_buffer_rejects_misuse():
    buf = VPGBuffer((1,), (), np.int32, 2, 1)
    with pytest.raises(RuntimeError, match="not full"):
        buf.get()
    for _ in range(2):
        buf.store(np.zeros((1, 1)), np.zeros(1), np.ones(1), np.zeros(1))
    with pytest.raises(RuntimeError, match="full"):
        buf.store(np.zeros((1, 1)), np.zeros(1), np.ones(1), np.zeros(1))
    with pytest.raises(RuntimeError, match="finish_path"):
        buf.get()


def value_fn(obs):
    """The scripted value function V(obs) = 10 * obs[0] + 1 (a known function)."""
    return 10.0 * obs[:, 0] + 1.0


def scripted_collector(num_envs, steps_per_env, terminate_at, max_ep_len):
    """A RolloutCollector on ScriptedEnv with a fixed policy (action 0)."""
    envs = make_vector_env(lambda: ScriptedEnv(terminate_at), num_envs, max_ep_len)

    class ScriptedTrainer(Trainer):
        def __init__(self):  # no model: a fixed policy
            pass

        def begin_collection(self):
            pass

        def end_collection(self):
            pass

        def sample(self, obs):
            return np.zeros(len(obs), np.int32), np.zeros(len(obs), np.float32)

    buf = VPGBuffer((2,), (), np.int32, steps_per_env, num_envs, GAMMA, LAM)
    return RolloutCollector(envs, ScriptedTrainer(), buf, seed=0), buf


def collect_scripted(num_envs, steps_per_env, terminate_at, max_ep_len):
    """Collect one epoch and compute its values (V = :func:`value_fn`) and advantages."""
    collector, buf = scripted_collector(num_envs, steps_per_env, terminate_at, max_ep_len)
    stats = collector.collect()
    buf.compute_advantages(value_fn)
    return buf, stats


@pytest.mark.parametrize("num_envs", [1, 4])
def test_rollout_stores_no_reset_transition_and_bootstraps_truncation(num_envs):
    # Episodes terminate after 3 steps; with max_ep_len=None nothing truncates.
    buf, stats = collect_scripted(num_envs, 7, terminate_at=3, max_ep_len=None)
    # Every stored observation is a real pre-step observation: step index 0, 1 or 2.
    assert set(np.unique(buf.obs[:, :, 0])) == {0.0, 1.0, 2.0}
    assert stats.episode_returns == [6.0] * (2 * num_envs)  # 1 + 2 + 3, two full episodes
    assert stats.episode_lengths == [3] * (2 * num_envs)
    np.testing.assert_allclose(buf.val, value_fn(buf.obs.reshape(-1, 2)).reshape(7, num_envs))
    for env in range(num_envs):
        # Rows 0-2 and 3-5 are terminated episodes (bootstrap 0); row 6 is cut off
        # at the epoch end and bootstraps V(obs after it) = 10 * 1 + 1.
        for start, end, last_val in ((0, 3, 0.0), (3, 6, 0.0), (6, 7, 11.0)):
            adv, ret = reference_path(buf.rew[start:end, env], buf.val[start:end, env], last_val)
            np.testing.assert_allclose(buf.adv[start:end, env], adv, rtol=1e-5)
            np.testing.assert_allclose(buf.ret[start:end, env], ret, rtol=1e-5)


@pytest.mark.parametrize("num_envs", [1, 4])
def test_truncation_bootstraps_with_the_true_final_observation(num_envs):
    # Never terminates; TimeLimit(max_ep_len=4) truncates. The final obs has step index 4,
    # the next episode's reset obs has index 0: V must be taken at 4 -> 41.
    buf, stats = collect_scripted(num_envs, 6, terminate_at=None, max_ep_len=4)
    assert stats.episode_lengths == [4] * num_envs
    for env in range(num_envs):
        adv, ret = reference_path(buf.rew[0:4, env], buf.val[0:4, env], 41.0)
        np.testing.assert_allclose(buf.ret[0:4, env], ret, rtol=1e-5)
        np.testing.assert_allclose(buf.adv[0:4, env], adv, rtol=1e-5)
        # The rows after the reset start a new episode at step index 0.
        np.testing.assert_array_equal(buf.obs[4:6, env, 0], [0.0, 1.0])


def test_one_and_four_envs_give_the_same_per_env_semantics():
    one, _ = collect_scripted(1, 8, terminate_at=3, max_ep_len=None)
    four, _ = collect_scripted(4, 8, terminate_at=3, max_ep_len=None)
    for env in range(4):
        np.testing.assert_allclose(four.adv[:, env], one.adv[:, 0], rtol=1e-6)
        np.testing.assert_allclose(four.ret[:, env], one.ret[:, 0], rtol=1e-6)


def test_collection_stopped_between_chunks_resumes_where_it_stopped():
    # Stopping after the first chunk and collecting again gives the same buffer and
    # statistics as one uninterrupted collection.
    whole, whole_buf = scripted_collector(2, 9, terminate_at=4, max_ep_len=None)
    whole_stats = whole.collect()
    parts, parts_buf = scripted_collector(2, 9, terminate_at=4, max_ep_len=None)
    seen = []
    assert parts.collect(lambda steps: seen.append(steps) or True, every=3) is None
    assert seen == [6] and parts_buf.ptr == 3
    parts_stats = parts.collect(lambda steps: seen.append(steps) or False, every=3)
    assert seen == [6, 12, 18]
    assert parts_stats.episode_returns == whole_stats.episode_returns
    assert parts_stats.episode_lengths == whole_stats.episode_lengths == [4] * 4
    assert parts_stats.env_steps == whole_stats.env_steps == 18
    for buf in (whole_buf, parts_buf):
        buf.compute_advantages(value_fn)
    np.testing.assert_array_equal(parts_buf.obs, whole_buf.obs)
    np.testing.assert_allclose(parts_buf.adv, whole_buf.adv)
    np.testing.assert_allclose(parts_buf.ret, whole_buf.ret)
    # A full buffer is returned as it is until get() frees it; then lengths run on.
    assert parts.collect() is parts_stats
    parts_buf.get()
    assert parts.collect().episode_lengths == [4] * 4
