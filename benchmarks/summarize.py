"""Summarize learning runs (``benchmarks/mujoco.sh``, ``benchmarks/like_for_like.sh``) as Markdown.

    python benchmarks/summarize.py [DATA_DIR ...]      # default: benchmarks/results
    python benchmarks/summarize.py --steps 1000000     # every run cut at 1M env steps
    python benchmarks/summarize.py --docs docs/benchmarks.md README.md   # refresh the tables there

Two tables, one row per experiment directory (``<env>_<suffix>/<env>_<suffix>_s<seed>/``):

1. Training returns (``progress.txt``): per seed the mean ``AverageEpRet`` of its last 10
   epochs; their mean and sample standard deviation (ddof=1) over seeds, and every seed's
   value; the env steps after which the 10-epoch moving average reached Spinning Up's
   published figure *and stayed at or above it to the end of the run* (per seed; "-":
   not reached, or not held). ``--steps N`` first drops the epochs after N env steps,
   so runs of different lengths are compared at one budget. The two libraries' training
   returns measure different things (see ``like_for_like.py``): compare them as curves.
2. Evaluation scores (``eval.json`` from ``like_for_like.py evaluate``: each final policy,
   100 deterministic episodes, actions clipped to the Box, the same code for both
   libraries): mean and sample std over seeds of each seed's mean score, every seed's
   score, and keras-vpg's ratio to Spinning Up run here. Spinning Up's published figures
   (its benchmark page: gym v3 envs, 10 seeds, read off its plots) are a reference
   column, not a denominator.

And a third, the README's: the like-for-like pairs of table 2 (Spinning Up's vpg run here
and keras-vpg with its settings, at 1M and 3M steps) side by side, every seed's score.

``--docs PAGE ...`` writes each table into every ``PAGE`` that has its markers
(``<!-- results-table -->``, ``<!-- eval-table -->``, ``<!-- like-for-like-table -->``, each
closed by ``<!-- /... -->``), so the pages always show what the committed runs say
(``tests/test_benchmark_tables.py`` checks it).

Wall times are left out: most runs shared the machine with others (see
``spinningup_timing.py`` for timings taken side by side).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from keras_vpg.plot import read_progress  # numpy only: no Keras

#: Spinning Up's benchmark page, PyTorch VPG, average return at 3M steps (v3 envs).
SPINNING_UP_VPG = {"HalfCheetah": 632.0, "Hopper": 815.0, "Walker2d": 471.0, "Swimmer": 52.0,
                   "Ant": 8.0}
LAST_EPOCHS = 10
#: Table order: Spinning Up's MuJoCo benchmarks first, then the rest by name.
ENV_ORDER = ["HalfCheetah", "Hopper", "Walker2d", "Swimmer", "Ant"]
#: What an experiment-name suffix stands for.
SETTINGS = {
    "spinup": "Spinning Up's vpg, run here",
    "vpg": "keras-vpg, Spinning Up's settings",
    "vpg1m": "keras-vpg, Spinning Up's settings (like for like)",
    "vpg1m_rawcost": "keras-vpg, Spinning Up's settings, control cost on the raw sample",
    "vpg1m_torchinit": "keras-vpg, Spinning Up's settings, PyTorch's initial weights",
    "spinup3m": "Spinning Up's vpg, run here, 3M steps",
    "vpg3m": "keras-vpg, Spinning Up's settings (like for like), 3M steps",
    "vpg_cpu2": "keras-vpg, Spinning Up's settings, --cpu 2",
    "tuned": "keras-vpg tuned (tuning seeds)",
    "tuned_holdout": "keras-vpg tuned (new seeds)",
}
#: Budget -> the suffixes of Spinning Up's runs here and of keras-vpg's with its settings.
LIKE_FOR_LIKE = {"1M": ("spinup", "vpg1m"), "3M": ("spinup3m", "vpg3m")}


def runs_of(exp_dir: Path) -> list[Path]:
    """The run directories ``<exp>_s<seed>`` (not ``<run>_old_<time>`` copies), by seed."""
    runs = [p for p in exp_dir.glob("*_s*") if re.fullmatch(r".*_s\d+", p.name)]
    return sorted(runs, key=lambda p: int(p.name.rsplit("_s", 1)[1]))


def steps_to_hold(steps: np.ndarray, returns: np.ndarray, level: float) -> float:
    """Env steps after which the 10-epoch moving average is >= ``level`` to the end."""
    window = np.ones(LAST_EPOCHS) / LAST_EPOCHS
    average = np.convolve(returns, window, mode="valid")  # average[i] ends at epoch i+9
    below = np.nonzero(average < level)[0]
    first = 0 if len(below) == 0 else below[-1] + 1
    return float(steps[first + LAST_EPOCHS - 1]) if first < len(average) else np.nan


def per_seed(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def mean_sd(values: list[float]) -> str:
    sd = np.std(values, ddof=1) if len(values) > 1 else np.nan
    return f"{np.mean(values):.0f} ± {sd:.0f}" if len(values) > 1 else f"{values[0]:.0f}"


def training_row(exp_dir: Path, max_steps: float) -> dict | None:
    env_id, _, suffix = exp_dir.name.partition("_")
    reference = SPINNING_UP_VPG.get(env_id.split("-v")[0])
    finals, held, steps = [], [], []
    for run in runs_of(exp_dir):
        if not (run / "progress.txt").exists():
            continue
        progress = read_progress(run / "progress.txt")
        kept = progress["TotalEnvInteracts"] <= max_steps
        returns, interacts = progress["AverageEpRet"][kept], progress["TotalEnvInteracts"][kept]
        if len(returns) < LAST_EPOCHS:
            continue
        finals.append(float(np.nanmean(returns[-LAST_EPOCHS:])))
        steps.append(int(interacts[-1]))
        if reference is not None:
            held.append(steps_to_hold(interacts, returns, reference))
    if not finals:
        return None
    return dict(env=env_id, settings=SETTINGS.get(suffix, suffix), steps=min(steps),
                seeds=len(finals), final=mean_sd(finals),
                per_seed=per_seed(finals),
                reference="" if reference is None else f"{reference:g}",
                held=", ".join("-" if np.isnan(s) else f"{s / 1e6:.2f}M" for s in held))


def eval_scores(exp_dir: Path) -> list[float]:
    return [json.loads((run / "eval.json").read_text())["mean"] for run in runs_of(exp_dir)
            if (run / "eval.json").exists()]


def evaluated_experiments(exp_dirs: list[Path]) -> dict[tuple[str, str], list[float]]:
    """``(env id, suffix) -> every seed's evaluation score``, for the scored experiments."""
    evaluated = {}
    for d in exp_dirs:
        env_id, _, suffix = d.name.partition("_")
        if scores := eval_scores(d):
            evaluated[env_id, suffix] = scores
    return evaluated


