"""Choosing what a figure shows: the slice of the dimensions it does not show,
the lambdas, the penalties, the modes.

A figure names the dimensions it shows (``shown``); ``resolve`` fixes every
other dimension of the dataset: to the figure's ``slice`` value where the
config gives one (checked against the grid), else by ``default_value``. A
dimension added to the datasets later (a baseline ``method``, a
``label_noise``) is fixed to its first value until a figure shows it, so it
never breaks a figure.
"""

from __future__ import annotations

import math

from study.stacking import unstack_ragged

MODES = ("population", "empirical")

# Dimensions a figure never fixes: seeds are averaged over, steps and
# features are the axes of traces and weight vectors, `limit`, `fixed_point` and `listed_point` index the
# fixed points of a search.
ALWAYS_SHOWN = ("seed", "step", "feature", "limit", "fixed_point", "listed_point")

# The slice keys of the config schema (figures.slice).
SLICE_DIMS = ("n", "k", "beta", "eta", "ste", "normalise", "batch_size")


def default_value(ds, dim: str):
    """The value a figure shows along ``dim`` when its slice leaves it open:
    the largest n and batch size, the smallest k, relu, normalise=True and
    method rvscgd when on the grid, otherwise the first value of the coordinate."""
    values = ds[dim].values.tolist()
    if dim in ("n", "batch_size"):
        return max(values)
    if dim == "k":
        return min(values)
    if dim == "ste" and "relu" in values:
        return "relu"
    if dim == "normalise" and True in values:
        return True
    if dim == "method" and "rvscgd" in values:
        return "rvscgd"
    return values[0]


def resolve(ds, slice: dict | None, shown=("penalty", "lam")) -> dict:  # noqa: A002 - the config's name
    """``{dim: value}`` for every dimension of ``ds`` except ``shown`` (and
    ``ALWAYS_SHOWN``): the slice's value (checked against the grid) or
    ``default_value``. ``ds.sel(resolve(...))`` leaves the shown dimensions."""
    slice = slice or {}  # noqa: A001
    unknown = set(slice) - set(SLICE_DIMS) - set(ds.dims)
    if unknown:
        raise ValueError(f"slice has unknown keys {sorted(unknown)}; allowed: {SLICE_DIMS}")
    out = {}
    for dim in ds.dims:
        if dim in shown or dim in ALWAYS_SHOWN or dim not in ds.coords:
            continue
        value = slice.get(dim)
        values = ds[dim].values.tolist()
        if value is None:
            out[dim] = default_value(ds, dim)
            continue
        match = [v for v in values if same(v, value)]
        if not match:
            raise ValueError(f"slice {dim}={value!r} is not on the grid of the {ds.attrs.get('mode')} data: {values}")
        out[dim] = match[0]
    order = {d: i for i, d in enumerate(SLICE_DIMS)}  # captions list the slice in the config's order
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


def fix_new_dims(ds, known):
    """``ds`` with every dimension outside ``known`` (and ``ALWAYS_SHOWN``)
    fixed to its default: for figures that pool over the whole grid."""
    extra = [d for d in ds.dims if d not in known and d not in ALWAYS_SHOWN and d in ds.coords]
    return ds.sel({d: default_value(ds, d) for d in extra})


# The grid dimensions of the study's datasets, as a figure that pools over them knows them.
GRID_DIMS = ("n", "k", "penalty", "lam", "beta", "eta", "ste", "normalise", "batch_size")


def same(a, b) -> bool:
    """Grid values equal: exactly for strings and booleans, to rounding for numbers."""
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)


def lam_values(ds, lam=None, nonzero: bool = False) -> list[float]:
    """The lambdas to show: all configured (``None``), or those given (checked)."""
    values = [float(x) for x in ds["lam"].values]
    if lam is None:
        chosen = values
    else:
        wanted = lam if isinstance(lam, list | tuple) else [lam]
        chosen = []
        for w in wanted:
            match = [v for v in values if same(v, w)]
            if not match:
                raise ValueError(f"lam={w!r} is not on the grid: {values}")
            chosen.append(match[0])
    return [x for x in chosen if x != 0] if nonzero else chosen


def middle_lam(ds, lam=None) -> float:
    """One lambda: the one given, or the middle of the nonzero configured ones."""
    if lam is not None:
        return lam_values(ds, lam)[0]
    nonzero = sorted(x for x in lam_values(ds) if x != 0)
    if not nonzero:
        return 0.0
    return nonzero[len(nonzero) // 2]


def lam_units(ds) -> str:
    return ds.attrs.get("lam_units", ds["lam"].attrs.get("lam_units", "relative_to_c"))


def penalties(ds, wanted=None) -> list[str]:
    """The penalties to show: all on the grid (``None``), or those given (checked)."""
    grid = [str(p) for p in ds["penalty"].values]
    if wanted is None:
        return grid
    for p in wanted:
        if p not in grid:
            raise ValueError(f"penalties: {p!r} is not on the grid {grid}")
    return list(wanted)


def modes(datasets: dict, need: tuple = MODES) -> list[str]:
    """The modes of ``need`` that ``datasets`` holds, in study order; an error if none."""
    out = [m for m in MODES if m in need and datasets.get(m) is not None]
    if not out:
        raise ValueError(f"no dataset of mode {need} given (have {sorted(datasets)})")
    return out


def one_mode(datasets: dict, mode: str | None):
    """``(mode, dataset)`` of a figure drawn from one mode: ``mode`` or the first present."""
    m = modes(datasets, (mode,) if mode else MODES)[0]
    return m, datasets[m]


def limit_stes(ds) -> list[str]:
    """The STEs with a predicted limit (a constant c): all but clipped_relu."""
    return [s for s in ds["ste"].values.tolist() if s != "clipped_relu"]


def need_limit_slice(sel: dict):
    if sel.get("ste") == "clipped_relu":
        raise ValueError("slice ste='clipped_relu' has no predicted limit (no constant c): choose relu or identity")


def series_columns(ds, lam, wanted_penalties, cgd_label: str, label):
    """Columns of the STE, ablation and scaling figures: plain CGD (if lambda = 0
    is on the grid), then each penalty at one lambda. ``label(penalty, lam)``
    makes a column title. Returns ``[(penalty, lam, title)]``."""
    x = middle_lam(ds, lam)
    pens = penalties(ds, wanted_penalties)
    cols = []
    if 0.0 in lam_values(ds):
        cols.append((pens[0], 0.0, cgd_label))
    if x != 0:
        cols += [(p, x, label(p, x)) for p in pens]
    return cols


def fixed_points(ds, names, sel: dict | None = None):
    """The listed fixed points' variables ``names`` (``fp_*``, a CF contiguous
    ragged array along ``listed_point`` counted by ``fp_count``; docs/datasets.md)
    as a dataset of padded arrays over (n, k, seed, penalty, lam, beta, eta,
    ste, fixed_point) at the selection ``sel`` (a ``resolve`` dict), ``fixed_point``
    as long as the selection's longest list; padding NaN (floats) or -1
    (integers). ``ds`` is the whole dataset (the lists' offsets need every
    count): pass the selection here rather than selecting first."""
    return unstack_ragged(ds, names, "fp_count", sel=sel)
