"""Unit tests of rvscgd.two_layer: the two-layer model of model.md section 6.

Monte Carlo tolerances are 5 standard errors from the sample's own spread
(means of independent groups, fixed seeds); each Monte Carlo test also
asserts its power (the band is small next to the quantity tested). The true
gradients are finite differences of the closed-form loss, a computation
independent of the gradient formulas.
"""

from __future__ import annotations

import numpy as np
import pytest

from rvscgd import expected_coarse_gradient as one_layer_expected
from rvscgd import make_teacher
from rvscgd import two_layer as tl
from rvscgd.model import STES

N_SE = 5.0


def plane_vector(w_star, theta, norm, rng):
    """A vector of norm ``norm`` at angle ``theta`` from the unit ``w_star``."""
    e = rng.standard_normal(w_star.size)
    e -= (e @ w_star) * w_star
    e /= np.linalg.norm(e)
    return norm * (np.cos(theta) * w_star + np.sin(theta) * e)


def group_means(fun, rng, k, n, groups=100, per_group=2000):
    """Mean and SE over ``groups`` independent batches of ``fun(Z)``."""
    vals = np.array([fun(rng.standard_normal((per_group, k, n))) for _ in range(groups)])
    return vals.mean(axis=0), vals.std(axis=0, ddof=1) / np.sqrt(groups)


def fd_gradient(fun, x, h=1e-6):
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (fun(x + e) - fun(x - e)) / (2 * h)
    return g


# (theta, ||w||, k, v* rule): angles across (0, pi), several norms (clipped_relu
# depends on ||w||), the three v* rules.
CASES = [
    (0.4, 1.0, 3, "normal"),
    (1.3, 2.0, 2, "positive"),
    (2.2, 0.5, 4, "normal"),
    (2.9, 1.4, 3, "constant"),
]


def _setup(theta, norm, k, rule, n=5, seed=0):
    rng = np.random.default_rng(seed + int(100 * theta) + 10 * k)
    w_star = make_teacher(n, 3, rng)
    v_star = tl.make_v_star(k, rule, rng)
    w = plane_vector(w_star, theta, norm, rng)
    v = rng.standard_normal(k)
    return rng, w_star, v_star, w, v


@pytest.mark.parametrize("theta, norm, k, rule", CASES)
def test_population_loss_monte_carlo(theta, norm, k, rule):
    """model.md section 6's closed form equals E 1/2 (f(Z; v, w) - f(Z; v*, w*))^2."""
    rng, w_star, v_star, w, v = _setup(theta, norm, k, rule)
    n = w.size

    def loss(Z):
        return np.mean(0.5 * (tl.forward(Z, v, w) - tl.forward(Z, v_star, w_star)) ** 2)

    mean, se = group_means(loss, rng, k, n)
    L = float(tl.population_loss(v, w, v_star, w_star))
    assert abs(mean - L) <= N_SE * se, (mean, L, se)
    assert N_SE * se < 0.05 * L  # power: a 5% error in the formula would fail


@pytest.mark.parametrize("theta, norm, k, rule", CASES)
def test_expected_gradient_v_monte_carlo_and_finite_differences(theta, norm, k, rule):
    rng, w_star, v_star, w, v = _setup(theta, norm, k, rule)
    expected = tl.expected_gradient_v(v, w, v_star, w_star)
    mean, se = group_means(lambda Z: tl.gradient_v(Z, v, w, v_star, w_star), rng, k, w.size)
    assert np.all(np.abs(mean - expected) <= N_SE * se), (mean, expected, se)
    assert N_SE * se.max() < 0.05 * np.linalg.norm(expected)
    # The true gradient of the closed-form loss in v (independent computation).
    fd = fd_gradient(lambda x: float(tl.population_loss(x, w, v_star, w_star)), v)
    assert np.max(np.abs(fd - expected)) < 1e-8


@pytest.mark.parametrize("ste", STES)
@pytest.mark.parametrize("theta, norm, k, rule", CASES)
def test_expected_coarse_gradient_monte_carlo(ste, theta, norm, k, rule):
    """E g~ in w against Monte Carlo, coordinate by coordinate (5 SE);
    relu/identity closed forms, clipped_relu quadrature and closed form."""
    rng, w_star, v_star, w, v = _setup(theta, norm, k, rule)
    expected = tl.expected_coarse_gradient(v, w, v_star, w_star, ste)
    mean, se = group_means(lambda Z: tl.coarse_gradient(Z, v, w, v_star, w_star, ste), rng, k, w.size)
    assert np.all(np.abs(mean - expected) <= N_SE * se), (mean, expected, se)
    assert N_SE * se.max() < 0.1 * np.linalg.norm(expected)
    fast = tl.expected_coarse_gradient_fast(v[:, None], w[:, None], v_star, w_star, np.array([STES.index(ste)]))
    assert np.max(np.abs(fast[:, 0] - expected)) < 1e-10


