"""The engine's float32 fast path (``train(..., precision="float32")``) and its sampler.

What is checked:
- the float32 Box-Muller normals: moments (mean, variance, 3rd, 4th), tails,
  independence of the pair halves, against SE-derived tolerances;
- reproducibility to the bit: same seed twice, int seed vs SeedSequence, any
  number of sampling threads; the caller's SeedSequence is not mutated;
- the float32 coarse gradient equals the float64 one on the same inputs and
  is unbiased for the expected coarse gradient (all three STEs);
- statistical equivalence of training: mean traces over many seeds agree with
  the exact float64 path within SE-derived tolerances, and the same test does
  detect a real difference (a smaller batch);
- stopping (diverged / converged runs), population mode untouched, validation.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import special, stats

from rvscgd import coarse_constant, make_runs, make_teacher, train
from rvscgd.engine import _positive_counts, empirical_coarse_gradient, empirical_coarse_gradient_f32
from rvscgd.model import STES, expected_coarse_gradient_fast
from rvscgd.sampling import (
    SUBSTREAMS,
    BoxMuller,
    MinibatchSampler,
    block_bounds,
    standard_normal_f32,
    substream_seeds,
)

N, K = 16, 4


def _z(value, expected, se):
    return abs(value - expected) / se


# ---------------------------------------------------------------- the sampler


@pytest.fixture(scope="module")
def normals():
    z = standard_normal_f32(20190127, (1 << 22,))
    return z.astype(np.float64)


def test_sampler_dtype_and_finite(normals):
    z = standard_normal_f32(1, (1000, 7))
    assert z.dtype == np.float32 and z.shape == (1000, 7)
    assert np.all(np.isfinite(normals))
    assert np.abs(normals).max() < np.sqrt(66 * np.log(2)) + 1e-3  # the documented cap


def test_sampler_moments(normals):
    """E z = 0, E z^2 = 1, E z^3 = 0, E z^4 = 3, each within 4.5 standard errors
    (SE from the normal's own moments: Var z^p = E z^{2p} - (E z^p)^2)."""
    n = normals.size
    z2 = normals**2
    assert _z(normals.mean(), 0.0, np.sqrt(1.0 / n)) < 4.5
    assert _z(z2.mean(), 1.0, np.sqrt(2.0 / n)) < 4.5
    assert _z((z2 * normals).mean(), 0.0, np.sqrt(15.0 / n)) < 4.5
    assert _z((z2 * z2).mean(), 3.0, np.sqrt(96.0 / n)) < 4.5


def test_sampler_tails_and_ks(normals):
    n = normals.size
    for c in (1.0, 2.0, 3.0, 4.0):
        p = 2.0 * special.ndtr(-c)
        frac = np.mean(np.abs(normals) > c)
        assert _z(frac, p, np.sqrt(p * (1 - p) / n)) < 4.5, c
    assert stats.kstest(normals[: 1 << 18], "norm").pvalue > 1e-3


def test_sampler_pairs_independent(normals):
    """Box-Muller's two outputs of one word (cos and sin halves of a chunk) are
    uncorrelated, and so are their squares (they are independent normals)."""
    m = 1 << 16  # sampling.CHUNK: the first chunk is cos half, then sin half
    a, b = normals[:m], normals[m : 2 * m]
    se = np.sqrt(1.0 / m)
    assert abs(np.corrcoef(a, b)[0, 1]) < 4.5 * se
    assert abs(np.corrcoef(a * a, b * b)[0, 1]) < 4.5 * se


def test_sampler_odd_sizes_and_blocks():
    bg = np.random.PCG64(3)
    z = BoxMuller(bg).fill(np.empty(7, np.float32))
    assert np.all(np.isfinite(z)) and np.unique(z).size == 7
    assert list(block_bounds(10, 4)) == [0, 3, 6, 8, 10]
    assert list(block_bounds(2, 4)) == [0, 1, 2, 2, 2]
    with pytest.raises(ValueError):
        BoxMuller(bg).fill(np.empty(4, np.float64))


def test_substreams_fixed_and_seed_not_mutated():
    ss = np.random.SeedSequence(7, spawn_key=(1, 2))
    a = standard_normal_f32(ss, (64, 3))
    assert ss.n_children_spawned == 0
    b = standard_normal_f32(ss, (64, 3))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        standard_normal_f32(7, (64, 3)), standard_normal_f32(np.random.SeedSequence(7), (64, 3))
    )
    assert len(substream_seeds(ss)) == SUBSTREAMS
    # Not the children the caller would spawn itself.
    own = [c.generate_state(4) for c in np.random.SeedSequence(7, spawn_key=(1, 2)).spawn(4)]
    ours = [c.generate_state(4) for c in substream_seeds(ss)]
    assert not any(np.array_equal(x, y) for x in own for y in ours)


