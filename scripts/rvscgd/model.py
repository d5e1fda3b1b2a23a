"""The network, the teacher, the loss and the coarse gradients (model.md sections 1-2).

Shapes follow model.md: an input ``Z`` is ``(k, n)`` (k patches of n features);
a batch of inputs is ``(B, k, n)``; weights are ``(n,)`` or, batched over runs,
``(n, R)`` with one run per column.
"""

from __future__ import annotations

import numpy as np

STES = ("relu", "identity", "clipped_relu")

_SQRT_2PI = np.sqrt(2.0 * np.pi)


def check_ste(ste: str) -> str:
    if ste not in STES:
        raise ValueError(f"ste must be one of {STES}, got {ste!r}")
    return ste


def _check_k(k) -> int:
    if int(k) != k or k < 1:
        raise ValueError(f"k (number of patches) must be a positive integer, got {k!r}")
    return int(k)


def make_teacher(n: int, s: int, rng: np.random.Generator, min_abs: float = 0.0) -> np.ndarray:
    """Draw a unit-norm, s-sparse teacher ``w*`` in R^n.

    The support is drawn uniformly; the nonzero values are N(0, 1) redrawn
    until ``|value| >= min_abs`` (a floor on the magnitude *before*
    normalisation), then the vector is scaled to unit norm.

    Parameters
    ----------
    n : int
        Number of features per patch.
    s : int
        Number of nonzero entries, ``1 <= s <= n``.
    rng : numpy.random.Generator
        Source of randomness (the caller derives it from the config).
    min_abs : float
        Magnitude floor of the nonzero values, ``>= 0``.

    Returns
    -------
    numpy.ndarray, shape (n,), float64, unit norm, exactly s nonzeros.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if int(s) != s or s < 1:
        raise ValueError(f"s must be a positive integer, got {s!r}")
    if s > n:
        raise ValueError(f"s (sparsity of w*) must be <= n, got s={s}, n={n}")
    if not min_abs >= 0:
        raise ValueError(f"min_abs must be >= 0, got {min_abs!r}")
    n, s = int(n), int(s)
    support = np.sort(rng.choice(n, size=s, replace=False))
    values = rng.standard_normal(s)
    # Redraw the small ones: a floor keeps the support recoverable by thresholding.
    for _ in range(10_000):
        small = np.abs(values) < min_abs
        if not small.any():
            break
        values[small] = rng.standard_normal(int(small.sum()))
    else:  # pragma: no cover - only with an absurd floor
        raise ValueError(f"min_abs={min_abs} is too large to draw N(0,1) values above it")
    w = np.zeros(n)
    w[support] = values
    return w / np.linalg.norm(w)


def forward(Z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Network output ``f(Z; w) = (1/k) sum_i 1{<Z_i, w> > 0}``.

    ``Z`` is ``(..., k, n)``, ``w`` is ``(n,)`` (output ``(...)``) or ``(n, R)``
    (output ``(..., R)``).
    """
    Z = np.asarray(Z, dtype=float)
    pre = Z @ w  # (..., k) or (..., k, R)
    axis = -1 if np.ndim(w) == 1 else -2
    return (pre > 0).mean(axis=axis)


def angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in radians between vectors along the first axis (columns if 2-D).

    Zero vectors give NaN (the angle is undefined). Computed with arctan2 of
    the cross and dot parts, accurate near 0 and pi, unlike arccos.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim == 1 and b.ndim == 2:
        a = a[:, None]
    if b.ndim == 1 and a.ndim == 2:
        b = b[:, None]
    na = np.linalg.norm(a, axis=0)
    nb = np.linalg.norm(b, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ua = a / na
        ub = b / nb
        dot = np.sum(ua * ub, axis=0)
        cross = np.linalg.norm(ua - dot * ub, axis=0)
        out = np.arctan2(cross, dot)
    return np.where((na > 0) & (nb > 0), out, np.nan)


def population_loss(w: np.ndarray, w_star: np.ndarray, k: int) -> np.ndarray:
    """Population loss ``L(w) = theta(w, w*) / (2 pi k)`` (model.md section 1)."""
    k = _check_k(k)
    return angle(w, w_star) / (2.0 * np.pi * k)


def ste_derivative(x: np.ndarray, ste: str) -> np.ndarray:
    """``mu'(x)`` of the straight-through estimator ``ste``."""
    check_ste(ste)
    if ste == "relu":
        return (x > 0).astype(x.dtype)
    if ste == "identity":
        return np.ones_like(x)
    return ((x > 0) & (x < 1)).astype(x.dtype)


def coarse_gradient(Z: np.ndarray, w: np.ndarray, w_star: np.ndarray, ste: str = "relu") -> np.ndarray:
    """Sampled coarse gradient, averaged over a batch (model.md section 2).

    ``g~(w; Z) = (f(Z; w) - f(Z; w*)) (1/k) sum_i mu'(<Z_i, w>) Z_i``, averaged
    over the B inputs of ``Z`` ``(B, k, n)`` (or a single ``(k, n)``).
    Returns ``(n,)``.
    """
    check_ste(ste)
    Z = np.asarray(Z, dtype=float)
    if Z.ndim == 2:
        Z = Z[None]
    B, k, n = Z.shape
    pre = Z @ w  # (B, k)
    resid = (pre > 0).mean(axis=1) - (Z @ w_star > 0).mean(axis=1)  # (B,)
    weights = ste_derivative(pre, ste) * resid[:, None] / k  # (B, k)
    return np.einsum("bk,bkn->n", weights, Z) / B


def coarse_constant(k: int, ste: str = "relu") -> float:
    """The constant c with ``E g~ = c (w-hat - w*)`` (relu and identity STE)."""
    k = _check_k(k)
    check_ste(ste)
    if ste == "relu":
        return 1.0 / (2.0 * k * _SQRT_2PI)
    if ste == "identity":
        return 1.0 / (k * _SQRT_2PI)
    raise ValueError("ste='clipped_relu' has no single constant: its expected gradient depends on ||w||")


def _clipped_relu_plane(theta: float, norm_w: float) -> tuple[float, float]:
    """Components (along w-hat, along e2) of one patch's expected clipped-relu
    coarse gradient, e2 the unit vector of the plane of (w, w*) orthogonal to w
    and on w*'s side. With x1 = <Z, w-hat> and w* = cos(theta) w-hat + sin(theta) e2:
    E[(1{x1>0} - 1{<Z,w*> > 0}) 1{0 < ||w|| x1 < 1} Z]
    = int_0^{1/||w||} phi(x1) [x1 P(<Z,w*> <= 0 | x1), E(x2 1{<Z,w*> <= 0} | x1)] dx1.
    """
    from scipy import integrate, special  # lazy: only clipped-relu jobs pay their ~0.4 s import

    c, s = np.cos(theta), np.sin(theta)
    upper = 1.0 / norm_w

    def prob_off(x1):  # P(c x1 + s x2 <= 0 | x1), x2 ~ N(0,1)
        if s < 1e-300:
            return 1.0 if c * x1 <= 0 else 0.0
        return special.ndtr(-c * x1 / s)

    def x2_part(x1):  # E[x2 1{c x1 + s x2 <= 0} | x1] = -phi(c x1 / s)
        if s < 1e-300:
            return 0.0
        return -np.exp(-0.5 * (c * x1 / s) ** 2) / _SQRT_2PI

    def phi(x):
        return np.exp(-0.5 * x * x) / _SQRT_2PI

    opts = dict(epsabs=1e-15, epsrel=1e-12, limit=200)
    # Near theta = 0 or pi both integrands change on the scale s/|c| next to
    # x1 = 0 (a spike of width s/|c| in a2, a step in a1): quadrature over
    # [0, upper] alone samples no point inside it and misses it. Split the
    # interval at multiples of that scale so every piece resolves it.
    scale = s / abs(c) if abs(c) > 0 else np.inf
    cuts = [b for b in (scale, 4.0 * scale, 16.0 * scale) if 0.0 < b < upper]
    edges = [0.0, *cuts, upper]

    def integral(f):
        return sum(integrate.quad(f, lo, hi, **opts)[0] for lo, hi in zip(edges[:-1], edges[1:], strict=True))

    a1 = integral(lambda x: x * phi(x) * prob_off(x))
    a2 = integral(lambda x: phi(x) * x2_part(x))
    return a1, a2


def clipped_relu_plane_closed(theta, norm_w):
    """Closed form of the two plane components of ``_clipped_relu_plane``
    (vectorised). With s = sin(theta), c = cos(theta), U = 1/||w||, integrating
    by parts and using int_0^U phi(x) phi(x c/s) dx = s erf(U/(sqrt2 s)) / (2 sqrt(2 pi)):

    a1 = 1/(2 sqrt(2 pi)) - phi(U) Phi(-U c/s) - c erf(U/(sqrt2 s)) / (2 sqrt(2 pi))
    a2 = -s erf(U/(sqrt2 s)) / (2 sqrt(2 pi))
    """
    from scipy import special  # lazy, as in _clipped_relu_plane

    theta = np.asarray(theta, dtype=float)
    U = 1.0 / np.asarray(norm_w, dtype=float)
    s, c = np.sin(theta), np.cos(theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.where(s > 0, special.erf(U / (np.sqrt(2.0) * s)), 1.0)
        tail = np.where(s > 0, special.ndtr(-U * c / np.where(s > 0, s, 1.0)), (c < 0).astype(float))
    phi_U = np.exp(-0.5 * U * U) / _SQRT_2PI
    a1 = 1.0 / (2.0 * _SQRT_2PI) - phi_U * tail - c * e / (2.0 * _SQRT_2PI)
    a2 = -s * e / (2.0 * _SQRT_2PI)
    return a1, a2


def expected_coarse_gradient_fast(W: np.ndarray, w_star: np.ndarray, k: int, ste_codes: np.ndarray) -> np.ndarray:
    """Expected coarse gradient for a batch ``W`` (n, R), one STE per column
    (codes index ``STES``), all in closed form (clipped_relu through
    ``clipped_relu_plane_closed``). The engine's population mode uses it."""
    norm = np.linalg.norm(W, axis=0)
    W_hat = W / norm
    out = (W_hat - w_star[:, None]) / (2.0 * k * _SQRT_2PI)
    out[:, ste_codes == 1] *= 2.0
    clip = np.flatnonzero(ste_codes == 2)
    if clip.size:
        Wh = W_hat[:, clip]
        cos = np.clip(w_star @ Wh, -1.0, 1.0)
        perp = w_star[:, None] - cos * Wh
        sin = np.linalg.norm(perp, axis=0)
        theta = np.arctan2(sin, cos)
        a1, a2 = clipped_relu_plane_closed(theta, norm[clip])
        e2 = np.divide(perp, sin, out=np.zeros_like(perp), where=sin > 0)
        out[:, clip] = (a1 * Wh + a2 * e2) / k
    return out


def expected_coarse_gradient(w: np.ndarray, w_star: np.ndarray, k: int, ste: str = "relu") -> np.ndarray:
    """Expected coarse gradient ``E_Z g~(w; Z)`` over Gaussian inputs.

    Closed form for ``relu`` and ``identity`` (``c (w-hat - w*)``); 1-D
    quadrature in the plane of (w, w*) for ``clipped_relu``. ``w`` may be
    ``(n,)`` or ``(n, R)``; ``w_star`` is unit norm.
    """
    k = _check_k(k)
    check_ste(ste)
    w = np.asarray(w, dtype=float)
    w_star = np.asarray(w_star, dtype=float)
    if ste != "clipped_relu":
        norm = np.linalg.norm(w, axis=0)
        ws = w_star if w.ndim == 1 else w_star[:, None]
        return coarse_constant(k, ste) * (w / norm - ws)
    if w.ndim == 2:
        return np.stack([expected_coarse_gradient(w[:, r], w_star, k, ste) for r in range(w.shape[1])], axis=1)
    norm_w = np.linalg.norm(w)
    w_hat = w / norm_w
    cos = float(np.clip(w_hat @ w_star, -1.0, 1.0))
    perp = w_star - cos * w_hat
    sin = np.linalg.norm(perp)
    theta = float(np.arctan2(sin, cos))
    e2 = perp / sin if sin > 0 else np.zeros_like(w)
    a1, a2 = _clipped_relu_plane(theta, norm_w)
    return (a1 * w_hat + a2 * e2) / k
