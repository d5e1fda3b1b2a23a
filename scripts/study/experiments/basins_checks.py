"""What the config gate (``study.config``) checks of the ``basins`` block
beyond the schema. Parse-time light: no numpy."""

from __future__ import annotations

from ..config import cell_block_problems


def problems(config: dict) -> list[str]:
    """What the schema cannot say about an enabled ``basins`` block: dimensions
    that hold the teacher, at least one start, an angle interval."""
    problems = cell_block_problems(config, "basins", ("random", "adversarial"))
    if not config.get("basins", {}).get("enabled"):
        return problems
    b = config["basins"]
    lo, hi = b["adversarial_angle"]
    if not lo < hi:
        problems.append(f"basins.adversarial_angle = {b['adversarial_angle']!r}: needs low < high (units of pi)")
    return problems
