"""Train a CartPole-v1 policy with keras-vpg, then load it back and act with it.

Run it with any Keras backend:

    KERAS_BACKEND=jax python examples/train_cartpole.py

Reading order: make the agent (Spinning Up's parameter names), fit it (a Keras
History comes back), then load the saved ``.keras`` policy as any Keras model.
"""

import gymnasium as gym
import keras
import numpy as np

import keras_vpg

# 1. The agent. env_fn builds a fresh env (one per vectorized copy).
#    VPG takes a single policy-gradient step per epoch, so a larger pi_lr than
#    Spinning Up's default 3e-4 makes CartPole learn in a few dozen epochs.
agent = keras_vpg.VPG(
    lambda: gym.make("CartPole-v1"),
    ac_kwargs=dict(hidden_sizes=(64, 64), activation="tanh"),
    seed=0,
    steps_per_epoch=4000,
    pi_lr=1e-2,
    logger_kwargs=dict(output_dir="data/cartpole/cartpole_s0", exp_name="cartpole"),
)

# 2. Train. The History has every progress.txt column; callbacks get the same logs.
history = agent.fit(
    epochs=30,
    callbacks=[keras.callbacks.CSVLogger("data/cartpole/cartpole_s0/history.csv")],
)
print("AverageEpRet per epoch:", np.round(history.history["AverageEpRet"], 1))

# 3. The policy is a Keras model: save it, load it (any backend), act with it.
agent.save("data/cartpole/cartpole.keras")
ac = keras.saving.load_model("data/cartpole/cartpole.keras")

env = gym.make("CartPole-v1")
obs, _ = env.reset(seed=123)
episode_return, done = 0.0, False
while not done:
    obs, reward, terminated, truncated, _ = env.step(ac.act(obs, deterministic=True))
    episode_return += reward
    done = terminated or truncated
print(f"Deterministic policy, one episode: return {episode_return:.0f}")
