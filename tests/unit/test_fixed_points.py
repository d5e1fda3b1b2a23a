"""Unit tests of rvscgd.fixed_points: every fixed point by scalar analysis.

The enumeration never iterates the dynamics; here it is checked against the
dynamics (T and population RVSCGD from hundreds of random starts), against
closed forms (l1, l0 with small tau), against a finite-difference Jacobian,
and for its invariances (k, sign and permutation classes).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

import rvscgd
from rvscgd import coarse_constant, fixed_points, make_runs, make_teacher, predicted_limit, prox, train
from rvscgd.fixed_points import NEUTRAL
from rvscgd.limit import random_starts

N, K, S = 10, 4, 3
C = coarse_constant(K)


@pytest.fixture(scope="module")
def w_star():
    return make_teacher(N, S, np.random.default_rng(1), min_abs=0.2)


def T_map(w, w_star, c, lam, beta, penalty, a=1.0):
    v = c * w_star + beta * prox(w, lam / beta, penalty, a)
    return v / np.linalg.norm(v)


def _matched(fp, w, tol=1e-7):
    """'point' (with its index), 'continuum', or None: where w sits in the enumerated set."""
    i, d = fp.nearest(w)
    if d <= tol:
        return "point", i
    if any(cont.distance(w) <= tol for cont in fp.continuum):
        return "continuum", None
    return None, None


# (penalty, lam/c, beta/c, a): both sides of beta = c, several limits in some.
CASES = [
    ("l0", 0.05, 0.4, 1.0),
    ("l0", 0.3, 0.8, 1.0),
    ("l0", 0.05, 1.6, 1.0),
    ("l0", 0.3, 3.0, 1.0),
    ("l1", 0.1, 0.5, 1.0),
    ("l1", 0.6, 1.5, 1.0),
    ("l1", 0.9, 3.0, 1.0),
    ("tl1", 0.1, 0.5, 1.0),
    ("tl1", 0.5, 0.5, 1.0),
    ("tl1", 0.3, 2.0, 0.5),
    ("tl1", 1.0, 4.0, 2.0),
]


@pytest.mark.parametrize("penalty, lam_c, beta_c, a", CASES)
def test_every_limit_of_T_is_enumerated(w_star, penalty, lam_c, beta_c, a):
    """Iterating T from 300 random starts: every limit is a listed stable point
    or lies on a listed continuum."""
    lam, beta = lam_c * C, beta_c * C
    fp = fixed_points(w_star, K, lam, beta, penalty, a=a)
    res = predicted_limit(w_star, K, lam, beta, penalty, a=a, starts=300, seed=7)
    assert np.sum(res.start_limit >= 0) >= 290  # the starts settle
    reached = set()
    for L in res.limits:
        kind, i = _matched(fp, L.w_bar)
        assert kind is not None, f"limit {L.w_bar} not in the enumerated set"
        if kind == "point":
            assert fp[i].stable
            reached.add(i)
    assert len(reached) <= len([p for p in fp if p.stable])


def test_every_limit_of_population_rvscgd_is_enumerated(w_star):
    """rvscgd.train in population mode (eta = 1 and eta = 4, every case of CASES
    in one batch) from 16 random starts (T itself from 300 above)."""
    fps = [fixed_points(w_star, K, lc * C, bc * C, p, a=a) for p, lc, bc, a in CASES]
    runs = make_runs(
        [p for p, *_ in CASES for _ in range(2)],
        [lc * C for _, lc, _, _ in CASES for _ in range(2)],
        [bc * C for _, _, bc, _ in CASES for _ in range(2)],
        [1.0, 4.0] * len(CASES),
        a=[a for *_, a in CASES for _ in range(2)],
    )
    converged = 0
    for w0 in random_starts(N, 16, np.random.default_rng(3)):
        tr = train(w_star, w0, K, runs, "population", max_steps=20_000, tol=1e-14)
        for r in np.flatnonzero(tr.status_names() == "converged"):
            fp = fps[r // 2]
            kind, i = _matched(fp, tr.w_final[r], tol=1e-6)
            assert kind is not None, f"population limit {tr.w_final[r]} of case {CASES[r // 2]} not enumerated"
            if kind == "point":
                assert fp[i].stable
            converged += 1
    assert converged >= 0.9 * 16 * len(runs)


@pytest.mark.parametrize("penalty, lam_c, beta_c, a", CASES)
def test_every_listed_point_is_a_fixed_point(w_star, penalty, lam_c, beta_c, a):
    lam, beta = lam_c * C, beta_c * C
    fp = fixed_points(w_star, K, lam, beta, penalty, a=a, list_unstable=True)
    assert len(fp) >= 1
    for p in fp:
        assert abs(np.linalg.norm(p.w_bar) - 1) < 1e-14
        assert np.array_equal(p.u_bar, prox(p.w_bar, lam / beta, penalty, a))
        assert np.max(np.abs(T_map(p.w_bar, w_star, C, lam, beta, penalty, a) - p.w_bar)) <= 1e-11
        assert p.N == pytest.approx(np.linalg.norm(C * w_star + beta * p.u_bar), rel=1e-14)
        assert p.multiplicity >= 1
    for i in range(len(fp)):
        for j in range(i):
            assert np.linalg.norm(fp[i].w_bar - fp[j].w_bar) > 1e-9


@pytest.mark.parametrize("penalty, lam_c, beta_c, a", [c for c in CASES if c[2] > 1])
def test_unlisted_family_is_unstable(w_star, penalty, lam_c, beta_c, a):
    """The points only list_unstable=True adds have N < beta, >= 2 kept entries,
    and are unstable (the interlacing argument of the module docstring)."""
    lam, beta = lam_c * C, beta_c * C
    short = fixed_points(w_star, K, lam, beta, penalty, a=a)
    full = fixed_points(w_star, K, lam, beta, penalty, a=a, list_unstable=True)
    assert full.unlisted is None and short.unlisted is not None
    assert full.n_stable == short.n_stable
    listed = [p.w_bar for p in short]
    extra = [p for p in full if min(np.linalg.norm(p.w_bar - w) for w in listed) > 1e-9]
    assert len(full) == len(short) + len(extra)
    for p in extra:
        assert p.N < beta and np.count_nonzero(p.u_bar) >= 2
        assert not p.stable and p.spectral_radius >= beta / p.N - 1e-9


def fd_radius(w, w_star, c, lam, beta, penalty, a=1.0, h=1e-7):
    """Spectral radius of the finite-difference Jacobian of T on the tangent space."""
    n = w.size
    J = np.empty((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = h
        J[:, i] = (T_map(w + e, w_star, c, lam, beta, penalty, a) - T_map(w - e, w_star, c, lam, beta, penalty, a)) / (
            2 * h
        )
    Q, _ = np.linalg.qr(np.column_stack([w, np.eye(n)]))
    B = Q[:, 1:n]  # orthonormal basis of the tangent space
    return float(np.max(np.abs(np.linalg.eigvals(B.T @ J @ B))))


@pytest.mark.parametrize("penalty, lam_c, beta_c, a", CASES[::3])
def test_stability_matches_finite_differences(w_star, penalty, lam_c, beta_c, a):
    lam, beta = lam_c * C, beta_c * C
    fp = fixed_points(w_star, K, lam, beta, penalty, a=a, list_unstable=True)
    for p in fp:
        if "at_threshold" in p.flags:
            continue  # the prox jumps there: no derivative
        assert p.spectral_radius == pytest.approx(fd_radius(p.w_bar, w_star, C, lam, beta, penalty, a), abs=1e-5)


@pytest.mark.parametrize("lam_c, beta_c", [(0.05, 0.2), (0.2, 0.5), (0.5, 0.9), (0.3, 2.0)])
def test_l1_closed_form(w_star, lam_c, beta_c):
    """l1, N > beta: u_bar = (c/(N - beta)) soft_threshold(w*, kappa), kappa = lam N/(beta c),
    N the root of ||x|| = 1 found here by brentq on that closed form."""
    lam, beta = lam_c * C, beta_c * C
    tau = lam / beta

    def x_of(Nn):
        kappa = lam * Nn / (beta * C)
        soft = np.sign(w_star) * np.maximum(np.abs(w_star) - kappa, 0.0)
        u = C * soft / (Nn - beta)
        return (C * w_star + beta * u) / Nn

    # ||x(N)|| - 1 on (beta, c + beta]: valid while kappa < max|w*| (some entry kept).
    n_hi = C * np.max(np.abs(w_star)) * beta / lam
    lo, hi = beta * (1 + 1e-12), min(C + beta, n_hi) * (1 - 1e-12)
    Nn = brentq(lambda m: np.linalg.norm(x_of(m)) - 1.0, lo, hi, xtol=1e-18, rtol=1e-15, maxiter=500)
    fp = fixed_points(w_star, K, lam, beta, "l1")
    above = [p for p in fp if p.N > beta]
    assert len(above) == 1
    p = above[0]
    assert p.N == pytest.approx(Nn, rel=1e-12)
    assert np.max(np.abs(p.w_bar - x_of(Nn))) < 1e-12
    kappa = lam * p.N / (beta * C)
    expect = C / (p.N - beta) * np.sign(w_star) * np.maximum(np.abs(w_star) - kappa, 0.0)
    assert np.max(np.abs(p.u_bar - expect)) < 1e-12
    assert np.max(np.abs(p.u_bar - prox(p.w_bar, tau, "l1"))) == 0.0
    assert p.stable


@pytest.mark.parametrize("beta_c", [0.2, 0.6, 0.95])
def test_l0_small_tau_keeps_the_teacher(w_star, beta_c):
    """tau below (c min|w*_S| / (c + beta))^2 / 2: the only fixed point keeps every
    support entry, so w_bar = u_bar = w* (and N = c + beta)."""
    beta = beta_c * C
    w_min = np.min(np.abs(w_star[w_star != 0]))
    lam = 0.25 * beta * (C * w_min / (C + beta)) ** 2
    fp = fixed_points(w_star, K, lam, beta, "l0")
    assert len(fp) == 1 and fp.n_points == 1 and not fp.continuum
    assert np.max(np.abs(fp[0].w_bar - w_star)) < 1e-14
    assert np.array_equal(fp[0].u_bar != 0, w_star != 0)
    assert fp[0].N == pytest.approx(C + beta, rel=1e-14)
    assert fp[0].stable


@pytest.mark.parametrize("penalty", ["l0", "l1", "tl1"])
def test_lam_zero_is_the_teacher(w_star, penalty):
    fp = fixed_points(w_star, K, 0.0, 0.5 * C, penalty)
    assert len(fp) == 1 and np.max(np.abs(fp[0].w_bar - w_star)) < 1e-14 and fp[0].stable


def test_beta_above_c_continuum_is_reported(w_star):
    """l0 with beta > c: a continuum at N = beta (kept entries off the support)
    and isolated stable points with one kept entry off the support, whose
    support is disjoint from w*'s."""
    lam, beta = 0.1 * C, 4.0 * C
    fp = fixed_points(w_star, K, lam, beta, "l0")
    assert len(fp.continuum) == 1
    cont = fp.continuum[0]
    thr = np.sqrt(2 * lam / beta)
    assert cont.N == beta and cont.size_min == 2
    assert cont.radius == pytest.approx(np.sqrt(1 - (C / beta) ** 2))
    assert cont.size_max == min(N - S, int(np.ceil(cont.radius**2 / thr**2)) - 1)
    # Members of the continuum are fixed points of T with a neutral eigenvalue.
    rng = np.random.default_rng(5)
    off = np.flatnonzero(w_star == 0)
    for size in range(2, cont.size_max + 1):
        for _ in range(3):
            kept = rng.choice(off, size, replace=False)
            while True:
                x = rng.standard_normal(size)
                x *= cont.radius / np.linalg.norm(x)
                if np.all(np.abs(x) > thr):
                    break
            w = cont.base.copy()
            w[kept] = x
            assert cont.distance(w) < 1e-14
            assert np.max(np.abs(T_map(w, w_star, C, lam, beta, "l0") - w)) < 1e-14
            assert abs(fd_radius(w, w_star, C, lam, beta, "l0") - 1.0) < 1e-5
    # The isolated N = beta points: one kept entry off the support, either sign.
    spurious = [p for p in fp if np.all(w_star[p.support] == 0) and p.support.size == 1]
    assert len(spurious) == 1 and spurious[0].multiplicity == 2 * (N - S) and spurious[0].stable
    assert spurious[0].N == pytest.approx(beta, rel=1e-14)


