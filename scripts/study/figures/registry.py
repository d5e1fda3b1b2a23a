"""Every figure of the study, importable without matplotlib, seaborn or xarray.

The workflow reads this at parse time (``workflow/rules/figures.smk`` makes
one rule per entry) and the package reads it to find a figure's module.
An entry says where the figure goes in the report, which datasets it reads
and which shared modules of this package its module imports: those modules
(with what they import in turn, ``SHARED``), the figure's own module and
``study/style.py`` are its rule's code inputs, so editing one figure
re-renders only that figure and editing a shared module only the figures
that use it. ``tests/unit/test_figures.py`` checks ``uses`` and ``SHARED``
against the imports of the sources, so they cannot go stale.

Adding a figure: a module ``<name>.py`` here with ``draw(datasets, **params)``,
an entry below, a caption ``workflow/report/<name>.rst`` (opening with a bold
title) and a block ``figures.<name>`` (with ``enabled``) in the config schema;
then ``python -m study.docs_tables`` regenerates the catalogue of
``docs/figures.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import figure_params as figure_params  # the figures' parameters: one definition, the config gate's


@dataclass(frozen=True)
class Figure:
    """One figure: report category and subcategory, the datasets it may read
    (narrowed to its ``mode`` parameter where it has one), and the shared
    modules of this package its module imports."""

    category: str
    subcategory: str
    datasets: tuple[str, ...]
    uses: tuple[str, ...]

    def caption(self, name: str) -> str:
        """The caption file, relative to ``workflow/``."""
        return f"report/{name}.rst"


BOTH = ("population", "empirical")

# Shared modules of the package and the shared modules each imports.
SHARED: dict[str, tuple[str, ...]] = {
    "select": (),
    "stats": (),
    "draw": ("select", "stats"),
    "compare": ("draw", "select", "stats"),
}

# The figures, in report order.
FIGURES: dict[str, Figure] = {
    "convergence": Figure("1. Convergence", "Angles to w* versus step", BOTH, ("draw", "select", "stats")),
    "lbeta": Figure("1. Convergence", "Does the relaxed objective decrease?", BOTH, ("draw", "select", "stats")),
    "limit_distance": Figure("2. The limit", "Distance to the predicted limit", BOTH, ("draw", "select", "stats")),
    "limit_prediction": Figure("2. The limit", "Predicted versus measured limit", BOTH, ("draw", "select", "stats")),
    "noise_floor": Figure(
        "2. The limit", "Noise floor versus label noise", ("label_noise",), ("draw", "select", "stats")
    ),
    "sparsity_accuracy": Figure(
        "3. Sparsity and accuracy", "Sparsity and error versus lambda", BOTH, ("draw", "select", "stats")
    ),
    "tradeoff": Figure("3. Sparsity and accuracy", "Error at matched sparsity", BOTH, ("draw", "select", "stats")),
    "support_recovery": Figure("4. Support recovery", "Exact support recovery", BOTH, ("draw", "select", "stats")),
    "multiple_limits": Figure("5. Multiple limits", "Fixed points: theory and runs", BOTH, ("draw", "select", "stats")),
    "phase_diagram": Figure(
        "5. Multiple limits", "Phase diagram on (lambda/c, beta/c): theory and runs", BOTH, ("draw", "select", "stats")
    ),
    "basins": Figure(
        "5. Multiple limits",
        "Basins over many starts: best fixed point, exact support, spurious limits",
        ("basins",),
        ("draw", "select", "stats"),
    ),
    "ste": Figure("6. Straight-through estimators", "Loss per STE", BOTH, ("compare", "select")),
    "scaling": Figure("7. Scaling", "Steps to converge versus n and k", BOTH, ("draw", "select", "stats")),
    "normalisation": Figure("8. Normalisation ablation", "With and without normalisation", BOTH, ("compare", "select")),
    "two_layer": Figure(
        "9. Two-layer model",
        "Straight-through estimators with a trainable second layer",
        ("two_layer",),
        ("draw", "select", "stats"),
    ),
    "digits": Figure("10. Real images", "Digits: accuracy versus filter sparsity", ("digits",), ("select", "stats")),
    "baselines": Figure(
        "11. Baselines",
        "RVSCGD against pruning, proximal CGD and IHT at matched sparsity",
        BOTH,
        ("draw", "select", "stats"),
    ),
}

# What the figure script requires of each dataset it opens (variables,
# dimensions): the Gaussian and two-layer datasets hold traces with a status;
# the digits dataset holds final accuracies per seed; the basin dataset
# holds outcomes per start and setting (no traces).
REQUIRED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "population": (("status",), ("step",)),
    "empirical": (("status",), ("step",)),
    "two_layer": (("status",), ("step",)),
    "label_noise": (("status", "dist_wbar", "floor_mean_sq"), ("step", "label_noise")),
    "basins": (("status", "reached_best", "support_exact", "spurious", "region"), ("start", "setting")),
    "digits": (("acc_u", "acc_w", "sparsity", "u", "acc_relu", "acc_dense"), ("seed", "penalty", "lam", "ste")),
}


def modules(name: str) -> list[str]:
    """The package modules figure ``name`` runs: its own and every shared module
    it imports, directly or through another shared module (sorted)."""
    todo, seen = list(FIGURES[name].uses), set()
    while todo:
        mod = todo.pop()
        if mod not in seen:
            seen.add(mod)
            todo.extend(SHARED[mod])
    return [name, *sorted(seen)]
