"""The two-layer model: a trainable second layer (model.md section 6, after Yin et al., ICLR 2019).

``f(Z; v, w) = sum_i v_i sigma(<Z_i, w>)`` with ``sigma(x) = 1{x > 0}``, teacher
``(v*, w*)``, sample loss ``l = 1/2 (f(Z; v, w) - f(Z; v*, w*))^2`` over
Gaussian inputs ``Z`` (k non-overlapping patches of n features). ``v`` is
trained by its true gradient, ``w`` by a coarse gradient (an STE replaces
sigma' by mu'). The closed forms below are derived in docs/two_layer.md.

Shapes: ``v`` is ``(k,)`` or, batched over runs, ``(k, R)``; ``w`` is ``(n,)``
or ``(n, R)``; ``Z`` is ``(..., k, n)``. Only the direction of ``w*`` matters
(the labels are invariant to its scale), so ``w*`` is normalised here.
"""

from __future__ import annotations

import numpy as np

from .model import STES, _clipped_relu_plane, angle, check_ste, clipped_relu_plane_closed, ste_derivative

V_STAR_RULES = ("normal", "positive", "constant")

_SQRT_2PI = np.sqrt(2.0 * np.pi)
_PHI0 = 1.0 / _SQRT_2PI  # standard normal density at 0


