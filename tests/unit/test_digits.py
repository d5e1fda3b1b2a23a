"""Unit tests of rvscgd.digits (issue 12): patching, the coarse gradient against
finite differences of the STE surrogate, the batched grid against one run at a
time, magnitude pruning, the split, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from rvscgd import digits as D
from rvscgd import prox

MU = {  # the STE surrogates mu whose derivatives the backward pass uses
    "relu": lambda x: np.maximum(x, 0.0),
    "identity": lambda x: x,
    "clipped_relu": lambda x: np.clip(x, 0.0, 1.0),
}


def tiny_problem(seed=0, N=30, side=4, patch=2, F=3, C=4):
    rng = np.random.default_rng(seed)
    Z = D.patches(rng.standard_normal((N, side, side)), patch)
    y = rng.integers(0, C, N)
    W = D.init_params(rng, Z.shape[2], F)
    V = 0.5 * rng.standard_normal((Z.shape[1] * F, C))
    b = 0.1 * rng.standard_normal(C)
    return Z, y, W, V, b


def surrogate_loss(Z, y, W, W0, V, b, ste, activation):
    """The STE surrogate around W0: the forward value is the network's at W0,
    and W enters through mu, so its gradient at W0 is exactly the coarse gradient:
    S(W) = CE(V^T [sigma(Z W0) + mu(Z W) - mu(Z W0)] + b).
    For the relu network sigma = mu = relu and S is the true loss."""
    N, k, _ = Z.shape
    pre, pre0 = Z @ W, Z @ W0
    mu = MU["relu" if activation == "relu" else ste]
    sig0 = np.maximum(pre0, 0.0) if activation == "relu" else (pre0 > 0).astype(float)
    H = (sig0 + mu(pre) - mu(pre0)).reshape(N, -1)
    return float(D.cross_entropy((H @ V + b)[None], y)[0])


@pytest.mark.parametrize(("ste", "activation"), [(s, "binary") for s in D.STES] + [("relu", "relu")])
def test_coarse_gradient_matches_finite_differences_of_surrogate(ste, activation):
    Z, y, W, V, b = tiny_problem()
    if ste == "clipped_relu":
        W = 0.5 * W  # keep pre-activations inside (0, 1) often enough for a nonzero mu'
    runs = D.make_digit_runs("l1", 0.0, ste, activation)
    C = V.shape[1]
    gW, gV, gb, loss = D.gradients(Z, y, W[None], V[None], b[None], runs, C)
    assert loss[0] == pytest.approx(surrogate_loss(Z, y, W, W, V, b, ste, activation), rel=1e-12)
    pre = (Z @ W).ravel()
    kinks = np.abs(np.concatenate([pre, pre - 1.0]))
    # Central differences with a step far below the nearest kink of mu: exact up to O(h^2).
    h = 1e-3 * kinks.min() / max(1.0, np.abs(Z).max())
    fd = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[idx] = h
        fd[idx] = (
            surrogate_loss(Z, y, W + E, W, V, b, ste, activation)
            - surrogate_loss(Z, y, W - E, W, V, b, ste, activation)
        ) / (2 * h)
    assert np.abs(gW[0]).max() > 1e-4  # a real gradient, not zero against zero
    np.testing.assert_allclose(gW[0], fd, rtol=1e-5, atol=1e-9)
    # The readout gradient is the true one: finite differences of the loss in V and b.
    hv = 1e-6
    fdv = np.zeros_like(V)
    for idx in np.ndindex(V.shape):
        E = np.zeros_like(V)
        E[idx] = hv
        fdv[idx] = (
            surrogate_loss(Z, y, W, W, V + E, b, ste, activation)
            - surrogate_loss(Z, y, W, W, V - E, b, ste, activation)
        ) / (2 * hv)
    np.testing.assert_allclose(gV[0], fdv, rtol=1e-6, atol=1e-10)
    fdb = [
        (
            surrogate_loss(Z, y, W, W, V, b + hv * e, ste, activation)
            - surrogate_loss(Z, y, W, W, V, b - hv * e, ste, activation)
        )
        / (2 * hv)
        for e in np.eye(C)
    ]
    np.testing.assert_allclose(gb[0], fdb, rtol=1e-6, atol=1e-10)


def test_patches_cut_row_major_with_bias():
    img = np.arange(64.0).reshape(1, 8, 8)
    Z = D.patches(img, 4)
    assert Z.shape == (1, 4, 17)
    np.testing.assert_array_equal(Z[0, :, -1], 1.0)
    np.testing.assert_array_equal(Z[0, 0, :16], img[0, :4, :4].ravel())
    np.testing.assert_array_equal(Z[0, 1, :16], img[0, :4, 4:].ravel())
    np.testing.assert_array_equal(Z[0, 3, :16], img[0, 4:, 4:].ravel())
    assert D.patches(img.reshape(1, 64), 2).shape == (1, 16, 5)
    with pytest.raises(ValueError, match="patch"):
        D.patches(img, 3)


def grid_runs_mixed():
    """A grid like the workflow's: dense runs, every penalty at two lam, both activations, two STEs."""
    pens = ["l0", "l0", "l1", "tl1", "l0", "l1", "tl1", "l1"]
    lams = [0.0, 0.003, 0.01, 0.01, 0.02, 0.003, 0.003, 0.0]
    stes = ["relu", "relu", "relu", "relu", "identity", "clipped_relu", "identity", "relu"]
    acts = ["binary"] * 7 + ["relu"]
    return D.make_digit_runs(pens, lams, stes, acts)


