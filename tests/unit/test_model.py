"""Unit tests of rvscgd.model: the facts of model.md sections 1-2.

Monte Carlo tolerances are 5 standard errors computed from the sample's own
spread (fixed seeds), and every Monte Carlo test also asserts its power: the
5-SE band must be small next to the quantity tested, so that a wrong formula
(off by a constant factor, a missing 1/k, ...) would fail it.
"""

from __future__ import annotations

import numpy as np
import pytest

from rvscgd import (
    angle,
    coarse_constant,
    coarse_gradient,
    expected_coarse_gradient,
    forward,
    make_teacher,
    population_loss,
)
from rvscgd.model import STES, _clipped_relu_plane, clipped_relu_plane_closed, expected_coarse_gradient_fast

N_SE = 5.0  # Monte Carlo tolerance, in standard errors


def plane_vector(w_star, theta, norm, rng):
    """A vector of norm ``norm`` at angle ``theta`` from the unit ``w_star``."""
    e = rng.standard_normal(w_star.size)
    e -= (e @ w_star) * w_star
    e /= np.linalg.norm(e)
    return norm * (np.cos(theta) * w_star + np.sin(theta) * e)


def mc_mean_se(samples):
    """Mean and standard error along axis 0."""
    samples = np.asarray(samples, dtype=float)
    return samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])


# ------------------------------------------------------------------ teacher


@pytest.mark.parametrize("n, s", [(1, 1), (10, 1), (10, 4), (10, 10), (37, 5)])
def test_make_teacher_unit_norm_exactly_s_nonzeros(n, s):
    rng = np.random.default_rng(100 + n + s)
    for _ in range(20):
        w = make_teacher(n, s, rng)
        assert w.shape == (n,) and w.dtype == np.float64
        assert abs(np.linalg.norm(w) - 1.0) < 1e-15
        assert np.count_nonzero(w) == s


class _RecordingRng:
    """A numpy Generator that records every standard normal it hands out."""

    def __init__(self, seed):
        self._rng = np.random.default_rng(seed)
        self.normals = []

    def choice(self, *args, **kwargs):
        return self._rng.choice(*args, **kwargs)

    def standard_normal(self, *args, **kwargs):
        out = self._rng.standard_normal(*args, **kwargs)
        self.normals.extend(np.atleast_1d(out).tolist())
        return out


@pytest.mark.parametrize("min_abs", [0.0, 0.5, 1.5])
def test_make_teacher_values_are_draws_above_the_floor(min_abs):
    """The nonzero values are N(0,1) draws with |value| >= min_abs, then scaled
    to unit norm: recover the common scale and match every value to a draw."""
    n, s = 12, 5
    for seed in range(10):
        rng = _RecordingRng(seed)
        w = make_teacher(n, s, rng, min_abs=min_abs)
        draws = np.array(rng.normals)
        vals = w[w != 0]
        assert vals.size == s
        # Some draw / value ratio is the scale ||v||: the one shared by all values.
        found = False
        for d in draws:
            scale = d / vals[0]
            if scale <= 0:
                continue
            v = vals * scale
            match = np.abs(v[:, None] - draws[None, :]) <= 1e-12 * np.abs(draws)[None, :]
            if match.any(axis=1).all():
                found = True
                assert np.all(np.abs(v) >= min_abs)
                assert abs(np.linalg.norm(v) - scale) < 1e-12 * scale
                break
        assert found, "teacher values are not a rescaling of the generator's draws"
        if min_abs > 0:
            # The floor was exercised: some draw fell below it and was replaced.
            assert np.any(np.abs(draws) < min_abs)


