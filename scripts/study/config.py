"""The config gate: every config enters the study through ``load``.

``load(config, files)`` checks a config and fills in its defaults. The
workflow (workflow/rules/common.smk), the in-process helpers
(``study.inprocess.load_config``) and ``study.plan`` all call it, so a config
that one of them refuses, all refuse, with the same message. Every problem is
reported at once, each as ``key = value: what is wrong``, in a
``ConfigError``. Checked, in order (a stage runs only when the one before it
found nothing, since its checks assume what the earlier ones guarantee):

1. the files are plain YAML data (no templating, no Python tags);
2. the JSON schema (workflow/schemas/config.schema.yaml), integers written as
   integers, and no NaN or infinity anywhere;
3. with the schema's defaults filled in: what the schema cannot express
   (s <= n, at least one mode, a writable ``results_dir``, a projected
   sampler that applies, a digits patch that divides 8) and the figures'
   slices, lambdas, penalties and modes, which must be on the grid.

Stdlib, PyYAML and jsonschema only: cheap enough for Snakemake's parse time.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import yaml

from .grid import teacher_sparsity, trained_runs

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config the study refuses: ``problems`` lists every problem as
    ``key = value: what is wrong``; the message adds the files and where
    every key is described."""

    def __init__(self, problems: list[str], files=()):
        self.problems = list(problems)
        self.files = [str(f) for f in files]
        super().__init__(
            f"Invalid config (from {', '.join(self.files) or 'no config file'}); nothing was run:\n  "
            + "\n  ".join(self.problems)
            + "\nEvery key is described in config/README.md (schema: workflow/schemas/config.schema.yaml)."
        )


def load(config: dict, files=(), schema=SCHEMA) -> dict:
    """Check ``config`` (read from ``files``) and fill in the schema's defaults.

    Parameters
    ----------
    config : dict
        The config as read (Snakemake's merged ``config``, or a file's data).
        Defaults are filled in place, so Snakemake's global config gets them.
    files : sequence of path-like
        The config files it came from: checked to be plain data, and named
        in the message.
    schema : path-like
        The JSON schema (YAML).

    Returns
    -------
    dict
        ``config`` itself, with every default filled in.

    Raises
    ------
    ConfigError
        Listing every problem found, each naming the key and the value.
    """
    files = [str(f) for f in files]
    problems = not_plain_data(files)
    if not problems:
        schema = yaml.safe_load(Path(schema).read_text())
        problems = schema_problems(config, schema) + non_finite(config)
    if not problems:
        fill_defaults(config, schema)
        problems = semantic_problems(config) + figure_problems(config)
    if problems:
        raise ConfigError(problems, files)
    return config


def load_files(paths, schema=SCHEMA) -> dict:
    """Read config files safely (later files override earlier ones key by key,
    as Snakemake merges ``--configfile``), then ``load`` the result."""
    paths = [str(p) for p in paths]
    problems = not_plain_data(paths)
    config: dict = {}
    for path in paths if not problems else ():
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append(f"{path}: holds a {type(data).__name__}, not a mapping of config keys")
            continue
        _merge(config, data)
    if problems:
        raise ConfigError(problems, paths)
    return load(config, paths, schema)


def _merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def figure_params(figures_config: dict, name: str) -> dict:
    """Keyword parameters of figure ``name`` from ``config["figures"]`` (defaults
    filled in): its block without ``enabled``, its ``slice`` merged over
    ``figures.slice`` key by key (its non-null keys win). Sorted, so that the
    key order of the YAML never reruns a figure."""
    params = {key: value for key, value in figures_config[name].items() if key != "enabled"}
    if "slice" in params:
        merged = {k: v for k, v in figures_config.get("slice", {}).items() if v is not None}
        merged.update({k: v for k, v in params["slice"].items() if v is not None})
        params["slice"] = dict(sorted(merged.items()))
    return dict(sorted(params.items()))


# ---- the checks (each returns a list of problems; [] = fine) --------------------