@pytest.mark.parametrize("threads", [0, 1, 2, 3, 8])
def test_minibatch_sampler_independent_of_threads(threads):
    """Successive minibatches equal the serial draw, whatever the thread count."""
    items, k, cols, steps = 37, 3, 5, 4
    ref = MinibatchSampler(11, items, k, cols, threads=0)
    with ref, MinibatchSampler(11, items, k, cols, threads=threads) as s:
        for _ in range(steps):
            np.testing.assert_array_equal(s.next()[1], ref.next()[1])
    np.testing.assert_array_equal(
        MinibatchSampler(11, items, k, cols).next()[1], standard_normal_f32(11, (items * k, cols), rows_per_item=k)
    )


# ------------------------------------------------------------- the gradient


def _weights(rng, n, scale=1.0):
    W = rng.standard_normal((n, 6))
    return W / np.linalg.norm(W, axis=0) * scale


@pytest.mark.parametrize("scale", [1.0, 0.4, 1e6])
def test_f32_gradient_equals_f64_on_same_inputs(scale):
    """Same (float32-representable) inputs: the float32 gradient equals the
    float64 one up to float32 rounding, every STE, any column norm."""
    rng = np.random.default_rng(5)
    B = 64
    w_star = make_teacher(N, 4, rng)
    Z32 = rng.standard_normal((B * K, N)).astype(np.float32)
    Z64 = Z32.astype(np.float64)
    W = _weights(rng, N, scale)
    codes = np.array([0, 1, 2, 0, 1, 2], dtype=np.int8)
    g64 = empirical_coarse_gradient(Z64, Z64 @ w_star, W, K, codes)
    g32 = empirical_coarse_gradient_f32(Z32, _positive_counts(Z32, w_star, K), W, K, codes)
    assert g32.dtype == np.float64 and g32.shape == (N, 6)
    np.testing.assert_allclose(g32, g64, rtol=0, atol=1e-6)


def test_f32_gradient_unbiased_for_expected():
    """The mean of the fast path's gradient over many fresh minibatches is the
    expected coarse gradient (model.md section 2), every STE: per coordinate
    within 5 SE (SE from the spread over minibatches)."""
    rng = np.random.default_rng(8)
    w_star = make_teacher(N, 4, rng)
    W = _weights(rng, N)
    W[:, 2] *= 0.7  # clipped_relu depends on ||w||
    codes = np.array([0, 1, 2, 0, 1, 2], dtype=np.int8)
    B, reps = 256, 300
    counts = [np.empty(B, np.float32), np.empty(B, np.float32)]
    sampler = MinibatchSampler(99, B, K, N, threads=0)
    gs = []
    for _ in range(reps):
        slot, Z = sampler.next()
        counts[slot][:] = _positive_counts(Z, w_star, K)
        gs.append(empirical_coarse_gradient_f32(Z, counts[slot], W, K, codes))
    gs = np.asarray(gs)
    mean, se = gs.mean(axis=0), gs.std(axis=0, ddof=1) / np.sqrt(reps)
    expected = expected_coarse_gradient_fast(W, w_star, K, codes)
    assert np.all(np.abs(mean - expected) < 5 * se + 1e-12)
    assert set(codes) == set(range(len(STES)))


