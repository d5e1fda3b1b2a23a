"""The baselines of issue 11 section 1 in rvscgd.engine (``method`` per run).

- prox_cgd and iht steps against the update written out by hand from
  rvscgd.model / rvscgd.penalties (population and exact empirical path);
- iht keeps exactly s nonzeros; prune trains plain CGD and ``prune_to``
  keeps the count largest entries (against a sort written here);
- a method's runs do not depend on which other methods share the batch;
- unknown methods and iht without s are refused, naming the argument.
"""

from __future__ import annotations

import numpy as np
import pytest

from rvscgd import (
    METHODS,
    coarse_constant,
    coarse_gradient,
    expected_coarse_gradient,
    keep_largest,
    make_runs,
    make_teacher,
    prox,
    prune_to,
    train,
)

N, K, S = 10, 3, 3
FIELDS = ("w_final", "u_final", "angle_w", "angle_u", "sparsity_u")


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(7)
    w_star = make_teacher(N, S, rng, 0.2)
    w0 = rng.standard_normal(N)
    return w_star, w0


def top(v, s):
    """v with all but its s largest |entries| zeroed (a sort, not keep_largest)."""
    out = np.zeros_like(v)
    idx = sorted(range(v.size), key=lambda i: (-abs(v[i]), i))[:s]
    out[idx] = v[idx]
    return out


def hand_step(w, g, method, penalty, lam, beta, eta, s):
    """One step of each method from its definition (issue 11, engine docstring)."""
    if method == "rvscgd":
        v = w - eta * (g + beta * (w - prox(w, lam / beta, penalty, 1.0)))
    elif method == "prox_cgd":
        v = prox(w - eta * g, eta * lam, penalty, 1.0)
    elif method == "iht":
        v = top(w - eta * g, s)
    else:  # prune: plain CGD during training
        v = w - eta * g
    return v / np.linalg.norm(v)


def all_methods():
    c = coarse_constant(K)
    meths = [m for m in METHODS for _ in range(3)]
    pens = ["l0", "l1", "tl1"] * len(METHODS)
    # lam large enough that prox_cgd's threshold eta lam bites within a few steps
    return make_runs(pens, 0.3 * c, 0.05, 2.0, method=meths)


@pytest.mark.parametrize("mode", ["population", "fresh"])
def test_steps_match_hand_computation(setup, mode):
    w_star, w0 = setup
    runs = all_methods()
    steps, B, seed = 5, 40, 3
    tr = train(w_star, w0, K, runs, mode, max_steps=steps, tol=0, batch_size=B, seed=seed, sampler="direct", sparsity=S)
    rng = np.random.Generator(np.random.PCG64(seed))  # the exact path's documented stream
    W = np.repeat((w0 / np.linalg.norm(w0))[:, None], len(runs), axis=1)
    for _ in range(steps):
        Z = rng.standard_normal((B * K, N)).reshape(B, K, N) if mode == "fresh" else None
        for r in range(len(runs)):
            w = W[:, r]
            g = expected_coarse_gradient(w, w_star, K) if Z is None else coarse_gradient(Z, w, w_star)
            W[:, r] = hand_step(w, g, runs.method[r], runs.penalty[r], runs.lam[r], runs.beta[r], runs.eta[r], S)
    assert np.max(np.abs(tr.w_final - W.T)) < 1e-12
    # u = w for the baselines (no splitting), u = prox(w) for rvscgd
    base = runs.method != "rvscgd"
    assert np.array_equal(tr.u_final[base], tr.w_final[base])
    rv = np.flatnonzero(~base)
    U = np.stack([prox(W[:, r], runs.lam[r] / runs.beta[r], runs.penalty[r], 1.0) for r in rv])
    assert np.max(np.abs(tr.u_final[rv] - U)) < 1e-12
    # the thresholds acted (not a vacuous comparison): prox_cgd's l0/l1 and iht runs are sparse
    nnz = (tr.w_final != 0).sum(axis=1)
    assert np.all(nnz[runs.method == "iht"] == S)
    assert np.any(nnz[runs.method == "prox_cgd"] < N)
    assert np.all(nnz[runs.method == "prune"] == N)


@pytest.mark.parametrize("mode", ["population", "fresh", "fixed"])
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_iht_keeps_exactly_s(setup, mode, precision):
    w_star, w0 = setup
    s = np.array([1, 2, 3, 5, 9])
    runs = make_runs("l1", 0.0, 0.05, 1.0, method="iht", sparsity=s)
    tr = train(w_star, w0, K, runs, mode, max_steps=60, batch_size=32, train_size=50, seed=1, precision=precision)
    assert np.array_equal((tr.w_final != 0).sum(axis=1), s)
    # every recorded step after the first (step 0 is the dense start)
    assert np.array_equal(
        np.round(tr.sparsity_u[:, 1:] * N), np.repeat((N - s)[:, None], tr.sparsity_u.shape[1] - 1, 1)
    )


def test_train_sparsity_fills_runs_without_one(setup):
    w_star, w0 = setup
    runs = make_runs("l1", 0.0, 0.05, 1.0, method="iht", sparsity=[0, 2])
    tr = train(w_star, w0, K, runs, "population", max_steps=20, sparsity=4)
    assert list((tr.w_final != 0).sum(axis=1)) == [4, 2]


