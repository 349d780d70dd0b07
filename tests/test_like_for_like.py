"""The evaluator both libraries' final policies are scored by (benchmarks/like_for_like.py)."""

import numpy as np
from script_module import load_script


def _like_for_like():
    return load_script("benchmarks/like_for_like.py")


def test_cartpole_returns_are_lengths_and_every_episode_is_counted_once():
    """CartPole pays 1 per step: each return must equal its episode's length."""
    evaluate = _like_for_like().evaluate
    always_right = lambda obs: np.ones(len(obs), dtype=np.int64)  # noqa: E731
    returns, lengths, mean_abs_action = evaluate(always_right, "CartPole-v1", episodes=7,
                                                 num_envs=3, seed=5)
    assert len(returns) == len(lengths) == 7
    assert returns == [float(n) for n in lengths]
    assert all(8 <= n <= 30 for n in lengths)  # pushing one way topples it quickly
    assert mean_abs_action == 1.0
    assert evaluate(always_right, "CartPole-v1", 7, 3, seed=5)[0] == returns  # seeded


def test_box_actions_are_clipped_before_the_env_sees_them():
    evaluate = _like_for_like().evaluate
    too_large = lambda obs: np.full((len(obs), 1), 5.0)  # noqa: E731
    _, lengths, mean_abs_action = evaluate(too_large, "Pendulum-v1", episodes=2, num_envs=2,
                                           seed=0)
    assert mean_abs_action == 2.0  # Pendulum's Box is [-2, 2]
    assert lengths == [200, 200]  # only the env's own time limit ends an episode
