"""Train CartPole for many epochs (a long run to interrupt); prints READY after epoch 1.

Usage: python train_until_signal.py RUN_DIR EPOCHS
Exits 130 / 143 on SIGINT / SIGTERM (keras_vpg.interrupt.exit_on_interrupt).
"""

import sys

import gymnasium as gym
import keras

import keras_vpg
from keras_vpg.interrupt import exit_on_interrupt

run_dir, epochs = sys.argv[1], int(sys.argv[2])
agent = keras_vpg.VPG(
    lambda: gym.make("CartPole-v1"), steps_per_epoch=2000, train_v_iters=5,
    ac_kwargs=dict(hidden_sizes=(16,)), save_freq=1000,
    logger_kwargs=dict(output_dir=run_dir, exp_name="sig"),
)


def announce(epoch, logs):
    if epoch == 1:
        print("READY", flush=True)


with exit_on_interrupt():
    agent.fit(epochs=epochs, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=announce)])
print("FINISHED", flush=True)
