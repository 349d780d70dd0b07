"""Run under ``mpirun -np 2``: SIGTERM and resume of a VPG run under MPI.

Usage: python resume_mpi_check.py MODE RUN_DIR [EPOCHS]
  train   - a long run; rank 0 prints "READY <pid of rank 0> <pid of rank 1>"
            after epoch 1; each rank exits
            130 / 143 when interrupted (keras_vpg.interrupt.exit_on_interrupt)
  resume  - resume_run(RUN_DIR, epochs=EPOCHS); rank 0 prints "RESUMED <epoch>"
"""

import os
import sys

import gymnasium as gym
import keras

import keras_vpg
from keras_vpg import mpi
from keras_vpg.agent import resume_run
from keras_vpg.interrupt import exit_on_interrupt

mode, run_dir = sys.argv[1], sys.argv[2]
rank = mpi.proc_id()

if mode == "train":
    agent = keras_vpg.VPG(
        lambda: gym.make("CartPole-v1"), steps_per_epoch=2000, train_v_iters=5, seed=3,
        ac_kwargs=dict(hidden_sizes=(16,)), save_freq=1000,
        logger_kwargs=dict(output_dir=run_dir),
    )

    # Callbacks run on rank 0 only: rank 0 announces every rank's pid.
    pids = mpi.gather_object(os.getpid())
    if rank == 0:
        callback = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: epoch == 1 and print(
                "READY " + " ".join(map(str, pids)), flush=True))
    else:
        callback = None
    with exit_on_interrupt():
        agent.fit(epochs=400, verbose=0, callbacks=[callback] if callback else None)
    print("FINISHED", flush=True)
elif mode == "resume":
    agent = resume_run(run_dir, epochs=int(sys.argv[3]), verbose=0)
    if rank == 0:
        print(f"RESUMED {agent.epoch}", flush=True)
