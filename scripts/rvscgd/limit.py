"""Fixed points of model.md section 5 found by iterating the dynamics: a consistency check.

The study's predictions come from ``rvscgd.fixed_points`` (scalar analysis,
no dynamics); nothing in the pipeline calls ``predicted_limit``. It stays as
an independent check of that enumeration (tests/unit/test_fixed_points.py
iterates T from hundreds of starts with it) and of the engine.

A fixed point (w-bar, u-bar) with ||w-bar|| = 1 solves

    w-bar = normalise(c w* + beta prox_{(lam/beta) P}(w-bar)),
    u-bar = prox_{(lam/beta) P}(w-bar),

independently of the step size eta. The map on the right, T, is RVSCGD in
population mode with eta = 1/(c + beta). The solver iterates T from many
starts until each iterate's thresholding pattern settles, then polishes it by
Newton's method on that pattern (T is smooth there), so every returned limit
satisfies the equation to machine precision. Distinct limits are counted
with how many starts reached each; none is hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .model import check_ste, coarse_constant
from .penalties import check_penalty, prox, prox_derivative


@dataclass(frozen=True)
class Limit:
    """One fixed point: ``w_bar``, ``u_bar`` (shape (n,)), how many starts
    reached it, the residual ``||T(w_bar) - w_bar||`` and whether it is
    linearly stable for the dynamics (spectral radius of dT below 1)."""

    w_bar: np.ndarray
    u_bar: np.ndarray
    count: int
    residual: float
    stable: bool


@dataclass(frozen=True)
class LimitSearch:
    """All distinct limits found, most reached first, and for each start the
    index of the limit it reached (``-1``: the start did not settle)."""

    limits: list[Limit]
    start_limit: np.ndarray = field(repr=False)

    @property
    def n_starts(self) -> int:
        return int(self.start_limit.size)

    def __len__(self) -> int:
        return len(self.limits)


def check_params(lam, beta, penalty=None, a=None, eta=None):
    """Validate the algorithm's scalar parameters, naming the bad one."""
    if not np.all(np.isfinite(lam)) or not np.all(np.asarray(lam) >= 0):
        raise ValueError(f"lam must be finite and >= 0, got {lam!r}")
    if not np.all(np.isfinite(beta)) or not np.all(np.asarray(beta) > 0):
        raise ValueError(f"beta must be finite and > 0, got {beta!r}")
    if penalty is not None:
        check_penalty(penalty)
    if a is not None and not np.all(np.asarray(a) > 0):
        raise ValueError(f"a (TL1 shape parameter) must be > 0, got {a!r}")
    if eta is not None and (not np.all(np.isfinite(eta)) or not np.all(np.asarray(eta) > 0)):
        raise ValueError(f"eta must be finite and > 0, got {eta!r}")


def _apply_T(W, w_star, c, beta, tau, penalty, a):
    U = prox(W, tau, penalty, a)
    V = c * w_star[:, None] + beta * U
    N = np.linalg.norm(V, axis=0)
    return V / N, U, N


def _apply_step(W, w_star, c, beta, tau, penalty, a, eta):
    """One step of population RVSCGD (model.md section 4) on unit columns W:
    same fixed points as T, and the basins of the run with step size eta."""
    U = prox(W, tau, penalty, a)
    V = W - eta * (c * (W - w_star[:, None]) + beta * (W - U))
    return V / np.linalg.norm(V, axis=0)


def _pattern(W, tau, penalty, a):
    """The piece of the piecewise-smooth map each entry is on: -1, 0, +1.

    With tau = 0 the prox is the identity, smooth everywhere: one piece.
    """
    if tau == 0:
        return np.ones(W.shape, dtype=np.int8)
    U = prox(W, tau, penalty, a)
    return np.sign(U).astype(np.int8)


def _newton(W, w_star, c, beta, tau, penalty, a, iters=30):
    """Newton on F(w) = T(w) - w with the pattern of W held fixed.

    dT = (I - T T^T) diag(d), d = beta prox'(w) / N, so dF = diag(d - 1) - T (d T)^T
    is diagonal plus rank one: solved by Sherman-Morrison in O(n).
    """
    W = W.copy()
    pat0 = _pattern(W, tau, penalty, a)
    for _ in range(iters):
        T, _, N = _apply_T(W, w_star, c, beta, tau, penalty, a)
        F = T - W
        if np.max(np.abs(F)) < 1e-16:
            break
        d = beta * prox_derivative(W, tau, penalty, a) / N
        diag = d - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            Ainv_b = -F / diag
            Ainv_u = -T / diag
            v = d * T
            denom = 1.0 + np.sum(v * Ainv_u, axis=0)
            delta = Ainv_b - Ainv_u * (np.sum(v * Ainv_b, axis=0) / denom)
        if not np.all(np.isfinite(delta)):
            break
        W = W + delta
        W = W / np.linalg.norm(W, axis=0)
    same = np.all(_pattern(W, tau, penalty, a) == pat0, axis=0)
    return W, same


def _residual(W, w_star, c, beta, tau, penalty, a):
    T, _, _ = _apply_T(W, w_star, c, beta, tau, penalty, a)
    return np.linalg.norm(T - W, axis=0)


# An eigenvalue of dT within this of 1 is neutral, not contracting.
_NEUTRAL = 1e-9