# ----------------------------------------------------------------- training


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    w_star = make_teacher(N, 3, rng, min_abs=0.3)
    w0 = rng.standard_normal(N)
    c = coarse_constant(K)
    # beta ~ c; prox thresholds ~0.2-0.3 (the teacher's entries are ~0.5).
    beta = c
    runs = make_runs(
        penalty=["l0", "l1", "tl1", "l1", "l1", "l0"],
        lam=np.array([0.03, 0.15, 0.1, 0.0, 0.15, 0.03]) * beta,
        beta=beta,
        eta=2.0,
        ste=["relu", "relu", "relu", "relu", "identity", "clipped_relu"],
    )
    return w_star, w0, runs


def _fields(res):
    return ("angle_w", "angle_u", "loss", "sparsity_u", "dist_ref", "w_final", "u_final", "status", "steps_run")


def _assert_same(a, b):
    for f in _fields(a):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


FAST = dict(precision="float32", max_steps=60, batch_size=32, tol=0.0)


# Both samplers of fresh mode (R + 1 = 7 < n = 16, so "projected" applies).
SAMPLERS = pytest.mark.parametrize("sampler", ["direct", "projected"])


@SAMPLERS
def test_fast_path_bit_identical_twice(sampler):
    w_star, w0, runs = _problem()
    a = train(w_star, w0, K, runs, "fresh", seed=3, sampler=sampler, **FAST)
    b = train(w_star, w0, K, runs, "fresh", seed=3, sampler=sampler, **FAST)
    assert a.extra["sampler"] == b.extra["sampler"] == sampler
    _assert_same(a, b)
    c = train(w_star, w0, K, runs, "fresh", seed=4, sampler=sampler, **FAST)
    assert not np.array_equal(a.w_final, c.w_final)


@SAMPLERS
@pytest.mark.parametrize("threads", [0, 2, 4])
def test_fast_path_independent_of_sampling_threads(threads, sampler, monkeypatch):
    import rvscgd.engine

    monkeypatch.setattr(rvscgd.engine, "_PARALLEL_MIN", 0)  # thread even these small batches
    w_star, w0, runs = _problem()
    one = train(w_star, w0, K, runs, "fresh", seed=3, sample_threads=1, sampler=sampler, **FAST)
    other = train(w_star, w0, K, runs, "fresh", seed=3, sample_threads=threads, sampler=sampler, **FAST)
    _assert_same(one, other)


@SAMPLERS
def test_fast_path_independent_of_threads_large_batch(sampler):
    """A minibatch big enough to be drawn in threads by default (2^17 normals
    direct; 2048 x 4 x 7 = 57344 < 2^16 projected, so 8192 inputs there)."""
    w_star, w0, runs = _problem()
    kw = dict(FAST, max_steps=12, batch_size=2048 if sampler == "direct" else 8192, sampler=sampler)
    one = train(w_star, w0, K, runs, "fresh", seed=9, sample_threads=1, **kw)
    two = train(w_star, w0, K, runs, "fresh", seed=9, sample_threads=2, **kw)
    serial = train(w_star, w0, K, runs, "fresh", seed=9, sample_threads=0, **kw)
    _assert_same(one, two)
    _assert_same(one, serial)


_SUBPROCESS = """
import sys, hashlib
sys.path.insert(0, {here!r})
import numpy as np
from rvscgd import train
from test_fast_path import FAST, K, _problem, _fields
w_star, w0, runs = _problem()
res = train(
    w_star, w0, K, runs, "fresh", seed=np.random.SeedSequence(3, spawn_key=(4,)), sample_threads=2,
    sampler={sampler!r}, **FAST
)
h = hashlib.sha256()
for f in _fields(res):
    h.update(np.ascontiguousarray(getattr(res, f)).tobytes())
print(h.hexdigest())
"""


