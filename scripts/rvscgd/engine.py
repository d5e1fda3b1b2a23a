"""The training engine: RVSCGD for a batch of R runs advanced together (model.md section 4).

All runs of one call share the teacher ``w*``, the start ``w0`` and, in the
empirical modes, one stream of inputs (common random numbers): each step
draws one minibatch, and the whole grid of penalties x lam x beta costs one
pair of matrix products ``(B k, n) @ (n, R)`` and ``(n, B k) @ (B k, R)``.

Modes
-----
population : the expected coarse gradient (the regime of the theorems).
fresh      : a fresh minibatch of ``batch_size`` inputs each step.
fixed      : a fixed training set of ``train_size`` inputs, drawn once from
             the stream, full-batch coarse gradient each step.

One step, per run (columns of W):
  u   = prox_{(lam/beta) P}(w)
  w'  = w - eta (g(w) + beta (w - u))
  w'  = w' / ||w'||                      (if normalise; off = the ablation)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .limit import check_params
from .model import STES, angle, check_ste, expected_coarse_gradient_fast
from .penalties import PENALTIES, check_penalty, prox

MODES = ("population", "fresh", "fixed")
STATUS = ("converged", "max_steps", "diverged")

# Above this norm an un-normalised run is declared diverged before it overflows.
_BLOWUP = 1e150


@dataclass(frozen=True)
class Runs:
    """Per-run hyper-parameters of a batch, each an array of length R."""

    penalty: np.ndarray
    lam: np.ndarray
    beta: np.ndarray
    eta: np.ndarray
    a: np.ndarray
    ste: np.ndarray
    normalise: np.ndarray

    def __len__(self) -> int:
        return int(self.lam.size)

    def select(self, idx) -> "Runs":
        return Runs(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})


def make_runs(penalty, lam, beta, eta, a=1.0, ste="relu", normalise=True) -> Runs:
    """Broadcast per-run parameters (scalars or sequences) to a validated ``Runs``."""
    arrays = np.broadcast_arrays(
        np.asarray(penalty, dtype=object),
        np.asarray(lam, dtype=float),
        np.asarray(beta, dtype=float),
        np.asarray(eta, dtype=float),
        np.asarray(a, dtype=float),
        np.asarray(ste, dtype=object),
        np.asarray(normalise, dtype=bool),
    )
    pen, lam, beta, eta, a, ste, norm = (np.atleast_1d(x).ravel().copy() for x in arrays)
    for p in set(pen):
        check_penalty(p)
    for s in set(ste):
        check_ste(s)
    check_params(lam, beta, None, a, eta)
    return Runs(pen.astype(str), lam, beta, eta, a, ste.astype(str), norm)


@dataclass
class TrainResult:
    """Traces (R, T) at ``record_steps`` (T,), final weights (R, n) and status.

    After a run converges its trace carries its final state forward; after it
    diverges its trace, ``w_final`` and ``u_final`` are NaN. ``status`` holds
    indices into ``STATUS``; ``steps_run`` the steps each run took.
    """

    record_steps: np.ndarray
    angle_w: np.ndarray
    angle_u: np.ndarray
    loss: np.ndarray
    sparsity_u: np.ndarray
    dist_ref: np.ndarray
    w_final: np.ndarray
    u_final: np.ndarray
    status: np.ndarray
    steps_run: np.ndarray
    extra: dict = field(default_factory=dict)

    def status_names(self) -> np.ndarray:
        return np.asarray(STATUS)[self.status]


def log_record_steps(max_steps: int, count: int = 40) -> np.ndarray:
    """Step 0 and about ``count`` log-spaced steps up to ``max_steps``."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps!r}")
    pts = np.unique(np.round(np.logspace(0, np.log10(max_steps), count)).astype(int))
    return np.concatenate([[0], pts[pts >= 1]])


def prox_columns(W: np.ndarray, runs: Runs) -> np.ndarray:
    """prox of each column with its own penalty, threshold lam/beta and a."""
    U = np.empty_like(W)
    tau = runs.lam / runs.beta
    for p in PENALTIES:
        cols = np.flatnonzero(runs.penalty == p)
        if cols.size:
            U[:, cols] = prox(W[:, cols], tau[cols], p, runs.a[cols])
    U[np.isnan(W)] = np.nan  # a diverged run has no sparse weights either
    return U


def _ste_codes(runs: Runs) -> np.ndarray:
    return np.array([STES.index(s) for s in runs.ste], dtype=np.int8)


def empirical_coarse_gradient(Zf: np.ndarray, z_star: np.ndarray, W: np.ndarray, k: int, ste_codes) -> np.ndarray:
    """Coarse gradient of every column of W on one flattened batch.

    ``Zf`` is (B k, n), the B inputs' patches stacked; ``z_star`` = Zf @ w*
    (B k,). Returns (n, R), the batch mean of model.md's g~ per run.
    """
    Bk, n = Zf.shape
    B = Bk // k
    P = Zf @ W  # (Bk, R)
    pos = P > 0
    f_w = pos.reshape(B, k, -1).mean(axis=1)  # (B, R)
    f_s = (z_star > 0).reshape(B, k).mean(axis=1)  # (B,)
    resid = f_w - f_s[:, None]
    mu = np.empty_like(P)
    for code in np.unique(ste_codes):
        cols = np.flatnonzero(ste_codes == code)
        if code == 0:
            mu[:, cols] = pos[:, cols]
        elif code == 1:
            mu[:, cols] = 1.0
        else:
            mu[:, cols] = pos[:, cols] & (P[:, cols] < 1.0)
    weights = (mu.reshape(B, k, -1) * resid[:, None, :]).reshape(Bk, -1) / Bk
    return Zf.T @ weights


