"""Learning-curve plotting against hand-computed references."""

from __future__ import annotations

import numpy as np
import pytest

from keras_vpg.plot import find_runs, make_plots, output_files, read_progress, smooth


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


@pytest.mark.parametrize("window", [2, 3, 4, 7])
@pytest.mark.parametrize("length", [2, 5])
def test_smooth_is_a_nan_aware_centered_moving_average(window, length):
    y = np.array([1.0, 2.0, np.nan, 4.0, 8.0])[:length]
    expected = []
    for i in range(len(y)):  # plain loop reference: the window around i
        lo = i - window // 2  # even windows reach one more point back than forward
        points = [y[j] for j in range(lo, lo + window) if 0 <= j < len(y) and not np.isnan(y[j])]
        expected.append(sum(points) / len(points) if points else np.nan)
    np.testing.assert_allclose(smooth(y, window), expected)


def test_mean_over_seeds_is_plotted_and_saved(tmp_path):
    write_run(tmp_path / "exp" / "exp_s0", [1.0, 2.0, 3.0])
    write_run(tmp_path / "exp" / "exp_s1", [3.0, 4.0, 5.0, 6.0])  # longer: truncated
    out = tmp_path / "plot.png"
    with pytest.warns(UserWarning, match=r"3 to 4 epochs.*cut to the shortest.*exp_s0"):
        (fig,) = make_plots([str(tmp_path / "exp")], out=str(out))
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_ydata(), [2.0, 3.0, 4.0])
    np.testing.assert_allclose(line.get_xdata(), [100, 200, 300])
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_xmax_cuts_every_run_before_the_seeds_are_averaged(tmp_path, recwarn):
    write_run(tmp_path / "long" / "long_s0", [1.0, 2.0, 3.0, 4.0])  # x: 100 .. 400
    write_run(tmp_path / "long" / "long_s1", [3.0, 4.0, 5.0, 6.0, 7.0])
    write_run(tmp_path / "short" / "short_s0", [5.0, 6.0])
    (fig,) = make_plots([str(tmp_path / "long"), str(tmp_path / "short")], xmax=250)
    long_line, short_line = fig.axes[0].lines
    np.testing.assert_allclose(long_line.get_xdata(), [100, 200])
    np.testing.assert_allclose(long_line.get_ydata(), [2.0, 3.0])
    np.testing.assert_allclose(short_line.get_ydata(), [5.0, 6.0])
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]  # no cut left


def test_bad_column_and_missing_dir_are_named(tmp_path):
    write_run(tmp_path / "exp" / "exp_s0", [1.0, 2.0])
    with pytest.raises(ValueError, match="NoSuchColumn.*available"):
        make_plots([str(tmp_path / "exp")], values=["NoSuchColumn"])
    with pytest.raises(ValueError, match="nowhere"):
        make_plots([str(tmp_path / "nowhere")])


def test_runs_of_equal_length_plot_without_a_warning(tmp_path, recwarn):
    write_run(tmp_path / "exp" / "exp_s0", [1.0, 2.0])
    write_run(tmp_path / "exp" / "exp_s1", [3.0, 4.0])
    (fig,) = make_plots([str(tmp_path / "exp")])
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [2.0, 3.0])
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_directories_sharing_an_experiment_name_stay_apart(tmp_path):
    write_run(tmp_path / "a" / "cartpole_s0", [1.0, 2.0], exp_name="cartpole")
    write_run(tmp_path / "b" / "cartpole_s0", [10.0, 20.0, 30.0], exp_name="cartpole")
    write_run(tmp_path / "b" / "other_s0", [5.0, 5.0, 5.0], exp_name="other")
    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    groups = find_runs(dirs)
    assert groups == {
        dirs[0]: [tmp_path / "a" / "cartpole_s0"],
        f"{dirs[1]}:cartpole": [tmp_path / "b" / "cartpole_s0"],
        "other": [tmp_path / "b" / "other_s0"],
    }
    (fig,) = make_plots(dirs)
    curves = {line.get_label(): list(line.get_ydata()) for line in fig.axes[0].lines}
    assert curves == {dirs[0]: [1.0, 2.0], f"{dirs[1]}:cartpole": [10.0, 20.0, 30.0],
                      "other": [5.0, 5.0, 5.0]}


def test_output_files_names_one_file_per_value():
    assert output_files("c.png", ["AverageEpRet"]) == ["c.png"]
    assert output_files("out/c.svg", ["A", "B"]) == ["out/c_A.svg", "out/c_B.svg"]
