"""What the config gate (``study.config``) checks of the ``basins`` block
beyond the schema. Parse-time light: no numpy."""

from __future__ import annotations

from ..config import sparsity_fits


def problems(config: dict) -> list[str]:
    """What the schema cannot say about an enabled ``basins`` block."""
    b = config.get("basins", {})
    if not b.get("enabled"):
        return []
    problems = sparsity_fits("basins.n", config, b["n"])
    if b["starts"]["random"] + b["starts"]["adversarial"] < 1:
        problems.append(f"basins.starts = {b['starts']!r}: random + adversarial must be >= 1 (no start to train from)")
    lo, hi = b["adversarial_angle"]
    if not lo < hi:
        problems.append(f"basins.adversarial_angle = {b['adversarial_angle']!r}: needs low < high (units of pi)")
    return problems
