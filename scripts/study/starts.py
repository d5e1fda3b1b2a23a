"""Starts near a chosen point: a unit vector at a given angle to w*, in a
random direction orthogonal to it (the two-layer model's starts near its
spurious critical point, the basin study's adversarial starts near -w*)."""

from __future__ import annotations

import numpy as np


def orthogonal_direction(w_star: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A unit vector orthogonal to the unit vector ``w_star`` (n,), uniform
    among them: one standard normal draw of n values from ``rng``, projected."""
    e = rng.standard_normal(w_star.shape[0])
    e -= (e @ w_star) * w_star
    e /= np.linalg.norm(e)
    return e


def at_angle(w_star: np.ndarray, direction: np.ndarray, angle: float) -> np.ndarray:
    """``cos(angle) w* + sin(angle) direction``: at ``angle`` (rad) to the unit
    ``w_star`` when ``direction`` is a unit vector orthogonal to it."""
    return np.cos(angle) * w_star + np.sin(angle) * direction
