"""Every fixed point of population RVSCGD, by scalar analysis (docs/theory.md).

A fixed point (w-bar, u-bar) of the normalised population map
``T(w) = normalise(c w* + beta prox_tau(w))`` (tau = lam/beta) satisfies, with
``N = ||c w* + beta u-bar||``, the scalar equation of every coordinate

    N x_i = c w*_i + beta prox_tau(x_i),        and  ||x|| = 1.

In units of c (``M = N/c``, ``b = beta/c``) each coordinate's solutions form a
few monotone curves ("branches") over intervals of M: not kept (``x = w/M``,
``|x| <= threshold``) and kept on either side of 0 (closed form for l0 and
l1, a curve parametrised by ``v = |u|`` for TL1). A fixed point is one branch
per coordinate plus a root M of ``sum_i x_i(M)^2 = 1``. Nothing here iterates
T: the branches are enumerated (depth first, pruned by their M-intervals),
the roots bracketed on a grid of M and refined by bisection.

Coordinates with equal ``|w*_i|`` behave alike: they form a class, and a
fixed point is listed once per *profile* (how many coordinates of each class
take each branch) with its ``multiplicity`` (the number of distinct points it
stands for, permutations within classes and the free signs of kept entries
off the support). The off-support class has a simple branch set: 0, or for
``N < beta`` (l1, TL1) a kept value of either sign, or for l0 a kept value at
exactly ``N = beta`` (the continua of ``beta > c``).

Two families are described by their conditions instead of listed:

- ``continuum`` (l0, ``beta > c``): ``N = beta``, every support entry not kept
  (``x_i = c w*_i / beta``), a set K of at least 2 kept entries off the
  support with ``||x_K||^2 = 1 - c^2/beta^2`` and each ``|x_j| > threshold``.
  Every point of it is a fixed point (dT has the eigenvalue 1 along it).
  With ``|K| = 1`` the points are isolated and listed.
- ``unlisted`` (unless ``list_unstable=True``): fixed points with ``N < beta``
  and at least two kept entries. They are all linearly unstable: with D =
  diag(prox'(x)) (entries >= 1 where kept) the Jacobian ``(beta/N)(I - w w^T) D``
  has an eigenvalue ``>= (beta/N) lambda_2(D) >= beta/N > 1`` (rank-one
  interlacing). Their number grows like ``C(n-s, j) 2^j``.

The fixed points with ``kappa = ||...|| < 0`` of the eta-step (``c w* + beta u =
kappa w``; e.g. ``-w*`` for plain CGD) are not fixed points of T; for
``eta < 1/(c + beta)`` they are all repelling (docs/theory.md) and are not
enumerated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .limit import check_params
from .model import check_ste, coarse_constant
from .penalties import prox, prox_derivative, threshold

# An eigenvalue of dT within this of 1 is neutral: "not stable", and flagged.
NEUTRAL = 1e-9
# A coordinate within this relative distance of the threshold sits on it up to rounding.
AT_THRESHOLD = 1e-9

# Branch kinds of one coordinate (signed value y = sign(w*_i) x_i for w*_i != 0).
_OFF, _L0, _L1, _TL1 = 0, 1, 2, 3


@dataclass(frozen=True)
class FixedPoint:
    """One fixed point (a representative of its profile).

    Attributes
    ----------
    w_bar, u_bar : (n,) arrays, ``||w_bar|| = 1``, ``u_bar = prox(w_bar)``.
    N : float, ``||c w* + beta u_bar||``.
    stable : bool, linearly stable for the dynamics (spectral radius of the
        Jacobian on the sphere below ``1 - NEUTRAL``).
    spectral_radius : float, that spectral radius.
    multiplicity : int, how many distinct fixed points this profile stands for
        (1 when every ``|w*_i|`` on the support is distinct and no entry off
        the support is kept).
    residual : float, ``||T(w_bar) - w_bar||`` with the library's prox.
    flags : tuple of str, conditions that hold only up to rounding:
        "at_threshold" (an entry within ``AT_THRESHOLD`` of the threshold: the
        prox's two minimisers tie there), "neutral" (an eigenvalue 1 up to
        ``NEUTRAL``), "fold" (two roots merge), "inexact" (residual > 1e-10).
    """

    w_bar: np.ndarray
    u_bar: np.ndarray
    N: float
    stable: bool
    spectral_radius: float
    multiplicity: int
    residual: float
    flags: tuple = ()
    profile: tuple = field(default=(), repr=False)

    @property
    def support(self) -> np.ndarray:
        """Indices of the nonzero entries of ``u_bar``."""
        return np.flatnonzero(self.u_bar)


@dataclass(frozen=True)
class Continuum:
    """A continuum of l0 fixed points (``beta > c``), by its conditions.

    ``N = beta``; on the support of w* every entry is ``c w*_i / beta`` and not
    kept; off the support, a set K of ``size`` entries (any
    ``size_min <= size <= size_max`` of the ``off_support`` indices) is kept
    with ``||x_K|| = radius`` and every ``|x_j| > threshold``; the other
    entries are 0. Each member has eigenvalue 1 along the continuum (neutral)
    and the others below 1 when ``normally_stable``.
    """

    N: float
    radius: float
    threshold: float
    size_min: int
    size_max: int
    base: np.ndarray
    off_support: np.ndarray
    normally_stable: bool
    conditions: str

    def distance(self, w: np.ndarray) -> float:
        """Distance from ``w`` (unit, (n,)) to the continuum (inf if ``w``'s kept
        set off the support is not of an admissible size)."""
        w = np.asarray(w, dtype=float)
        off = self.off_support
        kept = off[np.abs(w[off]) > self.threshold]
        if not self.size_min <= kept.size <= self.size_max:
            return math.inf
        proj = self.base.copy()
        xk = w[kept]
        norm = np.linalg.norm(xk)
        proj[kept] = xk * (self.radius / norm) if norm > 0 else 0.0
        return float(np.linalg.norm(w - proj))


@dataclass(frozen=True)
class FixedPoints(Sequence):
    """Every fixed point of population RVSCGD for one parameter setting.

    A sequence of ``FixedPoint`` (stable first, then by N), plus
    ``continuum`` (tuple of ``Continuum``, empty if none), ``unlisted`` (the
    description of the provably unstable family not listed, or None) and
    ``flags`` (degeneracies of the setting as a whole).
    """

    points: tuple
    continuum: tuple
    unlisted: str | None
    flags: tuple
    c: float
    beta: float
    lam: float
    penalty: str
    a: float
    w_star: np.ndarray = field(repr=False)
    _classes: tuple = field(default=(), repr=False)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i):
        return self.points[i]

    @property
    def n_points(self) -> int:
        """Number of distinct listed fixed points (multiplicities summed)."""
        return int(sum(p.multiplicity for p in self.points))

    @property
    def n_stable(self) -> int:
        """Number of distinct linearly stable isolated fixed points."""
        return int(sum(p.multiplicity for p in self.points if p.stable))

    def oriented(self, i: int, w: np.ndarray) -> np.ndarray:
        """The point of profile ``i``'s orbit closest to ``w`` (n,).

        Within a class of equal ``|w*_i|`` the profile's values are assigned
        to the coordinates in the order of ``w`` (rearrangement inequality);
        kept entries off the support take ``w``'s signs.
        """
        w = np.asarray(w, dtype=float)
        p = np.zeros_like(w)
        for (idx, sgn, is_zero), values in zip(self._classes, self.points[i].profile, strict=True):
            if is_zero:
                order = idx[np.argsort(-np.abs(w[idx]), kind="stable")]
                p[order] = np.where(w[order] < 0, -1.0, 1.0) * values
            else:
                rank = np.argsort(-(sgn * w[idx]), kind="stable")
                p[idx[rank]] = sgn[rank] * values
        return p

    def nearest(self, w: np.ndarray, stable_only: bool = False) -> tuple[int, float]:
        """(index, distance) of the listed fixed point nearest to ``w`` (up to
        its orbit); (-1, inf) if none is listed."""
        best, dist = -1, math.inf
        for i, pt in enumerate(self.points):
            if stable_only and not pt.stable:
                continue
            d = float(np.linalg.norm(np.asarray(w, dtype=float) - self.oriented(i, w)))
            if d < dist:
                best, dist = i, d
        return best, dist


def _top(b):
    """Upper end of the M range: N <= c + beta, with room for rounding at N = c + beta (w*)."""
    return (1.0 + b) * (1.0 + 1e-9)


def _tl1_pieces(w, s, b, t, a, u0):
    """Monotone pieces of ``M(v) = (s w + b v)/(v + t q(v))``, ``q = a(a+1)/(a+v)^2``,
    over the valid ``v > max(u0, [s<0] w/b)``: list of (v_lo, v_hi)."""
    vmin = max(u0, w / b if s < 0 else 0.0)
    # M'(v) = 0  <=>  s w (a+v)^3 = t a (a+1) (3 b v + a b + 2 s w): a cubic in z = a + v.
    crit = []
    if w > 0:
        coef = [s * w, 0.0, -3.0 * t * a * (a + 1.0) * b, -t * a * (a + 1.0) * (-2.0 * a * b + 2.0 * s * w)]
        for z in np.roots(coef):
            if abs(z.imag) < 1e-12 * max(1.0, abs(z.real)) and z.real - a > vmin:
                crit.append(float(z.real - a))
    edges = [vmin, *sorted(crit), math.inf]
    return [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]


class _Branches:
    """All branches of all classes as flat arrays, with a vectorised evaluator."""

    def __init__(self, b, t, thr, penalty, a):
        self.b, self.t, self.thr, self.penalty, self.a = b, t, thr, penalty, a
        self.rows = []  # (kind, w, s, lo, hi, kept, v_lo, v_hi, y_at_lo, y_at_hi)

    def add(self, kind, w, s, lo, hi, kept, v_lo=0.0, v_hi=0.0, y_lo=np.nan, y_hi=np.nan):
        lo, hi = max(lo, 0.0), min(hi, _top(self.b))
        if not hi > lo:
            return None
        self.rows.append((kind, w, s, lo, hi, kept, v_lo, v_hi, y_lo, y_hi))
        return len(self.rows) - 1

    def freeze(self):
        cols = list(zip(*self.rows, strict=True)) if self.rows else [()] * 10
        (self.kind, self.w, self.s, self.lo, self.hi, self.kept, self.vlo, self.vhi, self.ylo, self.yhi) = (
            np.asarray(c, dtype=float) for c in cols
        )
        self.kind = self.kind.astype(int)
        self.kept = self.kept.astype(bool)
        self._tables()

    def _q(self, v):
        a = self.a
        with np.errstate(over="ignore"):  # v up to 1e300 stands for "beyond every bound"
            return a * (a + 1.0) / (a + v) ** 2

    def _H(self, ids, v, M):
        """``(s w + b v) - M (v + t q(v))``: the sign of ``M(v) - M``, and its v-derivative."""
        b, t, a = self.b, self.t, self.a
        q = self._q(v)
        H = self.s[ids] * self.w[ids] + b * v - M * (v + t * q)
        dH = b - M * (1.0 - 2.0 * t * q / (a + v))
        return H, dH

    def _tables(self):
        """Per TL1 piece: v sampled (geometric from its lower end) and M(v) there."""
        self.table = {}
        self.table_top = np.full(self.kind.size, np.inf)
        for i in np.flatnonzero(self.kind == _TL1):
            v_lo, v_hi = self.vlo[i], self.vhi[i]
            top = v_hi if np.isfinite(v_hi) else max(v_lo, 1.0) * 1e12
            v = v_lo + (top - v_lo) * np.concatenate([[0.0], np.geomspace(1e-12, 1.0, 400)])
            with np.errstate(divide="ignore", invalid="ignore"):
                Mv = (self.s[i] * self.w[i] + self.b * v) / (v + self.t * self._q(v))
            # At v_lo itself: the piece's limit (M can be infinite there when t = 0).
            Mv[0] = self.lo[i] if Mv[2] >= Mv[1] else self.hi[i]
            self.table[i] = (v, Mv)
            self.table_top[i] = v[-1]

    def tl1_v(self, ids, M, iters=40):
        """Solve ``M(v) = M`` on each TL1 piece ``ids``: bracket from the piece's
        table, then Newton safeguarded by bisection inside the bracket."""
        lo = np.empty(M.shape)
        hi = np.empty(M.shape)
        v = np.empty(M.shape)
        for i in np.unique(ids):
            sel = ids == i
            tv, tM = self.table[i]
            inc = tM[-1] >= tM[1]
            key = tM if inc else tM[::-1]
            vv = tv if inc else tv[::-1]
            j = np.clip(np.searchsorted(key, M[sel]), 1, key.size - 1)
            a0, a1 = vv[j - 1], vv[j]
            m0, m1 = key[j - 1], key[j]
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = np.where(m1 != m0, (M[sel] - m0) / (m1 - m0), 0.5)
            lo[sel] = np.minimum(a0, a1)
            hi[sel] = np.maximum(a0, a1)
            v[sel] = a0 + np.clip(frac, 0.0, 1.0) * (a1 - a0)
        # Beyond the table (M within 1e-12 of b): widen the last cell to the bound.
        b, t, a = self.b, self.t, self.a
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = self.vlo[ids] + (self.w[ids] + b * t * (a + 1.0) / a) / np.abs(M - b) + 1.0
        far = hi >= self.table_top[ids]
        hi = np.where(far, np.maximum(hi, np.where(np.isfinite(bound), bound, 1e300)), hi)
        h_lo, _ = self._H(ids, lo, M)
        for _ in range(iters):
            h, dh = self._H(ids, v, M)
            same = np.sign(h) == np.sign(h_lo)
            lo = np.where(same, v, lo)
            h_lo = np.where(same, h, h_lo)
            hi = np.where(same, hi, v)
            with np.errstate(divide="ignore", invalid="ignore"):
                nv = v - h / dh
            bad = ~((nv > lo) & (nv < hi))
            nv = np.where(bad, 0.5 * (lo + hi), nv)
            # Converged: a Newton step below rounding, or the bracket closed.
            done = (h == 0) | (~bad & (np.abs(nv - v) <= 1e-15 * np.maximum(1.0, np.abs(v))))
            done |= hi - lo <= 4e-16 * np.maximum(1.0, hi)
            v = np.where(h == 0, v, nv)
            if np.all(done):
                break
        return v

    def evaluate(self, ids, M):
        """Signed value y (= sign(w*_i) x_i) and |u| of branches ``ids`` at M (same
        shape), NaN outside the branch's closed M-interval; limits at its ends."""
        shape = np.broadcast_shapes(np.shape(ids), np.shape(M))
        ids = np.broadcast_to(np.asarray(ids), shape).ravel()
        M = np.broadcast_to(np.asarray(M, dtype=float), shape).ravel()
        b, t = self.b, self.t
        kind, w, s = self.kind[ids], self.w[ids], self.s[ids]
        y = np.full(M.shape, np.nan)
        u = np.zeros(M.shape)
        inside = (M >= self.lo[ids]) & (M <= self.hi[ids])
        with np.errstate(divide="ignore", invalid="ignore"):
            m = inside & (kind == _OFF)
            y[m] = w[m] / M[m]
            m = inside & (kind == _L0)
            y[m] = w[m] / (M[m] - b)
            u[m] = np.abs(y[m])
            m = inside & (kind == _L1)
            y[m] = (w[m] - s[m] * b * t) / (M[m] - b)
            u[m] = np.abs(y[m]) - t
            m = inside & (kind == _TL1)
            if m.any():
                sub = np.flatnonzero(m)
                v = self.tl1_v(ids[sub], M[sub])
                y[sub] = s[sub] * (v + t * self._q(v))
                u[sub] = v
                # Exactly at an end of the piece: its limit.
                at_lo, at_hi = M[sub] == self.lo[ids[sub]], M[sub] == self.hi[ids[sub]]
                y[sub] = np.where(at_lo, self.ylo[ids[sub]], np.where(at_hi, self.yhi[ids[sub]], y[sub]))
        y = np.where(inside & np.isnan(y), np.inf, y)  # 0/0-free blow-ups at M = b
        return y.reshape(shape), u.reshape(shape)