def test_no_continuum_below_c(w_star):
    for lam_c in (0.05, 0.3, 1.0):
        assert not fixed_points(w_star, K, lam_c * C, 0.9 * C, "l0").continuum


@pytest.mark.parametrize("penalty, lam_c, beta_c, a", CASES)
def test_count_does_not_depend_on_k(w_star, penalty, lam_c, beta_c, a):
    """With lambda and beta in units of c the fixed points are the same for every k."""
    ref = None
    for k in (1, 2, 4, 16):
        c = coarse_constant(k)
        fp = fixed_points(w_star, k, lam_c * c, beta_c * c, penalty, a=a)
        got = (len(fp), fp.n_points, fp.n_stable, len(fp.continuum), [p.multiplicity for p in fp])
        W = np.array([p.w_bar for p in fp])
        if ref is None:
            ref = (got, W)
        else:
            assert got == ref[0]
            assert np.max(np.abs(W - ref[1])) < 1e-10


def test_equal_magnitudes_form_classes():
    """w* with four equal entries: a profile stands for all its permutations
    (multiplicity), and iterating T from random starts reaches only members of
    listed orbits."""
    n = 8
    w_star = np.zeros(n)
    w_star[:4] = [0.5, -0.5, 0.5, 0.5]
    lam, beta = 0.4 * C, 0.8 * C
    fp = fixed_points(w_star, K, lam, beta, "l0")
    mult = sorted(p.multiplicity for p in fp)
    # l0 with equal entries: every kept set S of the 4 with a root (C(4, |S|) each).
    assert set(mult) <= {1, 4, 6}
    res = predicted_limit(w_star, K, lam, beta, "l0", starts=300, seed=2)
    for L in res.limits:
        kind, i = _matched(fp, L.w_bar)
        assert kind == "point" and fp[i].stable
    # The distinct limits reached are at most the listed stable points counted with multiplicity.
    assert len(res) <= fp.n_stable


