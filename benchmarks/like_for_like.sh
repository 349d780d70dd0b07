#!/usr/bin/env bash
# Like-for-like learning runs (issue #23): Spinning Up's own VPG and keras-vpg on the same
# v5 envs, budgets and seeds, each final policy scored by `like_for_like.py evaluate`.
#
#   SPINUP_DIR=/tmp/spinningup bash benchmarks/like_for_like.sh          # the full list below
#   JOBS="su:Hopper-v5:0 kv:Hopper-v5:0" STEPS=1000000 bash benchmarks/like_for_like.sh
#
# A job is KIND:ENV:SEED; KIND is
#   su  Spinning Up's PyTorch vpg, benchmark settings ((64, 32) tanh), one torch thread
#   kv  keras-vpg with the same settings (experiment <env>_vpg1m), JAX, one thread
#   tu  keras-vpg's tuned configuration (--normalize-obs --num-envs 4 --pi-lr 3e-3) on seeds
#       not used to tune it (experiment <env>_tuned_holdout)
#   rc  keras-vpg as kv, but the env charges its control cost on the raw Gaussian sample,
#       as with Spinning Up (`like_for_like.py variant --raw-cost`; <env>_vpg1m_rawcost)
#   ti  keras-vpg as kv, but its Dense layers start as PyTorch's (Spinning Up's) do
#       (`like_for_like.py variant --torch-init`; experiment <env>_vpg1m_torchinit)
# Runs land in $DATA_DIR/<exp>/<exp>_s<seed>/ with eval.json beside progress.txt; a run whose
# eval.json exists is skipped, so the script can be re-run after an interruption. A budget
# other than 1M steps is part of the experiment name (STEPS=3000000: <env>_spinup3m,
# <env>_vpg3m, <env>_tuned_holdout3m), so the 1M and 3M runs of one seed never collide.
# PARALLEL jobs at once (default: the number of cores), each at niceness NICE (default 10).
set -uo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-1000000}
DATA_DIR=${DATA_DIR:-benchmarks/results}
PARALLEL=${PARALLEL:-$(nproc)}
SPINUP_DIR=${SPINUP_DIR:-/tmp/spinningup}
PY=${PY:-python}
NICE=${NICE:-10}
JOBS=${JOBS:-"
su:HalfCheetah-v5:0 kv:HalfCheetah-v5:0 kv:HalfCheetah-v5:10 kv:HalfCheetah-v5:20
su:HalfCheetah-v5:10 su:HalfCheetah-v5:20
su:Hopper-v5:0 kv:Hopper-v5:0 kv:Hopper-v5:10 kv:Hopper-v5:20 su:Hopper-v5:10 su:Hopper-v5:20
su:Walker2d-v5:0 kv:Walker2d-v5:0 kv:Walker2d-v5:10 kv:Walker2d-v5:20
su:Walker2d-v5:10 su:Walker2d-v5:20
tu:HalfCheetah-v5:30 tu:HalfCheetah-v5:40 tu:HalfCheetah-v5:50
tu:Hopper-v5:30 tu:Hopper-v5:40 tu:Hopper-v5:50
tu:Walker2d-v5:30 tu:Walker2d-v5:40 tu:Walker2d-v5:50
su:Swimmer-v5:0 kv:Swimmer-v5:0 kv:Swimmer-v5:10 kv:Swimmer-v5:20 su:Swimmer-v5:10 su:Swimmer-v5:20
su:Ant-v5:0 kv:Ant-v5:0 kv:Ant-v5:10 kv:Ant-v5:20 su:Ant-v5:10 su:Ant-v5:20
tu:Ant-v5:30 tu:Ant-v5:40 tu:Ant-v5:50
ti:Ant-v5:0 ti:Ant-v5:10 ti:Ant-v5:20 rc:Ant-v5:0
"}
# The 3M-step budgets (issue #23; HalfCheetah, Hopper and Walker2d all made; Spinning Up
# takes 23-60 min a run here, keras-vpg 7-28, one core each, niced):
#   STEPS=3000000 JOBS="su:Walker2d-v5:0 kv:Walker2d-v5:0 ..." bash benchmarks/like_for_like.sh

run_one() {
    local kind=$1 env_id=$2 seed=$3 exp budget=""
    [ "$STEPS" = 1000000 ] || budget="$((STEPS / 1000000))m"
    case $kind in
        su) exp="${env_id}_spinup$budget" ;;
        kv) exp="${env_id}_vpg${budget:-1m}" ;;
        tu) exp="${env_id}_tuned_holdout$budget" ;;
        rc) exp="${env_id}_vpg${budget:-1m}_rawcost" ;;
        ti) exp="${env_id}_vpg${budget:-1m}_torchinit" ;;
        *) echo "unknown kind $kind"; return 1 ;;
    esac
    local run="$DATA_DIR/$exp/${exp}_s$seed" log="$DATA_DIR/$exp.s$seed.log"
    [ -f "$run/eval.json" ] && { echo "skip $exp s$seed (done)"; return 0; }
    echo "$(date +%T) start $exp s$seed"
    local flags="--hid 64 32 --act tanh --seed $seed --epochs $((STEPS / 4000))
                 --steps-per-epoch 4000 --backend jax --exp-name $exp --data-dir $DATA_DIR
                 --verbose 0"
    if [ "$kind" = su ]; then
        nice -n "$NICE" $PY benchmarks/like_for_like.py spinup "$env_id" --seed "$seed" \
            --steps "$STEPS" --out "$run" --spinup-dir "$SPINUP_DIR" > "$log" 2>&1
    elif [ "$kind" = rc ] || [ "$kind" = ti ]; then
        KERAS_BACKEND=jax KERAS_VPG_THREADS=1 nice -n "$NICE" $PY benchmarks/like_for_like.py \
            variant "$env_id" --seed "$seed" --steps "$STEPS" --out "$run" \
            "$([ "$kind" = rc ] && echo --raw-cost || echo --torch-init)" > "$log" 2>&1
    elif [ "$kind" = kv ]; then
        KERAS_VPG_THREADS=1 nice -n "$NICE" $PY -m keras_vpg train --env "$env_id" $flags \
            > "$log" 2>&1
    else
        KERAS_VPG_THREADS=1 nice -n "$NICE" $PY -m keras_vpg train --env "$env_id" $flags \
            --normalize-obs --num-envs 4 --pi-lr 3e-3 > "$log" 2>&1
    fi || { echo "$(date +%T) FAILED $exp s$seed (see $log)"; return 1; }
    KERAS_BACKEND=jax nice -n "$NICE" $PY benchmarks/like_for_like.py evaluate "$run" \
        --spinup-dir "$SPINUP_DIR" >> "$log" 2>&1 \
        && echo "$(date +%T) done  $exp s$seed: $(tail -1 "$log")" \
        || echo "$(date +%T) FAILED evaluating $exp s$seed (see $log)"
}
export -f run_one
export STEPS DATA_DIR SPINUP_DIR PY NICE

tr ' ' '\n' <<< "$JOBS" | grep -v '^$' | tr ':' ' ' | xargs -P "$PARALLEL" -L 1 bash -c 'run_one $0 $1 $2'
