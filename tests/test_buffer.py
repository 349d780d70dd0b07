"""GAE-Lambda and rewards-to-go against a plain reference loop."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ScriptedEnv

from keras_vpg.buffer import VPGBuffer, gae_lambda
from keras_vpg.rollout import RolloutCollector, make_vector_env

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


def test_gae_terminated_truncated_and_cutoff_paths_over_three_envs():
    rng = np.random.default_rng(0)
    steps, num_envs = 7, 3
    rews = rng.normal(size=(steps, num_envs)).astype(np.float32)
    vals = rng.normal(size=(steps, num_envs)).astype(np.float32)
    # env 0: terminates after step 2 (bootstrap 0), then cut-off at the epoch end (V=0.5)
    # env 1: truncated after step 4 (bootstrap V(final)=1.7), then cut-off (V=-0.3)
    # env 2: one path cut off at the epoch end (V=2.0)
    ends = [(0, 3, 0.0), (1, 5, 1.7), (0, 7, 0.5), (1, 7, -0.3), (2, 7, 2.0)]
    rews_before, vals_before = rews.copy(), vals.copy()
    adv_all, ret_all = gae_lambda(rews, vals, ends, GAMMA, LAM)
    assert adv_all.shape == ret_all.shape == (steps, num_envs) and adv_all.dtype == np.float32

    paths = [(0, 0, 3, 0.0), (0, 3, 7, 0.5), (1, 0, 5, 1.7), (1, 5, 7, -0.3), (2, 0, 7, 2.0)]
    for env, start, end, last_val in paths:
        adv, ret = reference_path(rews[start:end, env], vals[start:end, env], last_val)
        np.testing.assert_allclose(adv_all[start:end, env], adv, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ret_all[start:end, env], ret, rtol=1e-5, atol=1e-5)
    # A pure function: the inputs are left as they were.
    np.testing.assert_array_equal(rews, rews_before)
    np.testing.assert_array_equal(vals, vals_before)


def test_gae_needs_every_column_cut_at_the_last_row():
    with pytest.raises(ValueError, match="env 1"):
        gae_lambda(np.zeros((3, 2)), np.zeros((3, 2)), [(0, 3, 0.0), (1, 2, 0.0)], 0.9, 0.8)


def test_buffer_rejects_misuse():
    buf = VPGBuffer((1,), (), np.int32, 2, 1)
    with pytest.raises(RuntimeError, match="not full"):
        buf.get()
    for _ in range(2):
        buf.store(np.zeros((1, 1)), np.zeros(1), np.ones(1), np.zeros(1))
    with pytest.raises(RuntimeError, match="full"):
        buf.store(np.zeros((1, 1)), np.zeros(1), np.ones(1), np.zeros(1))
    with pytest.raises(RuntimeError, match="end_open_paths"):
        buf.get()
    buf.end_open_paths(np.ones((1, 1)))
    data = buf.get()
    assert buf.ptr == 0 and [(env, end) for env, end, _ in data.path_ends] == [(0, 2)]


def value_fn(obs):
    """The scripted value function V(obs) = 10 * obs[0] + 1 (a known function)."""
    return 10.0 * obs[:, 0] + 1.0


def scripted_collector(num_envs, steps_per_env, terminate_at, max_ep_len):
    """A RolloutCollector on ScriptedEnv with a fixed policy (action 0)."""
    envs = make_vector_env(lambda: ScriptedEnv(terminate_at), num_envs, max_ep_len)

    class ScriptedSampler:  # no model: a fixed policy
        def begin(self):
            pass

        def end(self):
            pass

        def sample(self, obs):
            return np.zeros(len(obs), np.int32), np.zeros(len(obs), np.float32)

    buf = VPGBuffer((2,), (), np.int32, steps_per_env, num_envs)
    return RolloutCollector(envs, ScriptedSampler(), buf, seed=0), buf


class Computed:
    """An epoch's transitions with values (V = :func:`value_fn`), advantages and returns."""

    def __init__(self, rollout):
        data = rollout.transitions
        steps, num_envs = data.rew.shape
        self.obs, self.rew = data.obs, data.rew
        self.val = value_fn(data.obs.reshape(steps * num_envs, -1)).reshape(steps, num_envs)
        finals = data.bootstrap_obs()
        last = [] if finals is None else value_fn(finals).tolist()
        path_ends = data.path_ends_with_values(last)
        self.adv, self.ret = gae_lambda(self.rew, self.val, path_ends, GAMMA, LAM)


def collect_scripted(num_envs, steps_per_env, terminate_at, max_ep_len):
    """Collect one epoch and compute its values (V = :func:`value_fn`) and advantages."""
    collector, _ = scripted_collector(num_envs, steps_per_env, terminate_at, max_ep_len)
    rollout = collector.collect()
    return Computed(rollout), rollout


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
    # Stopping after the first chunk and collecting again gives the same transitions
    # and statistics as one uninterrupted collection.
    whole, _ = scripted_collector(2, 9, terminate_at=4, max_ep_len=None)
    whole_stats = whole.collect()
    parts, parts_buf = scripted_collector(2, 9, terminate_at=4, max_ep_len=None)
    seen = []
    for steps in parts.chunks(3):
        seen.append(steps)
        break  # a stop between chunks
    assert seen == [6] and parts_buf.ptr == 3
    seen += list(parts.chunks(3))
    assert seen == [6, 12, 18]
    assert list(parts.chunks(3)) == []  # full: nothing more until the epoch is finished
    parts_stats = parts.finish_epoch()
    assert parts_stats.episode_returns == whole_stats.episode_returns
    assert parts_stats.episode_lengths == whole_stats.episode_lengths == [4] * 4
    assert parts_stats.env_steps == whole_stats.env_steps == 18
    whole_data, parts_data = Computed(whole_stats), Computed(parts_stats)
    np.testing.assert_array_equal(parts_data.obs, whole_data.obs)
    np.testing.assert_allclose(parts_data.adv, whole_data.adv)
    np.testing.assert_allclose(parts_data.ret, whole_data.ret)
    # The buffer is empty again, and episode lengths run on across epochs.
    assert parts_buf.ptr == 0
    assert parts.collect().episode_lengths == [4] * 4
