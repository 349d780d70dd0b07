"""docs/benchmarks.md and the README show what the committed runs in benchmarks/results/ say.

Their learning tables are written by ``benchmarks/summarize.py --docs``; a result added or
changed without refreshing them (or a hand edit of a figure) fails here.
"""


import pytest
from script_module import ROOT, load_script

PAGES = [ROOT / "docs" / "benchmarks.md", ROOT / "README.md"]


def _summarize():
    return load_script("benchmarks/summarize.py")


def test_the_pages_tables_are_those_of_the_committed_runs(tmp_path):
    copies = [tmp_path / f"{i}_{page.name}" for i, page in enumerate(PAGES)]
    for page, copy in zip(PAGES, copies):
        copy.write_text(page.read_text())
    _summarize().main(["--docs", *map(str, copies)])
    for page, copy in zip(PAGES, copies):
        assert "-table -->" in page.read_text()
        assert copy.read_text() == page.read_text(), (
            f"{page.name}'s tables differ from benchmarks/results/: run python "
            "benchmarks/summarize.py --docs docs/benchmarks.md README.md")


def test_a_changed_score_changes_the_page(tmp_path):
    """The check above can fail: one seed's score moved changes the evaluation table."""
    summarize = _summarize()
    results = tmp_path / "results"
    run = results / "Hopper-v5_spinup" / "Hopper-v5_spinup_s0"
    run.mkdir(parents=True)
    run.joinpath("eval.json").write_text('{"mean": 100.0}')
    page = tmp_path / "page.md"
    page.write_text("x\n<!-- eval-table -->\nSTALE\n<!-- /eval-table -->\n"
                    "<!-- results-table -->\nSTALE\n<!-- /results-table -->\ny\n")
    summarize.main([str(results), "--docs", str(page)])
    first = page.read_text()
    assert "| Hopper-v5 | Spinning Up's vpg, run here | 1 | 100 | 100 |" in first
    assert first.startswith("x\n") and first.endswith("y\n") and "STALE" not in first
    run.joinpath("eval.json").write_text('{"mean": 120.0}')
    summarize.main([str(results), "--docs", str(page)])
    assert page.read_text() != first


def test_a_page_without_the_markers_is_refused(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("no tables here\n")
    with pytest.raises(SystemExit, match="eval-table, like-for-like-table"):
        _summarize().main([str(ROOT / "benchmarks" / "results"), "--docs", str(page)])
    assert page.read_text() == "no tables here\n"


def test_scores_are_divided_by_spinning_up_with_the_same_budget():
    spinup_suffix = _summarize().spinup_suffix
    assert [spinup_suffix(s) for s in ("vpg1m", "vpg1m_torchinit", "tuned_holdout", "spinup")] \
        == ["spinup"] * 4
    assert [spinup_suffix(s) for s in ("vpg3m", "tuned_holdout3m", "vpg3m_rawcost")] \
        == ["spinup3m"] * 3
    assert spinup_suffix("vpg10m") == "spinup10m" and spinup_suffix("vpg01m") == "spinup"


def test_the_readme_table_sets_each_library_beside_the_other(tmp_path):
    results = tmp_path / "results"
    for exp, seed, score in [("Hopper-v5_spinup", 0, 100.0), ("Hopper-v5_spinup", 10, 200.0),
                             ("Hopper-v5_vpg1m", 0, 300.0), ("Hopper-v5_vpg3m", 0, 50.0),
                             ("Hopper-v5_tuned", 0, 900.0)]:
        run = results / exp / f"{exp}_s{seed}"
        run.mkdir(parents=True)
        run.joinpath("eval.json").write_text(f'{{"mean": {score}}}')
    page = tmp_path / "README.md"
    page.write_text("<!-- like-for-like-table -->\nSTALE\n<!-- /like-for-like-table -->\n")
    _summarize().main([str(results), "--docs", str(page)])
    rows = page.read_text().splitlines()[3:-1]
    assert rows == ["| Hopper-v5 | 1M | 100, 200 (mean 150) | 300 (mean 300) |",
                    "| Hopper-v5 | 3M | - | 50 (mean 50) |"]