@SAMPLERS
def test_fast_path_bit_identical_across_processes(sampler):
    """Another process (other buffer addresses, a thread pool) gives the same bits."""
    import hashlib
    import os
    import subprocess
    import sys

    w_star, w0, runs = _problem()
    seed = np.random.SeedSequence(3, spawn_key=(4,))
    res = train(w_star, w0, K, runs, "fresh", seed=seed, sample_threads=0, sampler=sampler, **FAST)
    h = hashlib.sha256()
    for f in _fields(res):
        h.update(np.ascontiguousarray(getattr(res, f)).tobytes())
    code = _SUBPROCESS.format(here=os.path.dirname(os.path.abspath(__file__)), sampler=sampler)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == h.hexdigest()


def test_fast_path_seed_int_or_seed_sequence():
    w_star, w0, runs = _problem()
    ss = np.random.SeedSequence(3)
    a = train(w_star, w0, K, runs, "fresh", seed=3, **FAST)
    b = train(w_star, w0, K, runs, "fresh", seed=ss, **FAST)
    _assert_same(a, b)
    assert ss.n_children_spawned == 0
    keyed = np.random.SeedSequence(3, spawn_key=(2,))
    c = train(w_star, w0, K, runs, "fresh", seed=keyed, **FAST)
    d = train(w_star, w0, K, runs, "fresh", seed=keyed, **FAST)
    _assert_same(c, d)
    assert not np.array_equal(a.w_final, c.w_final)


def test_fast_path_fixed_mode_reproducible():
    w_star, w0, runs = _problem()
    kw = dict(precision="float32", max_steps=40, train_size=50)
    a = train(w_star, w0, K, runs, "fixed", seed=5, sample_threads=0, **kw)
    b = train(w_star, w0, K, runs, "fixed", seed=5, sample_threads=2, **kw)
    _assert_same(a, b)
    assert np.all(np.isfinite(a.angle_w))


def test_population_mode_ignores_precision():
    w_star, w0, runs = _problem()
    a = train(w_star, w0, K, runs, "population", max_steps=50)
    b = train(w_star, w0, K, runs, "population", max_steps=50, precision="float32")
    _assert_same(a, b)


def test_validation():
    w_star, w0, runs = _problem()
    with pytest.raises(ValueError, match="precision"):
        train(w_star, w0, K, runs, "fresh", precision="float16")
    with pytest.raises(ValueError, match="sample_threads"):
        train(w_star, w0, K, runs, "fresh", precision="float32", sample_threads=-1)
    with pytest.raises(ValueError, match="batch_size"):
        train(w_star, w0, K, runs, "fresh", precision="float32", batch_size=0)


def test_fast_path_stopping_like_exact_path():
    """An unnormalised run with eta beta = 5 and u = 0 (l0, threshold above
    1e150) grows like 4^t: both paths declare it diverged (NaN after), at the
    same step within a few; stable runs keep going; a large tol makes runs
    converge and carry their state."""
    w_star, w0, _ = _problem()
    c = coarse_constant(K)
    runs = make_runs(
        penalty=["l0", "l1", "l1"], lam=[1e305, 0.0, 0.3 * c], beta=[1.0, 0.05, 0.05], eta=[5.0, 2.0, 2.0],
        normalise=[False, True, True],
    )  # fmt: skip
    kw = dict(max_steps=400, batch_size=16, tol=0.0)
    exact = train(w_star, w0, K, runs, "fresh", seed=1, **kw)
    fast = train(w_star, w0, K, runs, "fresh", seed=1, precision="float32", **kw)
    for res in (exact, fast):
        # (a stable run may also "converge" on a minibatch with zero gradient)
        assert res.status_names()[0] == "diverged" and "diverged" not in res.status_names()[1:]
        assert np.all(np.isnan(res.w_final[0])) and np.all(np.isnan(res.u_final[0]))
        assert np.all(np.isfinite(res.w_final[1:]))
        stop = np.searchsorted(res.record_steps, res.steps_run[0])
        assert np.all(np.isnan(res.angle_w[0, stop:]))
    assert abs(int(exact.steps_run[0]) - int(fast.steps_run[0])) <= 3
    conv = train(w_star, w0, K, runs, "fresh", seed=1, precision="float32", max_steps=300, batch_size=16, tol=1.0)
    assert list(conv.status_names()[1:]) == ["converged", "converged"]
    assert np.all(conv.steps_run[1:] == 1)
    np.testing.assert_array_equal(conv.angle_w[1:, -1], conv.angle_w[1:, 1])