def _class_branches(br: _Branches, w: float, penalty: str):
    """Branch ids of a class of magnitude w >= 0 (w = 0: the off-support class)."""
    b, t, thr = br.b, br.t, br.thr
    ids = []
    top = _top(b)
    if w == 0:
        ids.append(br.add(_OFF, 0.0, 1.0, 0.0, top, False))
    else:
        ids.append(br.add(_OFF, w, 1.0, w / thr if thr > 0 else math.inf, top, False))
    if penalty == "l0":
        if w > 0:
            reach = w / thr if thr > 0 else math.inf
            ids.append(br.add(_L0, w, 1.0, b, b + reach, True))
            ids.append(br.add(_L0, w, -1.0, b - reach, b, True))
    elif penalty == "l1":
        if w == 0:
            if t > 0:  # with t = 0 the prox is the identity: 0 is the only value
                ids.append(br.add(_L1, 0.0, 1.0, 0.0, b, True))
        else:
            bt = b * t
            if w > bt:
                ids.append(br.add(_L1, w, 1.0, b, w / t if t > 0 else math.inf, True))
            elif w < bt:
                ids.append(br.add(_L1, w, 1.0, w / t, b, True))
            ids.append(br.add(_L1, w, -1.0, 0.0, b, True))
    else:
        a = br.a
        u0 = float(prox(np.nextafter(thr, math.inf), t, "tl1", a)) if thr > 0 else 0.0
        for s in (1.0, -1.0) if w > 0 else (1.0,):
            for v_lo, v_hi in _tl1_pieces(w, s, b, t, a, u0):

                def Mv(v, s=s):
                    if math.isinf(v):
                        return b
                    return (s * w + b * v) / (v + t * a * (a + 1.0) / (a + v) ** 2)

                def yv(v, s=s):
                    return s * math.inf if math.isinf(v) else s * (v + t * a * (a + 1.0) / (a + v) ** 2)

                with np.errstate(divide="ignore", invalid="ignore"):
                    m_lo, m_hi = Mv(v_lo), Mv(v_hi)
                if m_lo <= m_hi:
                    ids.append(br.add(_TL1, w, s, m_lo, m_hi, True, v_lo, v_hi, yv(v_lo), yv(v_hi)))
                else:
                    ids.append(br.add(_TL1, w, s, m_hi, m_lo, True, v_lo, v_hi, yv(v_hi), yv(v_lo)))
    return [i for i in ids if i is not None]


