"""What the config gate (``study.config``) checks of the one-layer Gaussian
experiment's blocks (``population``, ``empirical``, ``grid``) beyond the
schema. Parse-time light: stdlib and ``study.grid`` only, no numpy."""

from __future__ import annotations

from ..grid import trained_runs


def problems(config: dict) -> list[str]:
    """At least one mode, baselines the grid can train, a projected sampler that applies."""
    problems = []
    if not (config["population"]["enabled"] or config["empirical"]["enabled"]):
        problems.append("population.enabled = False and empirical.enabled = False: nothing to train")
    methods = config["grid"].get("method", ["rvscgd"])
    if "prune" in methods and "rvscgd" not in methods:
        problems.append(
            f"grid.method = {methods!r}: prune prunes to the sparsity the rvscgd runs reach, so it needs rvscgd"
        )
    if any(m != "rvscgd" for m in methods) and not (
        True in config["grid"]["normalise"] and "relu" in config["grid"]["ste"]
    ):
        problems.append(
            f"grid.method = {methods!r}: the baselines train at grid.normalise true and grid.ste relu, "
            f"which the grid lacks (normalise {config['grid']['normalise']!r}, ste {config['grid']['ste']!r})"
        )
    emp = config["empirical"]
    if emp["sampler"] == "projected":
        runs = len(trained_runs(config, 1)[0])
        small = [n for n in config["dims"]["n"] if runs + 1 >= n]
        if emp["sampling"] != "fresh":
            problems.append(
                f"empirical.sampler = 'projected': needs empirical.sampling = fresh (got {emp['sampling']!r}); use auto"
            )
        elif small:
            problems.append(
                f"empirical.sampler = 'projected': needs runs per cell + 1 < n, but {runs} runs and dims.n has "
                f"{small}; use auto (direct there) or direct"
            )
    return problems
