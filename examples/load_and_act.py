"""Load a `.keras` policy on any Keras backend and act with it.

    KERAS_BACKEND=torch python examples/load_and_act.py \
        saved_models/cartpole/model.keras CartPole-v1
"""

import sys

import gymnasium as gym
import keras

import keras_vpg  # noqa: F401  (registers ActorCritic with Keras's loader)

model_path = sys.argv[1] if len(sys.argv) > 1 else "saved_models/cartpole/model.keras"
env_id = sys.argv[2] if len(sys.argv) > 2 else "CartPole-v1"

ac = keras.saving.load_model(model_path)
env = gym.make(env_id)
for episode in range(3):
    obs, _ = env.reset(seed=episode)
    episode_return, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(ac.act(obs, deterministic=True))
        episode_return += float(reward)
        done = terminated or truncated
    print(f"episode {episode}: return {episode_return:.1f}")
a, v, logp = ac.step(obs)  # sampled action, value and log-prob (numpy)
print(f"backend {keras.backend.backend()}: step() -> action {a}, value {v:.2f}, logp {logp:.2f}")
