"""CF attributes several datasets share: a run's status flags and the long
names of the support metrics (``study.matching.support_metrics``)."""

from __future__ import annotations

import numpy as np

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
