"""The linear rate of the expected dynamics near a fixed point (rvscgd.rates),
checked against the engine: the spectral radius of one population step by
finite differences, and the measured decay of ||w^t - w_bar||."""

from __future__ import annotations

import numpy as np
import pytest

import rvscgd


def _limit_of_run(penalty, lam_rel, n=10, k=3, beta=0.04, eta=1.0):
    rng = np.random.default_rng(3)
    w_star = rvscgd.make_teacher(n, 3, rng, 0.2)
    w0 = rng.standard_normal(n)
    c = rvscgd.coarse_constant(k)
    runs = rvscgd.make_runs(penalty, lam_rel * c, beta, eta)
    # the limit this run reaches (to machine precision after 3000 steps)
    w_bar = rvscgd.train(w_star, w0, k, runs, "population", max_steps=3000, tol=0.0).w_final[0]
    return w_star, w0, k, c, runs, w_bar, beta, eta


@pytest.mark.parametrize("penalty,lam", [("l1", 0.0), ("l1", 0.05), ("l0", 0.05), ("tl1", 0.05), ("l1", 0.5)])
def test_linear_rate_is_the_spectral_radius_of_one_step(penalty, lam):
    """linear_rate equals the spectral radius of the Jacobian of one population
    step of the engine at the limit, by central differences on the tangent space."""
    w_star, _, k, c, runs, w_bar, beta, eta = _limit_of_run(penalty, lam)
    n = w_bar.size
    q, _ = np.linalg.qr(np.column_stack([w_bar, np.eye(n)]))
    Q = q[:, 1:n]
    h = 1e-6

    def step(w):
        return rvscgd.train(w_star, w, k, runs, "population", max_steps=1, tol=0.0).w_final[0]

    J = np.column_stack([Q.T @ (step(w_bar + h * Q[:, i]) - step(w_bar - h * Q[:, i])) / (2 * h) for i in range(n - 1)])
    expected = np.max(np.abs(np.linalg.eigvals(J)))
    assert rvscgd.linear_rate(w_bar, w_star, c, lam * c, beta, eta, penalty) == pytest.approx(expected, abs=1e-6)
    if lam == 0:
        assert expected == pytest.approx(1 - eta * c, abs=1e-6)


@pytest.mark.parametrize("penalty,lam", [("l1", 0.0), ("l1", 0.05)])
def test_linear_rate_matches_the_population_dynamics(penalty, lam):
    """Where the slowest mode dominates, ||w^t - w_bar|| shrinks by the predicted rate per step."""
    w_star, w0, k, c, runs, w_bar, beta, eta = _limit_of_run(penalty, lam)
    rho = rvscgd.linear_rate(w_bar, w_star, c, lam * c, beta, eta, penalty)
    steps = np.arange(3001)
    d = rvscgd.train(
        w_star, w0, k, runs, "population", max_steps=3000, tol=0.0, record_steps=steps, w_ref=w_bar[None, :]
    ).dist_ref[0]
    window = np.flatnonzero((d > 1e-10) & (d < 1e-4))
    assert window.size > 20
    measured = np.exp(np.polyfit(window, np.log(d[window]), 1)[0])
    assert measured == pytest.approx(rho, abs=2e-4)