def _is_stable(w, w_star, c, beta, tau, penalty, a):
    """Linear stability of the fixed point w of T: the eigenvalues of
    D^1/2 (I - w w^T) D^1/2 (similar to dT) are real, in [0, max d].

    Stable means spectral radius below 1 by more than rounding: an eigenvalue
    equal to 1 up to ``_NEUTRAL`` is neutral and counts as not stable. (It
    occurs exactly, e.g. l0 with beta > c and a kept set S off the support of
    w*: then N = beta and every w with the same S and ||w_S|| fixed is a fixed
    point, a continuum; without the margin rounding decided the flag.)"""
    _, _, N = _apply_T(w[:, None], w_star, c, beta, tau, penalty, a)
    d = beta * prox_derivative(w, tau, penalty, a) / N[0]
    on = d > 0
    if not on.any():
        return True
    sq = np.sqrt(d[on])
    M = np.diag(d[on]) - np.outer(sq * w[on], sq * w[on])
    return bool(np.max(np.linalg.eigvalsh(M)) < 1.0 - _NEUTRAL)


def random_starts(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` uniformly random unit vectors, shape (count, n)."""
    S = rng.standard_normal((count, n))
    return S / np.linalg.norm(S, axis=1, keepdims=True)


def predicted_limit(
    w_star: np.ndarray,
    k: int,
    lam: float,
    beta: float,
    penalty: str,
    a: float = 1.0,
    ste: str = "relu",
    starts=32,
    *,
    seed: int = 0,
    tol: float = 1e-12,
    max_iter: int = 200_000,
    dedup_tol: float = 1e-8,
    eta: float | None = None,
) -> LimitSearch:
    """Solve the fixed-point equation of model.md section 5 from many starts.

    Parameters
    ----------
    w_star : (n,) unit-norm teacher.
    k : number of patches (sets c).
    lam, beta : penalty weight ``>= 0`` and splitting parameter ``> 0``.
    penalty : "l0", "l1" or "tl1"; ``a`` the TL1 shape parameter.
    ste : "relu" or "identity" (they set c; "clipped_relu" has no constant c).
    starts : int (that many random unit starts from ``seed``) or array (S, n).
    tol : a limit is accepted when ``||T(w) - w|| <= tol``.
    eta : None: search with T itself (RVSCGD with eta = 1/(c + beta)).
        A step size: follow population RVSCGD with that eta from each start.
        The fixed points are the same (they do not depend on eta), but where
        several exist, which one a start reaches can depend on eta: pass the
        run's eta to predict the limit of that run.

    Returns
    -------
    LimitSearch with the distinct limits (most reached first).
    """
    check_params(lam, beta, penalty, a, eta)
    check_ste(ste)
    w_star = np.asarray(w_star, dtype=float)
    n = w_star.size
    c = coarse_constant(k, ste)
    tau = lam / beta
    if np.ndim(starts) == 0:
        S = random_starts(n, int(starts), np.random.default_rng(seed))
    else:
        S = np.atleast_2d(np.asarray(starts, dtype=float))
        if S.shape[1] != n:
            raise ValueError(f"starts must have shape (S, {n}), got {S.shape}")
    W = (S / np.linalg.norm(S, axis=1, keepdims=True)).T.copy()  # (n, S)
    n_starts = W.shape[1]
    done = np.zeros(n_starts, dtype=bool)
    blown = np.zeros(n_starts, dtype=bool)
    result = np.full((n, n_starts), np.nan)
    prev_pat = _pattern(W, tau, penalty, a)
    it = 0
    chunk = 25
    while it < max_iter and not done.all():
        live = ~done
        Wl = W[:, live]
        for _ in range(chunk):
            if eta is None:
                Wl, _, _ = _apply_T(Wl, w_star, c, beta, tau, penalty, a)
            else:
                Wl = _apply_step(Wl, w_star, c, beta, tau, penalty, a, eta)
        it += chunk
        W[:, live] = Wl
        # A step size that blows the iterate up (its norm overflows: the column
        # is 0 or not finite) reaches no limit from this start: stop following it.
        lost = live & ~(np.abs(np.linalg.norm(W, axis=0) - 1) < 1e-6)
        blown |= lost
        done |= lost
        pat = _pattern(W, tau, penalty, a)
        settled = live & np.all(pat == prev_pat, axis=0)
        prev_pat = pat
        if settled.any():
            Wp, _ = _newton(W[:, settled], w_star, c, beta, tau, penalty, a)
            res = _residual(Wp, w_star, c, beta, tau, penalty, a)
            # The residual proves Wp a fixed point; a far jump could land on
            # another one than the iterate's attractor: refuse it, iterate on.
            near = np.linalg.norm(Wp - W[:, settled], axis=0) < 0.05
            ok = (res <= tol) & near
            idx = np.flatnonzero(settled)[ok]
            result[:, idx] = Wp[:, ok]
            done[idx] = True
        chunk = min(chunk * 2, 2000)

    limits: list[list] = []  # [w, count]
    start_limit = np.full(n_starts, -1, dtype=int)
    for j in np.flatnonzero(done & ~blown):
        w = result[:, j]
        for li, entry in enumerate(limits):
            if np.linalg.norm(entry[0] - w) < dedup_tol:
                entry[1] += 1
                start_limit[j] = li
                break
        else:
            limits.append([w, 1])
            start_limit[j] = len(limits) - 1
    order = sorted(range(len(limits)), key=lambda i: -limits[i][1])
    remap = np.full(len(limits) + 1, -1)
    out = []
    for new, old in enumerate(order):
        w, count = limits[old]
        remap[old] = new
        u = prox(w, tau, penalty, a)
        res = float(_residual(w[:, None], w_star, c, beta, tau, penalty, a)[0])
        out.append(Limit(w, u, count, res, _is_stable(w, w_star, c, beta, tau, penalty, a)))
    start_limit = np.where(start_limit >= 0, remap[start_limit], -1)
    return LimitSearch(out, start_limit)
