"""The stationary part of a run, where the noise floor is measured: one
definition for the datasets (``floor_measured_mean_sq``, per cell) and the
figures (``study.figures.stats``, over stacked cells whose runs may end at
different steps)."""

from __future__ import annotations

import xarray as xr


def run_end(trace: xr.DataArray) -> xr.DataArray:
    """Each run's last recorded step: where ``trace`` (a trace finite until
    then: angle_w, loss, dist_wbar) last is. Empirical runs of a k with a
    shorter step budget end before the step axis does (NaN beyond)."""
    return trace["step"].where(trace.notnull()).max("step")


def mean_sq_floor(dist: xr.DataArray, end=None) -> xr.DataArray:
    """The measured noise floor of each run, the counterpart of the predicted
    ``floor_mean_sq``: the time average of ``dist^2`` (``dist_wbar``) over the
    recorded steps of the run's second half, ``t >= end / 2``, the stationary
    part once the transient has decayed (rho^(T/2) << the floor). ``end``: the
    run's last step, a number (one cell's budget); by default each run's own
    (``run_end``)."""
    late = dist["step"] >= (run_end(dist) if end is None else end) / 2
    return (dist.where(late, drop=True) ** 2).mean("step")
