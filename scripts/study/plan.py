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
import copy
import time

import numpy as np

from rvscgd.engine import resolve_sampler

from . import basins, two_layer
from .cells import make_data_cell, predict_limits_cell, train_cell
from .config import ConfigError
from .grid import MODES, basin_cells, trained_runs, two_layer_cells
from .inprocess import load_config


def _sampler(config: dict, n: int) -> str:
    emp = config["empirical"]
    return resolve_sampler(
        emp["sampler"], "fresh" if emp["sampling"] == "fresh" else "fixed", n, len(trained_runs(config, 1)[0])
    )


def plan(config: dict, fraction: float, compare_direct: bool = False) -> list[dict]:
    rows = []
    seed = config["seeds"][0]
    n_seeds = len(config["seeds"])
    for n in config["dims"]["n"]:
        for k in config["dims"]["k"]:
            t0 = time.process_time()
            data = make_data_cell(config, n, k, seed)
            limits = predict_limits_cell(config, data)
            t_data = time.process_time() - t0
            row = {"n": n, "k": k, "make_data_s": t_data}
            for mode in MODES:
                if not config[mode]["enabled"]:
                    continue
                short = copy.deepcopy(config)
                full_steps = config[mode]["max_steps"]
                short[mode]["max_steps"] = max(10, int(full_steps * fraction))
                t0 = time.process_time()
                train_cell(short, mode, data, limits)
                elapsed = time.process_time() - t0
                row[f"{mode}_s"] = elapsed * full_steps / short[mode]["max_steps"]
                if mode == "empirical":
                    row["sampler"] = _sampler(config, n)
                    if compare_direct:
                        short["empirical"]["sampler"] = "direct"
                        t0 = time.process_time()
                        train_cell(short, mode, data, limits)
                        row["empirical_direct_s"] = (time.process_time() - t0) * full_steps / short[mode]["max_steps"]
            row["cell_s"] = row["make_data_s"] + sum(row.get(f"{m}_s", 0.0) for m in MODES)
            row["all_seeds_s"] = row["cell_s"] * n_seeds
            if "empirical_direct_s" in row:
                row["all_seeds_direct_s"] = (row["cell_s"] - row["empirical_s"] + row["empirical_direct_s"]) * n_seeds
            rows.append(row)
            direct = f" (direct {row['empirical_direct_s']:8.1f} s)" if "empirical_direct_s" in row else ""
            print(
                f"n={n:4d} k={k:3d}  make_data {row['make_data_s']:7.1f} s  "
                + "  ".join(f"{m} {row.get(f'{m}_s', 0.0):8.1f} s" for m in MODES)
                + (f" [{row['sampler']}]{direct}" if "sampler" in row else "")
                + f"  x{n_seeds} seeds = {row['all_seeds_s'] / 3600:6.2f} core-h",
                flush=True,
            )
    return rows


def plan_two_layer(config: dict, fraction: float) -> float:
    """Predicted core-seconds of the two-layer cells (0 if disabled): each
    (n, k) timed on its first seed for a fraction of the steps."""
    cells = two_layer_cells(config)
    if not cells:
        return 0.0
    c = config["two_layer"]
    short = copy.deepcopy(config)
    short["two_layer"]["max_steps"] = max(10, int(c["max_steps"] * fraction))
    total = 0.0
    for n in c["n"]:
        for k in c["k"]:
            t0 = time.process_time()
            two_layer.train_cell(short, n, k, c["seeds"][0])
            cell_s = (time.process_time() - t0) * c["max_steps"] / short["two_layer"]["max_steps"]
            total += cell_s * len(c["seeds"])
            print(
                f"two_layer n={n:4d} k={k:3d}  {cell_s:8.1f} s per cell  x{len(c['seeds'])} seeds = "
                f"{cell_s * len(c['seeds']) / 3600:6.2f} core-h",
                flush=True,
            )
    return total


def plan_basins(config: dict, fraction: float) -> float:
    """Predicted core-seconds of the basin cells (0 if disabled): each (n, k)
    timed on its first seed with both modes' step limits cut to a fraction,
    and with one step (what does not depend on the steps: the fixed-point
    enumeration and the matching); the difference is extrapolated linearly
    in steps (an upper bound, as for the main cells), then in seeds."""
    cells = basin_cells(config)
    if not cells:
        return 0.0
    c = config["basins"]

    def timed(steps_of):
        short = copy.deepcopy(config)
        for mode in MODES:
            short[mode]["max_steps"] = steps_of(config[mode]["max_steps"])
        t0 = time.process_time()
        basins.train_cell(short, n, k, c["seeds"][0])
        return time.process_time() - t0, short

    total = 0.0
    for n in c["n"]:
        for k in c["k"]:
            fixed, _ = timed(lambda steps: 1)
            part, short = timed(lambda steps: max(10, int(steps * fraction)))
            scale = max(config[m]["max_steps"] / short[m]["max_steps"] for m in c["modes"])
            cell_s = fixed + max(part - fixed, 0.0) * scale
            total += cell_s * len(c["seeds"])
            grid = len(basins.start_kinds(config)) * np.prod([len(v) for v in basins.grid_coords(config).values()])
            print(
                f"basins n={n:4d} k={k:3d}  {cell_s:8.1f} s per cell ({grid} runs x {len(basins.settings(config))} "
                "settings)  "
                f"x{len(c['seeds'])} seeds = {cell_s * len(c['seeds']) / 3600:6.2f} core-h",
                flush=True,
            )
    return total


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
    cells = len(config["dims"]["n"]) * len(config["dims"]["k"]) * len(config["seeds"])
    modes = [m for m in MODES if config[m]["enabled"]]
    figures = [name for name, block in config["figures"].items() if isinstance(block, dict) and block.get("enabled")]
    print(
        f"{args.configfile}: {cells} cells x {len(trained_runs(config, 1)[0])} runs each; jobs: {cells} make_data, "
        f"{cells * len(modes)} train, {len(modes)} aggregate, "
        + (f"{len(two_layer_cells(config))} two-layer train + 1 aggregate, " if two_layer_cells(config) else "")
        + (f"{len(basin_cells(config))} basin train + 1 aggregate, " if basin_cells(config) else "")
        + f"{len(figures)} figures, 1 all",
        flush=True,
    )
    rows = plan(config, args.steps_fraction, args.compare_direct)
    two = plan_two_layer(config, args.steps_fraction)
    basin = plan_basins(config, args.steps_fraction)
    total = sum(r["all_seeds_s"] for r in rows) + two + basin
    longest = max(max(r.get(f"{m}_s", 0.0) for m in MODES) for r in rows)
    print(f"total {total / 3600:.1f} core-hours (one core per job); longest training job {longest / 60:.1f} min")
    if basin:
        print(f"of which the basin study {basin / 3600:.2f} core-hours ({100 * basin / (total - basin):.1f}% added)")
    if args.compare_direct and config["empirical"]["enabled"]:
        direct = sum(r["all_seeds_direct_s"] for r in rows)
        print(f"with sampler: direct {direct / 3600:.1f} core-hours; ratio {total / direct:.2f}")


if __name__ == "__main__":
    main()
