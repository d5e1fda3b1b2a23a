"""Stacking an experiment's cells into one CF dataset: the cells along
(n, k, seed), the per-cell dimensions (features, units, fixed points)
NaN-padded to the largest, numeric coordinates sorted."""

from __future__ import annotations

import numpy as np
import xarray as xr

CELL_DIMS = ("n", "k", "seed")
# The index coordinates of the padded dimensions.
PADDED = {
    "feature": "feature index (NaN beyond n)",
    "unit": "hidden unit index (NaN beyond k)",
    "fixed_point": "index of a distinct fixed point of the cell's search",
}


def stack_cells(parts: list[xr.Dataset], pad: tuple[str, ...] = ("feature",)) -> xr.Dataset:
    """One dataset of an experiment's cells, stacked along ``CELL_DIMS``.

    Parameters
    ----------
    parts : list of xarray.Dataset
        One per cell: with the cell dims (length 1) already, or with the
        cell's coordinates as attributes ``n``, ``k`` and ``seed``.
    pad : tuple of str
        Dimensions whose length varies between cells (``PADDED``): each is
        NaN-padded to its largest length and indexed 0, 1, ... (its
        coordinate labelled as in ``PADDED``; a dimension no cell has is
        skipped).

    The result has no global attributes (each experiment writes its own).
    """
    longest = {d: max(int(p.sizes.get(d, 0)) for p in parts) for d in pad}
    longest = {d: size for d, size in longest.items() if size}
    stacked = []
    for p in parts:
        q = p.drop_vars([d for d in longest if d in p.coords])
        q = q.pad({d: (0, size - p.sizes[d]) for d, size in longest.items()})
        if not set(CELL_DIMS) <= set(q.dims):
            q = q.expand_dims({d: [int(p.attrs[d])] for d in CELL_DIMS})
        q.attrs = {}
        stacked.append(q)
    ds = xr.combine_by_coords(stacked, combine_attrs="drop_conflicts", join="outer")
    ds.attrs = {}
    return ds.assign_coords({d: (d, np.arange(size), {"long_name": PADDED[d]}) for d, size in longest.items()})


def sort_grid(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with every numeric dimension coordinate in increasing order,
    whatever order the config lists the values in (CF: coordinates are
    monotonic). Labels and values move together; boolean flags
    (``normalise``) and names (``penalty``, ``ste``) keep the config's order."""
    dims = [d for d in ds.dims if d in ds.coords and ds[d].dtype.kind in "iuf"]
    unsorted = [d for d in dims if ds.sizes[d] > 1 and not bool((ds[d].diff(d) > 0).all())]
    return ds.sortby(unsorted) if unsorted else ds
