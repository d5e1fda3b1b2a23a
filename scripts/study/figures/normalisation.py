"""The normalisation figure. What it shows, and how to read it: workflow/report/normalisation.rst."""

from __future__ import annotations

from study import style

from .compare import compare_traces
from .select import MODES


def draw(datasets: dict, slice: dict | None = None, lam=None, penalties=None, ymin: float | None = 1e-4):  # noqa: A002
    """RVSCGD with and without its normalisation step, on plain CGD and on
    RVSCGD (each penalty at one lambda): angle(w^t, w*) in each mode, and the
    sparsity of u^t in both modes (population solid, empirical dashed).
    ``ymin`` (rad) cuts the log angle axis below (plain CGD goes to 0)."""
    rows = [("angle_w", style.LABEL["angle_w"], "log", ymin, [m]) for m in MODES]
    rows.append(("sparsity_u", "sparsity of $u^t$", "linear", None, list(MODES)))
    return compare_traces(
        datasets,
        slice,
        lam,
        penalties,
        "normalise",
        style.NORMALISE_COLOR,
        style.NORMALISE_LABEL,
        rows,
        "(no ablation runs: grid.normalise has one value)",
    )
