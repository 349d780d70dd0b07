"""Summarize learning benchmark runs (``benchmarks/mujoco.sh``) as a Markdown table.

    python benchmarks/summarize.py [DATA_DIR ...]      # default: benchmarks/results
    python benchmarks/summarize.py --steps 1000000     # every run cut at 1M env steps

One row per experiment directory (``<env>_<suffix>/<env>_<suffix>_s<seed>/progress.txt``):
the settings (from the suffix: ``vpg`` is Spinning Up's, ``tuned``, ``vpg_cpu2`` two MPI
ranks, ...), steps reached, seeds, the final return (per seed the mean ``AverageEpRet`` of the last
10 epochs; then mean ± std over seeds), Spinning Up's PyTorch VPG figure at 3M steps
where it published one, the ratio, wall time per run and env steps per second, and the
wall-clock time until the run's 10-epoch moving average first reaches Spinning Up's figure.
``--steps N`` drops the epochs after N env steps first, so runs of different lengths
(a 3M-step run and a 1M-step one) are compared at the same budget.
Reads only the text files; needs numpy.
"""

from __future__ import annotations

import argparse
import csv
import re
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


#: Table order: Spinning Up's MuJoCo benchmarks first, then the rest by name.
ENV_ORDER = ["HalfCheetah", "Hopper", "Walker2d", "Swimmer", "Ant"]

#: What an experiment-name suffix stands for (``benchmarks/mujoco.sh``'s SUFFIX).
SETTINGS = {
    "vpg": "Spinning Up's",
    "vpg_cpu2": "Spinning Up's, --cpu 2",
    "tuned": "tuned",
}


def summarize(exp_dir: Path, max_steps: float = np.inf) -> dict | None:
    """One table row for ``exp_dir`` (its runs cut after ``max_steps`` env steps)."""
    # Only <exp>_s<seed>: not the <run>_old_<time> copies a reused run directory leaves.
    runs = sorted(p for p in exp_dir.glob("*_s*/progress.txt")
                  if re.fullmatch(r".*_s\d+", p.parent.name))
    if not runs:
        return None
    env_id, _, suffix = exp_dir.name.partition("_")
    env_name = env_id.split("-v")[0]
    reference = SPINNING_UP_VPG.get(env_name)
    finals, seconds, steps, rates, to_reference = [], [], [], [], []
    for path in runs:
        progress = read_progress(path)
        kept = progress["TotalEnvInteracts"] <= max_steps
        progress = {key: column[kept] for key, column in progress.items()}
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
    if not finals:
        return None
    finals = np.array(finals)
    return {
        "experiment": exp_dir.name,
        "env": env_id,
        "settings": SETTINGS.get(suffix, suffix),
        "steps": int(min(steps)),
        "seeds": len(finals),
        "final": f"{finals.mean():.1f} ± {finals.std():.1f}",
        "final_mean": float(finals.mean()),
        "spinning_up": "" if reference is None else f"{reference:g}",
        # A ratio of a negative return to a positive figure means nothing: say "below".
        "ratio": "" if reference is None else (
            f"{finals.mean() / reference:.2f}" if finals.mean() > 0 else "below"),
        "minutes": f"{np.mean(seconds) / 60:.1f}",
        "steps_per_s": f"{np.mean(rates):.0f}",
        "minutes_to_spinning_up": (
            "" if not to_reference else
            f"{np.nanmean(to_reference) / 60:.1f} ({np.sum(np.isfinite(to_reference))}"
            f"/{len(to_reference)} seeds)"
            if np.any(np.isfinite(to_reference)) else f"not reached (0/{len(to_reference)})"
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dirs", nargs="*", type=Path,
                        default=[Path(__file__).parent / "results"])
    parser.add_argument("--steps", type=float, default=np.inf,
                        help="cut every run after this many env steps")
    args = parser.parse_args(argv)
    rows = [r for root in args.data_dirs for d in sorted(root.iterdir()) if d.is_dir()
            if (r := summarize(d, args.steps)) is not None]
    settings = list(SETTINGS.values())

    def order(row: dict) -> tuple:
        name = row["env"].split("-v")[0]
        known = settings.index(row["settings"]) if row["settings"] in settings else len(settings)
        return (ENV_ORDER.index(name) if name in ENV_ORDER else len(ENV_ORDER), row["env"],
                known, row["settings"])

    rows.sort(key=order)
    header = ("| env | settings | env steps | seeds | final AverageEpRet (mean ± std over "
              "seeds of each run's last 10 epochs) | Spinning Up VPG (PyTorch, 3M) | ratio "
              "| wall time per run (min) | steps/s per run "
              "| minutes to Spinning Up's 3M return |")
    print(header)
    print("|---" * 10 + "|")
    for r in rows:
        print(f"| {r['env']} | {r['settings']} | {r['steps']:,} | {r['seeds']} | {r['final']} | "
              f"{r['spinning_up']} | {r['ratio']} | {r['minutes']} | {r['steps_per_s']} | "
              f"{r['minutes_to_spinning_up']} |")


if __name__ == "__main__":
    main()