def order(env: str, settings: str) -> tuple:
    name = env.split("-v")[0]
    known = list(SETTINGS.values())
    return (ENV_ORDER.index(name) if name in ENV_ORDER else len(ENV_ORDER), env,
            known.index(settings) if settings in known else len(known), settings)


def training_table(exp_dirs: list[Path], max_steps: float = np.inf) -> str:
    """Table 1 (Markdown): training returns, one row per experiment."""
    rows = [r for d in exp_dirs if (r := training_row(d, max_steps)) is not None]
    rows.sort(key=lambda r: order(r["env"], r["settings"]))
    lines = ["| env | settings | env steps | seeds | training return, last 10 epochs "
             "(mean ± sd) | per seed | Spinning Up's published figure | env steps to reach "
             "and hold it (per seed) |", "|---" * 8 + "|"]
    lines += [f"| {r['env']} | {r['settings']} | {r['steps']:,} | {r['seeds']} | {r['final']} "
              f"| {r['per_seed']} | {r['reference']} | {r['held']} |" for r in rows]
    return "\n".join(lines)


def spinup_suffix(suffix: str) -> str:
    """The suffix of Spinning Up's runs with the budget of ``suffix`` (``vpg3m`` ->
    ``spinup3m``, ``tuned_holdout3m`` -> ``spinup3m``, ``vpg1m_rawcost`` -> ``spinup``): the
    budget is a whole number of millions written ``<N>m`` at the end of a ``_``-separated
    part; 1M (``spinup``) if there is none."""
    budget = re.search(r"(?<![\d.])(\d+)m(?=_|$)", suffix)
    millions = 1 if budget is None else int(budget[1])
    return "spinup" if millions == 1 else f"spinup{millions}m"