def test_keep_largest_and_prune_to():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(12)
    for count in (0, 1, 4, 12):
        got = prune_to(w, count)
        assert np.array_equal(got, top(w, count))
        assert (got != 0).sum() == count
    # ties: the lower index wins, deterministically
    t = np.array([0.5, -0.5, 0.1, 0.5])
    assert np.array_equal(prune_to(t, 2), [0.5, -0.5, 0.0, 0.0])
    W = rng.standard_normal((5, 8))
    assert np.array_equal(prune_to(W, 3), np.stack([top(r, 3) for r in W]))
    cols = keep_largest(W.T, np.array([0, 1, 2, 3, 8]))
    assert np.array_equal(cols.T, np.stack([top(r, c) for r, c in zip(W, [0, 1, 2, 3, 8], strict=True)]))
    nan = np.full(4, np.nan)
    assert np.all(np.isnan(prune_to(nan, 2)))


def _same(alone, batch, idx, atol=0.0):
    assert np.array_equal(alone.status, batch.status[idx])
    assert np.array_equal(alone.steps_run, batch.steps_run[idx])
    for f in (*FIELDS, "lbeta"):
        a = alone.extra["lbeta"] if f == "lbeta" else getattr(alone, f)
        b = (batch.extra["lbeta"] if f == "lbeta" else getattr(batch, f))[idx]
        assert np.array_equal(np.isnan(a), np.isnan(b)), f
        if atol == 0:
            assert np.array_equal(a, b, equal_nan=True), f
        else:
            assert np.nanmax(np.abs(a - b), initial=0.0) <= atol, f


@pytest.mark.parametrize("mode", ["population", "fresh"])
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_methods_independent_of_batch(setup, mode, precision):
    """The RVSCGD runs are bit for bit the same with and without baselines in
    the batch, and the baselines with and without RVSCGD (each part steps on
    its own arrays); one baseline alone equals it beside the others up to the
    rounding of a product with other columns beside it (1e-12 in float64; in
    float32, where up to 2e-5 was seen after 80 steps, 1e-4). Direct sampler:
    the projected sampler's draws depend on the batch by design."""
    w_star, w0 = setup
    runs = all_methods()
    kw = dict(max_steps=80, tol=1e-13, batch_size=48, seed=4, sampler="direct", sparsity=S, precision=precision)
    batch = train(w_star, w0, K, runs, mode, **kw)
    for part in (runs.method == "rvscgd", runs.method != "rvscgd"):
        idx = np.flatnonzero(part)
        _same(train(w_star, w0, K, runs.select(idx), mode, **kw), batch, idx)
    for m in METHODS[1:]:
        idx = np.flatnonzero(runs.method == m)
        _same(train(w_star, w0, K, runs.select(idx), mode, **kw), batch, idx, 1e-12 if precision == "float64" else 1e-4)
    assert len(set(np.round(batch.angle_w[:, -1], 6))) > 3  # the methods did differ


def test_default_method_is_rvscgd(setup):
    """No method given = rvscgd, the same numbers as method='rvscgd' spelt out."""
    w_star, w0 = setup
    a = train(w_star, w0, K, make_runs("l1", 0.01, 0.05, 1.0), "fresh", max_steps=30, seed=2)
    b = train(w_star, w0, K, make_runs("l1", 0.01, 0.05, 1.0, method="rvscgd"), "fresh", max_steps=30, seed=2)
    assert np.array_equal(a.w_final, b.w_final) and np.array_equal(a.extra["lbeta"], b.extra["lbeta"])


def test_bad_method_and_sparsity(setup):
    w_star, w0 = setup
    with pytest.raises(ValueError, match="method"):
        make_runs("l1", 0.01, 0.05, 1.0, method="sgd")
    with pytest.raises(ValueError, match="sparsity"):
        make_runs("l1", 0.01, 0.05, 1.0, method="iht", sparsity=-1)
    iht = make_runs("l1", 0.01, 0.05, 1.0, method="iht")
    with pytest.raises(ValueError, match="sparsity"):
        train(w_star, w0, K, iht, "population", max_steps=5)
    with pytest.raises(ValueError, match="sparsity"):
        train(w_star, w0, K, iht, "population", max_steps=5, sparsity=N + 1)
    with pytest.raises(ValueError, match="count"):
        prune_to(w0, -1)


def test_iht_eta_sets_only_iht_steps_in_units_of_one_over_c():
    """``grid.iht_eta`` is IHT's step times c(k); every other method keeps the grid's eta."""
    from study.units import eta_effective, relu_constant

    config = {"grid": {"iht_eta": 0.5}}
    for k in (3, 4, 8):
        assert eta_effective(config, {"method": "iht", "eta": 1.0}, k) == pytest.approx(0.5 / relu_constant(k))
        for m in ("rvscgd", "prox_cgd", "prune"):
            assert eta_effective(config, {"method": m, "eta": 0.7}, k) == 0.7
    assert eta_effective({"grid": {"iht_eta": None}}, {"method": "iht", "eta": 0.7}, 4) == 0.7


def test_iht_at_half_over_c_recovers_the_support_in_population_mode():
    """The reason for the key: at eta = 0.5 / c population IHT reaches w* from
    every start tried (the default study's regime, s = 4 of n = 32, k = 4)."""
    from study.units import relu_constant

    n, k, s = 32, 4, 4
    rng = np.random.default_rng(11)
    runs = make_runs(penalty="l0", lam=0.0, beta=0.01, eta=0.5 / relu_constant(k), method="iht", sparsity=s)
    for _ in range(10):
        w_star = make_teacher(n, s, rng, 0.2)
        res = train(w_star, rng.standard_normal(n), k, runs, "population", max_steps=500, tol=1e-12)
        assert set(np.flatnonzero(res.u_final[0])) == set(np.flatnonzero(w_star))
        assert res.u_final[0] @ w_star == pytest.approx(1.0, abs=1e-9)
