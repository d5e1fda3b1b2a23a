"""Projection sampling of fresh mode (``rvscgd.projection``; docs/performance.md).

What is checked:
- the coarse gradient: projected and direct samplers give the same mean and
  covariance of the stacked gradients of several runs (relu, identity,
  clipped relu; a column of norm 2 stands for an unnormalised run; a
  duplicated column), in both precisions, with tolerances from the sample
  size, and the same comparison flags a projection without its orthogonal
  part;
- training: the same distribution of final angles of w and u and sparsity of
  u over many seeds (two-sample Kolmogorov-Smirnov, family-wise false-alarm
  rate 1e-3 by Bonferroni), relu / identity / clipped relu, normalised and
  not, in both precisions;
- exactness pieces: the span basis, a singular ``M^T M`` (never NaN), zero
  residuals (zero gradient), stopped runs leave the span;
- the choice of sampler: "auto" falls back to direct when R + 1 >= n (bit
  for bit), "projected" is refused there and outside fresh mode, and the
  sampler used is reported.
"""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import pytest
from scipy import stats

from rvscgd import coarse_constant, make_runs, make_teacher, train
from rvscgd.engine import (
    _positive_counts,
    _Workspace,
    empirical_coarse_gradient,
    empirical_coarse_gradient_f32,
    resolve_sampler,
)
from rvscgd.model import STES
from rvscgd.projection import ProjectedSource, distinct_columns, orthogonal_part, span_basis
from rvscgd.sampling import standard_normal_f32

# ------------------------------------------------------- the coarse gradient

N, K, B = 8, 3, 12


def _columns():
    """(n, 5) weights: relu, identity, clipped relu at norm 1 and 2, and a
    duplicate of the first (the same (column, STE) pair)."""
    rng = np.random.default_rng(7)
    w_star = make_teacher(N, 3, rng)
    W = rng.standard_normal((N, 4))
    W /= np.linalg.norm(W, axis=0)
    W[:, 3] *= 2.0  # clipped relu at ||w|| = 2: mu' = 1{0 < <Z_i, w> < 1} depends on the norm
    W = np.column_stack([W, W[:, 0]])
    codes = np.array([STES.index(s) for s in ("relu", "identity", "clipped_relu", "clipped_relu", "relu")], np.int8)
    return w_star, W, codes


def _direct_samples(precision, draws, seed):
    w_star, W, codes = _columns()
    out = np.empty((draws, W.size))
    if precision == "float64":
        rng = np.random.default_rng(seed)
        for t in range(draws):
            Z = rng.standard_normal((B * K, N))
            out[t] = empirical_coarse_gradient(Z, Z @ w_star, W, K, codes).ravel()
    else:
        Z_all = standard_normal_f32(seed, (draws * B * K, N), rows_per_item=K).reshape(draws, B * K, N)
        for t in range(draws):
            cs = _positive_counts(Z_all[t], w_star, K)
            out[t] = empirical_coarse_gradient_f32(Z_all[t], cs, W, K, codes).ravel()
    return out


def _projected_samples(precision, draws, seed, drop_orthogonal=False, monkeypatch=None):
    w_star, W, codes = _columns()
    if drop_orthogonal:  # the plausible bug the test must catch
        import rvscgd.projection

        monkeypatch.setattr(rvscgd.projection, "orthogonal_part", lambda Q, Y, gram: np.zeros_like(Y))
    out = np.empty((draws, W.size))
    with ExitStack() as stack:
        src = ProjectedSource(w_star, K, N, B, W.shape[1], seed, precision == "float32", 0, draws, stack)
        work = _Workspace()
        for t in range(draws):
            out[t] = src.gradient(t, W, codes, work).ravel()
    return out


def _max_z_mean_cov(x, y):
    """Largest |z| over the differences of the means and of the covariance
    entries of two independent samples (rows = draws), each SE from its own
    sample: the covariance entry (p, q) is the mean of the centred products,
    whose SE is their sample standard deviation / sqrt(draws)."""

    def parts(s):
        c = s - s.mean(axis=0)
        iu = np.triu_indices(s.shape[1])
        prod = c[:, iu[0]] * c[:, iu[1]]
        return s.mean(axis=0), s.std(axis=0, ddof=1), prod.mean(axis=0), prod.std(axis=0, ddof=1)

    mx, sx, cx, scx = parts(x)
    my, sy, cy, scy = parts(y)
    m = x.shape[0]
    z_mean = np.abs(mx - my) / np.sqrt((sx**2 + sy**2) / m)
    se_cov = np.sqrt((scx**2 + scy**2) / m)
    z_cov = np.abs(cx - cy) / np.where(se_cov > 0, se_cov, np.inf)
    return float(z_mean.max()), float(z_cov.max())