def test_flags_a_coordinate_at_the_threshold(w_star):
    """l0 with lam chosen so that w* itself has its smallest entry exactly at the
    threshold: the point is reported, flagged, not silently classified."""
    beta = 0.5 * C
    w_min = np.min(np.abs(w_star[w_star != 0]))
    lam = beta * w_min**2 / 2  # sqrt(2 lam / beta) = w_min
    fp = fixed_points(w_star, K, lam, beta, "l0")
    near = [p for p in fp if np.linalg.norm(p.w_bar - w_star) < 1e-9]
    assert near and "at_threshold" in near[0].flags


def test_eta_stability():
    """With eta <= 1/(c + beta) the eta-step is stable where T is; a large eta
    makes the radius grow (the step overshoots)."""
    w_star = make_teacher(N, S, np.random.default_rng(4), min_abs=0.2)
    lam, beta = 0.1 * C, 0.5 * C
    base = fixed_points(w_star, K, lam, beta, "l1")
    small = fixed_points(w_star, K, lam, beta, "l1", eta=0.5 / (C + beta))
    assert [p.stable for p in base] == [p.stable for p in small]
    big = fixed_points(w_star, K, lam, beta, "l1", eta=1e4)
    assert big[0].spectral_radius > 1.0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(lam=-1.0), "lam"),
        (dict(beta=0.0), "beta"),
        (dict(penalty="l2"), "penalty"),
        (dict(a=0.0), "a"),
        (dict(ste="clipped_relu"), "clipped_relu"),
        (dict(ste="tanh"), "ste"),
        (dict(k=0), "k"),
        (dict(eta=-1.0), "eta"),
        (dict(max_profiles=0), "max_profiles"),
        (dict(w_star=np.ones(4)), "w_star"),
        (dict(w_star=np.full((2, 2), 0.5)), "w_star"),
    ],
)
def test_bad_arguments_name_themselves(w_star, kwargs, name):
    args = dict(w_star=w_star, k=K, lam=0.1 * C, beta=0.5 * C, penalty="l1")
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        fixed_points(**args)


