"""Exact projection sampling of the fresh-mode coarse gradient (docs/performance.md).

A step's minibatch enters everything but the gradient only through each
patch's projections onto ``span{w*, w_1, ..., w_R}``. With ``Q`` (n, d) an
orthonormal basis of that span (first column ``w*/||w*||``), every patch is
``Z_i = Q a_i + b_i`` with ``a_i ~ N(0, I_d)`` and ``b_i ~ N(0, I - Q Q^T)``
independent. The weights ``M`` (B k, R) of the gradient ``Z^T M / (B k)``
depend on the ``a_i`` alone, and given them ``sum_i b_i m_i^T`` is Gaussian
with covariance ``(M^T M) (x) (I - Q Q^T)``: it is drawn as
``(I - Q Q^T) Y S^T`` with ``Y`` (n, R) standard normal and ``S S^T = M^T M``
(an eigendecomposition, exact for a singular ``M^T M``). One step then draws
``B k d + n R`` normals instead of ``B k n``. Same distribution as the direct
sampler, jointly for all runs (common random numbers kept); other draws.

Columns of ``W`` that are bit-identical with the same STE (e.g. every
``lam = 0`` run, where ``prox`` is the identity) have identical gradients:
they are computed once, so they count once in ``d`` and in ``R``.
"""

from __future__ import annotations

import numpy as np

from .sampling import MinibatchSampler, as_seed_sequence

# Spawn-key tag of the fast path's stream of Y (the orthogonal part), apart
# from sampling.SPAWN_TAG's sub-streams, which draw A.
Y_TAG = 0x52565359  # "RVSY"


def distinct_columns(W: np.ndarray, ste_codes) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the first of each group of bit-identical (column, STE) pairs,
    in column order, and for every column the index of its group:
    ``W[:, first][:, inverse] == W``."""
    R = W.shape[1]
    rows = np.empty((R, W.shape[0] + 1), dtype=np.float64)
    rows[:, 0] = np.asarray(ste_codes, dtype=np.float64)
    rows[:, 1:] = W.T
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()  # the bytes of each row
    _, idx, inv = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(idx)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return idx[order].astype(np.intp), rank[inv.ravel()].astype(np.intp)


def span_basis(w_star: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Orthonormal (n, R + 1) basis whose span contains w* and every column of W.

    Householder QR: the columns of Q are orthonormal even when [w*, W] is
    rank deficient, and ``[w*, W] = Q R`` puts all of them in its span. The
    first column is made ``+w*/||w*||``, so a patch's first coordinate is the
    teacher's pre-activation up to the positive factor ``||w*||``.
    """
    Q, Rf = np.linalg.qr(np.column_stack([w_star, W]))
    if Rf[0, 0] < 0:
        Q[:, 0] = -Q[:, 0]
    return Q


def orthogonal_part(Q: np.ndarray, Y: np.ndarray, gram: np.ndarray) -> np.ndarray:
    """``(I - Q Q^T) Y S^T`` with ``S S^T = gram`` (R, R) symmetric PSD.

    ``S = V diag(sqrt(max(lambda, 0)))`` from ``gram = V diag(lambda) V^T``:
    exact for a singular gram (identical runs, all-zero residuals give zero
    eigenvalues, hence zero noise), never NaN; rounding-negative eigenvalues
    are clipped to 0.
    """
    lam, V = np.linalg.eigh(gram)
    X = (Y * np.sqrt(np.maximum(lam, 0.0))) @ V.T
    X -= Q @ (Q.T @ X)
    return X


def weights_f64(P: np.ndarray, z_star: np.ndarray, k: int, ste_codes, label_noise=None) -> np.ndarray:
    """``engine.empirical_coarse_gradient``'s weights M (B k, R) from the
    pre-activations ``P`` (B k, R), the teacher's ``z_star`` (B k,) and the
    labels' noise (B,), if any."""
    Bk, R = P.shape
    B = Bk // k
    pos = P > 0
    f_w = pos.reshape(B, k, R).mean(axis=1)
    f_s = (z_star > 0).reshape(B, k).mean(axis=1)
    if label_noise is not None:
        f_s = f_s + label_noise
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
    return (mu.reshape(B, k, R) * resid[:, None, :]).reshape(Bk, R) / Bk


def weights_f32(P: np.ndarray, count_star: np.ndarray, norms: np.ndarray, k: int, ste_codes, work) -> np.ndarray:
    """``engine.empirical_coarse_gradient_f32``'s integer weights
    ``mu'(.) (count_w - count_star)`` (B k, R) float32, from the float32
    pre-activations of the unit-norm columns (clipped_relu compares with
    ``1/||w||``)."""
    Bk, R = P.shape
    B = Bk // k
    pos = work.take("pj_pos", (Bk, R), np.bool_)
    np.greater(P, 0, out=pos)
    pos3 = pos.reshape(B, k, R).view(np.uint8)
    acc_dtype = np.uint8 if k < 256 else np.uint32
    count = work.take("pj_count", (B, R), acc_dtype)
    if k <= 16:
        np.copyto(count, pos3[:, 0, :])
        for i in range(1, k):
            np.add(count, pos3[:, i, :], out=count)
    else:
        np.sum(pos3, axis=1, dtype=acc_dtype, out=count)
    diff = work.take("pj_diff", (B, R), np.float32)
    np.subtract(count, count_star[:, None], out=diff, dtype=np.float32, casting="unsafe")
    codes = np.asarray(ste_codes)
    if np.all(codes == 0):
        mu = pos
    else:
        mu = work.take("pj_mu", (Bk, R), np.bool_)
        np.copyto(mu, pos)
        ident = np.flatnonzero(codes == 1)
        if ident.size:
            mu[:, ident] = True
        clip = np.flatnonzero(codes == 2)
        if clip.size:
            limit = (1.0 / norms[clip]).astype(np.float32)
            mu[:, clip] &= P[:, clip] < limit
    M = work.take("pj_M", (Bk, R), np.float32)
    np.multiply(mu.reshape(B, k, R), diff[:, None, :], out=M.reshape(B, k, R))
    return M