def _mean_traces(precision, seeds, batch_size, steps=120, sampler="direct"):
    w_star, w0, runs = _problem()
    res = [
        train(
            w_star, w0, K, runs, "fresh", seed=s, precision=precision, max_steps=steps, batch_size=batch_size,
            tol=0.0, record_steps=[0, 10, 30, 60, 120], sampler=sampler,
        )
        for s in seeds
    ]  # fmt: skip
    stats_ = np.stack([np.concatenate([r.angle_w[:, 1:], r.angle_u[:, 1:], r.sparsity_u[:, 1:]], axis=1) for r in res])
    return stats_.mean(axis=0), stats_.std(axis=0, ddof=1) / np.sqrt(len(seeds))


@pytest.fixture(scope="module")
def exact_stats():
    return _mean_traces("float64", range(1000, 1040), batch_size=32)


def _max_z(a, b):
    """Largest |difference of means| / SE of the difference; inf if the two
    differ where the SE is 0 (both constant) or in where they are defined."""
    (ma, sa), (mb, sb) = a, b
    assert np.array_equal(np.isnan(ma), np.isnan(mb))
    ok = ~np.isnan(ma)
    ma, sa, mb, sb = ma[ok], sa[ok], mb[ok], sb[ok]
    se = np.sqrt(sa**2 + sb**2)
    z = np.abs(ma - mb) / np.where(se > 0, se, np.inf)
    z[(se == 0) & (ma != mb)] = np.inf
    return float(np.max(z))


@SAMPLERS
def test_fast_path_statistically_equivalent(exact_stats, sampler):
    """Mean over 40 seeds of the angles of w and u and the sparsity of u, at 4
    record steps, for 6 runs (72 statistics): fast path (either sampler) vs
    the exact path with direct sampling, every difference within 4.5 standard
    errors of the difference (independent seeds; 4.5 SE keeps the family-wise
    false alarm rate < 0.1% per comparison)."""
    fast = _mean_traces("float32", range(2000, 2040), batch_size=32, sampler=sampler)
    assert _max_z(fast, exact_stats) < 4.5


def test_equivalence_test_has_power(exact_stats):
    """The same comparison flags a real change: batch 8 instead of 32 (a
    noisier gradient, a larger stationary angle)."""
    other = _mean_traces("float32", range(2000, 2040), batch_size=8)
    assert _max_z(other, exact_stats) > 6


# -------------------------------------------------------------------- bench


def test_bench_smoke(capsys):
    from rvscgd import bench

    argv = ["--rounds", "1", "--steps", "2", "--loop-runs", "1", "--loop-steps", "1", "--scale-steps", "1"]
    out = bench.main(argv)
    *_, before, last = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"projected/direct=[0-9.]+ at n=256,k=16,B=1024", before)
    assert re.fullmatch(r"batched/loop=[0-9.]+ batched/bound=[0-9.]+ batched_run_steps_per_s=[0-9]+", last)
    assert set(out) == {"batched/loop", "batched/bound", "batched_run_steps_per_s", "projected/direct"}
