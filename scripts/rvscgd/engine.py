"""The training engine: RVSCGD for a batch of R runs advanced together (model.md section 4).

All runs of one call share the teacher ``w*``, the start ``w0`` (or each has its own), and, in the
empirical modes, one stream of inputs (common random numbers): each step
draws one minibatch, and the whole grid of penalties x lam x beta costs one
pair of matrix products ``(B k, n) @ (n, R)`` and ``(n, B k) @ (B k, R)``.

Modes
-----
population : the expected coarse gradient (the regime of the theorems).
fresh      : a fresh minibatch of ``batch_size`` inputs each step.
fixed      : a fixed training set of ``train_size`` inputs, drawn once from
             the stream, full-batch coarse gradient each step.

One step, per run (columns of W), by the run's ``method`` (``METHODS``):
  rvscgd   : u = prox_{(lam/beta) P}(w);  w' = w - eta (g(w) + beta (w - u))
  prox_cgd : w' = prox_{eta lam P}(w - eta g(w))         (no splitting; u = w)
  iht      : w' = H_s(w - eta g(w)), the s largest |entries| kept   (u = w)
  prune    : w' = w - eta g(w), plain CGD (u = w); ``prune_to`` prunes the
             final w afterwards (the caller picks the count)
then w' = w' / ||w'||                    (if normalise; off = the ablation)
The baselines are columns of the same batch, so they share the minibatch
product with the RVSCGD runs (common random numbers).

Precision
---------
float64 (default) : the exact path: inputs from ``Generator(PCG64(seed))
                    .standard_normal`` in float64, float64 products. The
                    reference the tests compare one-run-at-a-time against.
float32           : the fast path for the empirical modes (what the pipeline
                    uses): float32 Box-Muller normals from a fixed number of
                    sub-streams of the seed (``sampling``), drawn in threads
                    and one minibatch ahead of the products, float32 products
                    with exact integer-valued weights, BLAS pinned to one
                    thread. Same distribution, other draws: it agrees with the
                    exact path statistically, not run by run; bit-reproducible
                    for a seed whatever the number of sampling threads.

Sampler (fresh mode)
--------------------
direct    : each step draws the whole (B k, n) minibatch (the reference;
            reproduces earlier results bit for bit).
projected : exact projection sampling (``projection``; docs/performance.md):
            B k d + n R normals and (B k, d) products a step, d <= R + 1 the
            dimension of span{w*, active w_r}. Same distribution jointly for
            all runs, other draws. Needs R + 1 < n.
auto      : projected in fresh mode when R + 1 < n, direct otherwise.
"fixed" mode reuses its training set and always samples directly.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from .limit import check_params
from .model import STES, angle, check_ste, expected_coarse_gradient_fast
from .penalties import PENALTIES, check_penalty, penalty_value, prox
from .projection import ProjectedSource, weights_f32, weights_f64
from .sampling import MinibatchSampler, as_seed_sequence

PRECISIONS = ("float64", "float32")

GRADIENT_MODES = ("population", "fresh", "fixed")
SAMPLERS = ("auto", "direct", "projected")
STATUS = ("converged", "max_steps", "diverged")
# Per-run training method: the paper's RVSCGD and the baselines at matched sparsity.
METHODS = ("rvscgd", "prox_cgd", "iht", "prune")

# Above this norm an un-normalised run is declared diverged before it overflows.
_BLOWUP = 1e150
# Spawn-key tag of the label-noise stream (noise_seed), apart from sampling's.
NOISE_TAG = 0x4C4E4F49  # "LNOI"
# Fast path: fewer normals per minibatch than this are drawn in the calling thread.
_PARALLEL_MIN = 1 << 16


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
    method: np.ndarray = None  # METHODS names; None = all "rvscgd"
    sparsity: np.ndarray = None  # iht's s per run (0 = not given: train's ``sparsity``)

    def __post_init__(self):
        R = self.lam.size
        if self.method is None:
            object.__setattr__(self, "method", np.full(R, "rvscgd"))
        if self.sparsity is None:
            object.__setattr__(self, "sparsity", np.zeros(R, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.lam.size)

    def select(self, idx) -> Runs:
        return Runs(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})

    def replace_method(self, method: str) -> Runs:
        """These runs with every ``method`` set to ``method``."""
        fields = {f: getattr(self, f) for f in self.__dataclass_fields__}
        return Runs(**{**fields, "method": np.full(len(self), check_method(method))})


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def make_runs(penalty, lam, beta, eta, a=1.0, ste="relu", normalise=True, method="rvscgd", sparsity=0) -> Runs:
    """Broadcast per-run parameters (scalars or sequences) to a validated ``Runs``.

    ``method`` is one of ``METHODS`` (module docstring); ``sparsity`` is iht's
    s (an integer >= 1), 0 where not given (then ``train``'s ``sparsity``).
    Methods without splitting ignore ``beta``; ``iht`` and ``prune`` ignore
    ``lam`` and ``penalty`` in their dynamics.
    """
    arrays = np.broadcast_arrays(
        np.asarray(penalty, dtype=object),
        np.asarray(lam, dtype=float),
        np.asarray(beta, dtype=float),
        np.asarray(eta, dtype=float),
        np.asarray(a, dtype=float),
        np.asarray(ste, dtype=object),
        np.asarray(normalise, dtype=bool),
        np.asarray(method, dtype=object),
        np.asarray(sparsity),
    )
    pen, lam, beta, eta, a, ste, norm, meth, sp = (np.atleast_1d(x).ravel().copy() for x in arrays)
    for p in set(pen):
        check_penalty(p)
    for s in set(ste):
        check_ste(s)
    for m in set(meth):
        check_method(m)
    if sp.dtype.kind not in "iu" and not (sp.dtype.kind == "f" and np.all(sp == np.round(sp))) or np.any(sp < 0):
        raise ValueError(f"sparsity must be integers >= 0 (0: not given), got {sparsity!r}")
    check_params(lam, beta, None, a, eta)
    return Runs(pen.astype(str), lam, beta, eta, a, ste.astype(str), norm, meth.astype(str), sp.astype(np.int64))


@dataclass
class TrainResult:
    """Traces (R, T) at ``record_steps`` (T,), final weights (R, n) and status.

    ``extra["lbeta"]`` (R, T): the relaxed objective ``L(w^t) + lam P(u^t) +
    beta/2 ||w^t - u^t||^2`` with the true population loss ``L``.

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


def prox_columns(W: np.ndarray, runs: Runs, tau=None) -> np.ndarray:
    """prox of each RVSCGD column with its own penalty, threshold ``tau``
    (default lam/beta) and a; the other methods' columns are copied (u = w)."""
    U = np.empty_like(W)
    tau = runs.lam / runs.beta if tau is None else tau
    split = runs.method == "rvscgd"
    for p in PENALTIES:
        cols = np.flatnonzero((runs.penalty == p) & split)
        if cols.size:
            U[:, cols] = prox(W[:, cols], tau[cols], p, runs.a[cols])
    rest = np.flatnonzero(~split)
    if rest.size:
        U[:, rest] = W[:, rest]
    U[np.isnan(W)] = np.nan  # a diverged run has no sparse weights either
    return U


def keep_largest(W: np.ndarray, s) -> np.ndarray:
    """``W`` (n, R) with all but the ``s`` largest |entries| of each column set
    to 0 (``s`` an int or one per column; ties broken by the lower index).
    NaN columns stay NaN."""
    W = np.asarray(W, dtype=float)
    n, R = W.shape
    s = np.broadcast_to(np.asarray(s), (R,))
    if s.dtype.kind not in "iu" or np.any(s < 0):
        raise ValueError(f"s must be integers >= 0, got {s!r}")
    out = np.zeros_like(W)
    # Stable sort of -|w|: equal magnitudes keep index order, so the result is deterministic.
    order = np.argsort(-np.abs(W), axis=0, kind="stable")
    for count in np.unique(s):
        cols = np.flatnonzero(s == count)
        rows = order[: min(int(count), n), cols]
        out[rows, cols[None, :]] = W[rows, cols[None, :]]
    out[np.isnan(W)] = np.nan
    return out


def prune_to(w: np.ndarray, count: int) -> np.ndarray:
    """Magnitude pruning: ``w`` (n,) or (R, n) with only its ``count`` largest
    |entries| (per row) kept, the rest 0 (the ``prune`` baseline's final step)."""
    if int(count) != count or count < 0:
        raise ValueError(f"count must be an integer >= 0, got {count!r}")
    w = np.asarray(w, dtype=float)
    if w.ndim not in (1, 2):
        raise ValueError(f"w must have shape (n,) or (R, n), got {w.shape}")
    out = keep_largest(np.atleast_2d(w).T, int(count)).T
    return out[0] if w.ndim == 1 else out


def _ste_codes(runs: Runs) -> np.ndarray:
    return np.array([STES.index(s) for s in runs.ste], dtype=np.int8)


def empirical_coarse_gradient(
    Zf: np.ndarray, z_star: np.ndarray, W: np.ndarray, k: int, ste_codes, label_noise=None
) -> np.ndarray:
    """Coarse gradient of every column of W on one flattened batch.

    ``Zf`` is (B k, n), the B inputs' patches stacked; ``z_star`` = Zf @ w*
    (B k,); ``label_noise`` (B,), if given, is added to the labels
    (``y = f(Z; w*) + noise``). Returns (n, R), the batch mean of model.md's
    g~ per run.
    """
    P = Zf @ W  # (Bk, R)
    return Zf.T @ weights_f64(P, z_star, k, ste_codes, label_noise)  # the weights the projected path uses too


class _Workspace:
    """Flat scratch buffers reused across steps (the active set only shrinks)."""

    def __init__(self):
        self._bufs = {}

    def take(self, name: str, shape, dtype) -> np.ndarray:
        size = int(np.prod(shape))
        buf = self._bufs.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = self._bufs[name] = np.empty(size, dtype)
        return buf[:size].reshape(shape)


def _positive_counts(Z32: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Per input, how many of its k patches have ``<Z_i, w> > 0`` (float32 counts)."""
    pos = (Z32 @ w.astype(np.float32)) > 0
    return pos.reshape(-1, k).sum(axis=1).astype(np.float32)


def empirical_coarse_gradient_f32(
    Z32: np.ndarray, count_star: np.ndarray, W: np.ndarray, k: int, ste_codes, work: _Workspace | None = None
) -> np.ndarray:
    """``empirical_coarse_gradient`` with float32 products (the fast path).

    ``Z32`` is the (B k, n) float32 batch, ``count_star`` (B,) the number of
    patches per input with ``<Z_i, w*> > 0`` (so ``f(Z; w*) = count/k``), ``W``
    the (n, R) float64 weights. Each column is scaled to unit norm before the
    cast (signs do not change, and float32 cannot overflow on an unnormalised
    run; clipped_relu compares with ``1/||w||`` instead of 1). The weights
    ``mu'(.) (count_w - count_star)`` are small integers, exact in float32; the
    factor ``1/(k B k)`` is applied in float64. Returns (n, R) float64.
    """
    work = _Workspace() if work is None else work
    Bk, n = Z32.shape
    R = W.shape[1]
    norms = np.linalg.norm(W, axis=0)
    W32 = (W / norms).astype(np.float32)
    P = work.take("P", (Bk, R), np.float32)
    np.matmul(Z32, W32, out=P)
    M = weights_f32(P, count_star, norms, k, ste_codes, work)  # the same integer weights as the projected path
    G = Z32.T @ M
    return G.astype(np.float64) * (1.0 / (k * Bk))


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
    precision: str = "float64",
    sample_threads: int = 2,
    sampler: str = "auto",
    label_noise: float = 0.0,
    sparsity: int | None = None,
) -> TrainResult:
    """Run every run of ``runs`` (RVSCGD or a baseline, ``runs.method``) from the common start ``w0``
    (or, ``w0`` of shape (R, n), each run from its own start; the basin study).

    Parameters
    ----------
    w_star : (n,) unit-norm teacher.
    w0 : (n,) start of every run, or (R, n) one start per run; normalised here.
    k : patches per input.
    runs : per-run parameters (``make_runs``).
    mode : "population", "fresh" or "fixed".
    max_steps : step limit.
    tol : a run has converged when ``||w^{t+1} - w^t|| <= tol``; 0 runs every
        run to ``max_steps``.
    batch_size : B, inputs per step in "fresh" mode.
    train_size : m, size of the training set in "fixed" mode.
    seed : int or numpy SeedSequence of the input stream (never mutated).
    record_steps : steps at which traces are recorded (default log-spaced).
    w_ref : (R, n) reference weights (the predicted limits) for ``dist_ref``.
    precision : "float64" (default, the exact path) or "float32" (the fast
        path of the empirical modes; see the module docstring). With
        "float32" the inputs are ``sampling``'s float32 Box-Muller normals
        from ``sampling.SUBSTREAMS`` fixed sub-streams of ``seed`` (other
        draws than the exact path's, same distribution), the two products per
        step are float32 (the weights ``w`` stay float64 between steps), and
        the BLAS library is limited to one thread for the duration of the call
        (process-wide, restored afterwards) so the float sums never change
        order. Bit-identical results for a given seed on a given machine and
        numpy build, whatever ``sample_threads``. No effect in "population"
        mode (nothing is sampled there).
    sample_threads : with precision "float32" in "fresh" mode, threads drawing
        the next minibatch (one block per sub-stream) while the current step's
        products run; 0 draws in the calling thread (so do minibatches of
        fewer than 2^16 normals, where a thread hand-off costs more than it
        saves). Speed only: the results do not depend on it.
    sampler : "auto" (default), "direct" or "projected": how "fresh" mode
        draws its minibatches (module docstring; ``resolve_sampler``). The
        one used is ``TrainResult.extra["sampler"]``. "direct" reproduces the
        engine's earlier results bit for bit; "projected" has the same
        distribution and other draws.
    label_noise : sigma >= 0 of the empirical modes' labels
        ``y = f(Z; w*) + sigma N(0, 1)`` (model.md section 1), one normal per
        input, from a stream of its own (``noise_seed(seed)``): the input
        stream is the same whatever sigma, and sigma = 0 draws nothing (the
        results are those without the argument). "fixed" mode draws the
        training set's noise once. No effect in "population" mode.
    sparsity : s of the ``iht`` runs that carry none (``runs.sparsity`` 0),
        an integer 1 <= s <= n; needed only when there are such runs.
    """
    if mode not in GRADIENT_MODES:
        raise ValueError(f"mode must be one of {GRADIENT_MODES}, got {mode!r}")
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if int(sample_threads) != sample_threads or sample_threads < 0:
        raise ValueError(f"sample_threads must be an integer >= 0, got {sample_threads!r}")
    used = resolve_sampler(sampler, mode, np.asarray(w_star).size, len(runs))
    if not (np.isfinite(label_noise) and label_noise >= 0):
        raise ValueError(f"label_noise must be a finite number >= 0, got {label_noise!r}")
    w_star = np.asarray(w_star, dtype=float)
    n = w_star.size
    w0 = np.asarray(w0, dtype=float)
    R = len(runs)
    if w0.shape not in ((n,), (R, n)):
        raise ValueError(f"w0 must have shape ({n},) or (R, n) = ({R}, {n}), got {w0.shape}")
    runs = _with_sparsity(runs, sparsity, n)
    record = log_record_steps(max_steps) if record_steps is None else np.unique(np.asarray(record_steps, dtype=int))
    record = record[record <= max_steps]
    ref = None if w_ref is None else np.asarray(w_ref, dtype=float).T  # (n, R)
    codes = _ste_codes(runs)
    fast = precision == "float32" and mode != "population"

    if mode == "fresh":
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if mode == "fixed":
        if train_size is None or int(train_size) != train_size or train_size < 1:
            raise ValueError(f"train_size must be a positive integer in mode 'fixed', got {train_size!r}")

    with ExitStack() as stack:
        if fast:
            from threadpoolctl import threadpool_limits

            # One BLAS thread: the float32 sums keep one order, and idle BLAS
            # threads do not spin on the cores the sampling threads use.
            stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        if used == "projected":
            threads = int(sample_threads) if fast and batch_size * k * (R + 1) >= _PARALLEL_MIN else 0
            draw = ProjectedSource(w_star, k, n, batch_size, R, seed, fast, threads, max_steps, stack)
        else:
            draw = _input_source(
                mode, fast, seed, w_star, k, n, batch_size, train_size, sample_threads, max_steps, stack
            )
        noise = None
        if label_noise > 0 and mode != "population":
            noise = _label_noise(seed, label_noise, batch_size if mode == "fresh" else train_size, mode)
        result = _run(w_star, w0, k, runs, mode, draw, fast, int(max_steps), tol, record, ref, codes, R, n, noise)
        result.extra["sampler"] = used
        return result


def _with_sparsity(runs: Runs, sparsity, n: int) -> Runs:
    """``runs`` with every iht run's s set (its own, else ``sparsity``), checked."""
    iht = runs.method == "iht"
    if not iht.any():
        return runs
    s = runs.sparsity.copy()
    missing = iht & (s == 0)
    if missing.any():
        if sparsity is None:
            raise ValueError("sparsity must be given (an integer 1 <= s <= n) for iht runs without runs.sparsity")
        if int(sparsity) != sparsity or not 1 <= sparsity <= n:
            raise ValueError(f"sparsity must be an integer with 1 <= s <= n={n}, got {sparsity!r}")
        s[missing] = int(sparsity)
    if np.any(s[iht] > n):
        raise ValueError(f"runs.sparsity of iht runs must be <= n={n}, got {s[iht].max()}")
    return Runs(**{**{f: getattr(runs, f) for f in runs.__dataclass_fields__}, "sparsity": s})


def resolve_sampler(sampler: str, mode: str, n: int, R: int) -> str:
    """The sampler ``train`` uses: "direct", "projected", or "none" (population mode).

    The projected span has dimension d <= R + 1 (w* and the R runs), and
    pays only while d < n. "auto" takes it in "fresh" mode when R + 1 < n.
    An explicit "projected" is refused (ValueError naming ``sampler``) in
    the other modes and when R + 1 >= n.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "projected":
        if mode != "fresh":
            raise ValueError(f"sampler='projected' needs mode 'fresh' (a resampled minibatch), got mode {mode!r}")
        if R + 1 >= n:
            raise ValueError(
                f"sampler='projected' needs R + 1 < n (span of w* and the runs smaller than the space), "
                f"got R={R} runs at n={n}; use sampler='auto' or 'direct'"
            )
    if mode == "population":
        return "none"
    if mode == "fixed" or sampler == "direct":
        return "direct"
    return "projected" if R + 1 < n else "direct"


def noise_seed(seed) -> np.random.SeedSequence:
    """The label-noise stream of an input stream ``seed``: the child with spawn
    key ``seed.spawn_key + (NOISE_TAG,)`` (``seed`` is not mutated, and no
    stream the engine or the caller spawns gets this key)."""
    ss = as_seed_sequence(seed)
    return np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (NOISE_TAG,), pool_size=ss.pool_size)


def _label_noise(seed, sigma, items, mode):
    """``noise(t)`` -> the (items,) label noise of step t: fresh draws each
    step, or one fixed draw for the fixed training set."""
    rng = np.random.Generator(np.random.PCG64(noise_seed(seed)))
    if mode == "fixed":
        fixed = sigma * rng.standard_normal(int(items))
        return lambda t: fixed
    return lambda t: sigma * rng.standard_normal(int(items))


def _input_source(mode, fast, seed, w_star, k, n, batch_size, train_size, sample_threads, max_steps, stack):
    """``draw(t)`` -> the step's inputs for the gradient, or None in population mode.

    Exact path: ``(Zf, z_star)`` float64 (``empirical_coarse_gradient``);
    fast path: ``(Z32, count_star)`` (``empirical_coarse_gradient_f32``).
    """
    if mode == "population":
        return None
    if not fast:
        rng = np.random.Generator(np.random.PCG64(seed))
        if mode == "fixed":
            Z_train = rng.standard_normal((int(train_size) * k, n))
            z_star_train = Z_train @ w_star
            return lambda t: (Z_train, z_star_train)

        def draw_exact(t):
            Zf = rng.standard_normal((int(batch_size) * k, n))
            return Zf, Zf @ w_star

        return draw_exact

    items = int(batch_size) if mode == "fresh" else int(train_size)
    counts = [np.empty(items, np.float32) for _ in range(2)]

    def teacher_counts(slot, i, lo, hi):  # runs in the sampling thread, after block i
        Z = sampler.buffers[slot][lo:hi]
        counts[slot][lo // k : hi // k] = _positive_counts(Z, w_star, k)

    # Threads pay off only when a minibatch is worth more than a thread hand-off.
    threads = int(sample_threads) if mode == "fresh" and items * k * n >= _PARALLEL_MIN else 0
    sampler = stack.enter_context(MinibatchSampler(seed, items, k, n, threads=threads, post=teacher_counts))
    if mode == "fixed":
        slot, Z_train = sampler.next(prefetch=False)
        count_train = counts[slot]
        return lambda t: (Z_train, count_train)

    def draw_fast(t):
        slot, Z = sampler.next(prefetch=t + 1 < max_steps)
        return Z, counts[slot]

    return draw_fast


def _population_gradient(w_star, k, W, codes):
    return expected_coarse_gradient_fast(W, w_star, k, codes)


def _f32_gradient(Z32, count_star, k, work, W, codes):
    return empirical_coarse_gradient_f32(Z32, count_star, W, k, codes, work)


def _f64_gradient(Zf, z_star, k, label_noise, W, codes):
    return empirical_coarse_gradient(Zf, z_star, W, k, codes, label_noise)


def _method_groups(methods: np.ndarray) -> list:
    """Positions of the RVSCGD runs and of the baseline runs in ``methods``
    (one slice of all when there is only one of the two)."""
    split = methods == "rvscgd"
    if split.all() or not split.any():
        return [slice(None)]
    return [np.flatnonzero(split), np.flatnonzero(~split)]


def _baseline_steps(V: np.ndarray, sub: Runs) -> np.ndarray:
    """The prox_cgd and iht columns of the gradient step ``V = w - eta g(w)``
    thresholded: prox_{eta lam P} and H_s (before the normalisation)."""
    cols = np.flatnonzero(sub.method == "prox_cgd")
    if cols.size:
        V[:, cols] = prox_columns(V[:, cols], sub.select(cols).replace_method("rvscgd"), sub.eta[cols] * sub.lam[cols])
    cols = np.flatnonzero(sub.method == "iht")
    if cols.size:
        V[:, cols] = keep_largest(V[:, cols], sub.sparsity[cols])
    return V


def _run(w_star, w0, k, runs, mode, draw, fast, max_steps, tol, record, ref, codes, R, n, noise=None) -> TrainResult:
    if w0.ndim == 2:  # one start per run (columns of W)
        W = np.ascontiguousarray((w0 / np.linalg.norm(w0, axis=1, keepdims=True)).T)
    else:
        W = np.repeat((w0 / np.linalg.norm(w0))[:, None], R, axis=1)
    status = np.full(R, STATUS.index("max_steps"), dtype=np.int8)
    steps_run = np.full(R, int(max_steps), dtype=np.int64)
    active = np.ones(R, dtype=bool)
    T = record.size
    traces = {name: np.full((R, T), np.nan) for name in ("angle_w", "angle_u", "loss", "sparsity_u", "dist_ref")}
    work = _Workspace()

    def write_trace(col_idx, Wc, j):
        parts = _method_groups(runs.method[col_idx])
        if len(parts) == 1:
            return write_group(col_idx, Wc, j)
        # RVSCGD and the baselines apart, as in a batch of either alone: numpy's
        # sums round by the array's shape and memory layout, so each part is C-ordered like W.
        for cols in parts:
            write_group(col_idx[cols], np.ascontiguousarray(Wc[:, cols]), j)

    def write_group(col_idx, Wc, j):
        Uc = prox_columns(Wc, runs.select(col_idx))
        aw = angle(Wc, w_star)
        traces["angle_w"][col_idx, j] = aw
        traces["angle_u"][col_idx, j] = angle(Uc, w_star)
        traces["loss"][col_idx, j] = aw / (2.0 * np.pi * k)
        sparsity = np.mean(Uc == 0, axis=0)
        traces["sparsity_u"][col_idx, j] = np.where(np.isnan(aw), np.nan, sparsity)
        if ref is not None:
            traces["dist_ref"][col_idx, j] = np.linalg.norm(Wc - ref[:, col_idx], axis=0)
        # The relaxed objective with the true population loss (model: L_beta).
        sub = runs.select(col_idx)
        pen = np.empty(col_idx.size)
        for p in PENALTIES:
            cols = np.flatnonzero(sub.penalty == p)
            if cols.size:
                pen[cols] = penalty_value(Uc[:, cols], p, sub.a[cols])
        gap = np.sum((Wc - Uc) ** 2, axis=0)
        lbeta[col_idx, j] = aw / (2.0 * np.pi * k) + lam_obj[col_idx] * pen + 0.5 * sub.beta * gap

    lbeta = np.full((R, T), np.nan)
    # The objective each method descends: iht and prune carry no penalty term (u = w, so no gap either).
    lam_obj = np.where(np.isin(runs.method, ("rvscgd", "prox_cgd")), runs.lam, 0.0)
    groups = None  # (active runs, their groups): rebuilt when a run stops
    prox_cols = np.flatnonzero(runs.method == "prox_cgd")
    iht_cols = np.flatnonzero(runs.method == "iht")
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
        idx_all = np.flatnonzero(active)
        G_all = None
        if isinstance(draw, ProjectedSource):
            # One joint projection for every run (its draws depend on the batch by design).
            G_all = draw.gradient(t, W[:, idx_all], codes[idx_all], work, None if noise is None else noise(t))
        elif mode == "population":
            grad = partial(_population_gradient, w_star, k)
        elif fast:
            Z32, count_star = draw(t)
            if noise is not None:  # y = count*/k + sigma xi: in counts, count* + k sigma xi
                count_star = count_star + (k * noise(t)).astype(np.float32)
            grad = partial(_f32_gradient, Z32, count_star, k, work)
        else:
            Zf, zs = draw(t)
            lab = None if noise is None else noise(t)
            grad = partial(_f64_gradient, Zf, zs, k, lab)
        # The RVSCGD runs and the baselines step apart on the same inputs: BLAS
        # products and numpy's sums round a column by the shape of its array,
        # so the RVSCGD runs come out bit for bit as in a batch without baselines.
        if groups is None or not np.array_equal(idx_all, groups[0]):
            groups = (idx_all, [(idx_all[p], runs.select(idx_all[p]), p) for p in _method_groups(runs.method[idx_all])])
        for idx, sub, pos in groups[1]:
            Wa = W[:, idx]
            G = grad(Wa, codes[idx]) if G_all is None else G_all[:, pos]
            U = prox_columns(Wa, sub)
            W_new = Wa - sub.eta * (G + sub.beta * (Wa - U))  # baselines: u = w, so w - eta g(w)
            if prox_cols.size or iht_cols.size:
                W_new = _baseline_steps(W_new, sub)
            norms = np.linalg.norm(W_new, axis=0)
            renorm = sub.normalise
            W_new[:, renorm] /= norms[renorm]
            with np.errstate(invalid="ignore"):
                # A normalised run is a unit vector whatever the raw step's size;
                # only an un-normalised one can blow up.
                blowup = (norms > _BLOWUP) & ~renorm
                bad = ~np.all(np.isfinite(W_new), axis=0) | ~np.isfinite(norms) | (norms == 0) | blowup
            moved = np.linalg.norm(W_new - Wa, axis=0)
            # tol = 0 means run to max_steps: a minibatch whose coarse gradient is
            # exactly zero leaves w in place without having converged.
            conv = ~bad & (moved <= tol) & (tol > 0)
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
        extra={"lbeta": lbeta},
    )
