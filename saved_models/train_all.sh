#!/usr/bin/env bash
# Re-trains the shipped policies (JAX backend, seed 0) and rewrites their cards.
# Run from the repository root: bash saved_models/train_all.sh
set -euo pipefail
train() {  # name, env, extra args...
    local name=$1 env=$2; shift 2
    rm -rf "saved_models/.work/$name"
    keras-vpg train --backend jax --env "$env" --exp-name "$name" --data-dir saved_models/.work \
        --seed 0 --verbose 0 "$@"
    mkdir -p "saved_models/$name"
    cp "saved_models/.work/$name/${name}_s0/"{model.keras,config.json,progress.txt} "saved_models/$name/"
    python saved_models/make_card.py "saved_models/$name" --episodes 100
}
train cartpole CartPole-v1 --epochs 25 --pi-lr 0.01 --hid 32 32
train acrobot Acrobot-v1 --epochs 30 --pi-lr 0.01 --hid 32 32
train inverted_pendulum InvertedPendulum-v5 --epochs 40 --pi-lr 0.01 --hid 32 32
train halfcheetah HalfCheetah-v5 --epochs 60 --hid 64 64
rm -rf saved_models/.work
