"""Plan a study before running it: job count and predicted compute.

    python -m study.plan config/paper.yaml [--steps-fraction 0.04] [--compare-direct]

For each (n, k) of the config it trains one cell (seed of the first index)
of each mode in-process for a fraction of the step limit, times it, and
extrapolates linearly in steps (an upper bound for population mode, where
runs stop on their tolerance) and in seeds. Prints a table and the totals.
Training dominates the study's cost; data jobs (teacher + predicted limits)
are timed in full on the same cell. Times are the process's CPU time
(``time.process_time``): a job takes one core, and on a shared machine CPU
time tracks core-hours where wall time would also count the other users.
Empirical training is timed with the config's ``empirical.sampler`` (the row
says which sampler that gives the cell); ``--compare-direct`` also times it
with ``sampler: direct`` right after, on the same cell, and prints both
totals.
"""

from __future__ import annotations

import argparse

from . import experiments
from .config import ConfigError
from .inprocess import load_config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configfile")
    parser.add_argument("--steps-fraction", type=float, default=0.04, help="share of max_steps actually run")
    parser.add_argument(
        "--compare-direct", action="store_true", help="also time empirical training with sampler: direct"
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.configfile)
    except ConfigError as err:
        raise SystemExit(str(err)) from None
    figures = [name for name, block in config["figures"].items() if isinstance(block, dict) and block.get("enabled")]
    modules = [experiments.load(name) for name in experiments.NAMES]
    jobs = [text for text in (experiments.jobs(name, config) for name in experiments.NAMES) if text]
    print(f"{args.configfile}: {', '.join(jobs)}, {len(figures)} figures, 1 all", flush=True)
    costs = [m.plan(config, args.steps_fraction, args.compare_direct) for m in modules]
    total = sum(c["core_s"] for c in costs)
    longest = max(c.get("longest_s", 0.0) for c in costs)
    print(f"total {total / 3600:.1f} core-hours (one core per job); longest training job {longest / 60:.1f} min")
    for c in costs:
        if c["core_s"] and "share" in c:
            print(
                f"of which {c['share']} {c['core_s'] / 3600:.2f} core-hours "
                f"({100 * c['core_s'] / (total - c['core_s']):.1f}% added)"
            )
    direct = [c["direct_core_s"] for c in costs if "direct_core_s" in c]
    if direct:
        print(f"with sampler: direct {sum(direct) / 3600:.1f} core-hours; ratio {total / sum(direct):.2f}")


if __name__ == "__main__":
    main()
