"""Units of the grid's numbers: the relu constant c(k) lambda and eta are
measured in, and the lambda and step size the algorithm uses for a
configured value (``grid.lam_units``, ``grid.iht_eta``). Plain Python, cheap
to import at parse time."""

from __future__ import annotations

import math


def relu_constant(k: int) -> float:
    """c(k) = 1 / (2 k sqrt(2 pi)): ``rvscgd.coarse_constant(k, "relu")``, bit
    for bit (tests/unit/test_stacking.py), in plain Python for the lambda and
    eta units above, which ``study.grid`` needs at parse time (importing
    ``rvscgd`` would load numpy there). Code that imports ``rvscgd`` anyway
    calls the library's."""
    return 1.0 / (2.0 * k * math.sqrt(2.0 * math.pi))


def contraction_time(config: dict, k: int) -> float:
    """The one-layer grid's contraction time in steps, 1 / (eta c(k)) with eta
    the grid's smallest: a step of size eta contracts a deviation from the
    limit by about eta c(k) (docs/theory.md), so this many steps shrink it by e."""
    return 1.0 / (min(float(e) for e in config["grid"]["eta"]) * relu_constant(k))


def empirical_steps(config: dict, k: int) -> int:
    """Steps of a one-layer empirical run at k: ``empirical.contraction_times``
    contraction times (``contraction_time``), at most ``empirical.max_steps``;
    ``max_steps`` when ``contraction_times`` is null."""
    emp = config["empirical"]
    times = emp.get("contraction_times")
    if times is None:
        return int(emp["max_steps"])
    return min(int(emp["max_steps"]), math.ceil(float(times) * contraction_time(config, k)))


def lam_from_threshold(theta: float, penalty: str, beta: float, a: float = 1.0) -> float:
    """The lambda whose prox threshold (docs/theory.md section 3) is ``theta``:
    l0 ``sqrt(2 lam/beta)``, l1 ``lam/beta``, TL1 ``(a+1) t/a`` for
    ``t <= a^2/(2(a+1))`` (threshold <= a/2), else ``sqrt(2 t (a+1)) - a/2``."""
    theta = float(theta)
    if penalty == "l0":
        t = theta * theta / 2.0
    elif penalty == "l1":
        t = theta
    elif penalty == "tl1":
        t = a * theta / (a + 1.0) if theta <= a / 2.0 else (theta + a / 2.0) ** 2 / (2.0 * (a + 1.0))
    else:
        raise ValueError(f"penalty must be l0, l1 or tl1, got {penalty!r}")
    return float(beta) * t


def lam_effective(config: dict, lam: float, k: int, penalty: str | None = None, beta: float | None = None) -> float:
    """The lambda the algorithm uses: the configured value (``absolute``), that
    times c(k) (``relative_to_c``), or (``threshold``) the lambda whose prox
    threshold for ``penalty`` and ``beta`` is the configured value, so every
    penalty thresholds at the same magnitude."""
    units = config["grid"]["lam_units"]
    if units == "relative_to_c":
        return lam * relu_constant(k)
    if units == "threshold":
        if penalty is None or beta is None:
            raise ValueError("lam_units 'threshold' needs the penalty and beta of the run (penalty=None or beta=None)")
        return lam_from_threshold(lam, penalty, beta, config["grid"].get("tl1_a", 1.0))
    return float(lam)


def eta_effective(config: dict, run: dict, k: int) -> float:
    """The step size the engine uses: the run's eta, except for iht when
    ``grid.iht_eta`` is set (in units of 1/c(k): hard thresholding needs a
    step near 1/c to change the support)."""
    iht_eta = config["grid"].get("iht_eta")
    if run["method"] == "iht" and iht_eta is not None:
        return float(iht_eta) / relu_constant(k)
    return float(run["eta"])


# How the configured lambda is meant, said in `lam`'s long_name: CF wants a UDUNITS
# unit in `units` ("1": dimensionless), and c(k) or a prox threshold is none.
LAM_MEANING = {"absolute": "", "relative_to_c": ", in units of c(k)", "threshold": ", as a prox threshold"}


def lam_attrs(config: dict) -> dict:
    """Attributes of the `lam` coordinate of every dataset (CF-1.8 clean)."""
    units = config["grid"]["lam_units"]
    return {
        "long_name": "penalty weight lambda as configured" + LAM_MEANING[units],
        "lam_units": units,
        "units": "1",
    }
