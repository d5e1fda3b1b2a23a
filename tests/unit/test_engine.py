"""Unit tests of rvscgd.engine (the exact float64 path; the float32 fast path
has its own tests in test_fast_path.py).

- one run against a step-by-step reference written from model.md section 4
  with rvscgd.model / rvscgd.penalties (tested in their own files), in all
  three modes, traces included;
- a batch equals its runs trained one at a time (same seed, same stream);
- determinism; divergence isolated to its run; lam = 0 is plain CGD;
- bad arguments name the argument.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from rvscgd import (
    GRADIENT_MODES,
    angle,
    coarse_constant,
    coarse_gradient,
    expected_coarse_gradient,
    make_runs,
    make_teacher,
    prox,
    train,
)

N, K = 8, 3
FIELDS = ("w_final", "u_final", "angle_w", "angle_u", "loss", "sparsity_u", "dist_ref")


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(3)
    w_star = make_teacher(N, 3, rng)
    w0 = 2.0 * rng.standard_normal(N)  # not unit: train normalises it
    return w_star, w0


def mixed_runs(normalise=True, eta_scale=1.0):
    """12 runs: every penalty x STE, several lam, beta, eta, a."""
    c = coarse_constant(K)
    pens = ["l0", "l1", "tl1"] * 4
    stes = ["relu"] * 3 + ["identity"] * 3 + ["clipped_relu"] * 3 + ["relu", "identity", "clipped_relu"]
    return make_runs(
        pens,
        np.linspace(0.01, 0.3, 12) * c,
        np.linspace(0.02, 0.1, 12),
        np.linspace(0.2, 1.0, 12) * eta_scale,
        np.linspace(0.3, 2.0, 12),
        stes,
        normalise,
    )


def reference_train(w_star, w0, runs, mode, steps, *, seed, batch_size=50, train_size=40, w_ref=None):
    """RVSCGD written out from model.md section 4, one run at a time.

    Inputs (documented exact path): ``Generator(PCG64(seed)).standard_normal``,
    in "fixed" one (train_size k, n) draw, in "fresh" one (batch_size k, n)
    draw per step, each input's k patches consecutive rows.
    """
    R = len(runs)
    rng = np.random.Generator(np.random.PCG64(seed))
    Z_fixed = rng.standard_normal((train_size * K, N)).reshape(train_size, K, N) if mode == "fixed" else None
    W = np.repeat((w0 / np.linalg.norm(w0))[:, None], R, axis=1)
    hist = [W.copy()]
    for _ in range(steps):
        Z = rng.standard_normal((batch_size * K, N)).reshape(batch_size, K, N) if mode == "fresh" else Z_fixed
        W_new = np.empty_like(W)
        for r in range(R):
            w = W[:, r]
            if mode == "population":
                g = expected_coarse_gradient(w, w_star, K, runs.ste[r])
            else:
                g = coarse_gradient(Z, w, w_star, runs.ste[r])
            u = prox(w, runs.lam[r] / runs.beta[r], runs.penalty[r], runs.a[r])  # step 1
            v = w - runs.eta[r] * (g + runs.beta[r] * (w - u))  # step 2
            W_new[:, r] = v / np.linalg.norm(v) if runs.normalise[r] else v  # step 3
        W = W_new
        hist.append(W.copy())
    H = np.stack(hist)  # (steps+1, n, R)
    U = np.stack(
        [
            np.stack([prox(h[:, r], runs.lam[r] / runs.beta[r], runs.penalty[r], runs.a[r]) for r in range(R)], 1)
            for h in H
        ]
    )
    out = {
        "w_final": H[-1].T,
        "u_final": U[-1].T,
        "angle_w": np.stack([angle(h, w_star) for h in H], 1),
        "angle_u": np.stack([angle(u, w_star) for u in U], 1),
        "sparsity_u": np.stack([np.mean(u == 0, axis=0) for u in U], 1),
    }
    out["loss"] = out["angle_w"] / (2 * np.pi * K)
    if w_ref is not None:
        out["dist_ref"] = np.stack([np.linalg.norm(h - w_ref.T, axis=0) for h in H], 1)
    return out


@pytest.mark.parametrize("mode", GRADIENT_MODES)
@pytest.mark.parametrize("normalise", [True, False])
def test_train_matches_reference(setup, mode, normalise):
    """A few steps of every kind of run equal model.md's algorithm, traces too."""
    w_star, w0 = setup
    runs = mixed_runs(normalise)
    steps = 6
    w_ref = np.random.default_rng(0).standard_normal((len(runs), N))
    tr = train(
        w_star,
        w0,
        K,
        runs,
        mode,
        max_steps=steps,
        tol=0,
        record_steps=np.arange(steps + 1),
        w_ref=w_ref,
        batch_size=50,
        train_size=40,
        seed=11,
    )
    ref = reference_train(w_star, w0, runs, mode, steps, seed=11, w_ref=w_ref)
    assert np.array_equal(tr.record_steps, np.arange(steps + 1))
    for f in FIELDS:
        got = getattr(tr, f)
        assert got.shape == ref[f].shape, f
        assert np.array_equal(np.isnan(got), np.isnan(ref[f])), f  # angle_u is NaN where u = 0
        assert np.nanmax(np.abs(got - ref[f])) < 1e-12, f
    assert list(tr.status_names()) == ["max_steps"] * len(runs)
    assert np.all(tr.steps_run == steps)
    # the steps moved w (not a vacuous comparison) and some u are sparse
    assert np.all(np.linalg.norm(tr.w_final - w0 / np.linalg.norm(w0), axis=1) > 1e-3)
    assert np.any(tr.sparsity_u[:, -1] > 0)


