"""rvscgd: the math of the study (model.md), pure numpy/scipy, no file I/O.

Public names (stable; see each docstring):

- model: ``make_teacher``, ``forward``, ``population_loss``, ``angle``,
  ``coarse_gradient``, ``expected_coarse_gradient``, ``coarse_constant``
- penalties: ``prox``, ``penalty_value``, ``threshold``
- theory: ``theory.error_bound``, ``theory.l1_fixed_point`` (the explicit
  sparsifying operation and its error bound)
- fixed_points: ``fixed_points`` (every fixed point by scalar analysis; returns
  ``FixedPoints`` of ``FixedPoint``, with ``continuum``)
- limit: ``predicted_limit`` (returns a ``LimitSearch`` of ``Limit``)
- engine: ``make_runs``, ``train`` (returns a ``TrainResult``); the baselines
  ``METHODS`` (per-run ``method``), ``prune_to``, ``keep_largest``
- rates: ``linear_rate``, ``predicted_steps`` (the linear rate near a fixed point)
- noise (also as ``theory.noise_floor``): ``noise_floor`` (the predicted
  stationary spread of an empirical run about its fixed point; returns a
  ``NoiseFloor``, with ``distance_quantile``), ``gradient_covariance`` (of one
  minibatch coarse gradient)
- digits (``from rvscgd import digits``): the classifier on image patches of
  issue 12 (``patches``, ``make_digit_runs``, ``train``, ``accuracy``, ...)
"""

import importlib

from .engine import (
    GRADIENT_MODES,
    METHODS,
    SAMPLERS,
    STATUS,
    Runs,
    TrainResult,
    keep_largest,
    log_record_steps,
    make_runs,
    prune_to,
    train,
)
from .fixed_points import Continuum, FixedPoint, FixedPoints, fixed_points, nearest_listed, orbit_distances
from .limit import Limit, LimitSearch, predicted_limit
from .model import (
    STES,
    angle,
    coarse_constant,
    coarse_gradient,
    expected_coarse_gradient,
    forward,
    make_teacher,
    population_loss,
)
from .penalties import PENALTIES, penalty_value, prox, threshold
from .rates import linear_rate, predicted_steps

__version__ = "0.1.0"

# Loaded on first use (``rvscgd.theory``, ``from rvscgd import digits``), not
# with the package: a job that trains never runs them, so editing them reruns
# only the jobs and figures that use them (study.sources).
_SUBMODULES = ("digits", "noise", "theory")
# Names of those submodules offered at the package level, loaded on first use too.
_LAZY_NAMES = {"NoiseFloor": "noise", "gradient_covariance": "noise", "noise_floor": "noise"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "GRADIENT_MODES",
    "METHODS",
    "PENALTIES",
    "SAMPLERS",
    "STATUS",
    "STES",
    "Continuum",
    "FixedPoint",
    "FixedPoints",
    "Limit",
    "LimitSearch",
    "NoiseFloor",
    "Runs",
    "TrainResult",
    "angle",
    "coarse_constant",
    "coarse_gradient",
    "expected_coarse_gradient",
    "fixed_points",
    "gradient_covariance",
    "forward",
    "keep_largest",
    "linear_rate",
    "nearest_listed",
    "orbit_distances",
    "log_record_steps",
    "prune_to",
    "make_runs",
    "make_teacher",
    "noise_floor",
    "penalty_value",
    "predicted_steps",
    "population_loss",
    "predicted_limit",
    "prox",
    "theory",
    "threshold",
    "train",
]
