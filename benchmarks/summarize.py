"""Summarize learning benchmark runs (``benchmarks/mujoco.sh``) as a Markdown table.

    python benchmarks/summarize.py [DATA_DIR ...]      # default: benchmarks/results

One row per experiment directory (``<env>_<suffix>/<env>_<suffix>_s<seed>/progress.txt``):
steps reached, seeds, the final return (per seed the mean ``AverageEpRet`` of the last
10 epochs; then mean ± std over seeds), Spinning Up's PyTorch VPG figure at 3M steps
where it published one, the ratio, wall time per run and env steps per second, and the
wall-clock time until the run's 10-epoch moving average first reaches Spinning Up's figure.
Reads only the text files; needs numpy.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

#: Spinning Up's benchmark page, PyTorch VPG, average return at 3M steps.
SPINNING_UP_VPG = {
    "HalfCheetah": 632.0,
    "Hopper": 815.0,
    "Walker2d": 471.0,
    "Swimmer": 52.0,
    "Ant": 8.0,
}
LAST_EPOCHS = 10


def read_progress(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {key: np.array([float(row[key] or "nan") for row in rows]) for key in rows[0]}


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    for i in range(window - 1, len(x)):
        out[i] = np.nanmean(x[i - window + 1 : i + 1])
    return out


def summarize(exp_dir: Path) -> dict | None:
    runs = sorted(p for p in exp_dir.glob("*_s*/progress.txt"))
    if not runs:
        return None
    env_name = exp_dir.name.split("-v")[0]
    reference = SPINNING_UP_VPG.get(env_name)
    finals, seconds, steps, rates, to_reference = [], [], [], [], []
    for path in runs:
        progress = read_progress(path)
        if len(progress["AverageEpRet"]) == 0:
            continue
        finals.append(np.nanmean(progress["AverageEpRet"][-LAST_EPOCHS:]))
        seconds.append(progress["Time"][-1])
        steps.append(progress["TotalEnvInteracts"][-1])
        rates.append(steps[-1] / seconds[-1])
        if reference is not None:
            smooth = moving_average(progress["AverageEpRet"], LAST_EPOCHS)
            reached = np.nonzero(smooth >= reference)[0]
            to_reference.append(progress["Time"][reached[0]] if len(reached) else np.nan)
    finals = np.array(finals)
    return {
        "experiment": exp_dir.name,
        "steps": int(min(steps)),
        "seeds": len(finals),
        "final": f"{finals.mean():.1f} ± {finals.std():.1f}",
        "final_mean": float(finals.mean()),
        "spinning_up": "" if reference is None else f"{reference:g}",
        "ratio": "" if reference is None else f"{finals.mean() / reference:.2f}",
        "minutes": f"{np.mean(seconds) / 60:.1f}",
        "steps_per_s": f"{np.mean(rates):.0f}",
        "minutes_to_spinning_up": (
            "" if not to_reference else
            f"{np.nanmean(to_reference) / 60:.1f} ({np.sum(np.isfinite(to_reference))}"
            f"/{len(to_reference)} seeds)"
            if np.any(np.isfinite(to_reference)) else f"not reached (0/{len(to_reference)})"
        ),
    }


def main(argv: list[str]) -> None:
    roots = [Path(a) for a in argv] or [Path(__file__).parent / "results"]
    rows = [r for root in roots for d in sorted(root.iterdir()) if d.is_dir()
            if (r := summarize(d)) is not None]
    header = ("| experiment | env steps | seeds | final AverageEpRet (last 10 epochs, "
              "mean ± std over seeds) | Spinning Up VPG | ratio | wall time per run (min) "
              "| steps/s | minutes to Spinning Up's return |")
    print(header)
    print("|---" * 9 + "|")
    for r in rows:
        print(f"| {r['experiment']} | {r['steps']:,} | {r['seeds']} | {r['final']} | "
              f"{r['spinning_up']} | {r['ratio']} | {r['minutes']} | {r['steps_per_s']} | "
              f"{r['minutes_to_spinning_up']} |")


if __name__ == "__main__":
    main(sys.argv[1:])
