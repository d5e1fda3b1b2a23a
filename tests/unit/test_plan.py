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


def test_plan_counts_the_floor_prediction_once_per_cell(monkeypatch):
    """The empirical training job predicts its cell's noise floor once, whatever
    its step count: the plan adds that cost once, not scaled up with the steps.

    A fake CPU clock advances only in a stub of the floor prediction (100 s per
    call), so the planned empirical time is exactly the floor's when the
    accounting is right, and 100 s times the step scale-up when it is not."""
    import time

    from study.experiments import gaussian
    from study.inprocess import load_config

    clock = [0.0]
    real_floor = gaussian.predict_floor_cell

    def floor_stub(*args, **kwargs):
        clock[0] += 100.0
        return real_floor(*args, **kwargs)

    monkeypatch.setattr(time, "process_time", lambda: clock[0])
    monkeypatch.setattr(gaussian, "predict_floor_cell", floor_stub)
    config = load_config(str(TINY))
    rows = gaussian.plan_rows(config, 0.01)
    for row in rows:
        assert row["floor_s"] == 100.0, row
        assert row["empirical_s"] == 100.0, row  # the old accounting gave 100 x 20 (200 steps run as 10)
        assert row["population_s"] == 0.0, row
