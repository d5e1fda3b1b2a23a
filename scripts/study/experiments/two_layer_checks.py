"""What the config gate (``study.config``) checks of the ``two_layer`` block
and its figure beyond the schema. Parse-time light: no numpy."""

from __future__ import annotations

from ..config import cell_block_problems


def problems(config: dict) -> list[str]:
    """An enabled block: dimensions that hold the teacher, at least one start."""
    return cell_block_problems(config, "two_layer", ("random", "near_spurious"))


def _figure_problems(config: dict, name: str, params: dict) -> list[str]:
    """The figure's lam and mode refer to the two_layer block, not the one-layer grid."""
    two = config["two_layer"]
    problems = []
    lam = params.get("lam")
    if lam is not None and not any(lam == g for g in two["grid"]["lam"]):
        problems.append(f"figures.{name}.lam = {lam!r}: not in two_layer.grid.lam = {two['grid']['lam']}")
    if params.get("mode") not in two["modes"]:
        problems.append(f"figures.{name}.mode = {params.get('mode')!r}: not in two_layer.modes = {two['modes']}")
    return problems


# The figures of this experiment's dataset, each with its checks (in place of the one-layer grid's).
FIGURES = {"two_layer": _figure_problems}