def test_make_teacher_deterministic_and_support_varies():
    a = make_teacher(20, 3, np.random.default_rng(5), min_abs=0.3)
    b = make_teacher(20, 3, np.random.default_rng(5), min_abs=0.3)
    assert np.array_equal(a, b)
    supports = {tuple(np.flatnonzero(make_teacher(20, 3, np.random.default_rng(s)))) for s in range(30)}
    assert len(supports) > 10


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n=5, s=6), r"^s \(sparsity"),
        (dict(n=5, s=0), r"^s must"),
        (dict(n=0, s=1), r"^n must"),
        (dict(n=5, s=2, min_abs=-1.0), r"^min_abs"),
    ],
)
def test_make_teacher_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_teacher(rng=np.random.default_rng(0), **kwargs)


# ------------------------------------------------------------------ forward


def test_forward_matches_definition():
    """f(Z; w) = (1/k) sum_i 1{<Z_i, w> > 0}, computed patch by patch."""
    rng = np.random.default_rng(1)
    B, k, n, R = 7, 5, 4, 3
    Z = rng.standard_normal((B, k, n))
    W = rng.standard_normal((n, R))

    def ref(z, w):
        return sum(1.0 for i in range(k) if float(np.dot(z[i], w)) > 0) / k

    out1 = forward(Z, W[:, 0])
    assert out1.shape == (B,)
    assert np.array_equal(out1, [ref(Z[b], W[:, 0]) for b in range(B)])
    outR = forward(Z, W)
    assert outR.shape == (B, R)
    assert np.array_equal(outR, [[ref(Z[b], W[:, r]) for r in range(R)] for b in range(B)])
    assert forward(Z[0], W[:, 1]) == ref(Z[0], W[:, 1])
    assert np.array_equal(forward(Z[0], W), [ref(Z[0], W[:, r]) for r in range(R)])
    # sigma(0) = 0: a patch orthogonal to w does not fire.
    assert forward(np.zeros((k, n)), W[:, 0]) == 0.0


# ------------------------------------------------------------------ angle


def test_angle_matches_arccos_and_is_scale_invariant():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((6, 50))
    b = rng.standard_normal((6, 50))
    ref = np.arccos(np.sum(a * b, axis=0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)))
    got = angle(a, b)
    assert got.shape == (50,)
    # arccos is well conditioned away from 0 and pi; these angles are in (0.1, 3.04).
    assert np.all((ref > 0.1) & (ref < np.pi - 0.1))
    assert np.max(np.abs(got - ref)) < 1e-13
    assert np.max(np.abs(angle(3.0 * a, 0.2 * b) - got)) < 1e-14
    assert np.max(np.abs(angle(b, a) - got)) < 1e-14
    # 1-D against 2-D broadcasting, both ways
    assert np.max(np.abs(angle(a[:, 0], b) - angle(np.repeat(a[:, :1], 50, 1), b))) == 0
    assert np.max(np.abs(angle(a, b[:, 0]) - angle(a, np.repeat(b[:, :1], 50, 1)))) == 0
    assert abs(float(angle(a[:, 3], b[:, 3])) - ref[3]) < 1e-13


@pytest.mark.parametrize("eps", [1e-3, 1e-7, 1e-10, 1e-13])
def test_angle_accurate_near_zero_and_pi(eps):
    """arctan2 keeps full relative accuracy where arccos loses it."""
    n = 5
    e1, e2 = np.eye(n)[0], np.eye(n)[1]
    near0 = e1 + eps * e2  # angle atan(eps)
    assert abs(float(angle(near0, e1)) - np.arctan(eps)) <= 1e-15 * np.arctan(eps) + 1e-300
    assert abs(float(angle(-near0, e1)) - (np.pi - np.arctan(eps))) <= 4e-16 * np.pi
    assert float(angle(e1, e1)) == 0.0
    assert float(angle(-e1, e1)) == np.pi


def test_angle_zero_vector_is_nan():
    v = np.array([1.0, 2.0, 3.0])
    assert np.isnan(angle(np.zeros(3), v))
    assert np.isnan(angle(v, np.zeros(3)))
    out = angle(np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]), np.array([1.0, 0.0, 0.0]))
    assert np.isnan(out[0]) and out[1] == 0.0


