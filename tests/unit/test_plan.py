"""study.plan: predicted compute, with the sampler each cell uses."""

from __future__ import annotations

import re
from pathlib import Path

from study import plan

TINY = Path(__file__).resolve().parents[2] / ".test" / "config" / "config.yaml"


def test_plan_reports_the_sampler_and_the_direct_comparison(capsys):
    """The tiny config has 9 runs: auto samples directly at n = 8 (9 + 1 >= 8)
    and projects at n = 12; --compare-direct times both and prints both totals."""
    plan.main([str(TINY), "--steps-fraction", "0.01", "--compare-direct"])
    out = capsys.readouterr().out
    assert re.search(r"n=   8 k=  4 .* \[direct\] \(direct +[0-9.]+ s\)", out), out
    assert re.search(r"n=  12 k=  4 .* \[projected\] \(direct +[0-9.]+ s\)", out), out
    assert re.search(r"^total [0-9.]+ core-hours", out, re.M), out
    assert re.search(r"^with sampler: direct [0-9.]+ core-hours; ratio [0-9.]+$", out, re.M), out


def test_plan_counts_the_basin_cells(capsys):
    """The tiny config's basin block (2 cells) is timed and added to the total, and says its share."""
    plan.main([str(TINY), "--steps-fraction", "0.01"])
    out = capsys.readouterr().out
    assert "2 basin train + 1 aggregate" in out, out
    assert re.search(r"^basins n=   8 k=  4 +[0-9.]+ s per cell \(32 runs x 2 settings\)", out, re.M), out
    share = re.search(r"^of which the basin study ([0-9.]+) core-hours \(([0-9.]+)% added\)$", out, re.M)
    assert share and float(share.group(2)) > 0, out
