"""Unit tests of rvscgd.theory: the explicit l1 limit and the error bound,
against the exact fixed points of rvscgd.fixed_points on random cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rvscgd import angle, coarse_constant, fixed_points, make_teacher, prox
from rvscgd.theory import error_bound, l1_angle, l1_fixed_point, l1_range

K = 4
C = coarse_constant(K)


def _random_cases(penalty, count, seed):
    """Random (w*, s, lam_c, beta_c, a) where the bound's condition holds."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        n = int(rng.integers(6, 40))
        s = int(rng.integers(1, min(n, 8) + 1))
        w_star = make_teacher(n, s, rng, min_abs=float(rng.uniform(0.05, 0.6)))
        beta_c = float(np.exp(rng.uniform(np.log(0.05), np.log(3.0))))
        lam_c = float(np.exp(rng.uniform(np.log(1e-4), np.log(0.5))))
        a = float(np.exp(rng.uniform(np.log(0.3), np.log(3.0))))
        w_min = float(np.min(np.abs(w_star[w_star != 0])))
        if error_bound(s, lam_c, beta_c, w_min, penalty, a).valid:
            out.append((w_star, s, lam_c, beta_c, a, w_min))
    return out


@pytest.mark.parametrize("penalty", ["l0", "l1", "tl1"])
def test_bound_is_never_below_the_exact_value(penalty):
    """60 random cases: every fixed point with N > beta keeps the support of w*
    and its angle and distance are within the bound (to rounding)."""
    checked = 0
    for w_star, s, lam_c, beta_c, a, w_min in _random_cases(penalty, 60, seed={"l0": 1, "l1": 2, "tl1": 3}[penalty]):
        bound = error_bound(s, lam_c, beta_c, w_min, penalty, a)
        fp = fixed_points(w_star, K, lam_c * C, beta_c * C, penalty, a=a)
        above = [p for p in fp if p.N > beta_c * C]
        assert above, "a fixed point with N > beta always exists under the condition"
        if bound.all_fixed_points:
            assert len(above) == len(fp) and not fp.continuum
        for p in above:
            assert np.array_equal(p.u_bar != 0, w_star != 0)
            theta = float(angle(p.u_bar, w_star))
            dist = float(np.linalg.norm(p.u_bar / np.linalg.norm(p.u_bar) - w_star))
            assert theta <= bound.angle + 1e-12
            assert dist <= bound.distance + 1e-12
            checked += 1
    assert checked >= 60


def test_l0_bound_is_exact():
    """l0: under the condition the limit is w* itself, angle 0 = the bound."""
    for w_star, s, lam_c, beta_c, _, w_min in _random_cases("l0", 20, seed=4):
        fp = fixed_points(w_star, K, lam_c * C, beta_c * C, "l0")
        for p in fp:
            if p.N > beta_c * C:
                assert np.max(np.abs(p.u_bar - w_star)) < 1e-14
        assert error_bound(s, lam_c, beta_c, w_min, "l0").angle == 0.0


def _teacher_with_l1(n, s, L, w_min):
    """Unit s-sparse w* with ||w*||_1 = L: s-1 entries y and one z (y, z >= w_min)."""
    # (s-1) y + z = L, (s-1) y^2 + z^2 = 1: z = L - (s-1) y, a quadratic in y.
    A, B, Cq = (s - 1) + (s - 1) ** 2, -2 * L * (s - 1), L * L - 1
    disc = max(B * B - 4 * A * Cq, 0.0)
    ys = [(-B + r * math.sqrt(disc)) / (2 * A) for r in (1, -1)]
    for y in ys:
        z = L - (s - 1) * y
        if y >= w_min - 1e-12 and z >= w_min - 1e-12:
            w = np.zeros(n)
            w[: s - 1] = y
            w[s - 1] = z
            return w / np.linalg.norm(w)
    raise AssertionError("no such teacher")


@pytest.mark.parametrize("s, lam_c, beta_c, w_min", [(3, 0.05, 0.3, 0.3), (5, 0.02, 0.8, 0.2), (8, 0.01, 2.0, 0.15)])
def test_l1_bound_is_attained(s, lam_c, beta_c, w_min):
    """The l1 bound is the maximum over ||w*||_1: a teacher with the maximising
    ||w*||_1 has exactly that angle."""
    bound = error_bound(s, lam_c, beta_c, w_min, "l1")
    assert bound.valid and bound.attained
    lo, hi = l1_range(s, w_min)
    Ls = np.linspace(lo, hi, 2001)
    L_star = Ls[np.argmax([l1_angle(L, s, lam_c, beta_c) for L in Ls])]
    w_star = _teacher_with_l1(16, s, L_star, w_min)
    fp = fixed_points(w_star, K, lam_c * C, beta_c * C, "l1")
    (p,) = [p for p in fp if p.N > beta_c * C]
    assert float(angle(p.u_bar, w_star)) == pytest.approx(bound.angle, rel=1e-5)


def test_l1_closed_form_matches_the_enumeration():
    for w_star, _, lam_c, beta_c, _, _ in _random_cases("l1", 20, seed=5):
        x, u, M = l1_fixed_point(w_star, lam_c, beta_c)
        fp = fixed_points(w_star, K, lam_c * C, beta_c * C, "l1")
        (p,) = [p for p in fp if p.N > beta_c * C]
        assert np.max(np.abs(p.w_bar - x)) < 1e-12
        assert np.max(np.abs(p.u_bar - u)) < 1e-12
        assert p.N / C == pytest.approx(M, rel=1e-12)
        assert np.max(np.abs(prox(x, lam_c / beta_c, "l1") - u)) < 1e-14


def test_bound_shrinks_to_zero_with_lambda():
    """The bound is of order lambda/c: halving lambda halves it (to first order)."""
    for pen in ("l1", "tl1"):
        b1 = error_bound(6, 0.002, 0.5, 0.2, pen).angle
        b2 = error_bound(6, 0.001, 0.5, 0.2, pen).angle
        assert 0 < b2 < b1 and b1 / b2 == pytest.approx(2.0, rel=0.02)


def test_condition_fails_gives_nan():
    b = error_bound(4, 0.5, 0.5, 0.1, "l1")
    assert not b.valid and math.isnan(b.angle)


@pytest.mark.parametrize(
    "args, name",
    [
        ((0, 0.1, 0.5, 0.2, "l1"), "s"),
        ((4, -0.1, 0.5, 0.2, "l1"), "lam_c"),
        ((4, 0.1, 0.0, 0.2, "l1"), "beta_c"),
        ((4, 0.1, 0.5, 0.9, "l1"), "w_min"),
        ((4, 0.1, 0.5, 0.2, "l3"), "penalty"),
    ],
)
def test_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        error_bound(*args)
