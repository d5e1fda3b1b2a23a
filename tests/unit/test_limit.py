"""Unit tests of rvscgd.limit: the fixed points of model.md section 5.

    w-bar = normalise(c w* + beta prox_{(lam/beta) P}(w-bar)),  u-bar = prox(w-bar)

The map T is recomputed here from model.md with the literal constant
c = 1 / (2 k sqrt(2 pi)) (relu); closed forms are solved independently with
scipy's brentq.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar

from rvscgd import coarse_constant, make_runs, make_teacher, predicted_limit, prox, train
from rvscgd.limit import random_starts

N, K, S = 10, 4, 3
C = 1.0 / (2 * K * np.sqrt(2 * np.pi))  # relu constant for K patches


@pytest.fixture(scope="module")
def w_star():
    return make_teacher(N, S, np.random.default_rng(1))


def T_map(w, w_star, c, lam, beta, penalty, a=1.0):
    v = c * w_star + beta * prox(w, lam / beta, penalty, a)
    return v / np.linalg.norm(v)


def fd_jacobian(fun, w, h=1e-7):
    J = np.empty((w.size, w.size))
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = h
        J[:, i] = (fun(w + e) - fun(w - e)) / (2 * h)
    return J


LIMIT_CASES = [
    ("l0", 0.05, 0.02, 1.0),
    ("l0", 0.2, 0.05, 1.0),
    ("l0", 0.5, 0.04, 1.0),
    ("l1", 0.05, 0.05, 1.0),
    ("l1", 0.5, 0.02, 1.0),
    ("l1", 2.0, 0.1, 1.0),
    ("l1", 1.5, 0.5, 1.0),
    ("tl1", 0.05, 0.05, 1.0),
    ("tl1", 0.3, 0.02, 0.3),
    ("tl1", 1.0, 0.1, 3.0),
]


@pytest.mark.parametrize("penalty, lam_over_c, beta, a", LIMIT_CASES)
def test_every_limit_is_a_fixed_point(w_star, penalty, lam_over_c, beta, a):
    lam = lam_over_c * C
    res = predicted_limit(w_star, K, lam, beta, penalty, a=a, starts=24, seed=3)
    assert len(res) >= 1
    for L in res.limits:
        assert abs(np.linalg.norm(L.w_bar) - 1) < 1e-14
        assert np.max(np.abs(T_map(L.w_bar, w_star, C, lam, beta, penalty, a) - L.w_bar)) <= 1e-12
        assert np.array_equal(L.u_bar, prox(L.w_bar, lam / beta, penalty, a))
        assert L.residual <= 1e-12
    # distinct limits are distinct
    for i in range(len(res)):
        for j in range(i):
            assert np.linalg.norm(res.limits[i].w_bar - res.limits[j].w_bar) > 1e-8


@pytest.mark.parametrize("penalty, lam_over_c, beta, a", LIMIT_CASES)
def test_counts_add_up(w_star, penalty, lam_over_c, beta, a):
    res = predicted_limit(w_star, K, lam_over_c * C, beta, penalty, a=a, starts=24, seed=4)
    counts = np.array([L.count for L in res.limits])
    assert res.n_starts == 24
    assert counts.sum() + np.sum(res.start_limit == -1) == 24
    assert np.array_equal(counts, np.bincount(res.start_limit[res.start_limit >= 0], minlength=len(res)))
    assert np.all(np.diff(counts) <= 0)  # most reached first


@pytest.mark.parametrize("penalty, a", [("l0", 1.0), ("l1", 1.0), ("tl1", 0.5)])
def test_lam_zero_gives_teacher(w_star, penalty, a):
    res = predicted_limit(w_star, K, 0.0, 0.05, penalty, a=a, starts=16)
    assert len(res) == 1 and res.limits[0].count == 16
    assert np.max(np.abs(res.limits[0].w_bar - w_star)) < 1e-15
    assert res.limits[0].stable


def _closed_forms(w_star, on, c, beta, shift):
    """Candidates w_i = (c w*_i - shift_i) / (N - beta) on S, c w*_i / N off S,
    one per root N of the norm equation
    f(N) = sum_S (c w*_i - shift_i)^2 / (N - beta)^2 + sum_off (c w*_i)^2 / N^2 - 1 = 0,
    roots found by brentq: one on (beta, inf) (f decreases there from +inf to
    -1) and zero or two on (0, beta) (f is convex there, +inf at both ends;
    bracketed at its minimum)."""
    num_on = c * w_star[on] - shift[on]
    num_off = c * w_star[~on]

    def f(Nn):
        return np.sum(num_on**2) / (Nn - beta) ** 2 + np.sum(num_off**2) / Nn**2 - 1.0

    opts = dict(xtol=1e-16, rtol=1e-15, maxiter=500)
    roots = [brentq(f, beta * (1 + 1e-15), beta + 10.0, **opts)]
    if np.any(num_on) and np.any(num_off):
        m = minimize_scalar(f, bounds=(beta * 1e-9, beta * (1 - 1e-9)), method="bounded", options=dict(xatol=1e-15))
        if m.fun < 0:
            roots += [brentq(f, beta * 1e-12, m.x, **opts), brentq(f, m.x, beta * (1 - 1e-15), **opts)]
    out = []
    for Nn in roots:
        w = np.empty_like(w_star)
        w[on] = num_on / (Nn - beta)
        w[~on] = num_off / Nn
        out.append(w)
    return out


# beta < c here: with beta > c, l0 also has limits whose kept set avoids the
# support of w* (N = beta), see test_neutral_continuum_is_not_stable.
@pytest.mark.parametrize("lam_over_c, beta", [(0.01, 0.02), (0.05, 0.03), (0.1, 0.04), (0.2, 0.04), (0.05, 0.045)])
def test_l0_closed_form(w_star, lam_over_c, beta):
    """l0 with kept set S: w_i = c w*_i / (N - beta) on S, c w*_i / N off S."""
    lam = lam_over_c * C
    res = predicted_limit(w_star, K, lam, beta, "l0", starts=24)
    checked = 0
    for L in res.limits:
        on = L.u_bar != 0
        if not on.any():
            assert np.max(np.abs(L.w_bar - w_star)) < 1e-15  # nothing kept: w-bar = w*
            continue
        cands = _closed_forms(w_star, on, C, beta, np.zeros(N))
        # the self-consistent candidates: S is exactly the entries above sqrt(2 lam / beta)
        cands = [w for w in cands if np.array_equal(np.abs(w) > np.sqrt(2 * lam / beta), on)]
        assert min(np.max(np.abs(L.w_bar - w)) for w in cands) < 1e-10
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize(
    "lam_over_c, beta", [(0.01, 0.02), (0.1, 0.02), (0.3, 0.04), (0.5, 0.1), (1.0, 0.1), (1.5, 0.5)]
)
def test_l1_closed_form(w_star, lam_over_c, beta):
    """l1 with kept set S: w_i = (c w*_i - beta tau sign(w_i)) / (N - beta) on S
    (tau = lam/beta), c w*_i / N off S."""
    lam = lam_over_c * C
    tau = lam / beta
    res = predicted_limit(w_star, K, lam, beta, "l1", starts=24)
    checked = 0
    for L in res.limits:
        on = L.u_bar != 0
        if not on.any():
            assert np.max(np.abs(L.w_bar - w_star)) < 1e-15
            continue
        signs = np.sign(L.w_bar)
        cands = _closed_forms(w_star, on, C, beta, np.where(on, beta * tau * signs, 0.0))
        # self-consistent: S is exactly the entries above tau, with the assumed signs
        cands = [w for w in cands if np.array_equal(np.abs(w) > tau, on) and np.array_equal(np.sign(w[on]), signs[on])]
        assert min(np.max(np.abs(L.w_bar - w)) for w in cands) < 1e-10
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize(
    "penalty, lam_over_c, beta, a",
    [("l0", 0.01, 0.05, 1.0), ("l1", 0.2, 0.05, 1.0), ("tl1", 0.05, 0.05, 1.0), ("tl1", 0.2, 0.03, 0.5)],
)
def test_limit_does_not_depend_on_eta(w_star, penalty, lam_over_c, beta, a):
    """RVSCGD in population mode with two step sizes from the same start ends
    (within 1e-8) at the limit predicted_limit reports for that start."""
    lam = lam_over_c * C
    w0 = random_starts(N, 1, np.random.default_rng(11))[0]
    res = predicted_limit(w_star, K, lam, beta, penalty, a=a, starts=w0[None])
    assert len(res) == 1 and res.start_limit[0] == 0
    w_bar = res.limits[0].w_bar
    runs = make_runs(penalty, lam, beta, [1.0, 4.0], a=a)
    tr = train(w_star, w0, K, runs, "population", max_steps=20_000, tol=1e-14)
    assert list(tr.status_names()) == ["converged", "converged"]
    assert tr.steps_run[0] != tr.steps_run[1]  # two genuinely different trajectories
    for r in range(2):
        assert np.max(np.abs(tr.w_final[r] - w_bar)) < 1e-8


def test_several_limits_each_reached_from_its_starts(w_star):
    """l0 with lam large relative to c: several limits, each a fixed point,
    and the dynamics from a start go to the limit reported for that start."""
    lam, beta = 0.1 * C, 0.04
    starts = random_starts(N, 32, np.random.default_rng(0))
    res = predicted_limit(w_star, K, lam, beta, "l0", starts=starts)
    assert len(res) >= 2
    for j, L in enumerate(res.limits):
        assert np.max(np.abs(T_map(L.w_bar, w_star, C, lam, beta, "l0") - L.w_bar)) <= 1e-12
        start = starts[np.flatnonzero(res.start_limit == j)[0]]
        # eta = 1 / (c + beta) makes one RVSCGD step exactly the map T
        tr = train(w_star, start, K, make_runs("l0", lam, beta, 1.0 / (C + beta)), max_steps=20_000, tol=1e-14)
        assert tr.status_names()[0] == "converged"
        assert np.max(np.abs(tr.w_final[0] - L.w_bar)) < 1e-8


def test_l1_several_limits_when_lam_large(w_star):
    """model.md: l1 has several solutions once lam is large relative to c."""
    lam, beta = 1.5 * C, 0.5
    res = predicted_limit(w_star, K, lam, beta, "l1", starts=32)
    assert len(res) >= 2
    for L in res.limits:
        assert np.max(np.abs(T_map(L.w_bar, w_star, C, lam, beta, "l1") - L.w_bar)) <= 1e-12
    res_small = predicted_limit(w_star, K, 0.05 * C, beta, "l1", starts=32)
    assert len(res_small) == 1


def test_stability_flag_matches_jacobian(w_star):
    """``stable`` agrees with the spectral radius of a finite-difference
    Jacobian of T (for limits not within 1e-3 of marginal)."""
    seen = set()
    for penalty, lam_over_c, beta, a in LIMIT_CASES + [("l0", 0.2, 0.1, 1.0)]:
        lam = lam_over_c * C
        res = predicted_limit(w_star, K, lam, beta, penalty, a=a, starts=24)
        for L in res.limits:
            J = fd_jacobian(lambda v, lam=lam, beta=beta, p=penalty, a=a: T_map(v, w_star, C, lam, beta, p, a), L.w_bar)
            rho = np.max(np.abs(np.linalg.eigvals(J)))
            if abs(rho - 1) > 1e-3:
                assert L.stable == (rho < 1)
                seen.add(L.stable)
    assert seen == {True, False} or seen == {True}


def test_neutral_continuum_is_not_stable(w_star):
    """l0, beta > c, kept set S off the support of w*: N = beta, every w with
    that S and ||w_S||^2 = 1 - (c/beta)^2 is a fixed point (eigenvalue exactly
    1 along the continuum): reported, but deterministically not stable."""
    beta, lam = 0.1, 0.2 * C
    off = np.flatnonzero(w_star == 0)[:2]
    w = C * w_star / beta
    r = np.sqrt(1 - (C / beta) ** 2)
    for phi in (0.6, 0.9):
        w[off] = r * np.array([np.cos(phi), np.sin(phi)])
        assert np.all(np.abs(w[off]) > np.sqrt(2 * lam / beta))
        assert np.max(np.abs(T_map(w, w_star, C, lam, beta, "l0") - w)) < 1e-15  # a fixed point
        res = predicted_limit(w_star, K, lam, beta, "l0", starts=w[None])
        assert len(res) == 1
        assert np.max(np.abs(res.limits[0].w_bar - w)) < 1e-12
        assert res.limits[0].stable is False


def test_identity_ste_is_relu_with_halved_parameters(w_star):
    """c doubles for identity; T is unchanged when c, beta and lam all scale."""
    starts = random_starts(N, 8, np.random.default_rng(2))
    for penalty in ("l0", "l1", "tl1"):
        a = predicted_limit(w_star, K, 0.1 * C, 0.04, penalty, ste="identity", starts=starts)
        b = predicted_limit(w_star, K, 0.05 * C, 0.02, penalty, ste="relu", starts=starts)
        assert len(a) == len(b)
        for La, Lb in zip(a.limits, b.limits, strict=True):
            assert np.max(np.abs(La.w_bar - Lb.w_bar)) < 1e-12


def test_coarse_constant_used_by_solver():
    assert coarse_constant(K) == pytest.approx(C, rel=1e-15)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(lam=-0.1), "^lam"),
        (dict(lam=np.nan), "^lam"),
        (dict(beta=0.0), "^beta"),
        (dict(beta=-1.0), "^beta"),
        (dict(penalty="l2"), "^penalty"),
        (dict(ste="tanh"), "^ste"),
        (dict(ste="clipped_relu"), "ste"),
        (dict(a=0.0), "^a "),
        (dict(k=0), "^k "),
        (dict(starts=np.ones((3, N + 1))), "^starts"),
    ],
)
def test_bad_arguments(w_star, kwargs, name):
    args = dict(w_star=w_star, k=K, lam=0.01, beta=0.05, penalty="l1")
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        predicted_limit(**args)