def test_max_profiles_guard():
    """Many equal-magnitude support entries in the hysteresis band: refused with a
    message naming max_profiles rather than enumerated for ever."""
    w_star = np.linspace(1.0, 1.2, 24)
    w_star /= np.linalg.norm(w_star)
    with pytest.raises(ValueError, match="max_profiles"):
        fixed_points(w_star, K, 0.02 * C, 6.0 * C, "l0", max_profiles=50)


def test_cheap_at_n_256():
    """n = 256, s = 8: the off-support class is one class, so the enumeration
    stays small (the number of profiles, not n, sets the cost)."""
    w_star = make_teacher(256, 8, np.random.default_rng(0), min_abs=0.2)
    for penalty in ("l0", "l1", "tl1"):
        for beta_c in (0.4, 4.0):
            fp = fixed_points(w_star, K, 0.1 * C, beta_c * C, penalty)
            assert len(fp) <= 300
            for p in fp:
                assert p.residual <= 1e-11


def test_neutral_margin_is_used(w_star):
    """NEUTRAL is what separates "stable" from "neutral" (eigenvalue 1)."""
    fp = fixed_points(w_star, K, 0.1 * C, 4.0 * C, "l0")
    for p in fp:
        assert p.stable == (p.spectral_radius < 1 - NEUTRAL)


def test_nearest_listed_skips_padding_and_takes_the_nearest_orbit():
    """Rows with a NaN are no point: never chosen, at distance inf. The index
    is the nearest orbit's, by brute force over the listed rows' orbits."""
    rng = np.random.default_rng(5)
    w_star = np.array([0.6, -0.6, 0.5, 0.0, 0.0, 0.0])
    w_star /= np.linalg.norm(w_star)
    points = rng.standard_normal((5, 6))
    points[[1, 3]] = np.nan
    for _ in range(20):
        w = rng.standard_normal(6)
        i, dist, oriented = rvscgd.nearest_listed(w_star, points, w)
        assert np.isinf(dist[[1, 3]]).all() and np.isnan(oriented[[1, 3]]).all()
        listed = [0, 2, 4]
        brute = [rvscgd.orbit_distances(w_star, points[[j]], w)[0][0] for j in listed]
        assert i == listed[int(np.argmin(brute))]
        np.testing.assert_array_equal(dist[listed], brute)
    i, dist, _ = rvscgd.nearest_listed(w_star, np.full((3, 6), np.nan), w_star)
    assert i == 0 and np.isinf(dist).all()
