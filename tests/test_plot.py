"""Learning-curve plotting against hand-computed references."""

from __future__ import annotations

import numpy as np
import pytest

from keras_vpg.plot import make_plots, read_progress, smooth


def write_run(path, returns, exp_name="exp"):
    path.mkdir(parents=True)
    lines = ["Epoch\tAverageEpRet\tTotalEnvInteracts"]
    lines += [f"{i}\t{r}\t{(i + 1) * 100}" for i, r in enumerate(returns)]
    (path / "progress.txt").write_text("\n".join(lines) + "\n")
    (path / "config.json").write_text(f'{{"exp_name": "{exp_name}"}}')


def test_read_progress_keeps_nan(tmp_path):
    write_run(tmp_path / "r", ["nan", 2.5])
    columns = read_progress(tmp_path / "r" / "progress.txt")
    assert np.isnan(columns["AverageEpRet"][0]) and columns["AverageEpRet"][1] == 2.5


def test_smooth_is_a_nan_aware_centered_moving_average():
    y = np.array([1.0, 2.0, np.nan, 4.0, 8.0])
    expected = []
    for i in range(len(y)):  # plain loop reference, window 3
        window = [v for v in y[max(0, i - 1):i + 2] if not np.isnan(v)]
        expected.append(sum(window) / len(window))
    np.testing.assert_allclose(smooth(y, 3), expected)


def test_mean_over_seeds_is_plotted_and_saved(tmp_path):
    write_run(tmp_path / "exp" / "exp_s0", [1.0, 2.0, 3.0])
    write_run(tmp_path / "exp" / "exp_s1", [3.0, 4.0, 5.0, 6.0])  # longer: truncated
    out = tmp_path / "plot.png"
    (fig,) = make_plots([str(tmp_path / "exp")], out=str(out))
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_ydata(), [2.0, 3.0, 4.0])
    np.testing.assert_allclose(line.get_xdata(), [100, 200, 300])
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_bad_column_and_missing_dir_are_named(tmp_path):
    write_run(tmp_path / "exp" / "exp_s0", [1.0, 2.0])
    with pytest.raises(ValueError, match="NoSuchColumn.*available"):
        make_plots([str(tmp_path / "exp")], values=["NoSuchColumn"])
    with pytest.raises(ValueError, match="nowhere"):
        make_plots([str(tmp_path / "nowhere")])