# ------------------------------------------------------------------ population loss


@pytest.mark.parametrize(
    "theta, k, norm",
    [(0.4, 1, 1.0), (1.3, 3, 2.0), (np.pi / 2, 2, 0.7), (2.7, 5, 0.5), (3.0, 4, 1.0)],
)
def test_population_loss_monte_carlo(theta, k, norm):
    """L(w) = theta / (2 pi k) = E 1/2 (f(Z; w) - f(Z; w*))^2."""
    n, M = 6, 100_000
    rng = np.random.default_rng(int(1000 * theta) + k)
    w_star = make_teacher(n, 3, rng)
    w = plane_vector(w_star, theta, norm, rng)
    assert abs(float(angle(w, w_star)) - theta) < 1e-12
    Z = rng.standard_normal((M, k, n))
    samples = 0.5 * (forward(Z, w) - forward(Z, w_star)) ** 2
    mean, se = mc_mean_se(samples)
    L = float(population_loss(w, w_star, k))
    assert L == pytest.approx(theta / (2 * np.pi * k), rel=1e-12)
    assert abs(mean - L) <= N_SE * se, (mean, L, se)
    assert N_SE * se < 0.1 * L  # power: a 10% error in the formula would fail


def test_sample_loss_is_locally_constant():
    """model.md: the true gradient of the sample loss is zero almost
    everywhere (it only changes where some <Z_i, w> changes sign)."""
    rng = np.random.default_rng(12)
    B, k, n = 200, 3, 6
    w_star = make_teacher(n, 3, rng)
    Z = rng.standard_normal((B, k, n))

    def sample_loss(v):
        return 0.5 * np.mean((forward(Z, v) - forward(Z, w_star)) ** 2)

    for _ in range(20):
        w = rng.standard_normal(n)
        margin = np.min(np.abs(Z @ w))  # distance in <Z_i, w> to the nearest sign change
        h = 0.5 * margin / np.max(np.linalg.norm(Z, axis=2))
        g = np.array([(sample_loss(w + h * e) - sample_loss(w - h * e)) / (2 * h) for e in np.eye(n)])
        assert np.all(g == 0)
        assert sample_loss(w) > 0  # not trivially constant
    # ... and it does jump when a sign changes: w across the hyperplane of one patch
    z = Z[0, 0]
    w = rng.standard_normal(n)
    w -= (z @ w) / (z @ z) * z  # <z, w> = 0
    assert sample_loss(w + 1e-6 * z) != sample_loss(w - 1e-6 * z)


def test_population_loss_batched_columns():
    rng = np.random.default_rng(3)
    w_star = make_teacher(8, 2, rng)
    W = rng.standard_normal((8, 4))
    got = population_loss(W, w_star, 3)
    assert got.shape == (4,)
    assert np.allclose(got, [float(angle(W[:, r], w_star)) / (6 * np.pi) for r in range(4)], rtol=1e-15, atol=0)


# ------------------------------------------------------------------ coarse gradient


def _per_sample_coarse_gradient(z, w, w_star, ste):
    """model.md's g~(w; Z) for one input, written out patch by patch."""
    k = z.shape[0]
    resid = sum(float(z[i] @ w > 0) for i in range(k)) / k - sum(float(z[i] @ w_star > 0) for i in range(k)) / k
    g = np.zeros(z.shape[1])
    for i in range(k):
        x = float(z[i] @ w)
        mu = {"relu": float(x > 0), "identity": 1.0, "clipped_relu": float(0 < x < 1)}[ste]
        g += mu * z[i]
    return resid * g / k


