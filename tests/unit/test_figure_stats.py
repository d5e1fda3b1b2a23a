"""Statistics helpers of the figures (study.figures.stats) against independent
computations."""

from __future__ import annotations

import numpy as np
import pytest

from study.figures.stats import wilson_interval


def test_wilson_known_values():
    # k = 0: the interval is [0, z^2 / (n + z^2)] (the "rule of three" relative).
    assert wilson_interval(0, 10) == pytest.approx((0.0, 1.96**2 / (10 + 1.96**2)), abs=1e-15)
    # Symmetric at k = n/2: centred on 1/2 with half-width z sqrt(n/4 + z^2/4) / (n + z^2).
    lo, hi = wilson_interval(50, 100)
    half = 1.96 * np.sqrt(25 + 1.96**2 / 4) / (100 + 1.96**2)
    assert (lo, hi) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-15)


@pytest.mark.parametrize(("k", "n", "z"), [(0, 7, 1.96), (3, 7, 1.96), (7, 7, 1.96), (28, 40, 1.96), (2, 30, 2.576)])
def test_wilson_matches_brute_force(k, n, z):
    """The endpoints bound the set of p with (k/n - p)^2 <= z^2 p (1-p) / n,
    found on a grid of p (step 1e-6)."""
    p = np.linspace(0.0, 1.0, 1_000_001)
    inside = p[(k / n - p) ** 2 <= z * z * p * (1 - p) / n + 1e-15]
    lo, hi = wilson_interval(k, n, z)
    assert lo == pytest.approx(inside.min(), abs=2e-6)
    assert hi == pytest.approx(inside.max(), abs=2e-6)


def test_wilson_arrays_and_bad_input():
    lo, hi = wilson_interval(np.array([0, 5]), np.array([0, 10]))
    assert np.isnan(lo[0]) and np.isnan(hi[0])
    assert (lo[1], hi[1]) == wilson_interval(5, 10)
    with pytest.raises(ValueError, match="k must be"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="z must be"):
        wilson_interval(1, 10, z=0)
