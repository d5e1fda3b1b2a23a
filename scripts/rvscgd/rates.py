"""Convergence rates of the expected (population) dynamics near a fixed point,
and the step counts they predict: theory, compared by the scaling figure
with the measured step counts (a different computation from the runs)."""

from __future__ import annotations

import numpy as np

from .penalties import prox, prox_derivative


def linear_rate(w_bar, w_star, c: float, lam: float, beta: float, eta: float, penalty: str, a: float = 1.0) -> float:
    """Linear convergence rate of normalised RVSCGD with the expected coarse
    gradient ``c (w/||w|| - w*)`` (relu or identity STE) near its fixed point.

    One step is ``F(w) = G(w) / ||G(w)||`` with
    ``G(w) = w - eta (c (w/||w|| - w*) + beta (w - p(w)))``, ``p`` the prox
    with threshold ``lam / beta``. At a fixed point ``w_bar`` (unit norm,
    ``w_bar = (c w* + beta u_bar) / N'``, ``N' = ||c w* + beta u_bar||``):

    - ``G(w_bar) = N w_bar`` with ``N = 1 - eta (c + beta) + eta N'``;
    - ``dG = I - eta c P - eta beta (I - D)``, ``P = I - w_bar w_bar^T``,
      ``D = diag(p'(w_bar))``;
    - ``dF = P dG / N``, which on the tangent space ``w_bar^perp`` is
      ``((1 - eta (c + beta)) I + eta beta P D P) / N``.

    The rate is the spectral radius of that map (symmetric on the tangent
    space, so its eigenvalues are real): ``||w^t - w_bar||`` shrinks by about
    this factor per step once the thresholding pattern has settled. For plain
    CGD (``lam = 0``: ``D = I``, ``u_bar = w_bar = w*``, ``N = 1``) it is
    ``1 - eta c``.
    """
    _, J, _ = tangent_jacobian(w_bar, w_star, c, lam, beta, eta, penalty, a)
    return float(np.max(np.abs(np.linalg.eigvalsh(J))))


def tangent_jacobian(w_bar, w_star, c: float, lam: float, beta: float, eta: float, penalty: str, a: float = 1.0):
    """The linearised population step at the fixed point ``w_bar`` on its tangent space.

    Returns ``(Q, J, N)``: ``Q`` (n, n-1) an orthonormal basis of ``w_bar^perp``,
    ``J`` (n-1, n-1) the symmetric matrix ``((1 - eta (c + beta)) I + eta beta
    Q^T D Q) / N`` of ``linear_rate`` (the Jacobian of one step, ``dF`` in
    ``Q`` coordinates) and ``N = ||G(w_bar)||`` (the norm of the raw step,
    which also scales a perturbation of the gradient: ``dF = P dG / N``).
    ``linear_rate`` is its spectral radius; ``rvscgd.noise`` propagates the
    minibatch noise with it.
    """
    w_bar = np.asarray(w_bar, dtype=float)
    w_star = np.asarray(w_star, dtype=float)
    n = w_bar.size
    tau = lam / beta
    u_bar = prox(w_bar, tau, penalty, a)
    d = prox_derivative(w_bar, tau, penalty, a) if tau > 0 else np.ones(n)
    N = 1.0 - eta * (c + beta) + eta * np.linalg.norm(c * w_star + beta * u_bar)
    q, _ = np.linalg.qr(np.column_stack([w_bar, np.eye(n)]))
    Q = q[:, 1:n]  # orthonormal basis of the tangent space
    M = (1.0 - eta * (c + beta)) * np.eye(n - 1) + eta * beta * (Q.T * d) @ Q
    return Q, (M + M.T) / (2.0 * N), float(N)


def predicted_steps(theta0, rho, tol=None, eps=None):
    """Steps predicted by the linear rate ``rho`` from a start at angle ``theta0``
    (rad) to the limit.

    The distance to the limit is modelled as ``A rho^t`` with
    ``A = 2 tan(theta0 / 2)`` (for plain CGD, ``tan(theta_t / 2)`` decays by
    ``1 - eta c`` per step to first order, from any angle), so

    - ``tol``: a run stops when ``||w^{t+1} - w^t|| = (1 - rho) A rho^t <= tol``:
      ``T = ln((1 - rho) A / tol) / ln(1 / rho)``;
    - ``eps``: it first gets within ``eps`` of the limit at
      ``T = ln(A / eps) / ln(1 / rho)``.
    """
    theta0 = np.asarray(theta0, dtype=float)
    rho = np.asarray(rho, dtype=float)
    A = 2.0 * np.tan(theta0 / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if tol is not None:
            T = np.log((1.0 - rho) * A / tol) / np.log(1.0 / rho)
        elif eps is not None:
            T = np.log(A / eps) / np.log(1.0 / rho)
        else:
            raise ValueError("give tol or eps")
    return np.maximum(T, 0.0)
