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
            surrogate_loss(Z, y, W + E, W, V, b, ste, activation) - surrogate_loss(Z, y, W - E, W, V, b, ste, activation)
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
            surrogate_loss(Z, y, W, W, V + E, b, ste, activation) - surrogate_loss(Z, y, W, W, V - E, b, ste, activation)
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
