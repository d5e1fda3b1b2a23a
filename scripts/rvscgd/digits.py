"""Sparse-filter, binary-activation networks on small images (issue 12).

The paper's network made able to classify: an image is cut into k
non-overlapping p x p patches (n = p^2 pixels each, plus a constant bias
feature), F filters shared across the patches, the binary activation
``1{<Z_i, w_f> > 0}``, and a linear softmax readout on the k F binary units.

Training (one step, every run of a batch at once):

- the filters by the coarse gradient (the STE's ``mu'`` in place of
  ``sigma'`` in the chain rule) with RVSCGD's splitting
  ``u = prox_{(lam/beta) P}(w)``, ``w <- w - eta (g + beta (w - u))``, then each
  filter normalised to unit norm (the binary network is invariant to a
  positive scaling of a filter, as in model.md section 4); the bias entry is
  neither penalised nor counted in the sparsity;
- the readout (V, b) by its true gradient of the mean cross-entropy.

A run with ``activation="relu"`` is the float ReLU network of the same
shape trained by its true gradient (no splitting, no normalisation): the
accuracy ceiling.

Shapes: images ``(N, side, side)``; patches ``Z`` ``(N, k, n + 1)``; one run's
filters ``(n + 1, F)``, readout ``(k F, C)`` with the units ordered patch-major
(unit ``i F + f`` is filter f on patch i); a batch of R runs carries a leading
run axis. Pure numpy, no file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import STES, check_ste  # noqa: F401 - STES re-exported
from .penalties import PENALTIES, check_penalty, prox

ACTIVATIONS = ("binary", "relu")
DTYPES = ("float64", "float32")


# ---- data ---------------------------------------------------------------------


def patches(images: np.ndarray, patch: int) -> np.ndarray:
    """Cut square images into non-overlapping ``patch x patch`` patches, row-major,
    and append the constant bias feature.

    Parameters
    ----------
    images : (N, side, side) or (N, side * side) array
    patch : int, side of a patch; must divide ``side``.

    Returns
    -------
    (N, k, patch^2 + 1) float64, k = (side / patch)^2, last feature = 1.
    """
    x = np.asarray(images, dtype=float)
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise ValueError(f"images must be square, got {x.shape[1]} pixels per image")
        x = x.reshape(-1, side, side)
    if x.ndim != 3 or x.shape[1] != x.shape[2]:
        raise ValueError(f"images must have shape (N, side, side), got {np.shape(images)}")
    side = x.shape[1]
    if int(patch) != patch or patch < 1 or side % patch:
        raise ValueError(f"patch must be a positive integer dividing the image side {side}, got {patch!r}")
    p, q = int(patch), side // int(patch)
    # (N, q, p, q, p) -> (N, q, q, p, p): patch (a, b) holds rows a p.., columns b p..
    z = x.reshape(-1, q, p, q, p).transpose(0, 1, 3, 2, 4).reshape(-1, q * q, p * p)
    return np.concatenate([z, np.ones(z.shape[:2] + (1,))], axis=2)


def split_indices(n_items: int, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random train/test partition of ``range(n_items)`` (sorted index arrays)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    n_test = int(round(test_fraction * n_items))
    if not 0 < n_test < n_items:
        raise ValueError(f"test_fraction={test_fraction} leaves an empty part of {n_items} items")
    perm = rng.permutation(n_items)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardise features (last axis flattened per item) with the training
    part's mean and standard deviation; constant pixels get scale 1.

    Returns ``(train_std, test_std, mean, scale)``.
    """
    tr = np.asarray(train, dtype=float)
    te = np.asarray(test, dtype=float)
    mean = tr.mean(axis=0)
    std = tr.std(axis=0)
    scale = np.where(std > 0, std, 1.0)  # the digits' border pixels are (nearly) always 0
    return (tr - mean) / scale, (te - mean) / scale, mean, scale


# ---- runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class DigitRuns:
    """Per-run settings of a batch, arrays of length R."""

    penalty: np.ndarray
    lam: np.ndarray
    ste: np.ndarray
    activation: np.ndarray

    def __len__(self) -> int:
        return int(self.lam.size)

    def select(self, idx) -> DigitRuns:
        return DigitRuns(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})