# 25 means and 325 covariance entries per comparison; |z| < 5 for all has a
# false-alarm rate below 350 * 5.7e-7 = 2e-4 (Bonferroni, normal approximation).
Z_MAX = 5.0
DRAWS = 3000


@pytest.fixture(scope="module")
def direct64():
    return _direct_samples("float64", DRAWS, 101)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_gradient_same_mean_and_covariance(direct64, precision):
    proj = _projected_samples(precision, DRAWS, 202)
    z_mean, z_cov = _max_z_mean_cov(proj, direct64)
    assert z_mean < Z_MAX and z_cov < Z_MAX, (z_mean, z_cov)
    # the duplicated column gets exactly the gradient of its original
    np.testing.assert_array_equal(proj.reshape(DRAWS, N, -1)[:, :, 4], proj.reshape(DRAWS, N, -1)[:, :, 0])


def test_gradient_direct_f32_agrees_too(direct64):
    """The comparison's own calibration: the two direct paths agree."""
    z_mean, z_cov = _max_z_mean_cov(_direct_samples("float32", DRAWS, 303), direct64)
    assert z_mean < Z_MAX and z_cov < Z_MAX, (z_mean, z_cov)


def test_gradient_comparison_has_power(direct64, monkeypatch):
    """Without the orthogonal part the projected gradient keeps its mean but
    loses most of its variance: the covariance comparison flags it."""
    proj = _projected_samples("float64", DRAWS, 202, drop_orthogonal=True, monkeypatch=monkeypatch)
    _, z_cov = _max_z_mean_cov(proj, direct64)
    assert z_cov > 3 * Z_MAX


# ------------------------------------------------------ exactness, pieces


def test_span_basis_contains_teacher_and_runs():
    rng = np.random.default_rng(0)
    w_star = make_teacher(20, 4, rng)
    W = rng.standard_normal((20, 5))
    W[:, 4] = W[:, 0] + W[:, 1]  # rank deficient
    Q = span_basis(w_star, W)
    assert Q.shape == (20, 6)
    np.testing.assert_allclose(Q.T @ Q, np.eye(6), atol=1e-13)
    np.testing.assert_allclose(Q[:, 0], w_star / np.linalg.norm(w_star), atol=1e-14)
    X = np.column_stack([w_star, W])
    np.testing.assert_allclose(Q @ (Q.T @ X), X, atol=1e-13)


def test_orthogonal_part_singular_gram():
    """Identical runs (rank-1 gram), a run with zero weights, and rounding
    that makes an eigenvalue slightly negative: finite, exact structure."""
    rng = np.random.default_rng(1)
    Q = span_basis(rng.standard_normal(10), rng.standard_normal((10, 2)))
    Y = rng.standard_normal((10, 3))
    v = np.array([1.0, 1.0, 0.0])
    gram = np.outer(v, v) - 1e-17 * np.eye(3)  # two identical runs and an all-zero one
    X = orthogonal_part(Q, Y, gram)
    assert np.all(np.isfinite(X))
    np.testing.assert_allclose(X[:, 0], X[:, 1], atol=1e-12)
    np.testing.assert_allclose(X[:, 2], 0.0, atol=1e-7)  # sqrt of a rounding-size eigenvalue
    np.testing.assert_allclose(Q.T @ X, 0.0, atol=1e-13)  # orthogonal to the span
    np.testing.assert_array_equal(orthogonal_part(Q, Y, np.zeros((3, 3))), 0.0)