def _compositions(m, k):
    """All k-tuples of nonnegative integers summing to m."""
    if k == 1:
        yield (m,)
        return
    for first in range(m, -1, -1):
        for rest in _compositions(m - first, k - 1):
            yield (first, *rest)


def _enumerate(classes, branch_ids, br, list_unstable, max_profiles):
    """Depth-first search over profiles: (counts per class, M-interval)."""
    b = br.b
    out = []
    top = _top(b)

    def rec(ci, lo, hi, kept, chosen):
        if ci == len(classes):
            out.append((tuple(chosen), lo, hi))
            if len(out) > max_profiles:
                raise ValueError(
                    f"max_profiles={max_profiles}: more branch combinations than that have a common "
                    "range of N; pass a larger max_profiles (the count grows like 2^(entries in the "
                    "hysteresis band))"
                )
            return
        size = classes[ci][0]
        ids = branch_ids[ci]
        for counts in _compositions(size, len(ids)):
            nlo, nhi, nkept = lo, hi, kept
            for bid, cnt in zip(ids, counts, strict=True):
                if cnt:
                    nlo, nhi = max(nlo, br.lo[bid]), min(nhi, br.hi[bid])
                    nkept += cnt * bool(br.kept[bid])
            if nkept >= 2 and not list_unstable:
                nlo = max(nlo, b)  # N < beta with two kept entries: provably unstable, not listed
            if nhi > nlo:
                rec(ci + 1, nlo, nhi, nkept, [*chosen, counts])

    rec(0, 0.0, top, 0, [])
    return out


