"""Geometry of weight vectors stored along ``feature`` (NaN-padded beyond n):
one definition for the datasets' per-run summaries (``study.matching``) and
the figures (``study.figures.stats``)."""

from __future__ import annotations

import numpy as np
import xarray as xr


def vector_angle(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    """Angle (rad) between two vectors along ``feature``; NaN if either is zero or
    all-NaN (a diverged run). The arctan2 form of ``rvscgd.angle``, with the
    norms as square roots of sums of squares."""
    valid = a.notnull().any("feature") & b.notnull().any("feature")
    a0, b0 = a.fillna(0), b.fillna(0)
    na = np.sqrt((a0 * a0).sum("feature"))
    nb = np.sqrt((b0 * b0).sum("feature"))
    with np.errstate(invalid="ignore", divide="ignore"):
        ua, ub = a0 / na, b0 / nb
        dot = (ua * ub).sum("feature")
        cross = np.sqrt(((ua - dot * ub) ** 2).sum("feature"))
        out = xr.apply_ufunc(np.arctan2, cross, dot)
    return out.where(valid & (na > 0) & (nb > 0))
