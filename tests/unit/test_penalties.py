"""Unit tests of rvscgd.penalties (model.md section 3).

Every prox is checked against a brute-force argmin of ``t P(u) + 1/2 (u - x)^2``
over a fine grid of u that contains 0 exactly. Tolerance: the grid spacing h.
Why h suffices: away from the threshold (points closer than ``GAP`` to it are
skipped, there two minimisers nearly tie) the global minimiser u* is unique
and the objective is unimodal around it, so the grid argmin is one of the two
grid points bracketing u* (or u* itself when it is 0, a grid point): at most h
away.
"""

from __future__ import annotations

import numpy as np
import pytest

from rvscgd import penalty_value, prox, threshold
from rvscgd.penalties import PENALTIES, prox_derivative, tl1_threshold

H = 2e-4  # grid spacing of the brute force
U_GRID = H * np.arange(-27_500, 27_501)  # [-5.5, 5.5], contains 0 exactly
GAP = 2e-3  # skip x within this distance of the threshold


def penalty_scalar(u, penalty, a):
    """P(u) entrywise, written from model.md (independently of penalty_value)."""
    au = np.abs(u)
    if penalty == "l0":
        return (au != 0).astype(float)
    if penalty == "l1":
        return au
    return (a + 1.0) * au / (a + au)


def brute_prox(x, t, penalty, a):
    out = np.empty_like(x)
    pu = penalty_scalar(U_GRID, penalty, a)
    for lo in range(0, x.size, 40):
        xs = x[lo : lo + 40]
        obj = t * pu[None, :] + 0.5 * (U_GRID[None, :] - xs[:, None]) ** 2
        out[lo : lo + 40] = U_GRID[np.argmin(obj, axis=1)]
    return out


def tl1_boundary(a):
    return a * a / (2.0 * (a + 1.0))


# (penalty, t, a): TL1 in both regimes, including just either side of the
# regime boundary t = a^2 / (2 (a+1)).
CASES = [("l1", t, 1.0) for t in (0.0, 0.05, 0.4, 1.7)]
CASES += [("l0", t, 1.0) for t in (0.0, 0.02, 0.3, 2.0)]
for _a in (0.25, 1.0, 3.0):
    _b = tl1_boundary(_a)
    CASES += [("tl1", t, _a) for t in (0.3 * _b, 0.97 * _b, 1.03 * _b, 4.0 * _b, 1.2)]


@pytest.mark.parametrize("penalty, t, a", CASES)
def test_prox_matches_brute_force(penalty, t, a):
    x = np.linspace(-5.0, 5.0, 601) + 1e-3 * np.sqrt(2.0)  # off the grid points
    thr = float(threshold(t, penalty, a))
    x = x[np.abs(np.abs(x) - thr) > GAP]
    got = prox(x, t, penalty, a)
    ref = brute_prox(x, t, penalty, a)
    assert np.max(np.abs(got - ref)) <= H * (1 + 1e-9)
    # both sides of the threshold are exercised
    assert np.any(got == 0) or thr == 0
    assert np.any(got != 0)
    if penalty == "tl1":
        small = t <= tl1_boundary(a)
        assert thr == pytest.approx((a + 1) * t / a if small else np.sqrt(2 * t * (a + 1)) - a / 2, rel=1e-15)


@pytest.mark.parametrize("penalty, t, a", [c for c in CASES if c[1] > 0])
def test_threshold_separates_zero_and_nonzero(penalty, t, a):
    """prox is exactly 0 at and below ``threshold``, nonzero just above it, odd
    in x, and shrinks (0 <= prox(x)/x <= 1)."""
    thr = float(threshold(t, penalty, a))
    below = thr * np.array([0.0, 0.5, 1.0 - 1e-9, 1.0])
    above = thr * (1.0 + np.array([1e-7, 1e-3, 0.5, 3.0]))
    for sgn in (1.0, -1.0):
        assert np.all(prox(sgn * below, t, penalty, a) == 0)
        assert np.all(prox(sgn * above, t, penalty, a) != 0)
    x = np.linspace(-6, 6, 1201)
    p = prox(x, t, penalty, a)
    assert np.array_equal(prox(-x, t, penalty, a), -p)
    assert np.all(p * x >= 0) and np.all(np.abs(p) <= np.abs(x))


@pytest.mark.parametrize("a", [0.25, 1.0, 3.0])
def test_tl1_threshold_is_a_tie_in_the_jump_regime(a):
    """Above the regime boundary the prox jumps at t*: there u = 0 and the
    nonzero limit of the prox from above have the same objective (the two
    minimisers tie), so t* is exactly the point where the argmin switches.
    In the continuous regime the prox tends to 0 at t*."""
    for t in (1.5 * tl1_boundary(a), 5.0 * tl1_boundary(a)):
        thr = float(tl1_threshold(t, a))
        u_plus = float(prox(thr * (1 + 1e-12), t, "tl1", a))
        assert u_plus > 1e-3  # a real jump

        def obj(u, x=thr, t=t):
            return t * penalty_scalar(np.array(u), "tl1", a) + 0.5 * (u - x) ** 2

        assert abs(float(obj(u_plus)) - float(obj(0.0))) < 1e-9
    t = 0.5 * tl1_boundary(a)
    thr = float(tl1_threshold(t, a))
    assert float(prox(thr * (1 + 1e-9), t, "tl1", a)) < 1e-6


