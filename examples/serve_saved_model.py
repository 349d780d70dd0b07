"""Serve an exported policy with plain TensorFlow: no keras-vpg, no Keras model code.

    keras-vpg export saved_models/cartpole --out serving/cartpole   # once, any backend
    python examples/serve_saved_model.py serving/cartpole CartPole-v1

The SavedModel's signatures: serve(obs) -> deterministic action, sample(obs, seed)
-> stochastic action, value(obs) -> V(obs); every one takes a batch of any size.
"""

import sys

import gymnasium as gym
import numpy as np
import tensorflow as tf

export_dir = sys.argv[1] if len(sys.argv) > 1 else "serving/cartpole"
env_id = sys.argv[2] if len(sys.argv) > 2 else "CartPole-v1"

policy = tf.saved_model.load(export_dir)
env = gym.make(env_id)
obs, _ = env.reset(seed=0)
first_batch = np.asarray(obs, np.float32)[None]        # a batch of one observation
episode_return, done = 0.0, False
while not done:
    batch = np.asarray(obs, np.float32)[None]
    action = policy.serve(batch).numpy()[0]            # clipping/normalization are inside
    obs, reward, terminated, truncated, _ = env.step(action)
    episode_return += float(reward)
    done = terminated or truncated
# The value function's estimate of the return from the first observation, beside the return.
print(f"{env_id}: return {episode_return:.1f}, "
      f"V(first obs) = {float(policy.value(first_batch).numpy()[0]):.2f}")