@pytest.mark.parametrize("ste", STES)
def test_coarse_gradient_batch_is_mean_of_per_sample(ste):
    rng = np.random.default_rng(4)
    B, k, n = 40, 3, 5
    w_star = make_teacher(n, 2, rng)
    w = 0.8 * rng.standard_normal(n)  # norm != 1 matters for clipped_relu
    Z = rng.standard_normal((B, k, n))
    ref = np.mean([_per_sample_coarse_gradient(Z[b], w, w_star, ste) for b in range(B)], axis=0)
    got = coarse_gradient(Z, w, w_star, ste)
    assert got.shape == (n,)
    assert np.max(np.abs(got - ref)) < 1e-15
    assert np.max(np.abs(ref)) > 0.01  # not a vacuous all-zero comparison
    assert (
        np.max(np.abs(coarse_gradient(Z[7], w, w_star, ste) - _per_sample_coarse_gradient(Z[7], w, w_star, ste)))
        < 1e-15
    )


def test_coarse_constant_values():
    for k in (1, 2, 7):
        assert coarse_constant(k, "relu") == pytest.approx(1.0 / (2 * k * np.sqrt(2 * np.pi)), rel=1e-15)
        assert coarse_constant(k, "identity") == pytest.approx(1.0 / (k * np.sqrt(2 * np.pi)), rel=1e-15)
    with pytest.raises(ValueError, match="clipped_relu"):
        coarse_constant(3, "clipped_relu")


def _mc_coarse_gradient(w, w_star, k, ste, rng, groups=200, per_group=1000):
    """Monte Carlo mean and SE of g~ per coordinate, from the means of
    independent groups of inputs (each group mean from ``coarse_gradient``)."""
    n = w.size
    G = np.empty((groups, n))
    for j in range(groups):
        G[j] = coarse_gradient(rng.standard_normal((per_group, k, n)), w, w_star, ste)
    return mc_mean_se(G)


MC_CASES = [
    ("relu", 0.6, 1, 1.0),
    ("relu", 2.2, 3, 1.7),
    ("identity", 1.0, 2, 1.0),
    ("identity", 2.9, 4, 0.6),
    ("clipped_relu", 0.8, 1, 1.0),
    ("clipped_relu", 1.6, 2, 0.4),
    ("clipped_relu", 2.5, 3, 2.0),
    ("clipped_relu", 1.2, 2, 4.0),
]


@pytest.mark.parametrize("ste, theta, k, norm", MC_CASES)
def test_expected_coarse_gradient_monte_carlo(ste, theta, k, norm):
    """E g~ against Monte Carlo, coordinate by coordinate (5 SE). relu and
    identity: the closed forms of model.md; clipped_relu: both the quadrature
    and the closed form (integration by parts)."""
    n = 5
    rng = np.random.default_rng(int(100 * theta) + 10 * k)
    w_star = make_teacher(n, 3, rng)
    w = plane_vector(w_star, theta, norm, rng)
    mean, se = _mc_coarse_gradient(w, w_star, k, ste, rng)
    expected = expected_coarse_gradient(w, w_star, k, ste)
    assert np.all(np.abs(mean - expected) <= N_SE * se), (mean, expected, se)
    # power: the 5-SE band is a small fraction of the gradient's size
    assert N_SE * se.max() < 0.1 * np.linalg.norm(expected)
    w_hat = w / norm
    if ste == "relu":
        assert np.allclose(expected, (w_hat - w_star) / (2 * k * np.sqrt(2 * np.pi)), rtol=0, atol=1e-15)
    elif ste == "identity":
        assert np.allclose(expected, (w_hat - w_star) / (k * np.sqrt(2 * np.pi)), rtol=0, atol=1e-15)
    code = np.array([STES.index(ste)])
    fast = expected_coarse_gradient_fast(w[:, None], w_star, k, code)[:, 0]
    assert np.max(np.abs(fast - expected)) < 1e-12


