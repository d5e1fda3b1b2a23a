"""Unit tests of rvscgd.theory.phase_region / phase_map: the phase diagram of
docs/theory.md section 8. Each region on a case checked by hand, the verdict
against brute force (iterating T from many starts with
``rvscgd.predicted_limit``) and its invariance in k."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from rvscgd import coarse_constant, fixed_points, make_teacher, predicted_limit
from rvscgd.theory import REGIONS, phase_map, phase_region

K = 4
C = coarse_constant(K)


def test_lambda_zero_recovers_everywhere_below_c():
    """lambda = 0: plain CGD, whose only stable fixed point is w* itself."""
    w = make_teacher(12, 3, np.random.default_rng(0), min_abs=0.2)
    for penalty in ("l0", "l1", "tl1"):
        for beta_c in (0.1, 0.5, 0.9):
            ph = phase_region(w, K, 0.0, beta_c * C, penalty)
            assert (ph.region, ph.n_stable, ph.n_recovering) == ("recovers", 1, 1)


def test_l1_unique_below_the_smallest_entry():
    """l1, equal entries 1/sqrt(s), beta < c/2: one fixed point (every one has
    N > beta, where l1 has the single closed-form branch), u_bar proportional
    to soft_threshold(w*, kappa) with kappa = tau M <= tau (1 + b) < 1/sqrt(s):
    all s entries kept."""
    s, n = 4, 9
    w = np.zeros(n)
    w[[1, 3, 4, 8]] = 1 / math.sqrt(s)
    beta_c, lam_c = 0.3, 0.1  # tau (1 + b) = 0.43 < 0.5
    ph = phase_region(w, K, lam_c * C, beta_c * C, "l1")
    assert (ph.region, ph.n_stable, ph.n_recovering, ph.continuum) == ("recovers", 1, 1, False)


def test_l0_hysteresis_by_hand():
    """l0, w* = (0.954, 0.3, 0), b = 0.5, threshold 0.25: keeping both entries
    gives w_bar = w* (M = 1 + b, each |w*_i| > thr); dropping the small one gives
    x = (w1/(M-b), w2/M) with M the root of w1^2/(M-b)^2 + w2^2/M^2 = 1, valid
    since w2/M <= thr < w1/(M-b). Both are stable (D = 0 or 1, b/M < 1):
    several stable limits, one with the support."""
    w2 = 0.3
    w1 = math.sqrt(1 - w2**2)
    w = np.array([w1, w2, 0.0])
    b, thr = 0.5, 0.25
    tau = thr**2 / 2
    M = brentq(lambda m: w1**2 / (m - b) ** 2 + w2**2 / m**2 - 1, b + 0.3, 1 + b)
    assert w2 / M <= thr < w1 / (M - b)
    ph = phase_region(w, K, tau * b * C, b * C, "l0")
    assert (ph.region, ph.n_stable, ph.n_recovering) == ("hysteresis", 2, 1)
    fp = fixed_points(w, K, tau * b * C, b * C, "l0")
    dropped = np.array([w1 / (M - b), w2 / M, 0.0])
    assert min(np.linalg.norm(p.w_bar - dropped) for p in fp if p.stable) < 1e-10
    assert min(np.linalg.norm(p.w_bar - w) for p in fp if p.stable) < 1e-12


def test_l0_spurious_by_hand():
    """l0, w* = (0.8, 0.6, 0), b = 0.2, threshold 0.9 > max|w*|: u = 0, w_bar = w*
    is a fixed point (stable: D = 0). Keeping entry 1 alone needs
    M - b < w1/thr = 0.889, but its norm equation puts M - b at 0.94 (below).
    Keeping entry 2 alone needs M - b < 0.6/0.9 = 0.667 and w1/M <= thr, so
    M >= 0.889: impossible with b = 0.2; keeping both needs |w*_i| > thr (M = 1 + b);
    opposite-sign branches need M < b, where w1/M > thr. So the only stable
    point has an empty support."""
    w = np.array([0.8, 0.6, 0.0])
    b, thr = 0.2, 0.9
    M = brentq(lambda m: 0.8**2 / (m - b) ** 2 + 0.6**2 / m**2 - 1, b + 0.5, 1 + b)
    assert M - b > 0.8 / thr
    ph = phase_region(w, K, thr**2 / 2 * b * C, b * C, "l0")
    assert (ph.region, ph.n_stable, ph.n_recovering) == ("spurious", 1, 0)
    fp = fixed_points(w, K, thr**2 / 2 * b * C, b * C, "l0")
    assert np.all(fp[0].u_bar == 0) and np.allclose(fp[0].w_bar, w)


def test_l0_continuum_by_hand():
    """l0, b = 3 > 1, w* = (0.8, 0.6, 0, 0, 0), threshold 0.4: support entries at
    c w*_i / beta = w*_i / 3 <= thr (not kept) and two or three kept
    off-support entries with ||x_K||^2 = 1 - 1/b^2 = 0.889 > 2 thr^2 (each
    |x_j| > thr is possible with two or more kept): a continuum."""
    w = np.array([0.8, 0.6, 0.0, 0.0, 0.0])
    b, thr = 3.0, 0.4
    assert np.all(np.abs(w) / b <= thr) and 2 * thr**2 < 1 - 1 / b**2
    ph = phase_region(w, K, thr**2 / 2 * b * C, b * C, "l0")
    assert ph.region == "continuum" and ph.continuum
    assert ph.code == REGIONS.index("continuum")


def _brute(w, lam_c, beta_c, penalty, a, starts=200, seed=0):
    """The region from iterating T (rvscgd.predicted_limit) from many starts:
    several distinct limits that are not linearly stable form a continuum; no
    limit with the support of w*: spurious; two or more distinct stable ones:
    hysteresis; else one limit, with the support."""
    res = predicted_limit(w, K, lam_c * C, beta_c * C, penalty, a=a, starts=starts, seed=seed)
    assert np.sum(res.start_limit >= 0) >= 0.95 * starts  # the starts settle
    support = w != 0
    if sum(not L.stable for L in res.limits) >= 2:
        return "continuum"
    if not any(np.array_equal(L.u_bar != 0, support) for L in res.limits):
        return "spurious"
    if sum(L.stable for L in res.limits) >= 2:
        return "hysteresis"
    assert len(res.limits) == 1
    return "recovers"


def _random_points(count, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        n = int(rng.integers(5, 10))
        s = int(rng.integers(2, 4))
        w = make_teacher(n, s, rng, min_abs=0.2)
        penalty = ("l0", "l1", "tl1")[i % 3]
        beta_c = float(np.exp(rng.uniform(np.log(0.1), np.log(3.0))))
        lam_c = float(np.exp(rng.uniform(np.log(0.005), np.log(0.5))))
        out.append((w, lam_c, beta_c, penalty, float(rng.choice([0.5, 1.0, 2.0]))))
    return out


HAND = [  # (w*, lam/c, beta/c, penalty): the hysteresis and continuum cases above
    (np.array([math.sqrt(1 - 0.09), 0.3, 0.0]), 0.25**2 / 2 * 0.5, 0.5, "l0"),
    (np.array([0.8, 0.6, 0.0, 0.0, 0.0]), 0.4**2 / 2 * 3.0, 3.0, "l0"),
]


@pytest.mark.parametrize("case", range(len(HAND)))
def test_hand_cases_agree_with_brute_force(case):
    w, lam_c, beta_c, penalty = HAND[case]
    assert phase_region(w, K, lam_c * C, beta_c * C, penalty).region == _brute(w, lam_c, beta_c, penalty, 1.0)


@pytest.mark.parametrize("case", range(9))
def test_agrees_with_brute_force(case):
    """Nine random (teacher, penalty, lambda/c, beta/c, a): the scalar-analysis
    verdict equals the one from iterating T from 200 random starts."""
    w, lam_c, beta_c, penalty, a = _random_points(9, seed=2026)[case]
    ph = phase_region(w, K, lam_c * C, beta_c * C, penalty, a)
    assert ph.region == _brute(w, lam_c, beta_c, penalty, a), (penalty, lam_c, beta_c, a, ph)


def test_invariant_in_k():
    """With lambda and beta in units of c(k) the verdict (and its counts) is the same for every k."""
    for w, lam_c, beta_c, penalty, a in _random_points(12, seed=5):
        verdicts = {
            k: phase_region(w, k, lam_c * coarse_constant(k), beta_c * coarse_constant(k), penalty, a)
            for k in (1, 4, 16)
        }
        got = {(v.region, v.n_stable, v.n_recovering, v.continuum) for v in verdicts.values()}
        assert len(got) == 1, verdicts


def test_phase_map_is_phase_region_on_the_grid():
    w = make_teacher(8, 3, np.random.default_rng(3), min_abs=0.2)
    lam_c, beta_c = np.array([0.0, 0.05, 0.3]), np.array([0.4, 1.6])
    pm = phase_map(w, lam_c, beta_c, "l0")
    assert pm.codes.shape == (2, 3) and pm.evaluated.all()
    for i, b in enumerate(beta_c):
        for j, lc in enumerate(lam_c):
            assert REGIONS[pm.codes[i, j]] == phase_region(w, K, lc * C, b * C, "l0").region
    assert sum(pm.counts().values()) == 6


@pytest.mark.parametrize("penalty", ["l0", "l1"])
def test_coarse_map_equals_the_full_map(penalty):
    """The refinement (coarse=4) gives the full map's regions on a 17 x 17 grid
    crossing beta = c, with three regions (l0) or two (l1), for fewer calls."""
    w = make_teacher(12, 3, np.random.default_rng(8), min_abs=0.2)
    lam_c, beta_c = np.geomspace(0.005, 1.0, 17), np.geomspace(0.1, 3.0, 17)
    full = phase_map(w, lam_c, beta_c, penalty)
    fast = phase_map(w, lam_c, beta_c, penalty, coarse=4)
    assert len(np.unique(full.codes)) >= (3 if penalty == "l0" else 2)
    assert np.array_equal(full.codes, fast.codes)
    assert fast.evaluated.sum() < 0.6 * full.evaluated.sum()
    assert np.all(fast.codes >= 0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"lam_c": [-0.1]}, "lam_c"),
        ({"lam_c": [[0.1]]}, "lam_c"),
        ({"beta_c": [0.0]}, "beta_c"),
        ({"beta_c": [np.nan]}, "beta_c"),
        ({"penalty": "l2"}, "penalty"),
        ({"a": -1.0}, "a"),
        ({"coarse": 0}, "coarse"),
        ({"coarse": 2.5}, "coarse"),
    ],
)
def test_bad_input_names_the_argument(kwargs, name):
    w = make_teacher(6, 2, np.random.default_rng(0), min_abs=0.2)
    args = {"lam_c": [0.1], "beta_c": [0.5], "penalty": "tl1", "a": 1.0, "coarse": None} | kwargs
    with pytest.raises(ValueError, match=name):
        phase_map(w, args["lam_c"], args["beta_c"], args["penalty"], args["a"], coarse=args["coarse"])


def test_phase_region_bad_input_names_the_argument():
    w = make_teacher(6, 2, np.random.default_rng(0), min_abs=0.2)
    with pytest.raises(ValueError, match="beta"):
        phase_region(w, K, 0.1, -1.0, "l1")
    with pytest.raises(ValueError, match="w_star"):
        phase_region(2 * w, K, 0.1, 0.1, "l1")
    with pytest.raises(ValueError, match="k "):
        phase_region(w, 0, 0.1, 0.1, "l1")
    with pytest.raises(ValueError, match="penalty"):
        phase_region(w, K, 0.1, 0.1, "l3")
