"""The numbers of fixed-seed runs do not change: progress.txt against tests/golden/.

Each case of ``tests/golden/make_golden.py`` is rerun on the active backend and
its progress.txt (timing columns aside) compared with the committed file: counts
exactly, floats within a tolerance that absorbs the last bits in which float
kernels differ between CPUs and library releases (``make_golden.compare_progress``),
but not a change of the maths (the tests below alter gamma and the update and check
that the comparison fails). A change meant to alter the numbers regenerates the
files (see that script) and says why in its commit.
"""

from __future__ import annotations

import keras
import pytest
from script_module import load_script

make_golden = load_script("tests/golden/make_golden.py")


@pytest.mark.parametrize("case", sorted(make_golden.CASES))
def test_progress_matches_the_golden_file(case, tmp_path):
    golden = make_golden.golden_path(keras.backend.backend(), case)
    assert golden.exists(), f"no golden file {golden.name}: run tests/golden/make_golden.py"
    got = make_golden.run_case(case, tmp_path / case)
    assert len(got.splitlines()) == make_golden.EPOCHS + 1
    assert make_golden.compare_progress(golden.read_text(), got) == []


@pytest.mark.slow  # checks the comparison itself; the golden runs above stay quick
@pytest.mark.parametrize("change", [dict(gamma=0.98), dict(train_v_iters=4), dict(lam=0.9)])
def test_a_change_of_the_maths_fails_the_comparison(change, tmp_path):
    # The tolerance must not hide a real change: other gamma, lambda or value steps.
    golden = make_golden.golden_path(keras.backend.backend(), "pendulum_norm")
    got = make_golden.run_case("pendulum_norm", tmp_path / "run", **change)
    problems = make_golden.compare_progress(golden.read_text(), got)
    # Epoch 0's returns come before any update; later rows must move.
    assert len(problems) >= 5, problems


def _table(**values):
    columns = ["Epoch", "AverageEpRet", "LossPi", "LossV", "DeltaLossV", "Entropy", "KL",
               "TotalEnvInteracts"]
    row = dict(Epoch="0", AverageEpRet="-794.26209", LossPi="-0.031829841", LossV="130926.96",
               DeltaLossV="-144.5311", Entropy="0.91893852", KL="4.6053479e-05",
               TotalEnvInteracts="600") | values
    return "\t".join(columns) + "\n" + "\t".join(row[c] for c in columns) + "\n"


@pytest.mark.parametrize("values", [
    # Last-bit differences seen between two CPUs of the same kind.
    dict(AverageEpRet="-794.26207", LossPi="-0.031829853", KL="4.6052486e-05"),
    dict(KL="4.60591e-05", DeltaLossV="-144.52"),
])
def test_last_bit_differences_are_absorbed(values):
    assert make_golden.compare_progress(_table(), _table(**values)) == []


@pytest.mark.parametrize("values", [
    dict(TotalEnvInteracts="601"),          # counts are exact
    dict(AverageEpRet="-794.3"),            # 5e-5 relative
    dict(KL="5.0e-05"),                     # 9 % of a small KL, 5e-6 of the entropy
    dict(LossPi="-0.03184"),
    dict(DeltaLossV="-146"),
])
def test_real_differences_are_reported(values):
    problems = make_golden.compare_progress(_table(), _table(**values))
    assert len(problems) == 1 and next(iter(values)) in problems[0], problems


def test_strip_timings_drops_only_the_timing_columns():
    text = "Epoch\tLossPi\tTime\tStepsPerSecond\tExtra\n0\t1.5\t2.0\t300\t7\n"
    assert make_golden.strip_timings(text) == "Epoch\tLossPi\tExtra\n0\t1.5\t7\n"
