"""Benchmark of the engine's empirical "fresh" mode: ``python -m rvscgd.bench``.

Measures, in one process, for n=128, k=8, B=1024 and R=72 runs (penalties
l0, l1, tl1 x 8 lambdas x 3 betas), fresh samples each step, in run-steps per
second (one run advanced one step = one run-step):

batched
    ``train(..., "fresh", precision="float32")`` as the pipeline calls it, for
    ``--steps`` steps with ``tol=0`` so that no run stops (setup, traces and
    the sampling threads included).
loop
    The first-draft baseline: the same computation one run at a time with the
    exact path (``train`` on a one-run ``Runs``, float64, numpy's default
    generator): each run draws its own B k n normals per step and does its own
    matrix-vector products. A few steps of a few runs, converted to
    run-steps/s. Timed with BLAS pinned to one thread: with the default
    threads, OpenBLAS's matrix-vector products on a busy 2-core machine are
    much slower (printed as ``loop_default_blas``, for information), which
    would flatter the ratio.
bound
    The machine's serial bound for the step's unavoidable work, measured on
    the spot with one BLAS thread: R / (time to draw the step's B k n normals
    with ``np.random.default_rng().standard_normal`` in float64 + time of the
    step's two float64 products at their exact shapes, (B k, n) @ (n, R) and
    (n, B k) @ (B k, R)).

The machine may be shared, so the three are measured in interleaved rounds and
the ratios are per round (numerator and denominator taken close in time; the
bound is measured right before and right after the batched run and its step
times averaged); the reported ratios are the medians over rounds. The last line reads
``batched/loop=<x> batched/bound=<y> batched_run_steps_per_s=<z>``.
No files are read or written.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from .engine import make_runs, train
from .model import coarse_constant, make_teacher

N, K, B = 128, 8, 1024
PENALTIES = ("l0", "l1", "tl1")
LAM_OVER_C = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0)  # lambda in units of c(k)
BETAS = (0.01, 0.03, 0.1)
ETA = 1.0


def problem(seed: int = 2019):
    """Teacher, start and the 72-run grid of the benchmark."""
    rng = np.random.default_rng(seed)
    w_star = make_teacher(N, 8, rng, min_abs=0.3)
    w0 = rng.standard_normal(N)
    c = coarse_constant(K)
    pen, lam, beta = np.meshgrid(PENALTIES, np.asarray(LAM_OVER_C) * c, BETAS, indexing="ij")
    runs = make_runs(pen.ravel(), lam.ravel(), beta.ravel(), eta=ETA)
    return w_star, w0, runs


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure_bound(R: int, reps: int = 9) -> tuple[float, dict]:
    """Run-steps/s of the serial bound, and its parts (seconds)."""
    rng = np.random.default_rng()
    Bk = B * K
    with threadpool_limits(limits=1, user_api="blas"):
        Z = rng.standard_normal((Bk, N))
        W = rng.standard_normal((N, R))
        M = rng.standard_normal((Bk, R))
        parts = {
            "draw": _median_time(lambda: rng.standard_normal((Bk, N)), reps),
            "mm_fwd": _median_time(lambda: Z @ W, reps),
            "mm_back": _median_time(lambda: Z.T @ M, reps),
        }
    return R / sum(parts.values()), parts


def measure_batched(w_star, w0, runs, steps: int, threads: int, seed) -> float:
    t0 = time.perf_counter()
    train(
        w_star,
        w0,
        K,
        runs,
        "fresh",
        max_steps=steps,
        tol=0.0,
        batch_size=B,
        seed=seed,
        precision="float32",
        sample_threads=threads,
    )
    return len(runs) * steps / (time.perf_counter() - t0)


def measure_loop(w_star, w0, runs, steps: int, n_runs: int, seed, blas_threads: int | None = 1) -> float:
    picks = np.linspace(0, len(runs) - 1, n_runs).round().astype(int)
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        t0 = time.perf_counter()
        for r in picks:
            train(w_star, w0, K, runs.select([r]), "fresh", max_steps=steps, tol=0.0, batch_size=B, seed=seed)
        dt = time.perf_counter() - t0
    return n_runs * steps / dt


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m rvscgd.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds (default 3)")
    ap.add_argument("--steps", type=int, default=200, help="steps of the batched engine per round (default 200)")
    ap.add_argument("--threads", type=int, default=2, help="sampling threads of the batched engine (default 2)")
    ap.add_argument("--loop-runs", type=int, default=3, help="runs timed one at a time per round (default 3)")
    ap.add_argument("--loop-steps", type=int, default=4, help="steps per run of the loop (default 4)")
    args = ap.parse_args(argv)

    w_star, w0, runs = problem()
    R = len(runs)
    seed = np.random.SeedSequence(1901_09731)
    blas = [(d["internal_api"], d["num_threads"]) for d in threadpool_info() if d["user_api"] == "blas"]
    print(f"n={N} k={K} B={B} R={R} fresh mode; cpus={os.cpu_count()} blas={blas} load={os.getloadavg()[0]:.2f}")
    print(f"batched: precision=float32 sample_threads={args.threads} steps={args.steps} tol=0")
    measure_batched(w_star, w0, runs, 5, args.threads, seed)  # warm-up (imports, thread pools)

    rows = []
    for i in range(args.rounds):
        # The bound brackets the batched run: the load may change during it.
        bound_before, parts = measure_bound(R)
        batched = measure_batched(w_star, w0, runs, args.steps, args.threads, seed)
        bound_after, _ = measure_bound(R)
        bound = 2.0 / (1.0 / bound_before + 1.0 / bound_after)  # mean of the step times
        loop = measure_loop(w_star, w0, runs, args.loop_steps, args.loop_runs, seed)
        loop_default = measure_loop(w_star, w0, runs, args.loop_steps, args.loop_runs, seed, blas_threads=None)
        rows.append((batched, loop, bound))
        print(
            f"round {i + 1}: batched={batched:.0f} loop={loop:.1f} (loop_default_blas={loop_default:.1f}) "
            f"bound={bound:.0f} run-steps/s "
            f"(before/after {bound_before:.0f}/{bound_after:.0f}; parts before, ms: draw={parts['draw'] * 1e3:.2f} "
            f"fwd={parts['mm_fwd'] * 1e3:.2f} back={parts['mm_back'] * 1e3:.2f}) "
            f"batched/loop={batched / loop:.1f} batched/bound={batched / bound:.2f}"
        )
    rows = np.asarray(rows)
    x = float(np.median(rows[:, 0] / rows[:, 1]))
    y = float(np.median(rows[:, 0] / rows[:, 2]))
    z = float(np.median(rows[:, 0]))
    print(f"load={os.getloadavg()[0]:.2f}; medians over {args.rounds} rounds of the per-round ratios:")
    print(f"batched/loop={x:.1f} batched/bound={y:.2f} batched_run_steps_per_s={z:.0f}")
    return {"batched/loop": x, "batched/bound": y, "batched_run_steps_per_s": z}


if __name__ == "__main__":
    main()