def _grid(br, b):
    """M-grid: uniform, dense around b and around every branch end."""
    top = _top(b)
    pts = [np.linspace(0.0, top, 401)[1:]]
    rel = 10.0 ** -np.array([1.0, 2.0, 3.5, 5.0, 7.0, 9.0, 12.0])
    ends = np.concatenate([br.lo, br.hi, [b]]) if br.lo.size else np.array([b])
    ends = ends[(ends > 0) & (ends <= top)]
    for e in np.unique(ends):
        pts.append([e])
        pts.append(e - top * rel)
        pts.append(e + top * rel)
    g = np.unique(np.concatenate(pts))
    return g[(g > 0) & (g <= top)]


def _multiplicity(classes, profile, branch_ids, br):
    mult = 1
    for (size, is_zero), counts, ids in zip(classes, profile, branch_ids, strict=True):
        rest = size
        for c in counts:
            mult *= math.comb(rest, c)
            rest -= c
        if is_zero:
            kept = sum(cnt for bid, cnt in zip(ids, counts, strict=True) if br.kept[bid])
            mult *= 2**kept
    return mult


def _stability(w, d, M, b, eta_c):
    """Spectral radius of the Jacobian on the sphere at the fixed point w.

    dT = (b/M) (I - w w^T) D; its tangent eigenvalues are (b/M) mu_j, mu_j the
    eigenvalues of D^1/2 (I - w w^T) D^1/2 less one zero. For the eta-step
    (eta_c = eta c) they are (alpha + eta_c b mu_j) / (alpha + eta_c M), alpha =
    1 - eta_c (1 + b)."""
    on = d > 0
    n = w.size
    mu = np.zeros(0)
    if on.any():
        sq = np.sqrt(d[on])
        Mk = np.diag(d[on]) - np.outer(sq * w[on], sq * w[on])
        mu = np.linalg.eigvalsh(Mk)
    zeros = (n - int(on.sum())) + int(np.sum(mu < 1e-14))
    mu = mu[mu >= 1e-14]
    if zeros >= 2 or (zeros == 1 and n - 1 > mu.size):
        mu = np.concatenate([mu, [0.0]])
    if mu.size == 0:
        return 0.0
    if eta_c is None:
        return float(b * np.max(mu) / M)
    alpha = 1.0 - eta_c * (1.0 + b)
    r = alpha + eta_c * M
    if r <= 0:
        return math.inf  # the eta-step sends w to -w: not a fixed point of it
    return float(np.max(np.abs(alpha + eta_c * b * mu)) / r)


