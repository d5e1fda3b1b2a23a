"""The ste figure. What it shows, and how to read it: workflow/report/ste.rst."""

from __future__ import annotations

from study import style

from .compare import compare_traces
from .select import MODES


def draw(datasets: dict, slice: dict | None = None, lam=None, penalties=None, ymin: float | None = 1e-6):  # noqa: A002
    """Population loss L(w^t) versus step for each straight-through estimator,
    on plain CGD and on RVSCGD (each penalty at one lambda); rows = modes.
    ``ymin`` cuts the log y axis below (plain CGD goes to 0)."""
    rows = [("loss", style.LABEL["loss"], "log", ymin, [m]) for m in MODES]
    return compare_traces(
        datasets,
        slice,
        lam,
        penalties,
        "ste",
        style.STE_COLOR,
        style.STE_LABEL,
        rows,
        "(only this STE on the grid: grid.ste)",
    )