def _batch_and_singles(w_star, w0, runs, mode, w_ref=None, **kw):
    # The direct sampler: a run's inputs do not depend on the other runs (the
    # projected sampler's draws do, by design; test_projected.py).
    kw.setdefault("sampler", "direct")
    batch = train(w_star, w0, K, runs, mode, w_ref=w_ref, **kw)
    singles = [
        train(w_star, w0, K, runs.select([r]), mode, w_ref=None if w_ref is None else w_ref[[r]], **kw)
        for r in range(len(runs))
    ]
    return batch, singles


def _assert_same_as_singles(batch, singles, rows=None, atol=1e-12):
    rows = range(len(singles)) if rows is None else rows
    for r in rows:
        one = singles[r]
        assert one.status[0] == batch.status[r]
        assert one.steps_run[0] == batch.steps_run[r]
        for f in FIELDS:
            a, b = getattr(one, f)[0], getattr(batch, f)[r]
            assert np.array_equal(np.isnan(a), np.isnan(b)), f
            assert np.nanmax(np.abs(a - b), initial=0.0) <= atol, (r, f)


@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_batched_equals_one_at_a_time(setup, mode):
    """Same seed, same stream: every run of a batch equals the run alone, to
    1e-12 (not bitwise: BLAS may round a product with R columns differently
    from one with 1; the steps here are small enough that the empirical
    dynamics do not amplify those 1e-16 differences beyond 1e-12)."""
    w_star, w0 = setup
    runs = mixed_runs(True, eta_scale=3.0 if mode == "population" else 1.0)
    w_ref = np.random.default_rng(1).standard_normal((len(runs), N))
    batch, singles = _batch_and_singles(
        w_star, w0, runs, mode, max_steps=150, tol=1e-13, batch_size=64, train_size=100, seed=5, w_ref=w_ref
    )
    _assert_same_as_singles(batch, singles)
    if mode == "population":  # runs stop at different steps: stopped runs must not disturb the rest
        assert np.any(batch.status_names() == "converged")
        assert np.any(batch.status_names() == "max_steps")


@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_deterministic(setup, mode):
    w_star, w0 = setup
    runs = mixed_runs(True)
    kw = dict(max_steps=40, batch_size=32, train_size=50)
    a = train(w_star, w0, K, runs, mode, seed=9, **kw)
    b = train(w_star, w0, K, runs, mode, seed=9, **kw)
    for f in (*FIELDS, "status", "steps_run", "record_steps"):
        assert np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True), f
        assert getattr(a, f).dtype == getattr(b, f).dtype
    assert a.w_final.dtype == np.float64
    # seed as a SeedSequence gives the same stream as the int
    c = train(w_star, w0, K, runs, mode, seed=np.random.SeedSequence(9), **kw)
    assert np.array_equal(a.w_final, c.w_final)
    d = train(w_star, w0, K, runs, mode, seed=10, **kw)
    if mode == "population":
        assert np.array_equal(a.w_final, d.w_final)  # nothing is sampled
    else:
        assert not np.array_equal(a.w_final, d.w_final)  # the seed is used


@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_divergence_is_isolated(setup, mode):
    """An un-normalised run with a huge step is marked diverged, its final
    weights and later traces are NaN, and the other runs are as if alone."""
    w_star, w0 = setup
    c = coarse_constant(K)
    runs = make_runs(
        ["l1", "l0", "tl1", "l1"],
        np.array([0.05, 0.1, 0.1, 0.05]) * c,
        0.05,
        [1.0, 1e200, 2.0, 0.5],
        normalise=[True, False, True, False],
    )
    with np.errstate(over="ignore"):
        batch, singles = _batch_and_singles(
            w_star, w0, runs, mode, max_steps=60, tol=1e-13, batch_size=32, train_size=64, seed=2
        )
    names = batch.status_names()
    assert names[1] == "diverged" and batch.steps_run[1] == 1
    assert np.all(np.isnan(batch.w_final[1])) and np.all(np.isnan(batch.u_final[1]))
    later = batch.record_steps >= 1
    for f in ("angle_w", "angle_u", "loss", "sparsity_u"):
        assert np.all(np.isnan(getattr(batch, f)[1, later])), f
        assert np.all(np.isfinite(getattr(batch, f)[1, ~later])), f
    assert not np.any(names[[0, 2, 3]] == "diverged")
    assert np.all(np.isfinite(batch.w_final[[0, 2, 3]]))
    _assert_same_as_singles(batch, singles)