@pytest.mark.parametrize("penalty", PENALTIES)
def test_prox_with_zero_t_is_identity(penalty):
    """prox_{0 P} = identity, exactly (lam = 0 is plain CGD in the engine)."""
    x = np.array([0.0, 1e-300, -1e-20, 1e-10, -3e-5, 0.3, -2.0, 7.5])
    assert np.array_equal(prox(x, 0.0, penalty, 0.7), x)


def test_prox_closed_forms_l0_l1():
    x = np.array([-3.0, -1.0, -0.5, 0.0, 0.2, 0.9, 2.5])
    t = 0.6
    assert np.array_equal(prox(x, t, "l1"), np.sign(x) * np.maximum(np.abs(x) - t, 0.0))
    assert np.array_equal(prox(x, t, "l0"), np.where(np.abs(x) > np.sqrt(2 * t), x, 0.0))
    assert float(threshold(t, "l1")) == t
    assert float(threshold(t, "l0")) == np.sqrt(2 * t)


def test_prox_broadcasts_per_column_t_and_a():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 4)) * 2
    t = np.array([0.0, 0.1, 0.5, 1.3])
    a = np.array([0.3, 1.0, 2.0, 5.0])
    for penalty in PENALTIES:
        got = prox(X, t, penalty, a)
        for r in range(4):
            assert np.array_equal(got[:, r], prox(X[:, r], t[r], penalty, a[r]))


@pytest.mark.parametrize("t, a", [(0.05, 1.0), (1.0, 1.0), (0.2, 3.0), (0.01, 0.2)])
def test_tl1_prox_derivative_matches_finite_differences(t, a):
    thr = float(tl1_threshold(t, a))
    x = np.linspace(-4, 4, 801) + 1e-4
    x = x[np.abs(np.abs(x) - thr) > 1e-2]
    h = 1e-6
    fd = (prox(x + h, t, "tl1", a) - prox(x - h, t, "tl1", a)) / (2 * h)
    fd2 = (prox(x + 2 * h, t, "tl1", a) - prox(x - 2 * h, t, "tl1", a)) / (4 * h)
    err = np.abs(fd2 - fd) + 1e-15 / h
    d = prox_derivative(x, t, "tl1", a)
    assert np.all(np.abs(d - fd) <= 4 * err + 1e-12)
    assert np.all(d[np.abs(x) <= thr] == 0)
    for penalty in ("l0", "l1"):
        assert np.array_equal(prox_derivative(x, t, penalty), (prox(x, t, penalty) != 0).astype(float))


def test_penalty_value():
    u = np.array([[0.0, 1.5], [-2.0, 0.0], [0.5, -0.25], [0.0, 0.0]])
    assert np.array_equal(penalty_value(u, "l0"), [2.0, 2.0])
    assert np.allclose(penalty_value(u, "l1"), [2.5, 1.75], rtol=1e-15, atol=0)
    for a in (0.5, 1.0, 4.0):
        ref = [sum((a + 1) * abs(v) / (a + abs(v)) for v in u[:, r]) for r in range(2)]
        assert np.allclose(penalty_value(u, "tl1", a), ref, rtol=1e-15, atol=0)
    # TL1 interpolates between l0 (a -> 0) and l1 (a -> inf)
    assert np.allclose(penalty_value(u, "tl1", 1e-12), penalty_value(u, "l0"), rtol=1e-9)
    assert np.allclose(penalty_value(u, "tl1", 1e12), penalty_value(u, "l1"), rtol=1e-9)
    assert float(penalty_value(u[:, 0], "l0")) == 2.0


def test_prox_is_the_argmin_of_its_objective_on_random_points():
    """A second, grid-free check: the prox value's objective is no larger than
    that of 0, x, and 2000 random candidates."""
    rng = np.random.default_rng(1)
    for penalty in PENALTIES:
        for _ in range(20):
            t, a, x = rng.uniform(0.01, 2), rng.uniform(0.1, 4), rng.uniform(-4, 4)
            p = float(prox(x, t, penalty, a))
            cand = np.concatenate([[0.0, x], rng.uniform(-abs(x) - 1, abs(x) + 1, 2000)])

            def obj(u, t=t, a=a, x=x, penalty=penalty):
                return t * penalty_scalar(np.asarray(u), penalty, a) + 0.5 * (u - x) ** 2

            assert float(obj(p)) <= np.min(obj(cand)) + 1e-12


def test_bad_arguments():
    x = np.ones(3)
    with pytest.raises(ValueError, match="penalty"):
        prox(x, 0.1, "l2")
    with pytest.raises(ValueError, match="penalty"):
        penalty_value(x, "scad")
    with pytest.raises(ValueError, match="penalty"):
        threshold(0.1, "elastic")
    with pytest.raises(ValueError, match="^t must"):
        prox(x, -0.1, "l1")
    with pytest.raises(ValueError, match="^a "):
        prox(x, 0.1, "tl1", a=0.0)
    with pytest.raises(ValueError, match="^a "):
        penalty_value(x, "tl1", a=-1.0)
    with pytest.raises(ValueError, match="^t must"):
        threshold(-0.1, "l0")
    with pytest.raises(ValueError, match="^a "):
        threshold(0.1, "tl1", a=0.0)