def fixed_points(
    w_star,
    k,
    lam,
    beta,
    penalty,
    a=1.0,
    ste="relu",
    *,
    eta=None,
    list_unstable=False,
    max_profiles=200_000,
) -> FixedPoints:
    """Every fixed point of population RVSCGD, from the coordinate-wise scalar equations.

    Parameters
    ----------
    w_star : (n,) unit-norm teacher.
    k : int, patches (sets the coarse-gradient constant c with ``ste``).
    lam : float >= 0, penalty weight; beta : float > 0, splitting parameter.
    penalty : "l0", "l1" or "tl1"; a : TL1 shape parameter > 0.
    ste : "relu" or "identity" ("clipped_relu" has no constant c: ValueError).
    eta : None (stability for T, the same for every eta <= 1/(c + beta)) or the
        step size whose dynamics the stability flag is about.
    list_unstable : also list the fixed points with N < beta and two or more
        kept entries (all provably unstable; their number can be enormous).
    max_profiles : refuse (ValueError) to enumerate more profiles than this.

    Returns
    -------
    FixedPoints: the listed points (stable first), ``continuum`` and ``unlisted``.
    """
    check_params(lam, beta, penalty, a, eta)
    check_ste(ste)
    w_star = np.asarray(w_star, dtype=float)
    if w_star.ndim != 1 or w_star.size < 1 or not np.all(np.isfinite(w_star)):
        raise ValueError(f"w_star must be a finite 1-D array, got shape {w_star.shape}")
    if abs(np.linalg.norm(w_star) - 1.0) > 1e-10:
        raise ValueError(f"w_star must have unit norm, got ||w_star|| = {np.linalg.norm(w_star)!r}")
    if int(max_profiles) != max_profiles or max_profiles < 1:
        raise ValueError(f"max_profiles must be a positive integer, got {max_profiles!r}")
    c = coarse_constant(k, ste)
    lam, beta, a = float(lam), float(beta), float(a)
    b, t = beta / c, lam / beta
    thr = float(threshold(t, penalty, a))
    eta_c = None if eta is None else float(eta) * c
    n = w_star.size
    absw = np.abs(w_star)
    sgn = np.where(w_star < 0, -1.0, 1.0)
    flags = []

    # Classes: equal |w*_i| (exactly), the off-support class last.
    mags = np.unique(absw[absw > 0])[::-1]
    class_idx = [np.flatnonzero(absw == m) for m in mags]
    zero_idx = np.flatnonzero(absw == 0)
    classes = [(idx.size, False) for idx in class_idx]
    if zero_idx.size:
        classes.append((zero_idx.size, True))
        class_idx.append(zero_idx)
    class_w = [*mags.tolist(), *([0.0] if zero_idx.size else [])]

    br = _Branches(b, t, thr, penalty, a)
    branch_ids = [_class_branches(br, w, penalty) for w in class_w]
    br.freeze()
    if penalty == "l1" and t > 0 and np.any(np.abs(mags - b * t) <= 1e-12 * max(1.0, b * t)):
        flags.append("degenerate: c|w*_i| = lambda for some i (l1): a continuum at N = beta up to rounding")

    profiles = _enumerate(classes, branch_ids, br, list_unstable, int(max_profiles))
    points = _solve_profiles(profiles, classes, class_idx, class_w, branch_ids, br, w_star, sgn, n)

    # l0 at N = beta exactly: kept entries off the support (beta > c).
    continuum = []
    if penalty == "l0" and zero_idx.size and b > 1.0:
        support_off = np.all(mags <= b * thr)
        radius2 = 1.0 - 1.0 / b**2
        if support_off and radius2 > 0:
            size_max = min(zero_idx.size, math.ceil(radius2 / thr**2) - 1 if thr > 0 else zero_idx.size)
            if any(np.abs(mags - b * thr) <= AT_THRESHOLD * b * thr):
                flags.append("at_threshold: a support entry is exactly at the threshold at N = beta")
            base = np.where(absw > 0, w_star / b, 0.0)
            if size_max >= 1:
                x = base.copy()
                x[zero_idx[0]] = math.sqrt(radius2)
                points.append(("N=beta", 0, x, b, 2 * zero_idx.size))
            if size_max >= 2:
                continuum.append(
                    Continuum(
                        N=beta,
                        radius=math.sqrt(radius2),
                        threshold=thr,
                        size_min=2,
                        size_max=int(size_max),
                        base=base,
                        off_support=zero_idx,
                        normally_stable=True,
                        conditions=(
                            "N = beta; support entries c w*_i/beta (not kept, needs c|w*_i| <= beta threshold); "
                            f"K of 2..{size_max} off-support entries kept with ||x_K||^2 = 1 - c^2/beta^2, "
                            "each |x_j| > threshold; the rest 0"
                        ),
                    )
                )
    out = _finish(points, classes, class_idx, class_w, br, w_star, sgn, c, beta, lam, t, penalty, a, eta_c, n)
    unlisted = (
        None
        if list_unstable
        else (
            "fixed points with N < beta and >= 2 kept entries: all linearly unstable "
            "(spectral radius >= beta/N > 1, interlacing); pass list_unstable=True to list them"
        )
    )
    cls = tuple((idx, sgn[idx], z) for idx, (_, z) in zip(class_idx, classes, strict=True))
    return FixedPoints(tuple(out), tuple(continuum), unlisted, tuple(flags), c, beta, lam, penalty, a, w_star, cls)


