"""Stacking an experiment's cells into one CF dataset: the cells along
(n, k, seed), the per-cell dimensions (features, units) NaN-padded to the
largest, numeric coordinates sorted; lists whose length varies per setting
(the listed fixed points) as a CF contiguous ragged array instead."""

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


def stack_cells(parts: list[xr.Dataset], pad: tuple[str, ...] = ("feature",), consume: bool = False) -> xr.Dataset:
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
    consume : bool
        Empty the list ``parts`` and drop each variable of the cells once it
        is stacked, so that (if the caller holds no other reference to the
        cells) their memory is freed as the result grows: the peak is about
        the cells plus one variable, not the cells plus twice the result.

    The variables are stacked one at a time (the numbers are those of stacking
    the whole datasets at once). The result has no global attributes (each
    experiment writes its own).
    """
    longest = {d: max(int(p.sizes.get(d, 0)) for p in parts) for d in pad}
    longest = {d: size for d, size in longest.items() if size}
    prepared = []
    for p in parts:
        q = p.drop_vars([d for d in longest if d in p.coords])
        if not set(CELL_DIMS) <= set(q.dims):
            q = q.expand_dims({d: [int(p.attrs[d])] for d in CELL_DIMS})
        q.attrs = {}
        prepared.append((q, {d: size - p.sizes[d] for d, size in longest.items()}))
    if consume:
        parts.clear()
    names = list(dict.fromkeys(v for q, _ in prepared for v in q.data_vars))
    stacked = []
    for name in names:
        pieces = []
        for i, (q, extra) in enumerate(prepared):
            if name not in q.data_vars:
                continue
            one = q[[name]]
            widths = {d: (0, e) for d, e in extra.items() if d in one.dims}
            pieces.append(one.pad(widths) if widths else one)
            if consume:  # the cell without it (drop_vars copies no array)
                prepared[i] = (q.drop_vars(name), extra)
        grid = _stack_grid(pieces, name)
        if grid is None:  # cells missing or differing beyond their cell coordinates: xarray aligns them
            grid = xr.combine_by_coords(pieces, combine_attrs="drop_conflicts", join="outer")
        stacked.append(grid)
        del pieces
    ds = xr.merge(stacked, compat="no_conflicts", join="outer", combine_attrs="drop_conflicts")
    ds.attrs = {}
    return ds.assign_coords({d: (d, np.arange(size), {"long_name": PADDED[d]}) for d, size in longest.items()})


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return bool(a == b)


def _stack_grid(pieces: list[xr.Dataset], name: str) -> xr.Dataset | None:
    """Variable ``name`` of the cells (each one cell: ``CELL_DIMS`` of length 1)
    placed into one array over every (n, k, seed), the coordinates increasing:
    what ``xr.combine_by_coords(..., combine_attrs="drop_conflicts")`` gives
    when the cells fill the grid and agree on every other coordinate, without
    its alignment of each piece (most of an aggregate's time). None otherwise."""
    first = pieces[0]
    var = first[name]
    if not set(CELL_DIMS) <= set(var.dims) or any(p.sizes[d] != 1 for p in pieces for d in CELL_DIMS):
        return None
    cells = [tuple(int(p[d].item()) for d in CELL_DIMS) for p in pieces]
    axes = [sorted({c[i] for c in cells}) for i in range(len(CELL_DIMS))]
    if len(set(cells)) != len(cells) or len(cells) != int(np.prod([len(a) for a in axes])):
        return None
    others = {c: first.coords[c] for c in first.coords if c not in CELL_DIMS}
    if any(set(CELL_DIMS) & set(first.coords[c].dims) for c in others):
        return None
    for p in pieces[1:]:
        v = p[name]
        if v.dims != var.dims or v.dtype != var.dtype or set(p.coords) != set(first.coords):
            return None
        if not all(
            p.coords[c].dims == others[c].dims and np.array_equal(p.coords[c].values, others[c].values) for c in others
        ):
            return None
    where = [var.dims.index(d) for d in CELL_DIMS]
    shape = list(var.shape)
    for i, axis in zip(where, axes, strict=True):
        shape[i] = len(axis)
    out = np.empty(shape, dtype=var.dtype)
    for p, cell in zip(pieces, cells, strict=True):
        index = [slice(None)] * len(shape)
        for i, axis, value in zip(where, axes, cell, strict=True):
            index[i] = axis.index(value)
        out[tuple(index)] = p[name].values[tuple(0 if j in where else slice(None) for j in range(len(shape)))]
    attrs = dict(var.attrs)
    for p in pieces[1:]:
        attrs = {k: v for k, v in attrs.items() if k in p[name].attrs and _same(v, p[name].attrs[k])}
    result = xr.Dataset(
        {name: (var.dims, out, attrs)},
        coords={
            **{
                d: (d, np.array(axis, dtype=first[d].dtype), first[d].attrs)
                for d, axis in zip(CELL_DIMS, axes, strict=True)
            },
            **others,
        },
    )
    result[name].encoding = dict(var.encoding)
    return result


def sort_grid(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with every numeric dimension coordinate in increasing order,
    whatever order the config lists the values in (CF: coordinates are
    monotonic). Labels and values move together; boolean flags
    (``normalise``) and names (``penalty``, ``ste``) keep the config's order."""
    dims = [d for d in ds.dims if d in ds.coords and ds[d].dtype.kind in "iuf"]
    unsorted = [d for d in dims if ds.sizes[d] > 1 and not bool((ds[d].diff(d) > 0).all())]
    return ds.sortby(unsorted) if unsorted else ds


def stack_ragged(
    parts: list[xr.Dataset],
    ds: xr.Dataset,
    dim: str,
    sample_dim: str,
    count: str,
    count_dims: tuple[str, ...],
    listed: str,
) -> xr.Dataset:
    """Per-cell lists of varying length as one CF contiguous ragged array
    (CF 1.8 section 9.3.3, "contiguous ragged array representation").

    Parameters
    ----------
    parts : list of xarray.Dataset
        One per cell (cell dims of length 1), each holding only variables along
        ``dim`` (a per-cell padded list: the cell's own longest, not the study's).
    ds : xarray.Dataset
        The stacked dataset (``stack_cells``, ``sort_grid``): its coordinates
        give the order of the instances and of the variables' other dimensions.
    dim, sample_dim : str
        The per-cell list dimension, and the flat dimension that replaces it.
    count, count_dims : str, tuple of str
        The count variable's name and dimensions (the instances: one list
        each; every dimension of ``ds``'s coordinates).
    listed : str
        The variable whose padding entries are -1: the entries before the
        first -1 of each list are its listed elements.

    Returns the count variable (attribute ``sample_dimension``; 0 for an
    instance no cell has) and every variable of ``parts`` along
    ``sample_dim`` (then its other dimensions, in ``ds``'s order): the lists
    of the instances one after another, in C order of ``count_dims``.
    """
    shape = tuple(ds.sizes[d] for d in count_dims)
    counts = np.zeros(shape, dtype=np.int32)
    names = list(parts[0].data_vars) if parts else []
    flat = {v: [] for v in names}
    other = {v: [d for d in ds.dims if d in parts[0][v].dims and d not in count_dims] for v in names}
    cell_dims = [d for d in count_dims if d in CELL_DIMS]
    by_cell = {tuple(p[d].values.item() for d in cell_dims): p for p in parts}
    setting_dims = [d for d in count_dims if d not in CELL_DIMS]
    cell_shape = tuple(ds.sizes[d] for d in cell_dims)
    for pos in np.ndindex(cell_shape):
        key = tuple(ds[d].values[i].item() for d, i in zip(cell_dims, pos, strict=True))
        if key not in by_cell:
            continue
        p = by_cell[key].isel({d: 0 for d in cell_dims})
        p = p.sel({d: ds[d].values for d in p.dims if d != dim and d in ds.coords})
        size = p.sizes[dim]
        n_listed = (p[listed] >= 0).transpose(*setting_dims, dim).values
        first_gap = np.where(n_listed.all(-1), size, np.argmin(n_listed, axis=-1))
        counts[pos] = first_gap
        mask = np.arange(size) < first_gap[..., None]
        for v in names:
            flat[v].append(p[v].transpose(*setting_dims, dim, *other[v]).values[mask])
    out = {
        count: xr.DataArray(
            counts, dims=count_dims, coords={d: ds[d] for d in count_dims}, attrs={"sample_dimension": sample_dim}
        )
    }
    for v in names:
        values = np.concatenate(flat[v]) if flat[v] else np.zeros((0,), dtype=parts[0][v].dtype)
        out[v] = xr.DataArray(values, dims=(sample_dim, *other[v]), attrs=parts[0][v].attrs)
    return xr.Dataset(out)


def unstack_ragged(ds: xr.Dataset, names, count: str, sel: dict | None = None, dim: str = "fixed_point") -> xr.Dataset:
    """The ragged variables ``names`` of ``ds`` (``stack_ragged``) as padded
    arrays over the count variable's dimensions and ``dim`` (the longest list
    of the selection, at least 1), at the selection ``sel`` (``Dataset.sel``
    keys; those of other dimensions are ignored, or applied to a variable's
    own other dimensions). Padding: NaN (floats), -1 (integers).

    ``ds`` is the whole dataset (the offsets of the lists come from every
    count): select after, not before."""
    sel = dict(sel or {})
    # A dimension both the count and the ragged variables have (a dataset concatenated along
    # a new one): each of its values is a ragged array of its own; the selection picks one.
    outer = {d: v for d, v in sel.items() if d in ds[count].dims and any(d in ds[name].dims for name in names)}
    if outer:
        ds = ds[[count, *names]].sel(outer)
        sel = {d: v for d, v in sel.items() if d not in outer}
    c = ds[count]
    sample_dim = c.attrs["sample_dimension"]
    start = np.concatenate([[0], np.cumsum(c.values.ravel())[:-1]]).reshape(c.shape).astype(np.int64)
    start = c.copy(data=start)
    if sel:
        at = {d: v for d, v in sel.items() if d in c.dims}
        c, start = c.sel(at), start.sel(at)
    longest = max(int(c.max()) if c.size else 0, 1)
    j = np.arange(longest)
    valid = j < c.values[..., None]
    index = np.where(valid, start.values[..., None] + j, 0)
    out = {}
    for name in names:
        var = ds[name]
        values = var.values
        if values.shape[0] == 0:  # no listed point anywhere: every entry is padding
            values = np.zeros((1, *values.shape[1:]), dtype=values.dtype)
        picked = values[index]
        fill = np.nan if picked.dtype.kind == "f" else -1
        pad = ~valid.reshape(valid.shape + (1,) * (picked.ndim - valid.ndim))
        picked = np.where(pad, fill, picked).astype(picked.dtype)
        rest = [d for d in var.dims if d != sample_dim]
        da = xr.DataArray(
            picked,
            dims=(*c.dims, dim, *rest),
            coords={**{k: v for k, v in c.coords.items()}, **{d: var[d] for d in rest if d in var.coords}},
            attrs=var.attrs,
        )
        if sel:
            da = da.sel({d: v for d, v in sel.items() if d in rest})
        out[name] = da
    return xr.Dataset(out)