@pytest.mark.parametrize("batch_size", [None, 7])
def test_batched_grid_equals_one_run_at_a_time(batch_size):
    Z, y, W0, _, _ = tiny_problem(N=40, F=3)
    runs = grid_runs_mixed()
    kw = dict(
        classes=4, steps=25, eta=0.3, eta_readout=0.5, beta=0.1, batch_size=batch_size, seed=5, record_steps=[0, 10, 25]
    )
    batch = D.train(Z, y, runs, W0, **kw)
    for r in range(len(runs)):
        one = D.train(Z, y, runs.select([r]), W0, **kw)
        for field in ("W", "U", "V", "b", "loss"):
            np.testing.assert_allclose(getattr(batch, field)[r], getattr(one, field)[0], rtol=1e-10, atol=1e-13)
    # The runs really differ (the comparison is not between copies of one run).
    assert np.ptp(batch.W[:, :-1].reshape(len(runs), -1), axis=0).max() > 1e-3
    # Binary filters are unit norm; the sparse ones have zeros, and u = prox(w) of the penalty.
    binary = runs.activation == "binary"
    np.testing.assert_allclose(np.linalg.norm(batch.W[binary], axis=1), 1.0, rtol=1e-12)
    r = 3  # tl1, lam 0.01
    np.testing.assert_array_equal(batch.U[r, :-1], prox(batch.W[r, :-1], 0.01 / 0.1, "tl1", 1.0))
    np.testing.assert_array_equal(batch.U[r, -1], batch.W[r, -1])  # the bias is not penalised


def test_training_learns_a_separable_task():
    """A label a single patch's sign decides: coarse-gradient training beats chance
    by a margin no fixed-start readout-only fluke reaches on 200 held-out items."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((600, 4, 4))
    y = (X[:, :2, :2].sum(axis=(1, 2)) > 0).astype(int)
    Z = D.patches(X, 2)
    runs = D.make_digit_runs(["l1", "l0"], [0.0, 0.002], "relu", ["binary", "binary"])
    W0 = D.init_params(rng, Z.shape[2], 4)
    res = D.train(Z[:400], y[:400], runs, W0, classes=2, steps=400, eta=0.5, eta_readout=1.0, beta=0.1, batch_size=50)
    acc = D.accuracy(Z[400:], y[400:], res.U, res.V, res.b, [True, True])
    # Chance is 0.5 with standard error 0.035 on 200 items: 0.85 is 10 standard errors above.
    assert (acc > 0.85).all(), acc
    assert res.loss[:, -1].max() < res.loss[:, 0].min()


def test_magnitude_prune_keeps_the_largest_and_the_bias():
    W = np.arange(1.0, 16.0).reshape(1, 5, 3) * np.array([1, -1, 1])  # 12 pixel weights, then the bias row
    out = D.magnitude_prune(W, [0.5])
    kept = out[0, :-1] != 0
    assert kept.sum() == 6
    np.testing.assert_array_equal(np.sort(np.abs(out[0, :-1][kept])), [7.0, 8.0, 9.0, 10.0, 11.0, 12.0])
    np.testing.assert_array_equal(out[0, -1], W[0, -1])
    assert D.filter_sparsity(out)[0] == 0.5
    with pytest.raises(ValueError, match="sparsity"):
        D.magnitude_prune(W, [1.5])


def test_finetune_lowers_the_training_loss_of_a_frozen_network():
    Z, y, W0, _, _ = tiny_problem(N=60)
    runs = D.make_digit_runs("l0", 0.02, "relu")
    res = D.train(Z, y, runs, W0, classes=4, steps=5, eta=0.1, eta_readout=0.1)
    V, b = D.finetune_readout(Z, y, res.U, res.V, res.b, [True], steps=50, eta=0.5, classes=4)
    _, H = D.hidden(Z, res.U, [True])
    before = D.cross_entropy(D.logits(H, res.V, res.b), y)
    after = D.cross_entropy(D.logits(H, V, b), y)
    assert after[0] < before[0]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"steps": 0}, "steps"),
        ({"eta": -1.0}, "eta"),
        ({"beta": 0.0}, "beta"),
        ({"batch_size": 0}, "batch_size"),
        ({"dtype": "float16"}, "dtype"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    Z, y, W0, _, _ = tiny_problem()
    with pytest.raises(ValueError, match=name):
        D.train(Z, y, D.make_digit_runs("l1", 0.0), W0, classes=4, **kwargs)
    with pytest.raises(ValueError, match="activation"):
        D.make_digit_runs("l1", 0.0, "relu", "sigmoid")
    with pytest.raises(ValueError, match="lam"):
        D.make_digit_runs("l1", 0.1, "relu", "relu")


def test_split_partitions_and_standardises_on_the_training_part():
    rng = np.random.default_rng(0)
    train, test = D.split_indices(101, 0.3, rng)
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(101))
    assert test.size == 30
    x = rng.standard_normal((101, 5)) * [1, 2, 3, 4, 0] + 7
    tr, te, mean, scale = D.standardise(x[train], x[test])
    np.testing.assert_allclose(mean, x[train].mean(axis=0))
    np.testing.assert_allclose(tr.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(tr[:, :4].std(axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(te, (x[test] - mean) / scale)
    assert scale[4] == 1.0  # a constant pixel is centred, not divided by 0