def _solve_profiles(profiles, classes, class_idx, class_w, branch_ids, br, w_star, sgn, n):
    """Roots in M of every profile: bracket on a grid, refine by bisection."""
    if not profiles:
        return []
    P = len(profiles)
    nb = br.kind.size
    C = np.zeros((P, nb))
    for p, (prof, _, _) in enumerate(profiles):
        for counts, ids in zip(prof, branch_ids, strict=True):
            for bid, cnt in zip(ids, counts, strict=True):
                C[p, bid] += cnt
    lo = np.array([pr[1] for pr in profiles])
    hi = np.array([pr[2] for pr in profiles])
    g = _grid(br, br.b)
    bid_grid, m_grid = np.meshgrid(np.arange(nb), g, indexing="ij")
    Y, _ = br.evaluate(bid_grid.ravel(), m_grid.ravel())
    Y = Y.reshape(nb, g.size)
    valid_b = ~np.isnan(Y)
    Y2 = np.where(valid_b, Y * Y, 0.0)
    used = C > 0
    with np.errstate(invalid="ignore"):
        F = C @ Y2 - 1.0  # (P, G); inf where a used branch blows up
        inf_part = (used.astype(float) @ np.isinf(Y2).astype(float)) > 0
    F[inf_part] = np.inf
    valid = (used.astype(float) @ (~valid_b).astype(float) == 0) & (g >= lo[:, None]) & (g <= hi[:, None])
    F = np.where(valid, F, np.nan)

    # Brackets: sign changes between neighbouring valid grid points.
    F0, F1 = F[:, :-1], F[:, 1:]
    with np.errstate(invalid="ignore"):
        change = (np.sign(F0) != np.sign(F1)) & ~np.isnan(F0) & ~np.isnan(F1)
        exact = (F0 == 0) & ~np.isnan(F0)
    pp, gg = np.nonzero(change & ~exact)
    brackets = [(p, g[j], g[j + 1], False) for p, j in zip(pp, gg, strict=True)]
    brackets += [(p, g[j], g[j], False) for p, j in zip(*np.nonzero(exact), strict=True)]
    # Tangencies: a discrete extremum whose parabola reaches 0 (two close roots).
    Fm, Fc, Fp = F[:, :-2], F[:, 1:-1], F[:, 2:]
    with np.errstate(invalid="ignore"):
        ext = ((Fc < Fm) & (Fc < Fp) & (Fc > 0)) | ((Fc > Fm) & (Fc > Fp) & (Fc < 0))
        ext &= np.isfinite(Fm) & np.isfinite(Fc) & np.isfinite(Fp)
    ep, ej = np.nonzero(ext)
    if ep.size:
        # Refine only where the parabola through the three points says the
        # extremum may reach 0 (or come close): elsewhere F stays clear of it.
        x0, x1, x2 = g[ej], g[ej + 1], g[ej + 2]
        f0, f1, f2 = Fm[ep, ej], Fc[ep, ej], Fp[ep, ej]
        d01, d12 = (f1 - f0) / (x1 - x0), (f2 - f1) / (x2 - x1)
        curv = (d12 - d01) / (x2 - x0)
        with np.errstate(divide="ignore", invalid="ignore"):
            xv = 0.5 * (x0 + x1) - d01 / (2.0 * curv)
            vertex = f1 + d01 * (xv - x1) + curv * (xv - x0) * (xv - x1)
        near = ~(np.sign(vertex) == np.sign(f1)) | (np.abs(vertex) <= 0.5 * np.abs(f1))
        ep, ej = ep[near], ej[near]
    if ep.size:
        ext_m, val = _extrema(br, C[ep], g[ej], g[ej + 2], Fc[ep, ej] > 0)
        for p, j, m, v in zip(ep, ej, ext_m, val, strict=True):
            if abs(v) <= 1e-13:
                brackets.append((p, m, m, True))
            elif np.sign(v) != np.sign(Fc[p, j]):
                brackets.append((p, g[j], m, True))
                brackets.append((p, m, g[j + 2], True))
    if not brackets:
        return []
    bp = np.array([x[0] for x in brackets])
    a_m = np.array([x[1] for x in brackets], dtype=float)
    b_m = np.array([x[2] for x in brackets], dtype=float)
    fold = np.array([x[3] for x in brackets])
    roots = _bisect(br, C[bp], a_m, b_m)
    out = []
    for p, M, f in zip(bp, roots, fold, strict=True):
        prof = profiles[p][0]
        x = np.zeros(n)
        values = []
        for (_, is_zero), counts, ids, idx in zip(classes, prof, branch_ids, class_idx, strict=True):
            vals = []
            for bid, cnt in zip(ids, counts, strict=True):
                if cnt:
                    y, _ = br.evaluate(np.array([bid]), np.array([M]))
                    vals += [float(y[0])] * cnt
            vals = np.array(sorted(vals, key=lambda v: -v if not is_zero else -abs(v)))
            if is_zero:
                vals = np.abs(vals)
                x[idx] = vals
            else:
                x[idx] = sgn[idx] * vals
            values.append(vals)
        out.append((tuple(values), int(f), x, M, _multiplicity(classes, prof, branch_ids, br)))
    return out


