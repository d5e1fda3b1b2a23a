"""CF attributes several datasets share: a run's status flags, the long
names of the traces, of the support metrics (``study.matching.support_metrics``)
and of the cell and grid coordinates."""

from __future__ import annotations

import numpy as np

from .units import lam_attrs

# Long names of the cell and grid coordinates every dataset of (n, k, seed) cells has.
COORD_LONG_NAMES = {
    "n": "features per patch n",
    "seed": "seed index of the cell",
    "penalty": "sparsity penalty",
    "beta": "splitting parameter beta",
}
# (long name, units) of the traces every model's runs record.
TRACE_ANGLES = {
    "angle_w": ("angle between w^t and w*", "rad"),
    "angle_u": ("angle between u^t = prox(w^t) and w*", "rad"),
}
TRACE_SPARSITY = ("fraction of zero entries of u^t", "1")
SUPPORT_LONG_NAMES = {
    "support_precision": "support precision of u_final w.r.t. w*",
    "support_recall": "support recall of u_final w.r.t. w*",
    "support_exact": "1 if supp(u_final) == supp(w*)",
}


def status_attrs(names, long_name: str = "how the run ended") -> dict:
    """Attributes of a ``status`` variable whose codes 0, 1, ... are ``names`` (CF flags)."""
    return {
        "long_name": long_name,
        "flag_values": np.arange(len(names), dtype=np.int8),
        "flag_meanings": " ".join(names),
    }


def set_long_names(ds, long_names: dict, **attrs) -> None:
    """Give each variable or coordinate of ``ds`` named in ``long_names`` its
    long name (and ``attrs``, e.g. ``units``), in place."""
    for name, long in long_names.items():
        ds[name].attrs.update(long_name=long, **attrs)


def label_cell_grid(ds, config: dict, grid_long_names: dict, outcomes: dict) -> None:
    """Label a dataset of (n, k, seed) cells over a run grid, in place: the
    cell coordinates (``COORD_LONG_NAMES``) and ``grid_long_names`` (the
    dataset's own words for k, eta, ste, ...), the ``lam`` attributes of the
    config's units (``study.units.lam_attrs``), and the long names of
    ``outcomes``, dimensionless."""
    set_long_names(ds, {**COORD_LONG_NAMES, **grid_long_names})
    ds["lam"].attrs.update(lam_attrs(config))
    set_long_names(ds, outcomes, units="1")
