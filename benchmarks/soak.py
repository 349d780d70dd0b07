"""Soak test: does a long run's memory stay flat? 300 short epochs per backend.

Each backend runs in a fresh worker process: ``VPG.fit`` on CartPole-v1 with short
epochs (``--steps`` env steps, 10 value steps), checkpoints every 10 epochs (so
saving is part of what is soaked), output to a temporary directory. A callback
records the process's resident memory (RSS, from ``/proc/self/statm``) after
every epoch; after ``--warmup`` epochs (compilation, allocator pools) a
least-squares line through RSS gives the slope in MB per 100 epochs
(target: < 5).

    python benchmarks/soak.py                        # every backend, one at a time
    python benchmarks/soak.py --backend jax --epochs 300 --json soak_jax.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

BACKENDS = ("tensorflow", "jax", "torch")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_MB_PER_100 = 5.0


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(epochs: int, steps: int, warmup: int) -> dict:
    import time

    import gymnasium as gym
    import keras
    import numpy as np

    import keras_vpg

    samples = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: samples.append(rss_mb()))
    with tempfile.TemporaryDirectory() as tmp:
        agent = keras_vpg.VPG(
            lambda: gym.make("CartPole-v1"), steps_per_epoch=steps, train_v_iters=10,
            save_freq=10, logger_kwargs=dict(output_dir=os.path.join(tmp, "run")),
        )
        start = time.perf_counter()
        agent.fit(epochs=epochs, verbose=0, callbacks=[record])
        seconds = time.perf_counter() - start
        agent.close()
    x = np.arange(warmup, len(samples), dtype=np.float64)
    y = np.asarray(samples[warmup:])
    slope = float(np.polyfit(x, y, 1)[0]) * 100.0
    return {"backend": keras.backend.backend(), "epochs": epochs, "steps_per_epoch": steps,
            "warmup": warmup, "seconds": seconds, "rss_start_mb": samples[warmup],
            "rss_end_mb": samples[-1], "slope_mb_per_100_epochs": slope,
            "rss_mb": [round(v, 2) for v in samples]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, nargs="+", default=list(BACKENDS))
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--json", help="write the results (RSS per epoch included) here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.epochs, args.steps, args.warmup)))
        return
    results = []
    for backend in args.backend:  # one at a time: a soak must not compete with itself
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2",
                   PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
        out = subprocess.run(
            [sys.executable, __file__, "--worker", "--epochs", str(args.epochs),
             "--steps", str(args.steps), "--warmup", str(args.warmup)],
            capture_output=True, text=True, env=env, check=False,
        )
        if out.returncode:
            print(f"{backend}: worker failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        verdict = "met" if result["slope_mb_per_100_epochs"] < TARGET_MB_PER_100 else "NOT met"
        print(f"{backend:10s} {result['epochs']} epochs x {result['steps_per_epoch']} steps "
              f"in {result['seconds']:.0f} s: RSS {result['rss_start_mb']:.0f} -> "
              f"{result['rss_end_mb']:.0f} MB after warm-up, slope "
              f"{result['slope_mb_per_100_epochs']:+.2f} MB / 100 epochs "
              f"(target < {TARGET_MB_PER_100:g}: {verdict})", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