def _padded(Crows):
    """Branch ids and counts of each row of a count matrix, padded to one width."""
    ids_list = [np.flatnonzero(r) for r in Crows]
    L = max(len(i) for i in ids_list)
    ids = np.zeros((len(ids_list), L), dtype=int)
    cnt = np.zeros((len(ids_list), L))
    for p, i in enumerate(ids_list):
        ids[p, : i.size] = i
        cnt[p, : i.size] = Crows[p, i]
    return ids, cnt


def _Fvec(br, ids, cnt, M):
    """F_p(M_p) = sum of count * y^2 - 1 for each row p."""
    y, _ = br.evaluate(ids, np.broadcast_to(M[:, None], ids.shape))
    y = np.where(cnt > 0, y, 0.0)
    return np.sum(cnt * y * y, axis=1) - 1.0


def _extrema(br, Crows, lo, hi, minimum, iters=45):
    """Golden-section search for the extremum of each F_p on [lo_p, hi_p]."""
    ids, cnt = _padded(Crows)
    gr = (math.sqrt(5.0) - 1.0) / 2.0
    sign = np.where(minimum, 1.0, -1.0)
    x1, x2 = hi - gr * (hi - lo), lo + gr * (hi - lo)
    f1, f2 = sign * _Fvec(br, ids, cnt, x1), sign * _Fvec(br, ids, cnt, x2)
    for _ in range(iters):
        left = f1 < f2  # the extremum is in [lo, x2]
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        keep = np.where(left, x1, x2)  # the surviving inner point
        fkeep = np.where(left, f1, f2)
        probe = np.where(left, hi - gr * (hi - lo), lo + gr * (hi - lo))
        fp = sign * _Fvec(br, ids, cnt, probe)
        x1 = np.where(left, probe, keep)
        f1 = np.where(left, fp, fkeep)
        x2 = np.where(left, keep, probe)
        f2 = np.where(left, fkeep, fp)
    m = 0.5 * (lo + hi)
    return m, _Fvec(br, ids, cnt, m)


def _bisect(br, Crows, lo, hi, iters=100):
    """Vectorised root of F_p(M) on the brackets [lo, hi]: the Illinois variant
    of regula falsi (superlinear), every third step a bisection (so the
    bracket always shrinks), until it is a few ulps wide."""
    ids, cnt = _padded(Crows)
    f_lo = _Fvec(br, ids, cnt, lo)
    f_hi = _Fvec(br, ids, cnt, hi)
    side = np.zeros(lo.size)
    for it in range(iters):
        with np.errstate(invalid="ignore", divide="ignore"):
            sec = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        ok = np.isfinite(sec) & (sec > lo) & (sec < hi) & (it % 3 != 2)
        mid = np.where(ok, sec, 0.5 * (lo + hi))
        f = _Fvec(br, ids, cnt, mid)
        left = (np.sign(f) == np.sign(f_lo)) & (f != 0)
        # Illinois: halve the stale end's value when the same end stays twice.
        f_hi = np.where(left & (side == 1), 0.5 * f_hi, f_hi)
        f_lo = np.where(~left & (side == -1), 0.5 * f_lo, f_lo)
        lo, f_lo = np.where(left, mid, lo), np.where(left, f, f_lo)
        hi, f_hi = np.where(left, hi, mid), np.where(left, f_hi, f)
        side = np.where(left, 1, -1)
        done = (f == 0) | (hi - lo <= 4e-16 * hi)
        lo = np.where(f == 0, mid, lo)
        hi = np.where(f == 0, mid, hi)
        if np.all(done):
            break
    return 0.5 * (lo + hi)