@pytest.mark.parametrize("ste", STES)
def test_reduces_to_the_fixed_readout_model(ste):
    """With v = v* = (1/k) 1 the network is model.md section 1's: the
    expected coarse gradient equals rvscgd.model's (an independent derivation)."""
    rng = np.random.default_rng(11)
    n, k = 7, 4
    w_star = make_teacher(n, 3, rng)
    ones = np.full(k, 1.0 / k)
    for theta in (0.2, 1.5, 3.0):
        for norm in (0.3, 1.0, 2.5):
            w = plane_vector(w_star, theta, norm, rng)
            got = tl.expected_coarse_gradient(ones, w, ones, w_star, ste)
            ref = one_layer_expected(w, w_star, k, ste)
            assert np.max(np.abs(got - ref)) < 1e-13
            # and the loss is theta / (2 pi k)
            assert float(tl.population_loss(ones, w, ones, w_star)) == pytest.approx(theta / (2 * np.pi * k), 1e-12)


def test_fast_batch_matches_per_column_near_zero_and_pi():
    rng = np.random.default_rng(12)
    n, k = 6, 3
    w_star = make_teacher(n, 4, rng)
    v_star = tl.make_v_star(k, "normal", rng)
    cols, vs, codes = [], [], []
    for theta in (0.0, 1e-9, 1e-4, 0.7, 2.0, np.pi - 1e-4, np.pi - 1e-9):
        for norm in (0.2, 1.0, 3.0):
            for code in range(3):
                cols.append(plane_vector(w_star, theta, norm, rng))
                vs.append(rng.standard_normal(k))
                codes.append(code)
    W, V, codes = np.stack(cols, 1), np.stack(vs, 1), np.array(codes)
    fast = tl.expected_coarse_gradient_fast(V, W, v_star, w_star, codes)
    for r in range(W.shape[1]):
        ref = tl.expected_coarse_gradient(V[:, r], W[:, r], v_star, w_star, STES[codes[r]])
        assert np.max(np.abs(fast[:, r] - ref)) < 1e-10, r
    for ste in STES:
        batch = tl.expected_coarse_gradient(V[:, :6], W[:, :6], v_star, w_star, ste)
        for r in range(6):
            one = tl.expected_coarse_gradient(V[:, r], W[:, r], v_star, w_star, ste)
            assert np.max(np.abs(batch[:, r] - one)) < 1e-15
    L = tl.population_loss(V, W, v_star, w_star)
    assert L.shape == (W.shape[1],)
    assert L[5] == float(tl.population_loss(V[:, 5], W[:, 5], v_star, w_star))


def test_coarse_gradients_correlate_with_the_true_gradient():
    """<E g~, grad_w L> >= 0 for relu and clipped_relu (Yin et al.), with
    grad_w L by finite differences of the closed-form loss, over random
    (v, w, v*) including <v, v*> < 0. The identity STE's inner product is
    also >= 0 here (docs/two_layer.md: all three are proportional to
    <v, v*>^2 sin(theta) in this model); its flaw is elsewhere (next test)."""
    rng = np.random.default_rng(13)
    n = 6
    checked = {s: 0 for s in STES}
    for trial in range(60):
        k = int(rng.integers(1, 6))
        w_star = make_teacher(n, 3, rng)
        v_star = tl.make_v_star(k, ("normal", "positive", "constant")[trial % 3], rng)
        theta = rng.uniform(0.05, np.pi - 0.05)
        w = plane_vector(w_star, theta, rng.uniform(0.2, 3.0), rng)
        v = rng.standard_normal(k)
        grad = fd_gradient(lambda x, v=v, vs=v_star, ws=w_star: float(tl.population_loss(v, x, vs, ws)), w)
        assert np.max(np.abs(grad - tl.true_gradient_w(v, w, v_star, w_star))) < 1e-7
        for ste in STES:
            inner = float(tl.expected_coarse_gradient(v, w, v_star, w_star, ste) @ grad)
            # finite-difference error is ~1e-9 of |grad|; the product is exact 0 only if <v, v*> = 0
            assert inner >= -1e-9 * np.linalg.norm(grad), (ste, inner)
            scale = np.linalg.norm(grad) * np.linalg.norm(tl.expected_coarse_gradient(v, w, v_star, w_star, ste))
            checked[ste] += inner > 1e-6 * scale  # strictly positive, not trivially zero
    assert min(checked.values()) >= 50


