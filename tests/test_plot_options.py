"""``keras-vpg plot`` options --legend/--count/--select/--exclude/--est change what is drawn.

The figure is read back through matplotlib (the lines' labels and data) at savefig time.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.figure  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_vpg import cli  # noqa: E402

RETURNS = {("exp-a", 0): [1.0, 2.0, 3.0], ("exp-a", 1): [3.0, 6.0, 9.0],
           ("exp-b", 0): [10.0, 20.0, 30.0]}


@pytest.fixture
def runs(tmp_path):
    for (exp, seed), values in RETURNS.items():
        run = tmp_path / exp / f"{exp}_s{seed}"
        run.mkdir(parents=True)
        lines = ["Epoch\tAverageEpRet\tTotalEnvInteracts"]
        lines += [f"{i}\t{v}\t{100 * (i + 1)}" for i, v in enumerate(values)]
        (run / "progress.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def plotted(monkeypatch, runs, *options):
    """{label: y data} of the curves, and the legend's texts, of one plot command."""
    seen = {}

    def savefig(figure, *args, **kwargs):
        axes = figure.axes[0]
        seen["curves"] = {line.get_label(): np.asarray(line.get_ydata(), float)
                          for line in axes.get_lines() if not line.get_label().startswith("_")}
        legend = axes.get_legend()
        seen["legend"] = [] if legend is None else [t.get_text() for t in legend.get_texts()]
        Path(args[0]).write_bytes(b"")  # the temporary file plot's atomic write renames

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    status = cli.main(["plot", str(runs / "exp-a"), str(runs / "exp-b"), "--out",
                       str(runs / "p.png"), *options])
    assert status == 0
    return seen


def by_name(curves, name):
    (y,) = [y for label, y in curves.items() if name in label]
    return y


def test_default_is_the_mean_over_seeds_per_experiment(monkeypatch, runs):
    seen = plotted(monkeypatch, runs)
    assert len(seen["curves"]) == 2
    np.testing.assert_allclose(by_name(seen["curves"], "exp-a"), [2.0, 4.0, 6.0])
    np.testing.assert_allclose(by_name(seen["curves"], "exp-b"), [10.0, 20.0, 30.0])


@pytest.mark.parametrize("est, expected", [("max", [3.0, 6.0, 9.0]), ("min", [1.0, 2.0, 3.0])])
def test_est_chooses_the_estimate(monkeypatch, runs, est, expected):
    seen = plotted(monkeypatch, runs, "--est", est)
    np.testing.assert_allclose(by_name(seen["curves"], "exp-a"), expected)


def test_count_draws_one_curve_per_run(monkeypatch, runs):
    seen = plotted(monkeypatch, runs, "--count")
    assert len(seen["curves"]) == 3
    drawn = sorted(tuple(y) for y in seen["curves"].values())
    assert drawn == sorted(tuple(v) for v in RETURNS.values())


def test_select_and_exclude_filter_runs(monkeypatch, runs):
    seen = plotted(monkeypatch, runs, "--select", "exp-a")
    assert len(seen["curves"]) == 1
    np.testing.assert_allclose(by_name(seen["curves"], "exp-a"), [2.0, 4.0, 6.0])
    seen = plotted(monkeypatch, runs, "--exclude", "exp-a_s1")
    assert len(seen["curves"]) == 2
    np.testing.assert_allclose(by_name(seen["curves"], "exp-a"), [1.0, 2.0, 3.0])


def test_legend_labels_the_curves(monkeypatch, runs):
    seen = plotted(monkeypatch, runs, "--legend", "first", "second")
    assert seen["legend"] == ["first", "second"]