def test_distinct_columns():
    W = np.array([[1.0, 2.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    first, inverse = distinct_columns(W, [0, 0, 0, 1])  # column 3 has another STE
    assert first.tolist() == [0, 1, 3] and inverse.tolist() == [0, 1, 0, 2]
    np.testing.assert_array_equal(W[:, first][:, inverse], W)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_zero_residual_gives_zero_gradient(precision):
    """Every run at w*: all residuals are zero, M = 0, gram = 0: G = 0, no NaN."""
    w_star, _, _ = _columns()
    W = np.repeat(w_star[:, None], 3, axis=1)
    codes = np.zeros(3, np.int8)
    with ExitStack() as stack:
        src = ProjectedSource(w_star, K, N, B, 3, 5, precision == "float32", 0, 3, stack)
        for t in range(3):
            np.testing.assert_array_equal(src.gradient(t, W, codes, _Workspace()), 0.0)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_stopped_runs_leave_the_span(precision):
    """A run that diverges stops; the others go on, finite, with the span of
    the active runs only (R + 1 = 4 < n = 16)."""
    rng = np.random.default_rng(0)
    w_star = make_teacher(16, 3, rng, min_abs=0.3)
    w0 = rng.standard_normal(16)
    c = coarse_constant(4)
    runs = make_runs(
        penalty=["l0", "l1", "l1"], lam=[1e305, 0.0, 0.3 * c], beta=[1.0, 0.05, 0.05], eta=[5.0, 2.0, 2.0],
        normalise=[False, True, True],
    )  # fmt: skip
    res = train(w_star, w0, 4, runs, "fresh", max_steps=300, batch_size=16, tol=0.0, seed=1, precision=precision)
    assert res.extra["sampler"] == "projected"
    assert list(res.status_names()) == ["diverged", "max_steps", "max_steps"]
    assert res.steps_run[0] < 300
    assert np.all(np.isfinite(res.w_final[1:]))
    assert np.all(res.angle_w[1:, -1] < 0.5)  # the survivors still learn w*


# ------------------------------------------------ training, in distribution

NT, KT = 16, 4


def _train_problem():
    rng = np.random.default_rng(4)
    w_star = make_teacher(NT, 3, rng, min_abs=0.3)
    w0 = rng.standard_normal(NT)
    c = coarse_constant(KT)
    stes = ["relu", "identity", "clipped_relu"] * 2
    runs = make_runs(
        penalty=["l1", "l0", "tl1", "l1", "l0", "tl1"],
        lam=0.15 * c,
        beta=c,
        eta=[2.0, 1.0, 2.0, 0.5, 0.3, 0.5],
        ste=stes,
        normalise=[True] * 3 + [False] * 3,
    )
    return w_star, w0, runs


def _finals(sampler, precision, seeds, batch_size=24, steps=40):
    w_star, w0, runs = _train_problem()
    out = []
    for s in seeds:
        r = train(
            w_star, w0, KT, runs, "fresh", seed=s, sampler=sampler, precision=precision, max_steps=steps,
            batch_size=batch_size, tol=0.0, record_steps=[steps],
        )  # fmt: skip
        assert r.extra["sampler"] == sampler
        out.append(np.concatenate([r.angle_w[:, -1], r.angle_u[:, -1], r.sparsity_u[:, -1]]))
    return np.asarray(out)  # (seeds, 18)


def _min_ks_p(x, y):
    """Smallest KS p-value over the columns that vary, and how many tests.
    NaN (angle(u, w*) where u = 0) becomes -1, below every angle, so how
    often u = 0 is part of the compared distribution."""
    ps = []
    for j in range(x.shape[1]):
        a, b = np.nan_to_num(x[:, j], nan=-1.0), np.nan_to_num(y[:, j], nan=-1.0)
        if np.ptp(np.concatenate([a, b])) == 0:
            continue  # one value in both samples: nothing to test (and KS is undefined)
        # Asymptotic p-values for every column: the exact method fails on the
        # sparsities' ties and falls back to this anyway, with a warning.
        ps.append(stats.ks_2samp(a, b, method="asymp").pvalue)
    assert not np.any(np.isnan(ps))
    return min(ps), len(ps)


SEEDS = 80
ALPHA = 1e-3  # family-wise false-alarm rate of one comparison (Bonferroni over its KS tests)


@pytest.fixture(scope="module")
def direct_finals():
    return _finals("direct", "float64", range(10_000, 10_000 + SEEDS))


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_training_same_distribution(direct_finals, precision):
    """Final angle(w, w*), angle(u, w*) and sparsity of u of 6 runs over 80
    independent seeds each: projected vs direct, one two-sample KS test per
    statistic that varies (14 of the 18 here: two unnormalised runs always end
    with u = 0), each at level 1e-3 / their number (Bonferroni; KS is
    conservative on the discrete sparsities)."""
    proj = _finals("projected", precision, range(20_000, 20_000 + SEEDS))
    assert np.all(np.isfinite(proj[:, :6]))
    p, tests = _min_ks_p(proj, direct_finals)
    assert p > ALPHA / tests, p


def test_training_comparison_has_power(direct_finals):
    """The same test flags a real change: a batch of 8 instead of 24."""
    other = _finals("projected", "float64", range(20_000, 20_000 + SEEDS), batch_size=8)
    p, tests = _min_ks_p(other, direct_finals)
    assert p < ALPHA / tests, p


# ------------------------------------------------------ choosing a sampler


def test_resolve_sampler():
    assert resolve_sampler("auto", "fresh", 16, 6) == "projected"
    assert resolve_sampler("auto", "fresh", 16, 15) == "direct"  # d = R + 1 = n: no gain
    assert resolve_sampler("auto", "fixed", 16, 2) == "direct"  # the training set is reused
    assert resolve_sampler("auto", "population", 16, 2) == "none"
    assert resolve_sampler("direct", "fresh", 16, 2) == "direct"
    for bad in [("projected", "fresh", 16, 15), ("projected", "fixed", 16, 2), ("projected", "population", 16, 2)]:
        with pytest.raises(ValueError, match="^sampler"):
            resolve_sampler(*bad)
    with pytest.raises(ValueError, match="^sampler"):
        resolve_sampler("exact", "fresh", 16, 2)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_auto_falls_back_to_direct_bit_for_bit(precision):
    """R + 1 >= n: "auto" is the direct sampler, to the bit; "projected" is refused."""
    rng = np.random.default_rng(2)
    w_star = make_teacher(6, 2, rng)
    w0 = rng.standard_normal(6)
    runs = make_runs("l1", np.linspace(0, 0.1, 5), 0.05, 1.0)  # R + 1 = 6 = n
    kw = dict(max_steps=20, batch_size=8, seed=3, tol=0.0, precision=precision)
    auto = train(w_star, w0, 2, runs, "fresh", **kw)
    direct = train(w_star, w0, 2, runs, "fresh", sampler="direct", **kw)
    assert auto.extra["sampler"] == direct.extra["sampler"] == "direct"
    for f in ("w_final", "u_final", "angle_w", "angle_u", "sparsity_u"):
        np.testing.assert_array_equal(getattr(auto, f), getattr(direct, f), err_msg=f)
    with pytest.raises(ValueError, match="^sampler"):
        train(w_star, w0, 2, runs, "fresh", sampler="projected", **kw)


def test_auto_is_projected_and_direct_is_available():
    """R + 1 < n: "auto" projects (other draws), "direct" still samples the
    whole minibatch (the documented stream of test_engine's reference)."""
    w_star, w0, runs = _train_problem()
    kw = dict(max_steps=10, batch_size=8, seed=3, tol=0.0)
    auto = train(w_star, w0, KT, runs, "fresh", **kw)
    proj = train(w_star, w0, KT, runs, "fresh", sampler="projected", **kw)
    direct = train(w_star, w0, KT, runs, "fresh", sampler="direct", **kw)
    assert auto.extra["sampler"] == "projected" and direct.extra["sampler"] == "direct"
    np.testing.assert_array_equal(auto.w_final, proj.w_final)
    assert not np.array_equal(auto.w_final, direct.w_final)
    fixed = train(w_star, w0, KT, runs, "fixed", train_size=20, max_steps=5)
    assert fixed.extra["sampler"] == "direct"
    with pytest.raises(ValueError, match="^sampler"):
        train(w_star, w0, KT, runs, "fixed", train_size=20, max_steps=5, sampler="projected")


def test_train_cell_records_the_sampler():
    """The study passes empirical.sampler through and records the sampler used:
    the tiny config has 9 runs, so auto projects at n = 12 and not at n = 8."""
    from pathlib import Path

    from study.experiments.gaussian import make_data_cell, predict_limits_cell, train_cell
    from study.inprocess import load_config

    config = load_config(Path(__file__).resolve().parents[2] / ".test" / "config" / "config.yaml")
    config["empirical"]["max_steps"] = 5
    got = {}
    for n in (8, 12):
        data = make_data_cell(config, n, 4, 0)
        got[n] = train_cell(config, "empirical", data, predict_limits_cell(config, data)).attrs["sampler"]
    assert got == {8: "direct", 12: "projected"}
    config["empirical"]["sampler"] = "direct"
    assert train_cell(config, "empirical", data, predict_limits_cell(config, data)).attrs["sampler"] == "direct"


# ------------------------------------------------- label noise, both samplers

SIGMA = 0.3


def test_gradient_with_label_noise_same_mean_and_covariance():
    """Labels y = f(Z; w*) + sigma xi: the noise is independent of the inputs,
    so projection stays exact; the projected gradients (both precisions, noise
    added to the counts as the engine does) match the direct float64 ones."""
    w_star, W, codes = _columns()
    noise = np.random.default_rng(404).standard_normal((DRAWS, B)) * SIGMA
    rng = np.random.default_rng(505)
    direct = np.empty((DRAWS, W.size))
    for t in range(DRAWS):
        Z = rng.standard_normal((B * K, N))
        direct[t] = empirical_coarse_gradient(Z, Z @ w_star, W, K, codes, noise[t]).ravel()
    for precision, seed in (("float64", 606), ("float32", 707)):
        proj = np.empty_like(direct)
        with ExitStack() as stack:
            src = ProjectedSource(w_star, K, N, B, W.shape[1], seed, precision == "float32", 0, DRAWS, stack)
            work = _Workspace()
            for t in range(DRAWS):
                proj[t] = src.gradient(t, W, codes, work, noise[t]).ravel()
        z_mean, z_cov = _max_z_mean_cov(proj, direct)
        assert z_mean < Z_MAX and z_cov < Z_MAX, (precision, z_mean, z_cov)
    # and the noise matters at this sample size: the noise-free direct sample differs
    z_mean, z_cov = _max_z_mean_cov(_direct_samples("float64", DRAWS, 808), direct)
    assert max(z_mean, z_cov) > Z_MAX, (z_mean, z_cov)