def test_clipped_relu_depends_on_norm_and_tends_to_relu():
    """clipped_relu's expected gradient depends on ||w|| (the window
    0 < <Z,w> < 1) and tends to relu's as ||w|| -> 0 (the window opens)."""
    rng = np.random.default_rng(6)
    w_star = make_teacher(6, 3, rng)
    w = plane_vector(w_star, 1.1, 1.0, rng)
    g1 = expected_coarse_gradient(w, w_star, 2, "clipped_relu")
    g2 = expected_coarse_gradient(3.0 * w, w_star, 2, "clipped_relu")
    assert np.linalg.norm(g1 - g2) > 0.1 * np.linalg.norm(g1)
    g_small = expected_coarse_gradient(1e-3 * w, w_star, 2, "clipped_relu")
    assert np.max(np.abs(g_small - expected_coarse_gradient(w, w_star, 2, "relu"))) < 1e-12


THETAS = np.concatenate(
    [
        [0.0, np.pi],
        np.logspace(-13, -0.5, 14),
        np.pi - np.logspace(-13, -0.5, 14),
        np.linspace(0.05, np.pi - 0.05, 15),
    ]
)
NORMS = [0.01, 0.3, 1.0, 2.5, 50.0]


def test_clipped_relu_quadrature_matches_closed_form():
    """The 1-D quadrature and the closed form agree to 1e-10 on a grid of
    angles including very close to 0 and pi (where the integrands have a
    feature of width sin(theta) next to 0) and several ||w||."""
    worst = 0.0
    for theta in THETAS:
        for norm in NORMS:
            q = np.array(_clipped_relu_plane(float(theta), norm))
            c = np.array(clipped_relu_plane_closed(theta, norm), dtype=float)
            worst = max(worst, float(np.max(np.abs(q - c))))
    assert worst < 1e-10
    # vectorised closed form equals the scalar calls
    T, Nw = np.meshgrid(THETAS, NORMS)
    a1, a2 = clipped_relu_plane_closed(T, Nw)
    for idx in np.ndindex(T.shape):
        s1, s2 = clipped_relu_plane_closed(T[idx], Nw[idx])
        assert a1[idx] == s1 and a2[idx] == s2


def test_expected_coarse_gradient_vector_paths_agree():
    """expected_coarse_gradient (quadrature) and expected_coarse_gradient_fast
    (closed form, a batch with mixed STEs) give the same vectors, including
    w almost parallel or anti-parallel to w*."""
    rng = np.random.default_rng(7)
    n, k = 6, 3
    w_star = make_teacher(n, 4, rng)
    cols, codes = [], []
    for theta in [1e-9, 1e-4, 0.7, 2.0, np.pi - 1e-4, np.pi - 1e-9]:
        for norm in [0.2, 1.0, 3.0]:
            for code in range(3):
                cols.append(plane_vector(w_star, theta, norm, rng))
                codes.append(code)
    W = np.stack(cols, axis=1)
    codes = np.array(codes)
    fast = expected_coarse_gradient_fast(W, w_star, k, codes)
    for r in range(W.shape[1]):
        ref = expected_coarse_gradient(W[:, r], w_star, k, STES[codes[r]])
        assert np.max(np.abs(fast[:, r] - ref)) < 1e-10, (r, codes[r])
    # 2-D input of expected_coarse_gradient is column by column
    for ste in STES:
        batch = expected_coarse_gradient(W[:, :5], w_star, k, ste)
        assert batch.shape == (n, 5)
        for r in range(5):
            assert np.max(np.abs(batch[:, r] - expected_coarse_gradient(W[:, r], w_star, k, ste))) < 1e-15


# ------------------------------------------------------------------ correlation with the true gradient


def _fd_gradient(fun, w, h):
    g = np.empty_like(w)
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = h
        g[i] = (fun(w + e) - fun(w - e)) / (2 * h)
    return g


