"""The shipped pretrained policies load on the active backend and still perform."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from script_module import ROOT

from keras_vpg.serving import load_model

SAVED = ROOT / "saved_models"
# Mean return over 3 seeded deterministic episodes that each policy must reach: under
# the lowest of its card's 100 evaluation episodes (a random policy scores about -280 on
# HalfCheetah, 20 on Hopper, 0 on Walker2d; Walker2d's policy sometimes falls early).
THRESHOLDS = {
    "cartpole": ("CartPole-v1", 450.0),
    "acrobot": ("Acrobot-v1", -150.0),
    "inverted_pendulum": ("InvertedPendulum-v5", 500.0),
    "halfcheetah": ("HalfCheetah-v5", 3000.0),
    "hopper": ("Hopper-v5", 1000.0),
    "walker2d": ("Walker2d-v5", 350.0),
}


def test_every_shipped_policy_has_a_threshold_and_a_card():
    shipped = sorted(p.name for p in SAVED.iterdir() if (p / "model.keras").exists())
    assert shipped == sorted(THRESHOLDS)
    for name in shipped:
        card = (SAVED / name / "README.md").read_text()
        assert "mean return" in card and THRESHOLDS[name][0] in card


@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_shipped_policy_reaches_its_return(name):
    env_id, threshold = THRESHOLDS[name]
    ac = load_model(SAVED / name / "model.keras")
    env = gym.make(env_id)
    returns = []
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(ac.act(obs, deterministic=True))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    assert np.mean(returns) >= threshold, returns
    evaluation = json.loads((SAVED / name / "evaluation.json").read_text())
    assert evaluation["env"] == env_id and evaluation["episodes"] == 100
