"""CF attributes several datasets share: a run's status flags and the long
names of the support metrics (``study.matching.support_metrics``)."""

from __future__ import annotations

import numpy as np

# Long names of the cell and grid coordinates every dataset of (n, k, seed) cells has.
COORD_LONG_NAMES = {
    "n": "features per patch n",
    "seed": "seed index of the cell",
    "penalty": "sparsity penalty",
    "beta": "splitting parameter beta",
}
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