def test_huge_step_of_a_normalised_run_is_not_divergence(setup):
    """A normalised run's iterate is a unit vector whatever the size of the
    raw step (here ~1e155 < float max): it has not diverged."""
    w_star, w0 = setup
    runs = make_runs("l1", 0.01, 0.05, 1e155, normalise=True)
    tr = train(w_star, w0, K, runs, "population", max_steps=1, tol=0)
    ref = reference_train(w_star, w0, runs, "population", 1, seed=0)
    assert tr.status_names()[0] == "max_steps"
    assert np.max(np.abs(tr.w_final[0] - ref["w_final"][0])) < 1e-12


@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_lam_zero_is_plain_cgd(setup, mode):
    """lam = 0: u = w at every step for every penalty (prox_0 = identity), so
    the three penalties give the same run; in population mode it equals
    w <- normalise(w - eta c (w-hat - w*))."""
    w_star, w0 = setup
    eta = 1.5
    runs = make_runs(["l0", "l1", "tl1"], 0.0, 0.05, eta, a=0.7)
    tr = train(w_star, w0, K, runs, mode, max_steps=80, tol=0, batch_size=32, train_size=50, seed=4)
    assert np.array_equal(tr.u_final, tr.w_final)
    assert np.array_equal(tr.w_final[0], tr.w_final[1]) and np.array_equal(tr.w_final[0], tr.w_final[2])
    assert np.all(tr.sparsity_u[:, -1] == 0)
    if mode == "population":
        c = coarse_constant(K)
        w = w0 / np.linalg.norm(w0)
        for _ in range(80):
            v = w - eta * c * (w / np.linalg.norm(w) - w_star)
            w = v / np.linalg.norm(v)
        assert np.max(np.abs(tr.w_final[0] - w)) < 1e-12
        assert float(angle(w, w_star)) < float(angle(w0, w_star))  # it moved towards w*


def test_convergence_and_record_steps(setup):
    """A run that converges stops (status, steps_run) and carries its final
    state forward in the traces; a slower run in the same batch goes on to
    max_steps; loss = angle / (2 pi k); step 0 is the normalised start."""
    w_star, w0 = setup
    c = coarse_constant(K)
    runs = make_runs(["l1", "l0"], 0.05 * c, 0.05, [3.0, 0.3])
    rec = [0, 10, 100, 200, 300]
    tr = train(w_star, w0, K, runs, "population", max_steps=300, tol=1e-13, record_steps=rec)
    assert list(tr.status_names()) == ["converged", "max_steps"]
    assert 100 < tr.steps_run[0] < 200 and tr.steps_run[1] == 300
    final_angle = float(angle(tr.w_final[0], w_star))
    assert tr.angle_w[0, -1] == final_angle and tr.angle_w[0, -2] == final_angle
    assert tr.angle_w[1, -1] != tr.angle_w[1, -2]  # the other run kept moving
    # one step more from the converged state moves it by at most tol
    again = train(w_star, tr.w_final[0], K, runs.select([0]), "population", max_steps=1, tol=0)
    assert np.linalg.norm(again.w_final[0] - tr.w_final[0]) <= 1e-13
    assert np.allclose(tr.loss, tr.angle_w / (2 * np.pi * K), rtol=1e-15, atol=0)
    assert np.all(tr.angle_w[:, 0] == float(angle(w0, w_star)))
    assert np.array_equal(tr.record_steps, rec)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(penalty="l2"), "^penalty"),
        (dict(ste="tanh"), "^ste"),
        (dict(lam=-0.1), "^lam"),
        (dict(lam=[0.1, -1e-9]), "^lam"),
        (dict(beta=0.0), "^beta"),
        (dict(beta=-0.5), "^beta"),
        (dict(eta=0.0), "^eta"),
        (dict(eta=-1.0), "^eta"),
        (dict(eta=np.inf), "^eta"),
        (dict(a=0.0), "^a "),
    ],
)
def test_make_runs_bad_arguments(kwargs, name):
    args = dict(penalty="l1", lam=0.1, beta=0.05, eta=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        make_runs(**args)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(mode="batch"), "^mode"),
        (dict(max_steps=0), "^max_steps"),
        (dict(tol=-1.0), "^tol"),
        (dict(mode="fresh", batch_size=0), "^batch_size"),
        (dict(mode="fixed", train_size=None), "^train_size"),
        (dict(w0=np.ones(N + 1)), "^w0"),
    ],
)
def test_train_bad_arguments(setup, kwargs, name):
    w_star, w0 = setup
    args = dict(w_star=w_star, w0=w0, k=K, runs=make_runs("l1", 0.1, 0.05, 1.0))
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        train(**args)


def test_precision_option_if_present(setup):
    """If train has a precision option, its default is the exact float64 path
    and a bad value names the argument (not required to exist)."""
    params = inspect.signature(train).parameters
    if "precision" not in params:
        pytest.skip("train has no precision option")
    assert params["precision"].default == "float64"
    w_star, w0 = setup
    with pytest.raises(ValueError, match="^precision"):
        train(w_star, w0, K, make_runs("l1", 0.1, 0.05, 1.0), "fresh", precision="float16")