def eval_table(evaluated: dict[tuple[str, str], list[float]]) -> str:
    """Table 2 (Markdown): evaluation scores, one row per scored experiment ("" if none)."""
    if not evaluated:
        return ""
    lines = ["| env | trainer | seeds | evaluation score (mean ± sd over seeds) | per seed "
             "| ratio to Spinning Up run here | Spinning Up's published figure |", "|---" * 7 + "|"]
    for (env_id, suffix), scores in sorted(
            evaluated.items(), key=lambda kv: order(kv[0][0], SETTINGS.get(kv[0][1], ""))):
        # The ratio's denominator is Spinning Up run here with the same budget.
        spinup = evaluated.get((env_id, spinup_suffix(suffix)))
        ratio = ("" if suffix.startswith("spinup") or not spinup else
                 f"{np.mean(scores) / np.mean(spinup):.2f}" if np.mean(spinup) > 0 else
                 "(Spinning Up's score is not positive)")
        reference = SPINNING_UP_VPG.get(env_id.split("-v")[0])
        reference = "" if reference is None else f"{reference:g}"
        lines.append(f"| {env_id} | {SETTINGS.get(suffix, suffix)} | {len(scores)} "
                     f"| {mean_sd(scores)} | {per_seed(scores)} | {ratio} "
                     f"| {reference} |")
    return "\n".join(lines)


def like_for_like_table(evaluated: dict[tuple[str, str], list[float]]) -> str:
    """Table 3 (Markdown, the README's): every seed's evaluation score of Spinning Up's
    vpg run here beside keras-vpg's with the same settings, per env and budget."""
    lines = ["| env | env steps | Spinning Up's vpg, run here | keras-vpg, same settings |",
             "|---" * 4 + "|"]
    envs = sorted({env_id for env_id, _ in evaluated}, key=lambda env_id: order(env_id, ""))
    for env_id in envs:
        for budget, (spinup, ours) in LIKE_FOR_LIKE.items():
            cells = [f"{per_seed(scores)} (mean {np.mean(scores):.0f})"
                     if (scores := evaluated.get((env_id, suffix))) else "-"
                     for suffix in (spinup, ours)]
            if cells != ["-", "-"]:
                lines.append(f"| {env_id} | {budget} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def write_tables(page: Path, tables: dict[str, str]) -> None:
    """Replace each ``<!-- NAME -->...<!-- /NAME -->`` block of ``page`` with its table
    (a page holds some of the tables, not necessarily all; at least one)."""
    text = page.read_text()
    found = [name for name in tables if f"<!-- {name} -->" in text]
    if not found:
        raise SystemExit(f"{page}: no <!-- NAME --> ... <!-- /NAME --> block, NAME one of "
                         f"{', '.join(tables)}")
    for name in found:
        block = re.search(rf"<!-- {name} -->\n.*?<!-- /{name} -->", text, flags=re.S)
        if block is None:
            raise SystemExit(f"{page}: <!-- {name} --> has no closing <!-- /{name} -->")
        text = (text[:block.start()] + f"<!-- {name} -->\n{tables[name]}\n<!-- /{name} -->"
                + text[block.end():])
    page.write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dirs", nargs="*", type=Path,
                        default=[Path(__file__).parent / "results"])
    parser.add_argument("--steps", type=float, default=np.inf,
                        help="cut every run after this many env steps")
    parser.add_argument("--docs", type=Path, nargs="+", metavar="PAGE",
                        help="write the tables into each PAGE's marked blocks instead of "
                             "printing")
    args = parser.parse_args(argv)
    exp_dirs = [d for root in args.data_dirs for d in sorted(root.iterdir()) if d.is_dir()]
    evaluated = evaluated_experiments(exp_dirs)  # eval.json read once for tables 2 and 3
    tables = {"results-table": training_table(exp_dirs, args.steps),
              "eval-table": eval_table(evaluated),
              "like-for-like-table": like_for_like_table(evaluated)}
    if args.docs:
        for page in args.docs:
            write_tables(page, tables)
    else:
        print("\n\n".join(table for table in tables.values() if table))


if __name__ == "__main__":
    sys.exit(main())