def train(
    w_star: np.ndarray,
    w0: np.ndarray,
    k: int,
    runs: Runs,
    mode: str = "population",
    *,
    max_steps: int = 1000,
    tol: float = 1e-12,
    batch_size: int = 256,
    train_size: int | None = None,
    seed=0,
    record_steps=None,
    w_ref: np.ndarray | None = None,
) -> TrainResult:
    """Run RVSCGD for every run of ``runs`` from the common start ``w0``.

    Parameters
    ----------
    w_star : (n,) unit-norm teacher.
    w0 : (n,) start, normalised here.
    k : patches per input.
    runs : per-run parameters (``make_runs``).
    mode : "population", "fresh" or "fixed".
    max_steps : step limit.
    tol : a run has converged when ``||w^{t+1} - w^t|| <= tol``.
    batch_size : B, inputs per step in "fresh" mode.
    train_size : m, size of the training set in "fixed" mode.
    seed : int or numpy SeedSequence of the input stream.
    record_steps : steps at which traces are recorded (default log-spaced).
    w_ref : (R, n) reference weights (the predicted limits) for ``dist_ref``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    w_star = np.asarray(w_star, dtype=float)
    n = w_star.size
    w0 = np.asarray(w0, dtype=float)
    if w0.shape != (n,):
        raise ValueError(f"w0 must have shape ({n},), got {w0.shape}")
    R = len(runs)
    record = log_record_steps(max_steps) if record_steps is None else np.unique(np.asarray(record_steps, dtype=int))
    record = record[record <= max_steps]
    ref = None if w_ref is None else np.asarray(w_ref, dtype=float).T  # (n, R)
    codes = _ste_codes(runs)

    rng = np.random.Generator(np.random.PCG64(seed))
    if mode == "fresh":
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if mode == "fixed":
        if train_size is None or int(train_size) != train_size or train_size < 1:
            raise ValueError(f"train_size must be a positive integer in mode 'fixed', got {train_size!r}")
        Z_train = rng.standard_normal((int(train_size) * k, n))
        z_star_train = Z_train @ w_star

    W = np.repeat((w0 / np.linalg.norm(w0))[:, None], R, axis=1)
    status = np.full(R, STATUS.index("max_steps"), dtype=np.int8)
    steps_run = np.full(R, int(max_steps), dtype=np.int64)
    active = np.ones(R, dtype=bool)
    T = record.size
    traces = {name: np.full((R, T), np.nan) for name in ("angle_w", "angle_u", "loss", "sparsity_u", "dist_ref")}

    def write_trace(col_idx, Wc, j):
        Uc = prox_columns(Wc, runs.select(col_idx))
        aw = angle(Wc, w_star)
        traces["angle_w"][col_idx, j] = aw
        traces["angle_u"][col_idx, j] = angle(Uc, w_star)
        traces["loss"][col_idx, j] = aw / (2.0 * np.pi * k)
        sparsity = np.mean(Uc == 0, axis=0)
        traces["sparsity_u"][col_idx, j] = np.where(np.isnan(aw), np.nan, sparsity)
        if ref is not None:
            traces["dist_ref"][col_idx, j] = np.linalg.norm(Wc - ref[:, col_idx], axis=0)

    rec_j = 0
    for t in range(int(max_steps) + 1):
        while rec_j < T and record[rec_j] == t:
            # Stopped runs carry their final state (NaN if diverged) forward.
            write_trace(np.arange(R), W, rec_j)
            rec_j += 1
        if t == max_steps or not active.any():
            if rec_j < T:
                for j in range(rec_j, T):
                    write_trace(np.arange(R), W, j)
            break
        idx = np.flatnonzero(active)
        sub = runs.select(idx)
        Wa = W[:, idx]
        if mode == "population":
            G = expected_coarse_gradient_fast(Wa, w_star, k, codes[idx])
        else:
            if mode == "fresh":
                Zf = rng.standard_normal((int(batch_size) * k, n))
                zs = Zf @ w_star
            else:
                Zf, zs = Z_train, z_star_train
            G = empirical_coarse_gradient(Zf, zs, Wa, k, codes[idx])
        U = prox_columns(Wa, sub)
        W_new = Wa - sub.eta * (G + sub.beta * (Wa - U))
        norms = np.linalg.norm(W_new, axis=0)
        renorm = sub.normalise
        W_new[:, renorm] /= norms[renorm]
        with np.errstate(invalid="ignore"):
            bad = ~np.all(np.isfinite(W_new), axis=0) | (norms == 0) | (norms > _BLOWUP)
        moved = np.linalg.norm(W_new - Wa, axis=0)
        conv = ~bad & (moved <= tol)
        W[:, idx] = np.where(bad, np.nan, W_new)
        status[idx[bad]] = STATUS.index("diverged")
        status[idx[conv]] = STATUS.index("converged")
        steps_run[idx[bad | conv]] = t + 1
        active[idx[bad | conv]] = False

    U_final = prox_columns(W, runs)
    return TrainResult(
        record_steps=record,
        w_final=W.T.copy(),
        u_final=U_final.T.copy(),
        status=status,
        steps_run=steps_run,
        **traces,
    )