def _finish(points, classes, class_idx, class_w, br, w_star, sgn, c, beta, lam, t, penalty, a, eta_c, n):
    """FixedPoint objects: u from the library's prox, residual, stability, flags; deduplicated."""
    b, thr = br.b, br.thr
    res = []
    for values, fold, x, _, mult in points:
        if isinstance(values, str):  # the isolated N = beta points of l0
            values = _values_of(x, classes, class_idx, sgn)
        w = x / np.linalg.norm(x)
        u = prox(w, t, penalty, a)
        v = c * w_star + beta * u
        N = float(np.linalg.norm(v))
        resid = float(np.linalg.norm(v / N - w))
        d = prox_derivative(w, t, penalty, a)
        rho = _stability(w, d, N / c, b, eta_c)
        fl = []
        if thr > 0 and np.any(np.abs(np.abs(w) - thr) <= AT_THRESHOLD * thr):
            fl.append("at_threshold")
        if abs(rho - 1.0) <= NEUTRAL:
            fl.append("neutral")
        if fold:
            fl.append("fold")
        if not resid <= 1e-10:
            fl.append("inexact")
        res.append(FixedPoint(w, u, N, bool(rho < 1.0 - NEUTRAL), rho, int(mult), resid, tuple(fl), values))
    # Two profiles can meet at one point only at a threshold (an interval end): keep one.
    res.sort(key=lambda p: (not p.stable, p.N))
    out = []
    for p in res:
        if any(np.linalg.norm(p.w_bar - q.w_bar) < 1e-9 and p.multiplicity == q.multiplicity for q in out):
            continue
        out.append(p)
    return out


def _values_of(x, classes, class_idx, sgn):
    values = []
    for (_, is_zero), idx in zip(classes, class_idx, strict=True):
        if is_zero:
            values.append(np.sort(np.abs(x[idx]))[::-1])
        else:
            values.append(np.sort(sgn[idx] * x[idx])[::-1])
    return tuple(values)


def orbit_distances(w_star, points, w):
    """Distance from ``w`` (n,) to the orbit of each of ``points`` (P, n), and
    the nearest member of each orbit (P, n).

    The orbit of a fixed point is what its profile stands for: permutations
    among coordinates with equal ``|w*_i|``, and free signs off the support.
    Within such a class the nearest member pairs the values in sorted order
    (rearrangement inequality); off the support it takes ``w``'s signs. Needs
    only ``w*`` (not the ``FixedPoints`` object): the datasets use it.
    """
    w_star = np.asarray(w_star, dtype=float)
    P = np.atleast_2d(np.asarray(points, dtype=float))
    w = np.asarray(w, dtype=float)
    if P.shape[1] != w_star.size or w.shape != w_star.shape:
        raise ValueError(f"points must be (P, {w_star.size}) and w ({w_star.size},), got {P.shape} and {w.shape}")
    absw = np.abs(w_star)
    sgn = np.where(w_star < 0, -1.0, 1.0)
    out = P.copy()
    for m in np.unique(absw):
        idx = np.flatnonzero(absw == m)
        if idx.size == 1 and m > 0:
            continue
        if m == 0:
            order = idx[np.argsort(-np.abs(w[idx]), kind="stable")]
            vals = -np.sort(-np.abs(P[:, idx]), axis=1)
            out[:, order] = np.where(w[order] < 0, -1.0, 1.0) * vals
        else:
            rank = np.argsort(-(sgn[idx] * w[idx]), kind="stable")
            vals = -np.sort(-(sgn[idx] * P[:, idx]), axis=1)
            out[:, idx[rank]] = sgn[idx[rank]] * vals
    return np.linalg.norm(out - w, axis=1), out


def nearest_listed(w_star, points, w):
    """The point of ``points`` (P, n) whose orbit is nearest ``w`` (n,), rows
    with a NaN standing for no point (a padded list): its index (the first on
    a tie; 0 with no point listed), the distances (P,) to every orbit (inf
    where none) and the nearest member of each (P, n; NaN where none)."""
    P = np.atleast_2d(np.asarray(points, dtype=float))
    listed = np.all(np.isfinite(P), axis=1)
    dist = np.full(P.shape[0], np.inf)
    oriented = np.full(P.shape, np.nan)
    if listed.any():
        dist[listed], oriented[listed] = orbit_distances(w_star, P[listed], w)
    return int(np.argmin(dist)), dist, oriented


__all__ = ["Continuum", "FixedPoint", "FixedPoints", "fixed_points", "nearest_listed", "orbit_distances"]
