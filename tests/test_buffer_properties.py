"""Property tests (hypothesis) of GAE-Lambda and rewards-to-go against a plain reference loop.

Random rewards, values, episode ends (terminated: bootstrap 0; truncated: bootstrap with
V of the true final observation) and the epoch cut-off, over several vectorized envs.
The value function is read off the observations (``V(obs) = obs[0]``), so the test
controls every value the buffer sees.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_vpg.buffer import VPGBuffer, gae_lambda


def reference(rewards, values, ends, cutoff_values, gamma, lam):
    """Advantages and returns of one env's column by the textbook backward recursion.

    ``ends[t]`` is None (the episode goes on after step t), ``("terminated",)`` or
    ``("truncated", v_final)``; after the last step the path is cut off and
    bootstrapped with ``cutoff_values``.
    """
    T = len(rewards)
    adv, ret = [0.0] * T, [0.0] * T
    next_adv = next_ret = next_val = 0.0
    for t in reversed(range(T)):
        if t == T - 1 and ends[t] is None:  # the epoch cut-off
            next_val, next_ret, next_adv = cutoff_values, cutoff_values, 0.0
        elif ends[t] is not None:
            bootstrap = 0.0 if ends[t][0] == "terminated" else ends[t][1]
            next_val, next_ret, next_adv = bootstrap, bootstrap, 0.0
        delta = rewards[t] + gamma * next_val - values[t]
        adv[t] = delta + gamma * lam * next_adv
        ret[t] = rewards[t] + gamma * next_ret
        next_adv, next_ret, next_val = adv[t], ret[t], values[t]
    return np.array(adv), np.array(ret)


finite = st.floats(-10.0, 10.0, allow_nan=False, width=32)


@st.composite
def epochs(draw):
    T = draw(st.integers(1, 25))
    N = draw(st.integers(1, 3))
    column = st.tuples(
        st.lists(finite, min_size=T, max_size=T),  # rewards
        st.lists(finite, min_size=T, max_size=T),  # values
        st.lists(st.one_of(st.none(), st.just(("terminated",)), st.tuples(
            st.just("truncated"), finite)), min_size=T, max_size=T),  # episode ends
        finite,  # V at the cut-off observation
    )
    return [draw(column) for _ in range(N)], draw(st.floats(0.0, 1.0)), draw(st.floats(0.0, 1.0))


@settings(max_examples=200, deadline=None)
@given(epochs())
def test_gae_and_returns_match_the_reference_loop(case):
    columns, gamma, lam = case
    T, N = len(columns[0][0]), len(columns)
    buffer = VPGBuffer((1,), (), np.int32, T, N)
    for t in range(T):
        obs = np.array([[columns[i][1][t]] for i in range(N)], np.float32)
        rewards = np.array([columns[i][0][t] for i in range(N)], np.float32)
        buffer.store(obs, np.zeros(N, np.int32), rewards, np.zeros(N, np.float32))
        for i in range(N):
            end = columns[i][2][t]
            if end is not None:
                final = None if end[0] == "terminated" else np.array([end[1]], np.float32)
                buffer.end_path(i, final)
    buffer.end_open_paths(np.array([[columns[i][3]] for i in range(N)], np.float32))
    data = buffer.get()
    finals = data.bootstrap_obs()  # V(obs) = obs[0], as the agent's value call would give
    last_values = [] if finals is None else finals[:, 0].tolist()
    path_ends = data.path_ends_with_values(last_values)
    adv_all, ret_all = gae_lambda(data.rew, data.obs[..., 0], path_ends, gamma, lam)
    for i, (rewards, values, ends, cutoff) in enumerate(columns):
        # float32 storage: compare with the reference on the float32-rounded inputs.
        r32 = np.float32(rewards).astype(float).tolist()
        v32 = np.float32(values).astype(float).tolist()
        e32 = [e if e is None or e[0] == "terminated" else ("truncated", float(np.float32(e[1])))
               for e in ends]
        adv, ret = reference(r32, v32, e32, float(np.float32(cutoff)), gamma, lam)
        scale = 1.0 + np.abs(adv).max() + np.abs(ret).max()
        np.testing.assert_allclose(adv_all[:, i], adv, rtol=1e-5, atol=1e-5 * scale)
        np.testing.assert_allclose(ret_all[:, i], ret, rtol=1e-5, atol=1e-5 * scale)
