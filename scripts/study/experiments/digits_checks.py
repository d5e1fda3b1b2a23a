"""What the config gate (``study.config``) checks of the ``digits`` block
and its figure beyond the schema, and the image sizes those checks and the
experiment share. Parse-time light: no numpy."""

from __future__ import annotations

# The bundled scikit-learn digits: 1797 images of 8 x 8 pixels.
SIDE = 8
IMAGES = 1797


def problems(config: dict) -> list[str]:
    """Semantic checks of the ``digits:`` block (defaults filled in) that the
    schema cannot express, as ``key = value: what is wrong`` lines (zero
    filters and a test fraction outside (0, 1) are the schema's)."""
    d = config["digits"]
    if not d["enabled"]:
        return []
    problems = []
    if SIDE % d["patch"]:
        divisors = [p for p in range(1, SIDE + 1) if SIDE % p == 0]
        problems.append(f"digits.patch = {d['patch']!r}: must divide the image side {SIDE} (one of {divisors})")
    n_test = round(d["test_fraction"] * IMAGES)
    if not 0 < n_test < IMAGES:
        problems.append(
            f"digits.test_fraction = {d['test_fraction']!r}: leaves {n_test} of {IMAGES} images for testing"
        )
    fig = config.get("figures", {}).get("digits", {})
    lam = fig.get("lam")
    if fig.get("enabled") and lam is not None and not any(lam == g for g in d["grid"]["lam"]):
        problems.append(f"figures.digits.lam = {lam!r}: not in digits.grid.lam = {d['grid']['lam']}")
    return problems


# The figure of this experiment's dataset: its lam refers to digits.grid.lam,
# checked in ``problems`` above, so nothing of the one-layer grid applies.
FIGURES = {"digits": lambda config, name, params: []}