@pytest.mark.parametrize("ste", STES)
@pytest.mark.parametrize("theta, k, norm", [(0.3, 1, 1.0), (1.2, 3, 2.0), (2.0, 2, 0.5), (2.9, 4, 1.3)])
def test_coarse_gradient_correlates_with_true_gradient(ste, theta, k, norm):
    """<E g~, grad L> >= 0 with grad L by central finite differences of
    population_loss. Exactly: grad theta = -(w* - cos(theta) w-hat) / (||w|| sin(theta)),
    so for relu/identity <E g~, grad L> = c sin(theta) / (2 pi k ||w||)
    (proportional to sin(theta), not sin^2(theta) as model.md states), and for
    clipped_relu it is -a2 / (2 pi k^2 ||w||) with a2 the e2-component."""
    n = 6
    rng = np.random.default_rng(int(10 * theta) + k)
    w_star = make_teacher(n, 3, rng)
    w = plane_vector(w_star, theta, norm, rng)

    def loss(v):
        return float(population_loss(v, w_star, k))

    h = 1e-5
    fd = _fd_gradient(loss, w, h)
    fd2 = _fd_gradient(loss, w, 2 * h)
    # truncation error of fd ~ |fd2 - fd| / 3; rounding ~ eps L / h per coordinate
    err = np.abs(fd2 - fd) + 10 * np.finfo(float).eps * loss(w) / h
    grad_theta = -(w_star - np.cos(theta) * w / norm) / (norm * np.sin(theta))
    assert np.all(np.abs(fd - grad_theta / (2 * np.pi * k)) <= 2 * err + 1e-13)

    g = expected_coarse_gradient(w, w_star, k, ste)
    inner = float(g @ fd)
    inner_tol = 2 * float(np.abs(g) @ err) + 1e-15
    if ste == "clipped_relu":
        e2 = (w_star - np.cos(theta) * w / norm) / np.sin(theta)
        exact = -float(g @ e2) / (2 * np.pi * k * norm)
        _, a2 = clipped_relu_plane_closed(theta, norm)
        assert exact == pytest.approx(-a2 / (2 * np.pi * k**2 * norm), rel=1e-10)
    else:
        exact = coarse_constant(k, ste) * np.sin(theta) / (2 * np.pi * k * norm)
    assert exact > 0
    assert inner >= 0
    assert abs(inner - exact) <= inner_tol, (inner, exact, inner_tol)
    assert inner_tol < 1e-3 * exact  # the check resolves the formula


def test_inner_product_is_proportional_to_sin_not_sin_squared():
    """The ratio <E g~, grad L> / sin(theta) is constant in theta (relu);
    the ratio to sin^2(theta) is not: model.md's sin^2 is wrong."""
    rng = np.random.default_rng(8)
    n, k = 5, 2
    w_star = make_teacher(n, 2, rng)
    thetas = np.array([0.2, 0.8, 1.5, 2.4, 3.0])
    inners = []
    for theta in thetas:
        w = plane_vector(w_star, theta, 1.0, rng)
        fd = _fd_gradient(lambda v: float(population_loss(v, w_star, k)), w, 1e-6)
        inners.append(float(expected_coarse_gradient(w, w_star, k) @ fd))
    inners = np.array(inners)
    r1 = inners / np.sin(thetas)
    r2 = inners / np.sin(thetas) ** 2
    assert np.ptp(r1) < 1e-6 * r1.mean()
    assert np.ptp(r2) > 0.5 * r2.mean()


# ------------------------------------------------------------------ bad arguments


def test_bad_ste_and_k():
    rng = np.random.default_rng(9)
    w_star = make_teacher(4, 2, rng)
    w = rng.standard_normal(4)
    Z = rng.standard_normal((3, 2, 4))
    with pytest.raises(ValueError, match="ste"):
        coarse_gradient(Z, w, w_star, "tanh")
    with pytest.raises(ValueError, match="ste"):
        expected_coarse_gradient(w, w_star, 2, "sigmoid")
    with pytest.raises(ValueError, match="ste"):
        coarse_constant(2, "nope")
    with pytest.raises(ValueError, match="k"):
        population_loss(w, w_star, 0)
    with pytest.raises(ValueError, match="k"):
        expected_coarse_gradient(w, w_star, 1.5)
