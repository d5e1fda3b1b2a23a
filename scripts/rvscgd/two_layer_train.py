"""Batched trainer of the two-layer model (docs/two_layer.md, "Training").

R runs advance together, each from its own start ``(w0, v0)``: v by the
(expected or sampled) true gradient, w by the coarse gradient of the run's
STE with RVSCGD's thresholding and (optional) normalisation, as in
``rvscgd.engine`` (lam = 0 is plain coarse gradient descent). In empirical
("fresh") mode every step draws one minibatch of ``batch_size`` inputs from
``Generator(PCG64(seed))`` in float64, shared by all runs (common random
numbers): the grid costs one pair of products ``(B k, n) @ (n, R)`` and
``(n, B k) @ (B k, R)`` per step.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from .engine import STATUS as ONE_LAYER_STATUS
from .engine import Runs, _ste_codes, prox_columns
from .model import STES, angle
from .two_layer import expected_gradients_batch, population_loss

MODES = ("population", "fresh")
# Codes 0-2 are rvscgd.engine.STATUS; the two-layer model adds 3.
STATUS = (*ONE_LAYER_STATUS, "oscillating")

_BLOWUP = 1e150


@dataclass
class TwoLayerResult:
    """Traces (R, T) at ``record_steps`` (T,), final weights, status (indices
    into ``STATUS``), steps taken, and the late window's largest rise and fall
    of the population loss (NaN for runs that stopped before it)."""

    record_steps: np.ndarray
    loss: np.ndarray
    angle_w: np.ndarray
    angle_u: np.ndarray
    dist_v: np.ndarray
    sparsity_u: np.ndarray
    w_final: np.ndarray
    u_final: np.ndarray
    v_final: np.ndarray
    status: np.ndarray
    steps_run: np.ndarray
    late_rise: np.ndarray
    late_fall: np.ndarray
    amplitude: float

    def status_names(self) -> np.ndarray:
        return np.asarray(STATUS)[self.status]


def zero_network_loss(v_star: np.ndarray) -> float:
    """``L(0, w) = (||v*||^2 + (1^T v*)^2) / 8``, the loss of the zero network
    (the unit of the oscillation amplitude)."""
    v_star = np.asarray(v_star, dtype=float)
    return float(v_star @ v_star + v_star.sum() ** 2) / 8.0


def classify(status, rise, fall, amp: float, sampled: bool) -> np.ndarray:
    """Final status of the runs that reached the step limit (status
    ``max_steps``) from their late window's largest rise and fall of the
    loss: "oscillating" if both exceed ``amp``; with sampled gradients,
    "converged" (settled) if neither does; else still "max_steps"."""
    status = np.array(status, dtype=np.int8)
    left = status == STATUS.index("max_steps")
    with np.errstate(invalid="ignore"):
        osc = left & (rise > amp) & (fall > amp)
        settled = left & ~osc & (np.fmax(rise, fall) <= amp)
    status[osc] = STATUS.index("oscillating")
    if sampled:
        status[settled] = STATUS.index("converged")
    return status


def late_extremes(losses: np.ndarray) -> tuple[float, float]:
    """Largest rise ``max_{s<t}(L_t - L_s)`` and largest fall
    ``max_{s<t}(L_s - L_t)`` of one loss trace (the trainer tracks them
    online; this is the definition, for tests and re-analysis)."""
    L = np.asarray(losses, dtype=float)
    rise = np.max(L - np.minimum.accumulate(L))
    fall = np.max(np.maximum.accumulate(L) - L)
    return float(rise), float(fall)


def empirical_gradients(Zf, y, V, W, k, ste_codes):
    """Sampled gradients of every run on one flattened batch.

    ``Zf`` (B k, n) the B inputs' patches stacked, ``y`` (B,) the labels,
    ``V`` (k, R), ``W`` (n, R). Returns ``(G_w, G_v)``, (n, R) and (k, R):
    the batch means of ``(f - y) sum_i v_i mu'(<Z_i, w>) Z_i`` and
    ``(f - y) sigma(Z w)``.
    """
    Bk = Zf.shape[0]
    B = Bk // k
    R = W.shape[1]
    P3 = (Zf @ W).reshape(B, k, R)
    A3 = (P3 > 0).astype(float)  # sigma(<Z_i, w>)
    resid = np.sum(A3 * V, axis=1) - y[:, None]  # f - y, (B, R)
    AR = A3 * resid[:, None, :]
    G_v = AR.sum(axis=0) / B
    M = AR * V  # relu: mu' = sigma
    codes = np.asarray(ste_codes)
    ident = np.flatnonzero(codes == 1)
    if ident.size:
        M[:, :, ident] = resid[:, None, ident] * V[:, ident]
    clip = np.flatnonzero(codes == 2)
    if clip.size:
        M[:, :, clip] *= P3[:, :, clip] < 1.0
    M = M.reshape(Bk, R)
    return Zf.T @ M / B, G_v


def train(
    w_star,
    v_star,
    W0,
    V0,
    runs: Runs,
    mode: str = "population",
    *,
    max_steps: int = 1000,
    tol: float = 1e-12,
    batch_size: int = 256,
    seed=0,
    record_steps=None,
    window: float = 0.25,
    amplitude: float = 0.1,
) -> TwoLayerResult:
    """Train every run of ``runs`` on the two-layer model.

    Parameters
    ----------
    w_star : (n,) teacher filter (only its direction matters).
    v_star : (k,) teacher second layer.
    W0 : (n, R) starts of w (one per run; not normalised here, so the
        un-normalised ablation starts where it is given).
    V0 : (k, R) starts of v.
    runs : per-run parameters (``rvscgd.engine.make_runs``); eta is the step
        size of both layers.
    mode : "population" (expected gradients) or "fresh" (a fresh minibatch
        per step).
    max_steps : step limit.
    tol : population mode: converged when a step moves (w, v) by at most
        ``tol``; 0 runs to ``max_steps``. Empirical mode: the same test, and
        see ``amplitude``.
    batch_size : inputs per step in "fresh" mode.
    seed : int or SeedSequence of the input stream.
    record_steps : steps at which the traces are recorded (default 0 and
        about 40 log-spaced steps).
    window : share ``0 < window <= 1`` of the steps forming the late window.
    amplitude : share of the zero network's loss (``zero_network_loss``):
        a run whose population loss over the late window both rises and falls
        by more than ``amplitude * L(0)`` is "oscillating"; in "fresh" mode a
        run that stays within a band of that width there is "converged".
    """
    from .engine import log_record_steps

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if not 0 < window <= 1:
        raise ValueError(f"window must be in (0, 1], got {window!r}")
    if not amplitude > 0:
        raise ValueError(f"amplitude must be > 0, got {amplitude!r}")
    if mode == "fresh" and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    w_star = np.asarray(w_star, dtype=float)
    w_star = w_star / np.linalg.norm(w_star)
    v_star = np.asarray(v_star, dtype=float)
    n, k, R = w_star.size, v_star.size, len(runs)
    W = np.array(W0, dtype=float)
    V = np.array(V0, dtype=float)
    if W.shape != (n, R):
        raise ValueError(f"W0 must have shape ({n}, {R}), got {W.shape}")
    if V.shape != (k, R):
        raise ValueError(f"V0 must have shape ({k}, {R}), got {V.shape}")
    max_steps = int(max_steps)
    record = log_record_steps(max_steps) if record_steps is None else np.unique(np.asarray(record_steps, dtype=int))
    record = record[record <= max_steps]
    rng = np.random.Generator(np.random.PCG64(seed)) if mode == "fresh" else None
    with ExitStack() as stack:
        if mode == "fresh":
            from threadpoolctl import threadpool_limits

            # One BLAS thread: on a shared machine idle BLAS threads spin and a
            # small product costs 100x more (measured); the sums keep one order.
            stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        return _run(w_star, v_star, W, V, runs, mode, max_steps, tol, batch_size, rng, record, amplitude, window)


def _step(Wa, Va, sub, codes, mode, v_star, w_star, batch_size, rng):
    """One step of the active runs: (W', V', diverged)."""
    n, k = Wa.shape[0], Va.shape[0]
    if mode == "population":
        G_w, G_v = expected_gradients_batch(Va, Wa, v_star, w_star, codes)
    else:
        Zf = rng.standard_normal((int(batch_size) * k, n))
        y = (Zf @ w_star > 0).reshape(-1, k) @ v_star
        G_w, G_v = empirical_gradients(Zf, y, Va, Wa, k, codes)
    U = prox_columns(Wa, sub)
    W_new = Wa - sub.eta * (G_w + sub.beta * (Wa - U))
    norms = np.linalg.norm(W_new, axis=0)
    renorm = sub.normalise
    W_new[:, renorm] /= norms[renorm]
    V_new = Va - sub.eta * G_v
    bad = (
        ~np.all(np.isfinite(W_new), axis=0)
        | ~np.all(np.isfinite(V_new), axis=0)
        | (norms == 0)
        | ((norms > _BLOWUP) & ~renorm)
        | (np.linalg.norm(V_new, axis=0) > _BLOWUP)
    )
    return W_new, V_new, bad


def _run(w_star, v_star, W, V, runs, mode, max_steps, tol, batch_size, rng, record, amplitude, window):
    R = len(runs)
    codes = _ste_codes(runs)
    amp = amplitude * zero_network_loss(v_star)
    late_start = max_steps - max(1, math.ceil(window * max_steps))  # losses after steps late_start+1 .. max_steps

    status = np.full(R, STATUS.index("max_steps"), dtype=np.int8)
    steps_run = np.full(R, max_steps, dtype=np.int64)
    active = np.ones(R, dtype=bool)
    T = record.size
    traces = {name: np.full((R, T), np.nan) for name in ("loss", "angle_w", "angle_u", "dist_v", "sparsity_u")}
    run_min, run_max = np.full(R, np.inf), np.full(R, -np.inf)
    rise, fall = np.full(R, np.nan), np.full(R, np.nan)

    def write_trace(j):
        U = prox_columns(W, runs)
        aw = angle(W, w_star)
        traces["loss"][:, j] = population_loss(V, W, v_star, w_star)
        traces["angle_w"][:, j] = aw
        traces["angle_u"][:, j] = angle(U, w_star)
        traces["dist_v"][:, j] = np.linalg.norm(V - v_star[:, None], axis=0)
        traces["sparsity_u"][:, j] = np.where(np.isnan(aw), np.nan, np.mean(U == 0, axis=0))

    rec_j = 0
    for t in range(max_steps + 1):
        while rec_j < T and record[rec_j] == t:
            write_trace(rec_j)  # stopped runs carry their final state forward
            rec_j += 1
        if t == max_steps or not active.any():
            for j in range(rec_j, T):
                write_trace(j)
            break
        idx = np.flatnonzero(active)
        sub = runs.select(idx)
        Wa, Va = W[:, idx], V[:, idx]
        with np.errstate(over="ignore", invalid="ignore"):  # a blowing-up run is caught below
            W_new, V_new, bad = _step(Wa, Va, sub, codes[idx], mode, v_star, w_star, batch_size, rng)
        moved = np.sqrt(np.sum((W_new - Wa) ** 2, axis=0) + np.sum((V_new - Va) ** 2, axis=0))
        conv = ~bad & (moved <= tol) & (tol > 0)
        W[:, idx] = np.where(bad, np.nan, W_new)
        V[:, idx] = np.where(bad, np.nan, V_new)
        if t >= late_start:  # the loss after step t + 1 is in the late window
            L = population_loss(V[:, idx], W[:, idx], v_star, w_star)
            first = np.isnan(rise[idx])
            rise[idx[first]] = 0.0
            fall[idx[first]] = 0.0
            rise[idx] = np.fmax(rise[idx], L - run_min[idx])
            fall[idx] = np.fmax(fall[idx], run_max[idx] - L)
            run_min[idx] = np.fmin(run_min[idx], L)
            run_max[idx] = np.fmax(run_max[idx], L)
        status[idx[bad]] = STATUS.index("diverged")
        status[idx[conv]] = STATUS.index("converged")
        steps_run[idx[bad | conv]] = t + 1
        active[idx[bad | conv]] = False

    status = classify(status, rise, fall, amp, sampled=mode == "fresh")
    rise[status == STATUS.index("diverged")] = np.nan
    fall[status == STATUS.index("diverged")] = np.nan
    U_final = prox_columns(W, runs)
    return TwoLayerResult(
        record_steps=record,
        w_final=W.T.copy(),
        u_final=U_final.T.copy(),
        v_final=V.T.copy(),
        status=status,
        steps_run=steps_run,
        late_rise=rise,
        late_fall=fall,
        amplitude=amp,
        **traces,
    )


__all__ = [
    "MODES",
    "STATUS",
    "STES",
    "TwoLayerResult",
    "classify",
    "empirical_gradients",
    "late_extremes",
    "train",
    "zero_network_loss",
]