def projected_gradient(A, z_star, Y, Q, W, k, ste_codes, label_noise=None) -> np.ndarray:
    """Exact-path (float64) coarse gradient (n, R) of every column of ``W``.

    ``A`` (B k, d) and ``Y`` (n, R) standard normal, ``Q`` (n, d) from
    ``span_basis`` (its span holds every column of W), ``z_star`` (B k,) the
    teacher's pre-activations (``||w*|| A[:, 0]``). Equal in distribution to
    ``engine.empirical_coarse_gradient`` on a fresh (B k, n) batch.
    """
    M = weights_f64(A @ (Q.T @ W), z_star, k, np.asarray(ste_codes), label_noise)
    # M carries the 1/(B k) of the mean: the orthogonal part's covariance is (M^T M) (x) P_perp.
    return Q @ (A.T @ M) + orthogonal_part(Q, Y, M.T @ M)


def projected_gradient_f32(A32, count_star, Y, Q, W, k, ste_codes, work) -> np.ndarray:
    """Fast-path (float32 products) version of ``projected_gradient``.

    ``A32`` (B k, d) float32 normals (a column slice of a wider buffer is
    fine), ``count_star`` (B,) the per-input count of ``A32[:, 0] > 0``, ``Y``
    (n, R) float64 normals. The integer weights are exact in float32; so is
    their gram ``M^T M`` while its entries stay below 2^24 (otherwise it is
    formed in float64). Returns (n, R) float64.
    """
    Bk = A32.shape[0]
    norms = np.linalg.norm(W, axis=0)
    C32 = (Q.T @ (W / norms)).astype(np.float32)
    P = work.take("pj_P", (Bk, W.shape[1]), np.float32)
    np.matmul(A32, C32, out=P)
    M = weights_f32(P, count_star, norms, k, ste_codes, work)
    par = (A32.T @ M).astype(np.float64)
    # |m| <= k: the float32 gram is exact integer arithmetic below 2^24.
    gram = (M.T @ M).astype(np.float64) if Bk * k * k < (1 << 24) else M.T.astype(np.float64) @ M
    G = Q @ par + orthogonal_part(Q, Y, gram)
    return G * (1.0 / (k * Bk))


class ProjectedSource:
    """The fresh-mode gradient by projection sampling, step after step.

    Exact path (``fast=False``): ``A`` (B k, d) then ``Y`` (n, R) from
    ``Generator(PCG64(seed)).standard_normal``, sized to the step's distinct
    active runs. Fast path: ``A`` is drawn one step ahead, (B k, R_all + 1)
    float32 from ``sampling``'s sub-streams of ``seed`` (in threads, with the
    teacher's counts from its first column), and its first d columns are
    used; ``Y`` comes from its own stream (spawn-key tag ``Y_TAG``), float64,
    in the calling thread. The draws are a function of the seed and the runs'
    history alone, never of the number of threads.
    """

    def __init__(self, w_star, k, n, batch_size, R, seed, fast, threads, max_steps, stack):
        self.w_star = np.asarray(w_star, dtype=float)
        self.k, self.n, self.B = int(k), int(n), int(batch_size)
        self.fast = fast
        self.max_steps = int(max_steps)
        if not fast:
            self.rng = np.random.Generator(np.random.PCG64(seed))
            return
        ss = as_seed_sequence(seed)
        y_seed = np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (Y_TAG,), pool_size=ss.pool_size)
        self.rng_y = np.random.Generator(np.random.PCG64(y_seed))
        self.counts = [np.empty(self.B, np.float32) for _ in range(2)]

        def teacher_counts(slot, i, lo, hi):  # in the sampling thread, after block i
            a0 = self.sampler.buffers[slot][lo:hi, 0]
            self.counts[slot][lo // self.k : hi // self.k] = (a0 > 0).reshape(-1, self.k).sum(axis=1)

        self.sampler = stack.enter_context(
            MinibatchSampler(seed, self.B, self.k, int(R) + 1, threads=threads, post=teacher_counts)
        )

    def gradient(self, t: int, W: np.ndarray, ste_codes, work, label_noise=None) -> np.ndarray:
        """The coarse gradient (n, R_active) of step ``t`` for the active columns ``W``.

        ``label_noise`` (B,), if given, is added to the labels. The noise is
        independent of the inputs, so M still depends on the projections
        alone and the orthogonal part keeps its law: projection stays exact."""
        first, inverse = distinct_columns(W, ste_codes)
        Wu, codes = W[:, first], np.asarray(ste_codes)[first]
        Q = span_basis(self.w_star, Wu)
        d = Q.shape[1]
        if self.fast:
            slot, buf = self.sampler.next(prefetch=t + 1 < self.max_steps)
            Y = self.rng_y.standard_normal((self.n, Wu.shape[1]))
            counts = self.counts[slot]
            if label_noise is not None:  # y = count*/k + sigma xi: in counts, count* + k sigma xi
                counts = counts + (self.k * label_noise).astype(np.float32)
            G = projected_gradient_f32(buf[:, :d], counts, Y, Q, Wu, self.k, codes, work)
        else:
            A = self.rng.standard_normal((self.B * self.k, d))
            Y = self.rng.standard_normal((self.n, Wu.shape[1]))
            G = projected_gradient(A, np.linalg.norm(self.w_star) * A[:, 0], Y, Q, Wu, self.k, codes, label_noise)
        return G[:, inverse]