def key_of(path) -> str:
    """A path into the config as it is written: grid.lam[1]."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def not_plain_data(files) -> list[str]:
    """Config files are data: each must load with yaml.safe_load, without templating.

    Snakemake reads config files with YTE, which evaluates Python when a file
    sets ``__use_yte__``; such a file (and one with Python tags) is refused
    here, after the fact.
    """
    problems = []
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError) as err:
            problems.append(f"{f}: not plain YAML data ({' '.join(str(err).split())})")
            continue
        if isinstance(data, dict) and "__use_yte__" in data:
            problems.append(f"{f}: __use_yte__ = {data['__use_yte__']!r}: templating (code in the config) is refused")
    return problems


def schema_problems(config: dict, schema: dict) -> list[str]:
    """Every violation of the JSON schema, each with the key and the value.

    Integers must be written as integers (JSON Schema alone takes 8.0 for 8,
    which would then name files n8.0_...).
    """
    from jsonschema import Draft202012Validator, validators

    strict = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, x: isinstance(x, int) and not isinstance(x, bool)
    )
    validator = validators.extend(Draft202012Validator, type_checker=strict)(schema)
    problems = []
    for err in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        path = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = sorted(err.schema.get("properties", {}))
            for extra in sorted(set(err.instance) - set(allowed), key=str):
                problems.append(
                    f"{key_of([*path, extra])} = {err.instance[extra]!r}: unknown key "
                    f"(allowed here: {', '.join(allowed)})"
                )
        elif err.validator == "required" and isinstance(err.instance, dict):
            for name in err.validator_value:
                if name not in err.instance:
                    problems.append(f"{key_of([*path, name])}: required key is missing")
        elif err.validator == "uniqueItems":
            seen, dups = [], []
            for item in err.instance:
                (dups if item in seen and item not in dups else seen).append(item)
            problems.append(f"{key_of(path)} = {err.instance!r}: duplicate values {dups}")
        else:
            problems.append(f"{key_of(path)} = {err.instance!r}: {err.message}")
    return problems


def non_finite(value, path=()) -> list[str]:
    """Keys holding NaN or infinity (a schema's minimum lets NaN through)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite(v, (*path, i))]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{key_of(path)} = {value!r}: must be a finite number"]
    return []


def fill_defaults(config: dict, schema: dict) -> None:
    """Set every missing key that has a schema default, recursively, on a
    schema-valid config: the same keys and values as Snakemake's
    ``validate(config, schema, set_default=True)`` (the schema's objects are
    plain ``properties``, without combinators), but each default a copy, so
    two figures never share one dict."""
    if not isinstance(config, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if key in config:
            fill_defaults(config[key], sub)


# The bundled scikit-learn digits: 1797 images of 8 x 8 pixels.
DIGITS_SIDE = 8
DIGITS_IMAGES = 1797


def digits_problems(config: dict) -> list[str]:
    """Semantic checks of the ``digits:`` block (defaults filled in) that the
    schema cannot express, as ``key = value: what is wrong`` lines (zero
    filters and a test fraction outside (0, 1) are the schema's)."""
    d = config["digits"]
    if not d["enabled"]:
        return []
    problems = []
    if DIGITS_SIDE % d["patch"]:
        divisors = [p for p in range(1, DIGITS_SIDE + 1) if DIGITS_SIDE % p == 0]
        problems.append(f"digits.patch = {d['patch']!r}: must divide the image side {DIGITS_SIDE} (one of {divisors})")
    n_test = round(d["test_fraction"] * DIGITS_IMAGES)
    if not 0 < n_test < DIGITS_IMAGES:
        problems.append(
            f"digits.test_fraction = {d['test_fraction']!r}: leaves {n_test} of {DIGITS_IMAGES} images for testing"
        )
    fig = config.get("figures", {}).get("digits", {})
    lam = fig.get("lam")
    if fig.get("enabled") and lam is not None and not any(lam == g for g in d["grid"]["lam"]):
        problems.append(f"figures.digits.lam = {lam!r}: not in digits.grid.lam = {d['grid']['lam']}")
    return problems


def semantic_problems(config: dict) -> list[str]:
    """Checks a JSON schema cannot express, on a config with its defaults filled in."""
    problems = []
    sp = config["teacher"]["sparsity"]
    too_small = too_small_for_teacher(config, config["dims"]["n"])
    if too_small:
        problems.append(
            f"teacher.sparsity = {sp!r}: more nonzeros than n = {min(too_small)} features "
            f"(dims.n = {config['dims']['n']}); s must be <= n"
        )
    if sp >= 1 and sp != int(sp):
        problems.append(f"teacher.sparsity = {sp!r}: give a count (integer >= 1) or a fraction (0 < x < 1)")
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
    two = config.get("two_layer", {})
    if two.get("enabled"):
        problems += sparsity_fits("two_layer.n", config, two["n"])
        if two["starts"]["random"] + two["starts"]["near_spurious"] < 1:
            problems.append(
                f"two_layer.starts = {two['starts']!r}: random + near_spurious must be >= 1 (no start to train from)"
            )
    noise = config.get("label_noise", {})
    if noise.get("enabled"):
        problems += sparsity_fits("label_noise.n", config, noise["n"])
    problems += basins_problems(config)
    problems += digits_problems(config)
    results = Path(config["results_dir"])
    probe = results
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        problems.append(f"results_dir = {str(results)!r}: not writable (checked {probe})")
    return problems


def too_small_for_teacher(config: dict, ns) -> list[int]:
    """The dimensions of ``ns`` with fewer features than the teacher's nonzeros."""
    small = []
    for n in ns:
        try:
            teacher_sparsity(config, n)
        except ValueError:
            small.append(n)
    return small


def sparsity_fits(key: str, config: dict, ns) -> list[str]:
    """The problem, if any, of a block's dimensions ``ns`` (config ``key``) too
    small for the teacher's nonzeros."""
    small = too_small_for_teacher(config, ns)
    if not small:
        return []
    sp = config["teacher"]["sparsity"]
    return [f"{key} = {list(ns)!r}: teacher.sparsity = {sp!r} gives more nonzeros than n = {min(small)}"]


def basins_problems(config: dict) -> list[str]:
    """What the schema cannot say about an enabled ``basins`` block."""
    b = config.get("basins", {})
    if not b.get("enabled"):
        return []
    problems = sparsity_fits("basins.n", config, b["n"])
    if b["starts"]["random"] + b["starts"]["adversarial"] < 1:
        problems.append(f"basins.starts = {b['starts']!r}: random + adversarial must be >= 1 (no start to train from)")
    lo, hi = b["adversarial_angle"]
    if not lo < hi:
        problems.append(f"basins.adversarial_angle = {b['adversarial_angle']!r}: needs low < high (units of pi)")
    return problems


def slice_grid(config: dict, dim: str) -> tuple[str, list]:
    """(config key, values) of the grid a figure slice along ``dim`` picks from."""
    if dim == "batch_size":
        emp = config["empirical"]
        if emp["sampling"] == "fresh":
            return "empirical.batch_size", list(emp["batch_size"])
        return "empirical.train_size", [emp["train_size"]]
    section = "dims" if dim in ("n", "k") else "grid"
    return f"{section}.{dim}", list(config[section][dim])


# Its penalties not on grid.penalty are skipped, as the schema says, not refused.
_SKIPS_OFF_GRID_PENALTIES = ("multiple_limits",)


# Figures of the two-layer dataset: their lam and mode refer to the two_layer block.
_TWO_LAYER_FIGURES = ("two_layer",)

# Figures of the digits dataset: their lam refers to digits.grid.lam (digits_problems).
_DIGITS_FIGURES = ("digits",)


# Figures of the label-noise dataset: their lam and slice refer to the label_noise block.
_LABEL_NOISE_FIGURES = ("noise_floor",)


def _label_noise_figure_problems(config: dict, name: str, params: dict) -> list[str]:
    block = config["label_noise"]
    if not block["enabled"]:
        return []  # no dataset: the figure is not made (as every figure whose datasets the config leaves off)
    problems = []
    lam = params.get("lam")
    if lam is not None and not any(lam == g for g in block["grid"]["lam"]):
        problems.append(f"figures.{name}.lam = {lam!r}: not in label_noise.grid.lam = {block['grid']['lam']}")
    for dim, value in params.get("slice", {}).items():
        grid = block.get(dim, block["grid"].get(dim))
        if grid is not None and not any(value == g for g in grid):
            key = f"label_noise.{dim}" if dim in block else f"label_noise.grid.{dim}"
            problems.append(f"figures.{name}.slice.{dim} = {value!r}: not in {key} = {grid}")
    return problems


def _two_layer_figure_problems(config: dict, name: str, params: dict) -> list[str]:
    two = config["two_layer"]
    problems = []
    lam = params.get("lam")
    if lam is not None and not any(lam == g for g in two["grid"]["lam"]):
        problems.append(f"figures.{name}.lam = {lam!r}: not in two_layer.grid.lam = {two['grid']['lam']}")
    if params.get("mode") not in two["modes"]:
        problems.append(f"figures.{name}.mode = {params.get('mode')!r}: not in two_layer.modes = {two['modes']}")
    return problems


def figure_problems(config: dict) -> list[str]:
    """Each enabled figure's slice values, lambdas and penalties must be on the
    grid (compared with ``==``: the datasets' coordinates hold exactly the
    grid's values) and its ``mode`` enabled. A bad ``figures.slice`` value is
    reported once, however many figures use it."""
    figs = config["figures"]
    problems = []
    for name, block in figs.items():
        if not (isinstance(block, dict) and block.get("enabled")):
            continue  # dpi, slice, and disabled figures
        params = figure_params(figs, name)
        if name in _TWO_LAYER_FIGURES:
            problems += _two_layer_figure_problems(config, name, params)
            continue
        if name in _DIGITS_FIGURES:
            continue
        if name in _LABEL_NOISE_FIGURES:
            problems += _label_noise_figure_problems(config, name, params)
            continue
        for dim, value in params.get("slice", {}).items():
            key, grid = slice_grid(config, dim)
            if not any(value == g for g in grid):
                own = block["slice"].get(dim) is not None
                where = f"figures.{name}.slice.{dim}" if own else f"figures.slice.{dim}"
                problems.append(f"{where} = {value!r}: not in {key} = {grid}")
        lam = params.get("lam")
        if isinstance(lam, list):
            lams = [(f"[{i}]", value) for i, value in enumerate(lam)]
        else:
            lams = [] if lam is None else [("", lam)]
        for index, value in lams:
            if not any(value == g for g in config["grid"]["lam"]):
                problems.append(f"figures.{name}.lam{index} = {value!r}: not in grid.lam = {config['grid']['lam']}")
        if name not in _SKIPS_OFF_GRID_PENALTIES:
            for i, p in enumerate(params.get("penalties") or []):
                if p not in config["grid"]["penalty"]:
                    problems.append(
                        f"figures.{name}.penalties[{i}] = {p!r}: not in grid.penalty = {config['grid']['penalty']}"
                    )
        mode = params.get("mode")
        if mode is not None and not config[mode]["enabled"]:
            problems.append(f"figures.{name}.mode = {mode!r}: {mode}.enabled is False")
    return list(dict.fromkeys(problems))
