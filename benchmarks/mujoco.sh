#!/usr/bin/env bash
# Learning benchmarks through the public CLI: Spinning Up's VPG benchmark settings
# (hidden (64, 32), tanh, 4000 steps per epoch, every other hyperparameter at its default),
# several envs x seeds, as many trainings at once as there are cores, then one plot per env.
#
#   bash benchmarks/mujoco.sh                       # the full set below
#   RUNS="HalfCheetah-v5:3000000 Hopper-v5:1000000" SEEDS="0 10 20" bash benchmarks/mujoco.sh
#   PARALLEL=1 BACKEND=torch bash benchmarks/mujoco.sh
#   # the tuned configuration of the README, and two MPI ranks per run:
#   SUFFIX=tuned EXTRA="--normalize-obs --num-envs 4 --pi-lr 3e-3" bash benchmarks/mujoco.sh
#   SUFFIX=vpg_cpu2 EXTRA="--cpu 2" PARALLEL=1 RUNS="Hopper-v5:1000000" bash benchmarks/mujoco.sh
#
# Needs: pip install ".[jax,mujoco]" (or the backend you pick). Runs land in
# $DATA_DIR/<env>_vpg/<env>_vpg_s<seed>/ (progress.txt, config.json, model.keras);
# curves in $DOCS_DIR/<env>_vpg.png (with another SUFFIX, also <env>_vpg_vs_<suffix>.png: both
# settings over the other run's steps); then `python benchmarks/summarize.py` prints the table.
# A run directory that already holds a finished progress.txt is skipped, so the
# script can be re-run after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-"HalfCheetah-v5:3000000 Hopper-v5:3000000 Walker2d-v5:3000000 Swimmer-v5:1000000 Ant-v5:1000000 CartPole-v1:200000 Acrobot-v1:200000 Pendulum-v1:400000"}
SEEDS=${SEEDS:-"0 10 20"}
STEPS_PER_EPOCH=${STEPS_PER_EPOCH:-4000}
BACKEND=${BACKEND:-jax}
PARALLEL=${PARALLEL:-$(nproc)}
DATA_DIR=${DATA_DIR:-benchmarks/results}
DOCS_DIR=${DOCS_DIR:-docs/benchmarks}
EXTRA=${EXTRA:-}                   # more train flags, e.g. "--normalize-obs --num-envs 4"
SUFFIX=${SUFFIX:-vpg}              # experiment name suffix (e.g. "tuned" for EXTRA runs)
KERAS_VPG=${KERAS_VPG:-keras-vpg}  # e.g. "python -m keras_vpg"

mkdir -p "$DATA_DIR" "$DOCS_DIR"
jobs=()
for run in $RUNS; do
    env_id=${run%%:*}; steps=${run##*:}
    epochs=$(( steps / STEPS_PER_EPOCH ))
    for seed in $SEEDS; do
        jobs+=("$env_id $epochs $seed")
    done
done

train_one() {
    local env_id=$1 epochs=$2 seed=$3
    local exp="${env_id}_${SUFFIX}"
    local progress="$DATA_DIR/$exp/${exp}_s$seed/progress.txt"
    if [ -f "$progress" ] && [ "$(($(wc -l < "$progress") - 1))" -ge "$epochs" ]; then
        echo "skip $exp seed $seed (done)"; return 0
    fi
    echo "start $exp seed $seed: $epochs epochs"
    # Each process (PARALLEL trainings x --cpu ranks) gets its share of the cores.
    local ranks
    ranks=$(grep -oE -- '--cpu +[0-9]+' <<< "$EXTRA" | grep -oE '[0-9]+$' || echo 1)
    local threads=$(( $(nproc) / (PARALLEL * ranks) ))
    KERAS_VPG_THREADS=$(( threads > 0 ? threads : 1 )) \
        $KERAS_VPG train --env "$env_id" --hid 64 32 --act tanh --seed "$seed" \
        --epochs "$epochs" --steps-per-epoch "$STEPS_PER_EPOCH" --backend "$BACKEND" \
        --exp-name "$exp" --data-dir "$DATA_DIR" --verbose 0 $EXTRA \
        > "$DATA_DIR/$exp.s$seed.log" 2>&1 \
        && echo "done  $exp seed $seed" || echo "FAILED $exp seed $seed (see $DATA_DIR/$exp.s$seed.log)"
}
export -f train_one
export DATA_DIR STEPS_PER_EPOCH BACKEND PARALLEL EXTRA SUFFIX KERAS_VPG

printf '%s\n' "${jobs[@]}" | xargs -P "$PARALLEL" -L 1 bash -c 'train_one $0 $1 $2'

for run in $RUNS; do
    exp="${run%%:*}_${SUFFIX}"
    [ -d "$DATA_DIR/$exp" ] || continue
    $KERAS_VPG plot "$DATA_DIR/$exp" --value AverageEpRet --xaxis TotalEnvInteracts \
        --smooth 10 --exclude _old_ --out "$DOCS_DIR/$exp.png" || echo "plot of $exp failed"
    # Beside Spinning Up's settings, over the budget of this run.
    baseline="${run%%:*}_vpg"
    if [ "$SUFFIX" != vpg ] && [ -d "$DATA_DIR/$baseline" ]; then
        $KERAS_VPG plot "$DATA_DIR/$baseline" "$DATA_DIR/$exp" --value AverageEpRet \
            --xaxis TotalEnvInteracts --smooth 10 --xmax "${run##*:}" --exclude _old_ \
            --legend "Spinning Up's settings" "$SUFFIX" \
            --out "$DOCS_DIR/${baseline}_vs_$SUFFIX.png" || echo "plot of $exp vs $baseline failed"
    fi
done
