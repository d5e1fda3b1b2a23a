"""Benchmark of the engine's empirical "fresh" mode: ``python -m rvscgd.bench``.

Measures, in one process, for n=128, k=8, B=1024 and R=72 runs (penalties
l0, l1, tl1 x 8 lambdas x 3 betas), fresh samples each step, in run-steps per
second (one run advanced one step = one run-step):

batched
    ``train(..., "fresh", precision="float32", sampler="direct")`` as the
    pipeline called it before projection sampling, for ``--steps`` steps with
    ``tol=0`` so that no run stops (setup, traces and the sampling threads
    included). The direct sampler keeps this line comparable with earlier
    measurements and with ``bound`` (whose work is the direct sampler's);
    ``sampler="auto"`` would project here (R + 1 = 73 < n = 128).
loop
    The first-draft baseline: the same computation one run at a time with the
    exact path (``train`` on a one-run ``Runs``, float64, numpy's default
    generator, direct sampler): each run draws its own B k n normals per step
    and does its own matrix-vector products. A few steps of a few runs, converted to
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

projected/direct
    At the paper's largest size, n=256, k=16, B=1024, R=72 (the same grid,
    lambda in units of c(16)): run-steps/s of the batched float32 engine with
    ``sampler="projected"`` over ``sampler="direct"`` (docs/performance.md),
    ``--scale-steps`` steps each, in the same rounds.

The machine may be shared, so all are measured in interleaved rounds and
the ratios are per round (numerator and denominator taken close in time; the
bound is measured right before and right after the batched run and its step
times averaged); the reported ratios are the medians over rounds. The line
before the last reads ``projected/direct=<x> at n=256,k=16,B=1024``, the last
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
# The sampler comparison, at the paper's largest cell.
SCALE_N, SCALE_K, SCALE_B = 256, 16, 1024


def problem(seed: int = 2019, n: int = N, k: int = K):
    """Teacher, start and the 72-run grid of the benchmark."""
    rng = np.random.default_rng(seed)
    w_star = make_teacher(n, 8, rng, min_abs=0.3)
    w0 = rng.standard_normal(n)
    c = coarse_constant(k)
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


def measure_batched(w_star, w0, runs, steps: int, threads: int, seed, k=K, batch_size=B, sampler="auto") -> float:
    t0 = time.perf_counter()
    res = train(
        w_star,
        w0,
        k,
        runs,
        "fresh",
        max_steps=steps,
        tol=0.0,
        batch_size=batch_size,
        seed=seed,
        precision="float32",
        sample_threads=threads,
        sampler=sampler,
    )
    if sampler != "auto" and res.extra["sampler"] != sampler:
        raise RuntimeError(f"asked for sampler {sampler!r}, the engine used {res.extra['sampler']!r}")
    return len(runs) * steps / (time.perf_counter() - t0)


def measure_samplers(scale, steps: int, threads: int, seed, first: str) -> dict:
    """Run-steps/s of both samplers at n=256, k=16, B=1024, ``first`` first."""
    w_star, w0, runs = scale
    order = ("direct", "projected") if first == "direct" else ("projected", "direct")
    return {s: measure_batched(w_star, w0, runs, steps, threads, seed, SCALE_K, SCALE_B, s) for s in order}


def measure_loop(w_star, w0, runs, steps: int, n_runs: int, seed, blas_threads: int | None = 1) -> float:
    picks = np.linspace(0, len(runs) - 1, n_runs).round().astype(int)
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        t0 = time.perf_counter()
        for r in picks:
            # The first draft sampled the whole minibatch (auto would project one run).
            train(
                w_star, w0, K, runs.select([r]), "fresh", max_steps=steps, tol=0.0, batch_size=B, seed=seed,
                sampler="direct",
            )  # fmt: skip
        dt = time.perf_counter() - t0
    return n_runs * steps / dt


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m rvscgd.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds (default 3)")
    ap.add_argument("--steps", type=int, default=200, help="steps of the batched engine per round (default 200)")
    ap.add_argument("--threads", type=int, default=2, help="sampling threads of the batched engine (default 2)")
    ap.add_argument("--loop-runs", type=int, default=3, help="runs timed one at a time per round (default 3)")
    ap.add_argument("--loop-steps", type=int, default=4, help="steps per run of the loop (default 4)")
    ap.add_argument(
        "--scale-steps", type=int, default=40, help="steps per sampler at n=256, k=16, B=1024 per round (default 40)"
    )
    args = ap.parse_args(argv)

    w_star, w0, runs = problem()
    R = len(runs)
    seed = np.random.SeedSequence(1901_09731)
    blas = [(d["internal_api"], d["num_threads"]) for d in threadpool_info() if d["user_api"] == "blas"]
    print(f"n={N} k={K} B={B} R={R} fresh mode; cpus={os.cpu_count()} blas={blas} load={os.getloadavg()[0]:.2f}")
    print(f"batched: precision=float32 sampler=direct sample_threads={args.threads} steps={args.steps} tol=0")
    measure_batched(w_star, w0, runs, 5, args.threads, seed, sampler="direct")  # warm-up (imports, thread pools)
    scale = problem(n=SCALE_N, k=SCALE_K)
    measure_samplers(scale, 2, args.threads, seed, "direct")  # warm-up

    rows, ratios = [], []
    for i in range(args.rounds):
        # The bound brackets the batched run: the load may change during it.
        bound_before, parts = measure_bound(R)
        batched = measure_batched(w_star, w0, runs, args.steps, args.threads, seed, sampler="direct")
        bound_after, _ = measure_bound(R)
        bound = 2.0 / (1.0 / bound_before + 1.0 / bound_after)  # mean of the step times
        loop = measure_loop(w_star, w0, runs, args.loop_steps, args.loop_runs, seed)
        loop_default = measure_loop(w_star, w0, runs, args.loop_steps, args.loop_runs, seed, blas_threads=None)
        rows.append((batched, loop, bound))
        samp = measure_samplers(scale, args.scale_steps, args.threads, seed, "direct" if i % 2 == 0 else "projected")
        ratios.append(samp["projected"] / samp["direct"])
        print(
            f"round {i + 1}: batched={batched:.0f} loop={loop:.1f} (loop_default_blas={loop_default:.1f}) "
            f"bound={bound:.0f} run-steps/s "
            f"(before/after {bound_before:.0f}/{bound_after:.0f}; parts before, ms: draw={parts['draw'] * 1e3:.2f} "
            f"fwd={parts['mm_fwd'] * 1e3:.2f} back={parts['mm_back'] * 1e3:.2f}) "
            f"batched/loop={batched / loop:.1f} batched/bound={batched / bound:.2f}"
        )
        print(
            f"round {i + 1}: n={SCALE_N} k={SCALE_K} B={SCALE_B} R={R} float32: direct={samp['direct']:.0f} "
            f"projected={samp['projected']:.0f} run-steps/s, projected/direct={ratios[-1]:.2f}"
        )
    rows = np.asarray(rows)
    x = float(np.median(rows[:, 0] / rows[:, 1]))
    y = float(np.median(rows[:, 0] / rows[:, 2]))
    z = float(np.median(rows[:, 0]))
    p = float(np.median(ratios))
    print(f"load={os.getloadavg()[0]:.2f}; medians over {args.rounds} rounds of the per-round ratios:")
    print(f"projected/direct={p:.2f} at n={SCALE_N},k={SCALE_K},B={SCALE_B}")
    print(f"batched/loop={x:.1f} batched/bound={y:.2f} batched_run_steps_per_s={z:.0f}")
    return {"batched/loop": x, "batched/bound": y, "batched_run_steps_per_s": z, "projected/direct": p}


if __name__ == "__main__":
    main()
