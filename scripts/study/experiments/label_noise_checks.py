"""What the config gate (``study.config``) checks of the ``label_noise`` block
and its figure beyond the schema. Parse-time light: no numpy."""

from __future__ import annotations

from ..config import sparsity_fits

# What the slice takes from the one-layer `empirical` block: its step budget,
# stopping and sampling speed knobs. Its sampling (fresh) and batch sizes are
# its own; these keys alone are its cells' dependency on that block.
EMPIRICAL_KEYS = ("max_steps", "contraction_times", "tol", "precision", "sampler")


def problems(config: dict) -> list[str]:
    """An enabled block: dimensions that hold the teacher."""
    block = config.get("label_noise", {})
    return sparsity_fits("label_noise.n", config, block["n"]) if block.get("enabled") else []


def _figure_problems(config: dict, name: str, params: dict) -> list[str]:
    """The figure's lam refers to the label_noise block, not the one-layer grid (the block is its slice).
    With the block off the figure has no dataset and is not made (as every such figure)."""
    block = config["label_noise"]
    if not block["enabled"]:
        return []
    problems = []
    lam = params.get("lam")
    if lam is not None and not any(lam == g for g in block["grid"]["lam"]):
        problems.append(f"figures.{name}.lam = {lam!r}: not in label_noise.grid.lam = {block['grid']['lam']}")
    return problems


# The figures of this experiment's dataset, each with its checks (in place of the one-layer grid's).
FIGURES = {"noise_floor": _figure_problems}