def make_digit_runs(penalty, lam, ste="relu", activation="binary") -> DigitRuns:
    """Broadcast per-run settings to a validated ``DigitRuns``.

    A ``relu`` run is trained by its true gradient: its penalty and lam must
    be a no-op (lam = 0) and its ste is ignored.
    """
    arrays = np.broadcast_arrays(
        np.asarray(penalty, dtype=object),
        np.asarray(lam, dtype=float),
        np.asarray(ste, dtype=object),
        np.asarray(activation, dtype=object),
    )
    pen, lam, ste, act = (np.atleast_1d(x).ravel().copy() for x in arrays)
    for p in set(pen):
        check_penalty(p)
    for s in set(ste):
        check_ste(s)
    for a in set(act):
        if a not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {a!r}")
    if not np.all(lam >= 0) or not np.all(np.isfinite(lam)):
        raise ValueError(f"lam must be finite and >= 0, got {lam!r}")
    if np.any((act == "relu") & (lam > 0)):
        raise ValueError("lam must be 0 for activation 'relu' (the float baseline is not sparsified)")
    return DigitRuns(pen.astype(str), lam, ste.astype(str), act.astype(str))


def init_params(rng: np.random.Generator, n_in: int, filters: int) -> np.ndarray:
    """Random unit-norm filters ``(n_in, filters)``, the common start of a batch."""
    if int(filters) != filters or filters < 1:
        raise ValueError(f"filters must be a positive integer, got {filters!r}")
    W = rng.standard_normal((int(n_in), int(filters)))
    return W / np.linalg.norm(W, axis=0)


# ---- the network ----------------------------------------------------------------


def _act(pre: np.ndarray, pos: np.ndarray, binary: np.ndarray) -> np.ndarray:
    """sigma per run (leading axis): 1{x > 0} where ``binary`` (R,) is True, else
    relu; ``pos`` is ``pre > 0`` (computed once per step)."""
    if binary.all():
        return pos.astype(pre.dtype)
    out = np.maximum(pre, 0.0)
    idx = np.flatnonzero(binary)
    out[idx] = pos[idx]
    return out


def _mu_prime(pre: np.ndarray, pos: np.ndarray, runs: DigitRuns) -> np.ndarray:
    """The derivative used in the backward pass, per run: the STE's mu' for a
    binary run, relu' = 1{x > 0} (the true one) for a relu run. Boolean where
    every run uses 1{x > 0} (then it is ``pos`` itself, no copy)."""
    codes = np.where(runs.activation == "relu", "relu", runs.ste)
    if np.all(codes == "relu"):
        return pos
    out = np.empty_like(pre)
    for ste in STES:
        idx = np.flatnonzero(codes == ste)
        if not idx.size:
            continue
        if ste == "relu":
            out[idx] = pos[idx]
        elif ste == "identity":
            out[idx] = 1.0
        else:
            out[idx] = pos[idx] & (pre[idx] < 1)
    return out


