"""The relaxed objective L_beta recorded by the engine (extra["lbeta"]) and the
datasets' rise counts, recomputed here from model.md's formula."""

from __future__ import annotations

import numpy as np

from rvscgd import coarse_constant, make_runs, make_teacher, penalty_value, population_loss, prox, train


def _lbeta(w, w_star, k, lam, beta, penalty, a=1.0):
    w = w / np.linalg.norm(w)
    u = prox(w, lam / beta, penalty, a)
    return float(population_loss(w, w_star, k) + lam * penalty_value(u, penalty, a) + 0.5 * beta * np.sum((w - u) ** 2))


def test_lbeta_trace_matches_the_formula():
    k, n = 4, 12
    c = coarse_constant(k)
    w_star = make_teacher(n, 3, np.random.default_rng(0), min_abs=0.2)
    w0 = np.random.default_rng(1).standard_normal(n)
    pens = ["l0", "l1", "tl1"]
    runs = make_runs(pens, 0.05 * c, 0.02, 1.0, a=0.7)
    tr = train(w_star, w0, k, runs, "population", max_steps=4000, tol=1e-13)
    lb = tr.extra["lbeta"]
    assert lb.shape == tr.angle_w.shape
    for r, p in enumerate(pens):
        assert abs(lb[r, 0] - _lbeta(w0, w_star, k, 0.05 * c, 0.02, p, 0.7)) < 1e-15
        assert tr.status_names()[r] == "converged"
        assert abs(lb[r, -1] - _lbeta(tr.w_final[r], w_star, k, 0.05 * c, 0.02, p, 0.7)) < 1e-15


def test_lbeta_rises_in_some_l1_runs():
    """model.md: L_beta need not decrease. Over 20 starts of l1 at n = 32, k = 4,
    lam = 0.02 c, beta = 0.05, every step recorded, it rises in at least one."""
    k, n = 4, 32
    c = coarse_constant(k)
    w_star = make_teacher(n, 4, np.random.default_rng(0), min_abs=0.2)
    runs = make_runs("l1", 0.02 * c, 0.05, 1.0)
    rose = 0
    for s in range(20):
        w0 = np.random.default_rng(100 + s).standard_normal(n)
        tr = train(w_star, w0, k, runs, "population", max_steps=1500, record_steps=np.arange(1501))
        rose += bool(np.nanmax(np.diff(tr.extra["lbeta"][0])) > 1e-15)
    assert rose >= 1
