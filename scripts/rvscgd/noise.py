"""The empirical noise floor of normalised RVSCGD, predicted (docs/theory.md section 9).

In empirical mode each step uses the mean coarse gradient of ``B`` fresh
inputs. Near a stable fixed point ``w_bar`` of the population dynamics the
run does not converge: it fluctuates about ``w_bar`` with a stationary spread,
the *noise floor* ``E||w - w_bar||^2``. This module predicts it without running
the dynamics, from three pieces:

1. ``gradient_covariance``: the covariance of ONE minibatch coarse gradient at
   a state ``w``, in closed form (relu and identity STE, label noise
   included). It is ``Sigma_1(w) / B`` with ``Sigma_1`` the covariance of one
   input's coarse gradient, built from moments of one Gaussian patch in the
   plane of ``(w, w*)``. Without label noise it vanishes at ``w = w*`` and
   grows linearly in the angle ``theta(w, w*)``: a realisable teacher's
   residual ``f(w) - y`` is nonzero only where the signs of ``<Z_i, w>`` and
   ``<Z_i, w*>`` differ, which has probability ``theta / pi``.
2. ``rvscgd.rates.tangent_jacobian``: the engine's population step linearised
   at ``w_bar`` on the tangent space (the same matrix ``linear_rate`` and the
   stability verdict use), and the norm ``N`` of the raw step, so one step is
   ``z' = J z - (eta / N) Q^T xi`` with ``xi`` the minibatch noise.
3. A self-consistent discrete Lyapunov equation for the stationary tangent
   covariance ``C``: ``C = J C J^T + (eta/N)^2 Q^T E[Sigma_1(w)] Q / B``, where
   the expectation is over the stationary law of ``w``, taken as the Gaussian
   ``w = normalise(w_bar + Q z)``, ``z ~ N(0, C)`` (a fixed set of antithetic
   normal draws: deterministic). Iterated to its fixed point.

The split: the *state-independent* part is the Lyapunov solution driven by
``Sigma_1(w_bar)`` alone (a fixed point away from ``w*`` and label noise); the
*state-dependent* part is the rest (the noise the spread itself creates).
The first falls as ``1/B``; the second, where it dominates, as ``1/B^2``
(``E theta`` then grows with the spread: ``x ~ (a/B) sqrt(x)``).

Scope: normalised runs, fresh minibatches, relu or identity STE, a listed
stable isolated fixed point. Outside the linearisation: a run that hops to
another stable fixed point (l0 hysteresis), flagged by ``NoiseFloor.hops``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .fixed_points import fixed_points
from .limit import check_params
from .model import check_ste, coarse_constant
from .penalties import prox
from .rates import tangent_jacobian

_SQRT_2PI = math.sqrt(2.0 * math.pi)
# Normal draws of the stationary law (antithetic pairs, so 2 x this many states).
MC_DRAWS = 256
# The simulated linearised recursion behind NoiseFloor.distance_quantile.
SIM_STEPS, SIM_CHAINS = 500, 128
# Midpoint to the nearest other stable fixed point closer than this many
# predicted standard deviations: the run may hop there (NoiseFloor.hops).
HOP_Z = 4.0
# Largest ||T(w_bar) - w_bar|| accepted for a given w_bar.
FIXED_TOL = 1e-6
# Relative change of tr C at which the self-consistent iteration stops.
SOLVE_RTOL = 1e-6


def _check_w_star(w_star):
    w_star = np.asarray(w_star, dtype=float)
    if w_star.ndim != 1 or w_star.size < 2 or not np.all(np.isfinite(w_star)):
        raise ValueError(f"w_star must be a finite 1-D array of size >= 2, got shape {w_star.shape}")
    if abs(np.linalg.norm(w_star) - 1.0) > 1e-10:
        raise ValueError(f"w_star must have unit norm, got ||w_star|| = {np.linalg.norm(w_star)!r}")
    return w_star


def _check_sigma(label_noise):
    if not (np.isfinite(label_noise) and label_noise >= 0):
        raise ValueError(f"label_noise must be a finite number >= 0, got {label_noise!r}")
    return float(label_noise)


def _check_noise_ste(ste):
    check_ste(ste)
    if ste == "clipped_relu":
        raise ValueError("ste='clipped_relu' has no closed-form gradient covariance here: use 'relu' or 'identity'")
    return ste


def _plane(W, w_star):
    """For states ``W`` (m, n): unit ``e1 = w_hat``, unit ``e2`` in the plane of
    (w, w*) orthogonal to e1 with ``w* = cos(theta) e1 + sin(theta) e2``, and theta.
    At theta = 0 e2 is any unit vector orthogonal to e1 (every term using it
    vanishes there)."""
    e1 = W / np.linalg.norm(W, axis=1, keepdims=True)
    cos = np.clip(e1 @ w_star, -1.0, 1.0)
    perp = w_star[None, :] - cos[:, None] * e1
    sin = np.linalg.norm(perp, axis=1)
    theta = np.arctan2(sin, cos)
    small = sin < 1e-300
    if small.any():  # any direction orthogonal to e1
        j = np.argmin(np.abs(e1[small]), axis=1)
        alt = np.zeros((int(small.sum()), W.shape[1]))
        alt[np.arange(j.size), j] = 1.0
        alt -= np.sum(alt * e1[small], axis=1, keepdims=True) * e1[small]
        perp[small] = alt
        sin_used = np.where(small, np.linalg.norm(perp, axis=1), sin)
    else:
        sin_used = sin
    e2 = perp / sin_used[:, None]
    return e1, e2, theta


def _covariance_parts(theta, k, sigma, ste):
    """Per state: the isotropic coefficient ``alpha`` and the 2 x 2 matrix ``S``
    (basis e1, e2 of ``_plane``) with ``Sigma_1 = alpha I + E S E^T``, E = [e1 e2].

    One input's coarse gradient is ``r h`` with ``r = D/k - sigma xi``,
    ``D = sum_i d_i``, ``d_i = 1{<Z_i,w> > 0} - 1{<Z_i,w*> > 0}``, and
    ``h = H/k``, ``H = sum_i x_i``, ``x_i = mu'(<Z_i, w>) Z_i``. The patches are
    independent and ``E d = 0``, so
    ``E[D^2 H H^T] = k A + k(k-1) [(theta/pi) S_xx + q m^T + m q^T + 2 u u^T]
    + k(k-1)(k-2) (theta/pi) m m^T``, with the one-patch moments
    ``m = E x``, ``S_xx = E x x^T``, ``u = E d x``, ``q = E d^2 x``,
    ``A = E d^2 x x^T``, ``E d^2 = theta/pi``; the mean gradient is ``u/k``
    and ``E[H H^T] = k S_xx + k(k-1) m m^T``.

    relu: ``x = 1{<Z,w> > 0} Z``: ``m = e1/sqrt(2 pi)``, ``S_xx = I/2``,
    ``u = q = (w_hat - w*)/(2 sqrt(2 pi))``, ``A = W_theta`` the second moment
    over the wedge ``{<Z,w> > 0 >= <Z,w*>}``: ``(theta/2pi)`` off the plane and
    ``(1/pi) [[theta/2 - sin2t/4, -sin^2 t/2], [-sin^2 t/2, theta/2 + sin2t/4]]``
    in it. identity: ``x = Z``: ``m = 0``, ``S_xx = I``,
    ``u = (w_hat - w*)/sqrt(2 pi)``, ``q = 0``, ``A = 2 W_theta``.
    """
    t = np.asarray(theta, dtype=float)
    s, co = np.sin(t), np.cos(t)
    p = t / math.pi  # E d^2
    ed = np.stack([1.0 - co, -s], axis=-1)  # w_hat - w* in (e1, e2)
    # In-plane part of W_theta minus its isotropic (theta/2pi) I_2.
    corr = np.empty(t.shape + (2, 2))
    corr[..., 0, 0] = -np.sin(2 * t) / (4 * math.pi)
    corr[..., 1, 1] = np.sin(2 * t) / (4 * math.pi)
    corr[..., 0, 1] = corr[..., 1, 0] = -(s**2) / (2 * math.pi)
    e1 = np.array([1.0, 0.0])
    mm = np.outer(e1, e1)
    k4 = float(k) ** 4
    if ste == "relu":
        m = e1 / _SQRT_2PI
        u = ed / (2 * _SQRT_2PI)
        sxx, kA = 0.5, 1.0
        uu = u[..., :, None] * u[..., None, :]
        qm = u[..., :, None] * m + m[:, None] * u[..., None, :]
        alpha = (k * kA * t / (2 * math.pi) + k * (k - 1) * p * sxx) / k4 + sigma**2 * k * sxx / k**2
        S = (
            k * kA * corr + k * (k - 1) * (qm + 2 * uu) + k * (k - 1) * (k - 2) * p[..., None, None] * mm / _SQRT_2PI**2
        ) / k4
        S = S + sigma**2 * k * (k - 1) * mm / (2 * math.pi) / k**2
    else:  # identity
        u = ed / _SQRT_2PI
        sxx, kA = 1.0, 2.0
        uu = u[..., :, None] * u[..., None, :]
        alpha = (k * kA * t / (2 * math.pi) + k * (k - 1) * p * sxx) / k4 + sigma**2 * k * sxx / k**2
        S = (k * kA * corr + 2 * k * (k - 1) * uu) / k4
    S = S - uu / k**2  # minus the mean's outer product (u/k)(u/k)^T
    return alpha, S


def gradient_covariance(w, w_star, k, label_noise=0.0, ste="relu", batch_size=1) -> np.ndarray:
    """Covariance (n, n) of one minibatch coarse gradient at the state ``w``.

    The engine's empirical gradient is the mean over ``batch_size`` independent
    inputs of ``g~(w; Z) = (f(Z; w) - y) (1/k) sum_i mu'(<Z_i, w>) Z_i`` with
    ``y = f(Z; w*) + label_noise * N(0, 1)``; its covariance is
    ``Sigma_1(w) / batch_size``, ``Sigma_1`` in closed form
    (``_covariance_parts``; docs/theory.md section 9.1). It depends on ``w``
    only through its direction. ``w`` may be (n,) or (m, n) (then (m, n, n)).
    """
    w_star = _check_w_star(w_star)
    sigma = _check_sigma(label_noise)
    ste = _check_noise_ste(ste)
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    W = np.asarray(w, dtype=float)
    single = W.ndim == 1
    W = np.atleast_2d(W)
    e1, e2, theta = _plane(W, w_star)
    alpha, S = _covariance_parts(theta, k, sigma, ste)
    E = np.stack([e1, e2], axis=2)  # (m, n, 2)
    out = alpha[:, None, None] * np.eye(W.shape[1]) + np.einsum("mia,mab,mjb->mij", E, S, E)
    out /= batch_size
    return out[0] if single else out


def _mean_covariance(W, w_star, k, sigma, ste):
    """The mean of ``Sigma_1`` over the states ``W`` (m, n)."""
    e1, e2, theta = _plane(W, w_star)
    alpha, S = _covariance_parts(theta, k, sigma, ste)
    m, n = W.shape
    E = np.concatenate([e1, e2], axis=1).reshape(m, 2, n)  # rows e1, e2 per state
    F = np.matmul(S, E)  # (m, 2, n): S E^T per state, so sum_m E_m S_m E_m^T = E_flat^T F_flat
    return float(np.mean(alpha)) * np.eye(n) + E.reshape(2 * m, n).T @ F.reshape(2 * m, n) / m


@dataclass(frozen=True)
class NoiseFloor:
    """The predicted stationary spread of an empirical run about ``w_bar``.

    Attributes
    ----------
    mean_sq : predicted stationary ``E||w - w_bar||^2`` (tangent part; the
        radial part is of order ``mean_sq^2``).
    w_bar : (n,) the fixed point used.
    state_independent : the part driven by the noise at ``w_bar`` itself
        (``Sigma_1(w_bar)``: the fixed point's own angle to w* and the label
        noise); falls as ``1/B``.
    state_dependent : ``mean_sq - state_independent``: the noise the spread
        itself creates (``E theta(w, w*)`` above ``theta(w_bar, w*)``).
    crossover_batch : the batch size at which the two parts are equal: above
        it the state-independent part dominates (inf when it is zero: w_bar =
        w* without label noise; NaN when not computed; below 1 when the
        state-independent part dominates at every B).
    batch_size, label_noise : the B and sigma of the prediction.
    rho : spectral radius of the linearised step (``rvscgd.linear_rate``).
    theta_bar : angle(w_bar, w*) in rad.
    mean_theta : ``E theta(w, w*)`` under the predicted stationary law.
    other_distance : distance from w_bar to the nearest other listed stable
        fixed point (inf if none; continua are not considered).
    escape_z : half that distance over the predicted standard deviation
        along the direction to it. Below ``HOP_Z`` the run can hop to the
        other point, which the linearisation does not describe (``hops``).
    cov : (n-1, n-1) the stationary tangent covariance C (basis ``basis``).
    basis : (n, n-1) orthonormal basis Q of the tangent space at w_bar.
    iterations : iterations of the self-consistent solve.
    (``simulate`` and ``distance_quantile`` give the law beyond its second moment.)
    """

    mean_sq: float
    w_bar: np.ndarray
    state_independent: float
    state_dependent: float
    crossover_batch: float
    batch_size: int
    label_noise: float
    rho: float
    theta_bar: float
    mean_theta: float
    other_distance: float
    escape_z: float
    cov: np.ndarray
    basis: np.ndarray
    iterations: int
    _model: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def hops(self) -> bool:
        """The run may hop to another stable fixed point (``escape_z < HOP_Z``):
        the prediction is outside its regime (docs/theory.md section 9.4)."""
        return self.escape_z < HOP_Z

    @property
    def rms(self) -> float:
        """``sqrt(mean_sq)``."""
        return math.sqrt(self.mean_sq)

    def distance_quantile(self, q) -> np.ndarray:
        """Quantile(s) ``q`` of ``||w - w_bar||`` under the predicted stationary law.

        The law is that of the linearised recursion with its state-dependent
        noise, ``z' = J z + (eta/N) Q^T xi``, ``xi ~ N(0, Sigma_1(w)/B)`` at
        ``w = normalise(w_bar + Q z)``, simulated (``simulate``: fixed seed,
        deterministic). Unlike the Gaussian closure behind ``mean_sq`` it keeps
        the heavier tail of multiplicative noise (docs/theory.md section 9.4).
        For matching a run's final state to w_bar: a stationary run lies beyond
        the 0.99 quantile 1% of the time.
        """
        q = np.asarray(q, dtype=float)
        if not np.all((q >= 0) & (q <= 1)):
            raise ValueError(f"q must be in [0, 1], got {q!r}")
        return np.sqrt(np.quantile(self.simulate(), q))

    def simulate(self, steps=SIM_STEPS, chains=SIM_CHAINS, seed=0) -> np.ndarray:
        """Samples of ``||z||^2`` from ``chains`` independent runs of the
        linearised recursion (``distance_quantile``), ``steps`` each after a
        burn-in of ``5 / (1 - rho)`` steps from ``z ~ N(0, cov)``: an array
        (steps * chains,). Cached for the default arguments."""
        key = (int(steps), int(chains), seed)
        cache = self._model["cache"]
        if key not in cache:
            from threadpoolctl import threadpool_limits  # lazy, as in noise_floor

            with threadpool_limits(limits=1, user_api="blas"):
                cache[key] = _simulate(self._model, self.cov, self.w_bar, self.basis, self.rho, *key)
        return cache[key]


def _simulate(model, C, w_bar, Q, rho, steps, chains, seed):
    rng = np.random.default_rng(seed)
    J, scale = model["J"], math.sqrt(model["gain"] / model["B"])
    w_star, k, sigma, ste = model["w_star"], model["k"], model["sigma"], model["ste"]
    vals, vecs = np.linalg.eigh(C)
    z = rng.standard_normal((chains, C.shape[0])) @ (vecs * np.sqrt(np.clip(vals, 0.0, None))).T
    burn = int(math.ceil(5.0 / max(1.0 - rho, 1e-3)))
    out = np.empty((steps, chains))
    for t in range(burn + steps):
        W = w_bar[None, :] + z @ Q.T
        e1, e2, theta = _plane(W, w_star)
        alpha, S = _covariance_parts(theta, k, sigma, ste)
        # Sigma_1 = alpha (I - E E^T) + E (alpha I_2 + S) E^T, the 2 x 2 block PSD.
        block = S + alpha[:, None, None] * np.eye(2)
        a_, b_, d_ = block[:, 0, 0], block[:, 0, 1], block[:, 1, 1]
        l11 = np.sqrt(np.clip(a_, 0.0, None))
        l21 = np.divide(b_, l11, out=np.zeros_like(b_), where=l11 > 0)
        l22 = np.sqrt(np.clip(d_ - l21**2, 0.0, None))
        g = rng.standard_normal(W.shape)
        g1, g2 = np.sum(g * e1, axis=1), np.sum(g * e2, axis=1)
        plane = (l11 * g1)[:, None] * e1 + (l21 * g1 + l22 * g2)[:, None] * e2
        x = np.sqrt(alpha)[:, None] * (g - g1[:, None] * e1 - g2[:, None] * e2) + plane
        z = z @ J.T + scale * (x @ Q)
        if t >= burn:
            out[t - burn] = np.sum(z * z, axis=1)
    return out.ravel()


class _Solver:
    """The self-consistent Lyapunov solve at one w_bar, for any B."""

    def __init__(self, w_star, w_bar, k, c, lam, beta, penalty, eta, sigma, ste, a, draws):
        self.w_star, self.w_bar, self.k, self.sigma, self.ste = w_star, w_bar, k, sigma, ste
        self.Q, self.J, self.N = tangent_jacobian(w_bar, w_star, c, lam, beta, eta, penalty, a)
        self.gain = (eta / self.N) ** 2
        # J is symmetric: J = V diag(r) V^T, and the discrete Lyapunov equation
        # X = J X J^T + S is solved exactly in its eigenbasis,
        # (V^T X V)_ij = (V^T S V)_ij / (1 - r_i r_j) (many times faster than
        # scipy.linalg.solve_discrete_lyapunov, which does not use the symmetry).
        r, self._V = np.linalg.eigh(self.J)
        self._den = 1.0 - np.outer(r, r)
        self.rho = float(np.max(np.abs(r)))
        n = w_bar.size
        xi = np.random.default_rng(draws).standard_normal((MC_DRAWS, n - 1))
        self.xi = np.concatenate([xi, -xi])
        S0 = self.Q.T @ _mean_covariance(w_bar[None, :], w_star, k, sigma, ste) @ self.Q
        self.C1_ind = self.lyap(S0)  # state-independent part at B = 1

    def lyap(self, S):
        """Stationary covariance of z' = J z + noise, noise covariance gain * S."""
        V = self._V
        X = V @ ((V.T @ (self.gain * (S + S.T) / 2.0) @ V) / self._den) @ V.T
        return (X + X.T) / 2.0

    def states(self, C):
        # A square root continuous in C (Cholesky), so the fixed draws move
        # smoothly with C and the iteration settles (an eigenbasis would
        # rotate freely inside degenerate eigenspaces).
        scale = max(float(np.trace(C)) / C.shape[0], 1e-300)
        try:
            root = np.linalg.cholesky(C + 1e-12 * scale * np.eye(C.shape[0]))
        except np.linalg.LinAlgError:  # pragma: no cover - C is a sum of PSD Lyapunov terms
            vals, vecs = np.linalg.eigh(C)
            root = vecs * np.sqrt(np.clip(vals, 0.0, None))
        Z = self.xi @ root.T
        return self.w_bar[None, :] + Z @ self.Q.T

    def mean_noise(self, C):
        """``Q^T E[Sigma_1(w)] Q`` over the Gaussian law ``z ~ N(0, C)``."""
        return self.Q.T @ _mean_covariance(self.states(C), self.w_star, self.k, self.sigma, self.ste) @ self.Q

    def solve(self, B, C_start=None, max_iter=200, rtol=SOLVE_RTOL):
        """(C, iterations, E theta) at batch size B, tr C to relative change ``rtol``."""
        C_ind = self.C1_ind / B
        if C_start is None:
            # A positive start: the iteration has the spurious fixed point C = 0
            # when the noise vanishes at w_bar (w_bar = w*, no label noise).
            C_start = C_ind + self.lyap(np.eye(self.J.shape[0])) * (1e-2 / B) ** 2 * self.w_bar.size
        C = C_start
        x = float(np.trace(C))
        iterations = 0
        while iterations < max_iter:
            iterations += 1
            S = self.mean_noise(C)
            # No damping needed: near the root the map contracts by about 1/2.
            C = self.lyap(S) / B
            x_new = float(np.trace(C))
            if abs(x_new - x) <= rtol * max(x_new, 1e-300):
                break
            x = x_new
        _, _, theta = _plane(self.states(C), self.w_star)
        return C, iterations, float(np.mean(theta))

    def parts(self, B, C_start=None, rtol=SOLVE_RTOL):
        C, it, mt = self.solve(B, C_start, rtol=rtol)
        total = float(np.trace(C))
        ind = float(np.trace(self.C1_ind)) / B
        return C, it, mt, total, ind, total - ind