def make_v_star(k: int, rule: str, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Draw the teacher's second layer ``v*`` in R^k.

    Parameters
    ----------
    k : int
        Number of patches (hidden units).
    rule : {"normal", "positive", "constant"}
        ``normal``: ``scale * N(0, I_k)`` (Yin et al.'s setting, where spurious
        local minima exist for most draws); ``positive``: ``scale * |N(0, I_k)|``;
        ``constant``: ``(scale / k) * 1`` (scale 1 is the fixed-readout teacher of
        model.md section 1).
    rng : numpy.random.Generator
        Source of randomness (unused by ``constant``).
    scale : float
        Positive scale factor.

    Returns
    -------
    numpy.ndarray, shape (k,), float64.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k (number of patches) must be a positive integer, got {k!r}")
    if rule not in V_STAR_RULES:
        raise ValueError(f"rule (v* rule) must be one of {V_STAR_RULES}, got {rule!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    k = int(k)
    if rule == "constant":
        return np.full(k, scale / k)
    draw = rng.standard_normal(k)
    return scale * (np.abs(draw) if rule == "positive" else draw)


def spurious_v(v_star: np.ndarray) -> np.ndarray:
    """The second layer of the critical points at ``theta = pi``:
    ``v = (I + 1 1^T)^{-1} (1 1^T - I) v* = (2 (1^T v*) / (k+1)) 1 - v*``.

    They are (spurious) local minima of the population loss when
    ``<v, v*> < 0`` (``spurious_minimum_exists``).
    """
    v_star = np.asarray(v_star, dtype=float)
    k = v_star.shape[0]
    return 2.0 * v_star.sum(axis=0) / (k + 1.0) - v_star


def spurious_minimum_exists(v_star: np.ndarray) -> bool:
    """True when ``theta = pi, v = spurious_v(v*)`` is a local minimum
    (``<spurious_v, v*> = 2 (1^T v*)^2 / (k+1) - ||v*||^2 < 0``)."""
    v_star = np.asarray(v_star, dtype=float)
    return bool(spurious_v(v_star) @ v_star < 0)


def forward(Z: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Network output ``sum_i v_i 1{<Z_i, w> > 0}`` for inputs ``Z`` (..., k, n)
    and one network (``v`` (k,), ``w`` (n,)); output shape (...)."""
    Z = np.asarray(Z, dtype=float)
    return ((Z @ np.asarray(w, dtype=float)) > 0) @ np.asarray(v, dtype=float)


def _columns(v, w, v_star, w_star):
    v = np.asarray(v, dtype=float)
    w = np.asarray(w, dtype=float)
    v_star = np.asarray(v_star, dtype=float)
    w_star = np.asarray(w_star, dtype=float)
    if v.ndim != w.ndim:
        raise ValueError(f"v and w must both be 1-D or both 2-D (batched), got v.ndim={v.ndim}, w.ndim={w.ndim}")
    if v.shape[0] != v_star.shape[0]:
        raise ValueError(f"v has {v.shape[0]} entries but v_star has {v_star.shape[0]}")
    if w.shape[0] != w_star.shape[0]:
        raise ValueError(f"w has {w.shape[0]} entries but w_star has {w_star.shape[0]}")
    norm_star = np.linalg.norm(w_star)
    if not norm_star > 0:
        raise ValueError("w_star must be nonzero")
    return v, w, v_star, w_star / norm_star


def population_loss(v, w, v_star, w_star) -> np.ndarray:
    """Population loss (model.md section 6)

    ``(1/8) [v^T (I + 1 1^T) v - 2 v^T ((1 - 2 theta/pi) I + 1 1^T) v* + v*^T (I + 1 1^T) v*]``,
    theta = angle(w, w*). Batched columns give shape (R,).
    """
    v, w, v_star, w_star = _columns(v, w, v_star, w_star)
    theta = angle(w, w_star)
    s, s_star = v.sum(axis=0), v_star.sum()
    vv = np.sum(v * v, axis=0) + s * s
    cross = (1.0 - 2.0 * theta / np.pi) * (v_star @ v) + s * s_star
    ss = v_star @ v_star + s_star * s_star
    return (vv - 2.0 * cross + ss) / 8.0


def expected_gradient_v(v, w, v_star, w_star) -> np.ndarray:
    """Gradient of the population loss in v (the expectation of the sample
    gradient ``(f - y) sigma(Z w)``, since sigma(Z w) is f's derivative in v):

    ``(1/4) [(I + 1 1^T) v - ((1 - 2 theta/pi) I + 1 1^T) v*]``.
    """
    v, w, v_star, w_star = _columns(v, w, v_star, w_star)
    theta = angle(w, w_star)
    s, s_star = v.sum(axis=0), v_star.sum()
    vs = v_star if v.ndim == 1 else v_star[:, None]
    return (v + s - (1.0 - 2.0 * theta / np.pi) * vs - s_star) / 4.0


def _plane(w, w_star):
    """norm, w-hat, theta, e2 (the unit vector of the plane of (w, w*)
    orthogonal to w on w*'s side; 0 when w is parallel to w*) per column."""
    norm = np.linalg.norm(w, axis=0)
    w_hat = w / norm
    ws = w_star if w.ndim == 1 else w_star[:, None]
    cos = np.clip(np.sum(w_hat * ws, axis=0), -1.0, 1.0)
    perp = ws - cos * w_hat
    sin = np.linalg.norm(perp, axis=0)
    theta = np.arctan2(sin, cos)
    e2 = np.divide(perp, sin, out=np.zeros_like(perp), where=sin > 0)
    return norm, w_hat, theta, e2


def _radial_coefficients(v, v_star):
    """||v||^2, 1^T v (1^T v - 1^T v*), <v, v*> per column."""
    s = v.sum(axis=0)
    return np.sum(v * v, axis=0), s * (s - v_star.sum()), v_star @ v


def expected_coarse_gradient(v, w, v_star, w_star, ste: str = "relu") -> np.ndarray:
    """Expected coarse gradient in w, ``E_Z[(f(Z; v, w) - f(Z; v*, w*)) sum_i v_i mu'(<Z_i, w>) Z_i]``.

    Closed forms (w-hat = w/||w||, w* unit, docs/two_layer.md):

    - relu: ``[(||v||^2 + 1^T v (1^T v - 1^T v*)) w-hat - <v, v*> w*] / (2 sqrt(2 pi))``
    - identity: ``[||v||^2 w-hat - <v, v*> w*] / sqrt(2 pi)``
    - clipped_relu: ``(p/2) (||v||^2 + 1^T v (1^T v - 1^T v*) + <v, v*>) w-hat - <v, v*> q``
      with ``p = phi(0) - phi(1/||w||)`` and
      ``q = E[1{<Z,w*> > 0} 1{0 < <Z,w> < 1} Z]``, a 1-D quadrature in the
      plane of (w, w*) (``rvscgd.model``'s fixed-readout integrals).

    ``v`` (k,) with ``w`` (n,), or ``v`` (k, R) with ``w`` (n, R).
    """
    check_ste(ste)
    v, w, v_star, w_star = _columns(v, w, v_star, w_star)
    if ste == "clipped_relu" and w.ndim == 2:
        cols = [expected_coarse_gradient(v[:, r], w[:, r], v_star, w_star, ste) for r in range(w.shape[1])]
        return np.stack(cols, axis=1)
    vv, ss, vvs = _radial_coefficients(v, v_star)
    norm, w_hat, theta, e2 = _plane(w, w_star)
    ws = w_star if w.ndim == 1 else w_star[:, None]
    if ste == "relu":
        return ((vv + ss) * w_hat - vvs * ws) / (2.0 * _SQRT_2PI)
    if ste == "identity":
        return (vv * w_hat - vvs * ws) / _SQRT_2PI
    a1, a2 = _clipped_relu_plane(float(theta), float(norm))
    return _clipped_combine(vv, ss, vvs, norm, w_hat, e2, a1, a2)


def _clipped_combine(vv, ss, vvs, norm, w_hat, e2, a1, a2):
    """clipped_relu from the fixed-readout plane integrals (a1, a2) of
    ``E[(1{x1>0} - 1{<Z,w*>>0}) 1{0 < x1 < 1/||w||} Z]``: there ``E[1{0<x1<U} Z]
    = p w-hat``, so ``q = (p - a1) w-hat - a2 e2``."""
    p = _PHI0 - np.exp(-0.5 / (norm * norm)) / _SQRT_2PI
    q = (p - a1) * w_hat - a2 * e2
    return 0.5 * p * (vv + ss + vvs) * w_hat - vvs * q


def expected_coarse_gradient_fast(V, W, v_star, w_star, ste_codes) -> np.ndarray:
    """``expected_coarse_gradient`` for a batch (V (k, R), W (n, R)), one STE
    per column (codes index ``STES``), all in closed form (clipped_relu through
    ``model.clipped_relu_plane_closed``)."""
    V, W, v_star, w_star = _columns(V, W, v_star, w_star)
    return expected_gradients_batch(V, W, v_star, w_star, ste_codes)[0]


def expected_gradients_batch(V, W, v_star, w_star, ste_codes):
    """``(E g~_w, grad_v L)`` of a batch in one pass (the trainer's population
    step): arrays already float, ``w_star`` unit, shapes (k, R) and (n, R)."""
    codes = np.asarray(ste_codes)
    vv, ss, vvs = _radial_coefficients(V, v_star)
    norm, w_hat, theta, e2 = _plane(W, w_star)
    ws = w_star[:, None]
    out = ((vv + ss) * w_hat - vvs * ws) / (2.0 * _SQRT_2PI)
    ident = codes == STES.index("identity")
    if ident.any():
        out[:, ident] = (vv[ident] * w_hat[:, ident] - vvs[ident] * ws) / _SQRT_2PI
    clip = np.flatnonzero(codes == STES.index("clipped_relu"))
    if clip.size:
        a1, a2 = clipped_relu_plane_closed(theta[clip], norm[clip])
        out[:, clip] = _clipped_combine(vv[clip], ss[clip], vvs[clip], norm[clip], w_hat[:, clip], e2[:, clip], a1, a2)
    s = V.sum(axis=0)
    g_v = (V + s - (1.0 - 2.0 * theta / np.pi) * v_star[:, None] - v_star.sum()) / 4.0
    return out, g_v


def true_gradient_w(v, w, v_star, w_star) -> np.ndarray:
    """Gradient of the population loss in w, ``-<v, v*> e2 / (2 pi ||w||)``
    (from ``dL/dtheta = <v, v*> / (2 pi)`` and ``d theta / dw = -e2 / ||w||``);
    zero where w is parallel to w* and undefined (returned 0) at theta = pi."""
    v, w, v_star, w_star = _columns(v, w, v_star, w_star)
    norm, _, _, e2 = _plane(w, w_star)
    return -(v_star @ v) * e2 / (2.0 * np.pi * norm)


def coarse_gradient(Z, v, w, v_star, w_star, ste: str = "relu", y=None) -> np.ndarray:
    """Sampled coarse gradient in w, averaged over the batch ``Z`` (B, k, n):
    ``(f(Z; v, w) - y) sum_i v_i mu'(<Z_i, w>) Z_i`` with ``y = f(Z; v*, w*)``
    unless labels ``y`` (B,) are given. One network (v (k,), w (n,)); returns (n,)."""
    check_ste(ste)
    Z = np.asarray(Z, dtype=float)
    if Z.ndim == 2:
        Z = Z[None]
    pre = Z @ w  # (B, k)
    y = forward(Z, v_star, w_star) if y is None else np.asarray(y, dtype=float)
    resid = (pre > 0) @ v - y  # (B,)
    weights = ste_derivative(pre, ste) * v * resid[:, None]  # (B, k)
    return np.einsum("bk,bkn->n", weights, Z) / Z.shape[0]


def gradient_v(Z, v, w, v_star, w_star, y=None) -> np.ndarray:
    """Sampled (true) gradient in v averaged over the batch: ``(f - y) sigma(Z w)``; returns (k,)."""
    Z = np.asarray(Z, dtype=float)
    if Z.ndim == 2:
        Z = Z[None]
    act = (Z @ w > 0).astype(float)  # (B, k)
    y = forward(Z, v_star, w_star) if y is None else np.asarray(y, dtype=float)
    resid = act @ v - y
    return act.T @ resid / Z.shape[0]