def _forward(Z: np.ndarray, W: np.ndarray, binary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    N, k, d = Z.shape
    R, _, F = W.shape
    pre = np.matmul(Z.reshape(N * k, d), W)
    pos = pre > 0
    return pre, pos, _act(pre, pos, np.asarray(binary, dtype=bool)).reshape(R, N, k * F)


def hidden(Z: np.ndarray, W: np.ndarray, binary) -> tuple[np.ndarray, np.ndarray]:
    """Pre-activations ``(R, N k, F)`` and hidden units ``(R, N, k F)`` of every run.

    ``Z`` (N, k, n+1); ``W`` (R, n+1, F); ``binary`` (R,) bool (False: relu).
    One matrix product per run, run-leading, so the units' patch-major order
    is a free reshape.
    """
    pre, _, H = _forward(Z, W, binary)
    return pre, H


def logits(H: np.ndarray, V: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``H V + b`` per run: H (R, N, kF), V (R, kF, C), b (R, C) -> (R, N, C)."""
    return np.matmul(H, V) + b[:, None, :]


# Logits more than this below the largest give probability 0 instead of e^-60 or
# less: float32 subnormals (below 1.2e-38, reached by confident networks) make
# every later product 10-100x slower on x86, and the change is below 1e-26.
_SOFTMAX_FLOOR = -60.0


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (probabilities below e^-60 are set to 0)."""
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.where(shifted > _SOFTMAX_FLOOR, np.exp(np.maximum(shifted, _SOFTMAX_FLOOR)), 0.0).astype(x.dtype)
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy(logit: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean cross-entropy per run: logit (R, N, C), integer labels y (N,) -> (R,)."""
    shifted = logit - logit.max(axis=-1, keepdims=True)
    logz = np.log(np.exp(shifted).sum(axis=-1))
    return np.mean(logz - shifted[:, np.arange(y.size), y], axis=1)


def accuracy(Z: np.ndarray, y: np.ndarray, W: np.ndarray, V: np.ndarray, b: np.ndarray, binary) -> np.ndarray:
    """Classification accuracy of every run (R,) on (Z, y)."""
    _, H = hidden(Z, W, binary)
    return np.mean(np.argmax(logits(H, V, b), axis=-1) == y, axis=1)


def gradients(
    Z: np.ndarray, y: np.ndarray, W: np.ndarray, V: np.ndarray, b: np.ndarray, runs: DigitRuns, classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coarse gradient of the filters and true gradients of the readout, per run.

    The loss is the mean cross-entropy. The readout gradients are exact; the
    filters' gradient replaces sigma' by the STE's mu' (binary runs) or is the
    true relu gradient (relu runs). Returns ``(gW (R, n+1, F), gV, gb, loss (R,))``.
    """
    N, k, _ = Z.shape
    R, _, F = W.shape
    pre, pos, H = _forward(Z, W, runs.activation == "binary")
    logit = logits(H, V, b)
    P = softmax(logit)
    loss = cross_entropy(logit, y)
    P[:, np.arange(N), y] -= 1.0
    D = P / N  # d loss / d logits, (R, N, C)
    gV = np.matmul(H.transpose(0, 2, 1), D)
    gb = D.sum(axis=1)
    dpre = np.matmul(D, V.transpose(0, 2, 1)).reshape(R, N * k, F)
    np.multiply(dpre, _mu_prime(pre, pos, runs), out=dpre)
    gW = np.matmul(Z.reshape(N * k, -1).T, dpre)
    return gW, gV, gb, loss


def prox_filters(W: np.ndarray, runs: DigitRuns, beta: float, a: float) -> np.ndarray:
    """u = prox_{(lam/beta) P}(w) of each run's filters; the bias row is kept as is."""
    U = W.copy()
    tau = runs.lam / beta
    for p in PENALTIES:
        idx = np.flatnonzero((runs.penalty == p) & (runs.lam > 0))
        if idx.size:
            U[idx, :-1] = prox(W[idx, :-1], tau[idx, None, None], p, a)
    return U


def filter_sparsity(U: np.ndarray) -> np.ndarray:
    """Fraction of zero pixel weights (bias row excluded) per run: U (R, n+1, F) -> (R,)."""
    return np.mean(U[:, :-1] == 0, axis=(1, 2))


def magnitude_prune(W: np.ndarray, sparsity) -> np.ndarray:
    """Zero the smallest-magnitude pixel weights of each run's filters (bias kept).

    ``W`` (R, n+1, F), ``sparsity`` (R,) target fractions in [0, 1]: run r keeps
    its ``round((1 - sparsity_r) n F)`` largest |w| (ties broken by position).
    """
    W = np.asarray(W, dtype=float)
    sparsity = np.broadcast_to(np.asarray(sparsity, dtype=float), W.shape[:1])
    if not np.all((sparsity >= 0) & (sparsity <= 1)):
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity!r}")
    out = W.copy()
    R, n1, F = W.shape
    for r in range(R):
        flat = np.abs(W[r, :-1]).ravel()
        n_zero = int(round(sparsity[r] * flat.size))
        order = np.argsort(flat, kind="stable")
        mask = np.ones(flat.size, dtype=bool)
        mask[order[:n_zero]] = False
        out[r, :-1] = np.where(mask.reshape(n1 - 1, F), W[r, :-1], 0.0)
    return out


# ---- training -----------------------------------------------------------------


@dataclass
class DigitResult:
    """Final parameters of every run: filters ``W``/``U`` (R, n+1, F), readout
    ``V`` (R, kF, C), ``b`` (R, C); training loss trace ``loss`` (R, T) at
    ``record_steps`` (T,)."""

    W: np.ndarray
    U: np.ndarray
    V: np.ndarray
    b: np.ndarray
    record_steps: np.ndarray
    loss: np.ndarray


def _batches(rng, n_items: int, batch_size: int | None, steps: int):
    """Minibatch index arrays, one per step (None: the full batch each step)."""
    if batch_size is None or batch_size >= n_items:
        for _ in range(steps):
            yield None
        return
    perm, pos = rng.permutation(n_items), 0
    for _ in range(steps):
        if pos + batch_size > n_items:  # epochs without replacement
            perm, pos = rng.permutation(n_items), 0
        yield perm[pos : pos + batch_size]
        pos += batch_size


def _check_positive(name, value):
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def train(
    Z: np.ndarray,
    y: np.ndarray,
    runs: DigitRuns,
    W0: np.ndarray,
    *,
    classes: int = 10,
    steps: int = 1000,
    eta: float = 0.5,
    eta_readout: float = 0.5,
    beta: float = 0.1,
    a: float = 1.0,
    batch_size: int | None = None,
    seed=0,
    record_steps=None,
    dtype: str = "float64",
) -> DigitResult:
    """Train every run of ``runs`` from the common start (``W0``, zero readout).

    Parameters
    ----------
    Z : (N, k, n+1) training patches (``patches``); y : (N,) integer labels < classes.
    runs : ``make_digit_runs``.
    W0 : (n+1, F) common start of the filters (``init_params``).
    steps : number of steps.
    eta, eta_readout : step sizes of the filters and of the readout.
    beta : splitting parameter (RVSCGD's relaxation).
    a : TL1 shape parameter.
    batch_size : inputs per step; None (or >= N) is full batch. Minibatches
        are epochs without replacement drawn from ``seed``; every run sees the
        same minibatches.
    seed : int or SeedSequence of the minibatch order.
    record_steps : steps at which the training loss is recorded (default 0 and the last).
    dtype : "float64" (default) or "float32": the arithmetic of the products
        (float32 is about twice as fast; the workflow uses it). Deterministic
        either way for a given machine, numpy build and BLAS thread count.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    Z = np.asarray(Z, dtype=dtype)
    y = np.asarray(y)
    if Z.ndim != 3:
        raise ValueError(f"Z must have shape (N, k, n+1), got {Z.shape}")
    if y.shape != Z.shape[:1] or y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= classes:
        raise ValueError(f"y must be {Z.shape[0]} integer labels in [0, {classes}), got shape {y.shape}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    for name, value in (("eta", eta), ("eta_readout", eta_readout), ("beta", beta), ("a", a)):
        _check_positive(name, value)
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    W0 = np.asarray(W0, dtype=float)
    if W0.ndim != 2 or W0.shape[0] != Z.shape[2]:
        raise ValueError(f"W0 must have shape ({Z.shape[2]}, F), got {W0.shape}")
    N, k, _ = Z.shape
    R, F = len(runs), W0.shape[1]
    record = np.array([0, steps]) if record_steps is None else np.unique(np.asarray(record_steps, dtype=int))
    record = record[(record >= 0) & (record <= steps)]
    binary = runs.activation == "binary"
    W = np.repeat(W0[None], R, axis=0).astype(dtype)
    V = np.zeros((R, k * F, classes), dtype)
    b = np.zeros((R, classes), dtype)
    loss = np.full((R, record.size), np.nan)
    rng = np.random.Generator(np.random.PCG64(seed))
    j = 0
    for t, idx in enumerate(_batches(rng, N, batch_size, int(steps))):
        Zb, yb = (Z, y) if idx is None else (Z[idx], y[idx])
        U = prox_filters(W, runs, beta, a)
        gW, gV, gb, lb = gradients(Zb, yb, W, V, b, runs, classes)
        if j < record.size and record[j] == t:
            loss[:, j] = lb
            j += 1
        # RVSCGD for the binary runs; plain gradient for the relu baseline.
        split = np.where(binary, beta, 0.0).astype(dtype)[:, None, None]
        W = W - eta * (gW + split * (W - U))
        W[binary] /= np.linalg.norm(W[binary], axis=1, keepdims=True)
        V = V - eta_readout * gV
        b = b - eta_readout * gb
    if j < record.size:  # the last step: loss of the final parameters
        _, _, _, lb = gradients(Z, y, W, V, b, runs, classes)
        loss[:, j:] = lb[:, None]
    return DigitResult(W=W, U=prox_filters(W, runs, beta, a), V=V, b=b, record_steps=record, loss=loss)


def finetune_readout(
    Z: np.ndarray,
    y: np.ndarray,
    W: np.ndarray,
    V: np.ndarray,
    b: np.ndarray,
    binary,
    *,
    steps: int,
    eta: float,
    classes: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Readout-only fine-tuning with the filters ``W`` frozen (full batch, true
    gradient): what a practitioner does after sparsifying. Returns ``(V, b)``."""
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    _check_positive("eta", eta)
    N = Z.shape[0]
    _, H = hidden(Z, W, binary)
    Ht = H.transpose(0, 2, 1)
    V, b = V.copy(), b.copy()
    rows = np.arange(N)
    for _ in range(int(steps)):
        P = softmax(logits(H, V, b))
        P[:, rows, y] -= 1.0
        P /= N
        V -= eta * np.matmul(Ht, P)
        b -= eta * P.sum(axis=1)
    return V, b