def _stable_points(fp, toward):
    """The listed stable fixed points of ``fp``, each the member of its orbit nearest ``toward``."""
    return [fp.oriented(i, toward) for i, p in enumerate(fp) if p.stable]


def best_fixed_point(w_star, k, lam, beta, penalty, eta, a=1.0, ste="relu"):
    """The best stable fixed point of the eta-step: among the listed stable
    ones, the one (oriented) nearest w* (the study's ``limit_best``)."""
    return _best(fixed_points(w_star, k, lam, beta, penalty, a=a, ste=ste, eta=eta), w_star)


def _best(fp, w_star):
    points = _stable_points(fp, w_star)
    if not points:
        raise ValueError("no stable isolated fixed point is listed for this setting: pass w_bar")
    return min(points, key=lambda w: float(np.linalg.norm(w - w_star)))


def noise_floor(
    w_star,
    k,
    lam,
    beta,
    penalty,
    eta,
    batch_size,
    label_noise=0.0,
    ste="relu",
    a=1.0,
    w_bar=None,
    *,
    crossover=True,
    draws=0,
) -> NoiseFloor:
    """Predicted stationary ``E||w - w_bar||^2`` of normalised empirical RVSCGD
    (fresh minibatches of ``batch_size``) about its fixed point (module docstring;
    docs/theory.md section 9).

    Parameters
    ----------
    w_star : (n,) unit-norm teacher; k : patches; lam, beta, penalty, a : as in
        ``rvscgd.fixed_points`` (absolute lam); eta : step size;
        batch_size : B; label_noise : sigma of the labels' Gaussian noise;
        ste : "relu" or "identity".
    w_bar : the fixed point (unit norm); None: the best stable one listed by
        ``fixed_points`` (the stable one nearest w*).
    crossover : also find the batch size where the two parts are equal (a
        root search over B: about ten more solves).
    draws : seed of the fixed normal draws of the stationary law.

    Returns
    -------
    NoiseFloor
    """
    w_star = _check_w_star(w_star)
    sigma = _check_sigma(label_noise)
    ste = _check_noise_ste(ste)
    check_params(lam, beta, penalty, a, eta)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    B = int(batch_size)
    c = coarse_constant(k, ste)
    fp = fixed_points(w_star, k, lam, beta, penalty, a=a, ste=ste, eta=eta)
    if w_bar is None:
        w_bar = _best(fp, w_star)
    w_bar = np.asarray(w_bar, dtype=float)
    if w_bar.shape != w_star.shape or abs(np.linalg.norm(w_bar) - 1.0) > 1e-8:
        raise ValueError(f"w_bar must be a unit vector of shape {w_star.shape}")
    u_bar = prox(w_bar, float(lam) / float(beta), penalty, a)
    v = c * w_star + float(beta) * u_bar
    residual = float(np.linalg.norm(v / np.linalg.norm(v) - w_bar))
    if not residual <= FIXED_TOL:
        raise ValueError(
            f"w_bar is not a fixed point of the population map normalise(c w* + beta prox(w)): residual "
            f"{residual:.3g} > {FIXED_TOL:g} (pass a point from rvscgd.fixed_points, or None)"
        )
    from threadpoolctl import threadpool_limits  # lazy, as in the engine

    # Small products (n x 2m, n x n): one BLAS thread is many times faster
    # than several contending for shared cores.
    with threadpool_limits(limits=1, user_api="blas"):
        args = (int(k), c, float(lam), float(beta), penalty, float(eta), sigma, ste, float(a), draws)
        solver = _Solver(w_star, w_bar, *args)
        if solver.rho >= 1.0:
            raise ValueError(f"w_bar is not linearly stable for this eta (spectral radius {solver.rho:.6g} >= 1)")
        C, it, mt, total, ind, dep = solver.parts(B)
        cross = _crossover(solver, B, ind, dep) if crossover else math.nan
    theta_bar = float(np.arctan2(np.linalg.norm(w_star - (w_star @ w_bar) * w_bar), w_star @ w_bar))
    # The nearest other stable fixed point, and how far the midpoint to it lies
    # in the predicted law (its standard deviation along that direction).
    others = [w for w in _stable_points(fp, w_bar) if np.linalg.norm(w - w_bar) > 1e-9]
    other_distance, escape_z = math.inf, math.inf
    if others:
        w_o = min(others, key=lambda w: float(np.linalg.norm(w - w_bar)))
        other_distance = float(np.linalg.norm(w_o - w_bar))
        u = solver.Q.T @ (w_o - w_bar)
        u /= np.linalg.norm(u)
        escape_z = 0.5 * other_distance / math.sqrt(max(float(u @ C @ u), 1e-300))
    model = dict(J=solver.J, gain=solver.gain, B=B, w_star=w_star, k=int(k), sigma=sigma, ste=ste, cache={})
    return NoiseFloor(
        total,
        w_bar,
        ind,
        dep,
        cross,
        B,
        sigma,
        solver.rho,
        theta_bar,
        mt,
        other_distance,
        escape_z,
        C,
        solver.Q,
        it,
        model,
    )


def _crossover(solver, B, ind, dep):
    """The batch size where state_dependent = state_independent (log-bisection)."""
    if not ind > 0:
        return math.inf

    def ratio(logb):
        *_, i, d = solver.parts(math.exp(logb))
        return math.log(max(d, 1e-300) / i)

    lo = hi = math.log(B)
    r = math.log(max(dep, 1e-300) / ind)
    # The ratio dep/ind falls with B (dep ~ 1/B^2 against ind ~ 1/B where dep dominates).
    step = 2.0
    r_lo = r_hi = r
    for _ in range(60):
        if r_lo >= 0 >= r_hi:
            break
        if r_hi > 0:
            hi += step
            r_hi = ratio(hi)
        if r_lo < 0:
            lo -= step
            r_lo = ratio(lo)
    else:  # pragma: no cover - no sign change over e^120
        return math.nan
    from scipy.optimize import brentq  # lazy

    return math.exp(brentq(ratio, lo, hi, xtol=1e-3))


__all__ = [
    "HOP_Z",
    "MC_DRAWS",
    "SIM_CHAINS",
    "SIM_STEPS",
    "NoiseFloor",
    "best_fixed_point",
    "gradient_covariance",
    "noise_floor",
]