def test_spurious_critical_point():
    """At theta = pi and v = spurious_v(v*): the loss's gradient in v is 0,
    relu's and clipped_relu's expected coarse gradients vanish, and
    identity's does not (Yin et al.'s instability: the
    local minimum is no fixed point of identity-STE descent)."""
    rng = np.random.default_rng(14)
    n, k = 6, 4
    w_star = make_teacher(n, 3, rng)
    found = 0
    for _ in range(20):
        v_star = tl.make_v_star(k, "normal", rng)
        if not tl.spurious_minimum_exists(v_star):
            continue
        found += 1
        v = tl.spurious_v(v_star)
        assert v @ v_star < 0
        w = -w_star * 1.3
        gv = fd_gradient(lambda x, w=w, vs=v_star: float(tl.population_loss(x, w, vs, w_star)), v)
        assert np.max(np.abs(gv)) < 1e-8
        assert np.max(np.abs(tl.expected_gradient_v(v, w, v_star, w_star))) < 1e-12
        g_relu = tl.expected_coarse_gradient(v, w, v_star, w_star, "relu")
        assert np.max(np.abs(g_relu)) < 1e-12
        assert np.max(np.abs(tl.expected_coarse_gradient(v, w, v_star, w_star, "clipped_relu"))) < 1e-12
        g_id = tl.expected_coarse_gradient(v, w, v_star, w_star, "identity")
        # identity: (||v||^2 + <v, v*>) w-hat / sqrt(2 pi), radial and nonzero
        radial = (v @ v + v @ v_star) / np.sqrt(2 * np.pi)
        assert radial > 0
        assert np.max(np.abs(g_id - radial * w / np.linalg.norm(w))) < 1e-12
        # a local minimum of the loss: moving w off theta = pi or v off spurious_v raises it
        L0 = float(tl.population_loss(v, w, v_star, w_star))
        for _ in range(5):
            dw, dv = 1e-3 * rng.standard_normal(n), 1e-3 * rng.standard_normal(k)
            assert float(tl.population_loss(v + dv, w + dw, v_star, w_star)) > L0
    assert found >= 5


def test_sample_batch_is_mean_of_per_sample():
    rng = np.random.default_rng(15)
    B, k, n = 30, 3, 5
    w_star = make_teacher(n, 2, rng)
    v_star, v = rng.standard_normal(k), rng.standard_normal(k)
    w = 0.8 * rng.standard_normal(n)
    Z = rng.standard_normal((B, k, n))
    for ste in STES:
        per = []
        for b in range(B):
            z = Z[b]
            f = sum(v[i] * (z[i] @ w > 0) for i in range(k))
            y = sum(v_star[i] * (z[i] @ w_star > 0) for i in range(k))
            mu = [{"relu": z[i] @ w > 0, "identity": 1.0, "clipped_relu": 0 < z[i] @ w < 1}[ste] for i in range(k)]
            per.append((f - y) * sum(v[i] * mu[i] * z[i] for i in range(k)))
        got = tl.coarse_gradient(Z, v, w, v_star, w_star, ste)
        assert np.max(np.abs(got - np.mean(per, axis=0))) < 1e-14
        assert np.max(np.abs(got)) > 0.01


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(k=0, rule="normal"), r"^k "),
        (dict(k=3, rule="uniform"), r"^rule"),
        (dict(k=3, rule="normal", scale=0.0), r"^scale"),
    ],
)
def test_make_v_star_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        tl.make_v_star(rng=np.random.default_rng(0), **kwargs)


def test_make_v_star_rules():
    rng = np.random.default_rng(16)
    assert np.array_equal(tl.make_v_star(4, "constant", rng, 2.0), np.full(4, 0.5))
    a = tl.make_v_star(5, "normal", np.random.default_rng(3), 1.5)
    b = tl.make_v_star(5, "positive", np.random.default_rng(3), 1.5)
    assert np.array_equal(np.abs(a), b) and np.any(a < 0)
    assert np.array_equal(a, 1.5 * np.random.default_rng(3).standard_normal(5))


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="v_star"):
        tl.population_loss(np.ones(3), np.ones(4), np.ones(2), np.ones(4))
    with pytest.raises(ValueError, match="w_star"):
        tl.expected_gradient_v(np.ones(3), np.ones(4), np.ones(3), np.ones(5))
