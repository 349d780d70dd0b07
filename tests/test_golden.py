"""The numbers of fixed-seed runs do not change: progress.txt against tests/golden/.

Each case of ``tests/golden/make_golden.py`` is rerun on the active backend and
its progress.txt (timing columns aside) compared with the committed file. Every
backend repeats its runs bit for bit on the same machine, so the comparison is
exact; a change meant to alter the numbers regenerates the files (see that
script) and says why in its commit.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "make_golden", Path(__file__).parent / "golden" / "make_golden.py"
)
make_golden = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(make_golden)


@pytest.mark.parametrize("case", sorted(make_golden.CASES))
def test_progress_matches_the_golden_file(case, tmp_path):
    golden = make_golden.golden_path(keras.backend.backend(), case)
    assert golden.exists(), f"no golden file {golden.name}: run tests/golden/make_golden.py"
    got = make_golden.run_case(case, tmp_path / case)
    expected_rows = golden.read_text().splitlines()
    got_rows = got.splitlines()
    assert got_rows[0] == expected_rows[0], "progress.txt columns changed"
    assert len(got_rows) == len(expected_rows) == make_golden.EPOCHS + 1
    for epoch, (row, expected) in enumerate(zip(got_rows[1:], expected_rows[1:])):
        changed = {column: (e, g) for column, e, g in
                   zip(expected_rows[0].split("\t"), expected.split("\t"), row.split("\t"))
                   if e != g}
        assert not changed, f"epoch {epoch}: (golden, now) differ in {changed}"


def test_strip_timings_drops_only_the_timing_columns():
    text = "Epoch\tLossPi\tTime\tStepsPerSecond\tExtra\n0\t1.5\t2.0\t300\t7\n"
    assert make_golden.strip_timings(text) == "Epoch\tLossPi\tExtra\n0\t1.5\t7\n"
