"""The config gate (study.config): every problem at once, one message format,
the schema's defaults, the figures' slices checked exactly, every key documented.

The malformed configs of the workflow itself are in
tests/integration/test_reliability.py (in-process and through snakemake)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from study.config import SCHEMA, ConfigError, figure_params, load, load_files

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [ROOT / ".test" / "config" / "config.yaml", ROOT / "config" / "config.yaml", ROOT / "config" / "paper.yaml"]


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # results_dir must be writable: a fresh folder
    return yaml.safe_load(CONFIGS[0].read_text())


def refused(config, files=()) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load(config, files)
    return err.value.problems


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_defaults_are_snakemakes(path, tmp_path, monkeypatch):
    """The gate fills in exactly what Snakemake's validate(set_default=True) did,
    so the provenance (and every dataset) is unchanged."""
    from snakemake.utils import validate

    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load(path.read_text())
    theirs = copy.deepcopy(raw)
    validate(theirs, str(SCHEMA), set_default=True)
    assert load(copy.deepcopy(raw), [path]) == theirs


def test_defaults_are_not_shared(tiny):
    """The schema gives every figure's slice the same default object: each is a copy."""
    config = load(tiny)
    config["figures"]["ste"]["slice"]["n"] = 8
    assert config["figures"]["normalisation"]["slice"]["n"] is None


def test_every_schema_problem_at_once(tiny):
    tiny["grid"]["beta"] = [0.02, -1.0]
    tiny["grid"]["lamda"] = [0.01]
    tiny["dims"]["n"] = [8.0]
    problems = refused(tiny)
    assert problems == [
        "dims.n[0] = 8.0: 8.0 is not of type 'integer'",
        "grid.lamda = [0.01]: unknown key (allowed here: beta, eta, iht_eta, lam, lam_units, method, normalise, "
        "penalty, ste, tl1_a)",
        "grid.beta[1] = -1.0: -1.0 is less than or equal to the minimum of 0",
    ]


def test_every_semantic_and_figure_problem_at_once(tiny):
    tiny["teacher"]["sparsity"] = 20
    tiny["figures"]["slice"] = {"beta": 0.3}
    tiny["figures"]["convergence"]["lam"] = [0, 0.3]
    tiny["figures"]["ste"] = {"lam": 0.02, "penalties": ["l1", "tl1"]}
    tiny["grid"]["penalty"] = ["l0", "l1"]
    tiny["empirical"]["enabled"] = False
    tiny["figures"]["tradeoff"] = {"mode": "empirical"}
    assert refused(tiny) == [
        "teacher.sparsity = 20: more nonzeros than n = 8 features (dims.n = [8, 12]); s must be <= n",
        "label_noise.n = [8]: teacher.sparsity = 20 gives more nonzeros than n = 8",
        "basins.n = [8]: teacher.sparsity = 20 gives more nonzeros than n = 8",
        "figures.slice.beta = 0.3: not in grid.beta = [0.02]",  # once, though every sliced figure uses it
        "figures.convergence.lam[1] = 0.3: not in grid.lam = [0, 0.01, 0.05]",
        "figures.ste.lam = 0.02: not in grid.lam = [0, 0.01, 0.05]",
        "figures.ste.penalties[1] = 'tl1': not in grid.penalty = ['l0', 'l1']",
        "figures.tradeoff.mode = 'empirical': empirical.enabled is False",
    ]


def test_every_problem_has_the_key_value_format(tiny):
    tiny["figures"]["convergence"]["slice"] = {"n": 9, "ste": "identity", "batch_size": 64}
    tiny["population"]["enabled"] = tiny["empirical"]["enabled"] = False
    problems = refused(tiny)
    assert len(problems) == 4, problems
    for line in problems:
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+|\[\d+\])* = .+: .+", line), line


def test_figure_slice_compares_exactly(tiny):
    """0.1 + 0.2 is not 0.3: a slice value must be a grid value, not merely close to one."""
    tiny["grid"]["beta"] = [0.3]
    tiny["figures"]["convergence"]["slice"] = {"beta": 0.1 + 0.2}
    assert refused(copy.deepcopy(tiny)) == [
        "figures.convergence.slice.beta = 0.30000000000000004: not in grid.beta = [0.3]"
    ]
    tiny["figures"]["convergence"]["slice"] = {"beta": 0.3}
    load(tiny)


def test_figure_own_slice_is_named_over_the_shared_one(tiny):
    tiny["figures"]["slice"] = {"k": 4}
    tiny["figures"]["scaling"]["slice"] = {"k": 5}
    assert refused(tiny) == ["figures.scaling.slice.k = 5: not in dims.k = [4]"]


def test_batch_size_slice_follows_the_sampling(tiny):
    tiny["figures"]["slice"] = {"batch_size": 32}
    load(copy.deepcopy(tiny))
    tiny["empirical"]["sampling"] = "fixed"
    assert refused(tiny) == ["figures.slice.batch_size = 32: not in empirical.train_size = [2048]"]


def test_disabled_figures_and_multiple_limits_penalties_are_not_refused(tiny):
    tiny["grid"]["penalty"] = ["l1"]
    tiny["figures"]["multiple_limits"] = {"penalties": ["l0", "tl1"]}  # skipped when off the grid, as documented
    tiny["figures"]["ste"] = {"enabled": False, "penalties": ["l0"], "lam": 0.5}
    load(tiny)


def test_figure_params_merge_the_slices(tiny):
    config = load(tiny)
    config["figures"]["slice"]["beta"] = 0.02
    config["figures"]["slice"]["n"] = 12
    params = figure_params(config["figures"], "convergence")  # its own slice: n = 8
    assert params["slice"] == {"beta": 0.02, "n": 8}
    assert "enabled" not in params and list(params) == sorted(params)
    assert "slice" not in figure_params(config["figures"], "multiple_limits")


def test_error_is_a_value_error_naming_the_files(tiny, tmp_path):
    path = tmp_path / "bad.yaml"
    tiny["grid"]["lam"] = [-1]
    path.write_text(yaml.safe_dump(tiny))
    with pytest.raises(ValueError) as err:
        load_files([path])
    assert isinstance(err.value, ConfigError)
    assert str(err.value).splitlines() == [
        f"Invalid config (from {path}); nothing was run:",
        "  grid.lam[0] = -1: -1 is less than the minimum of 0",
        "Every key is described in config/README.md (schema: workflow/schemas/config.schema.yaml).",
    ]


def test_files_merge_as_snakemake_merges_them(tiny, tmp_path):
    base, over = tmp_path / "base.yaml", tmp_path / "over.yaml"
    base.write_text(yaml.safe_dump(tiny))
    over.write_text(yaml.safe_dump({"grid": {"beta": [0.05]}, "seeds": [3]}))
    config = load_files([base, over])
    assert config["grid"]["beta"] == [0.05] and config["grid"]["lam"] == tiny["grid"]["lam"]
    assert config["seeds"] == [3]


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError) as err:
        load_files([path])
    assert err.value.problems == [f"{path}: holds a list, not a mapping of config keys"]


def schema_keys(schema, prefix=""):
    """(key, default or "required") of every documented key; figures.* as one key."""
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if "properties" in sub and key != "figures":
            yield from schema_keys(sub, f"{path}.")
        else:
            yield path, sub.get("default", "required")


def _written(cell: str):
    """A default as config/README.md writes it (`[true]`, `1e-12`, required)."""
    if not cell.startswith("`"):
        return cell
    value = yaml.safe_load(cell.strip("`"))
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


def test_config_readme_documents_every_key_and_default():
    """config/README.md lists every key of the schema with the schema's default
    (the figures' keys: docs/figures.md, linked from there)."""
    readme = (ROOT / "config" / "README.md").read_text()
    schema = yaml.safe_load(SCHEMA.read_text())
    rows = dict(re.findall(r"^\| `([a-z0-9_.]+)` \| ([^|]+?) \|", readme, flags=re.MULTILINE))
    keys = dict(schema_keys(schema))
    assert set(keys) == set(rows)
    for key, default in keys.items():
        if key != "figures":
            assert _written(rows[key]) == default, (key, rows[key], default)
    (figures_row,) = [line for line in readme.splitlines() if line.startswith("| `figures` |")]
    assert "docs/figures.md" in figures_row


def test_bad_methods_are_refused_naming_grid_method(tiny):
    tiny["grid"]["method"] = ["rvscgd", "sgd"]
    (problem,) = refused(tiny)
    assert problem.startswith("grid.method[1] = 'sgd':"), problem
    tiny["grid"]["method"] = ["prune", "iht"]
    assert refused(tiny) == [
        "grid.method = ['prune', 'iht']: prune prunes to the sparsity the rvscgd runs reach, so it needs rvscgd"
    ]
    tiny["grid"]["method"] = ["rvscgd", "iht"]
    tiny["grid"]["ste"] = ["identity"]
    (problem,) = refused(tiny)
    assert problem.startswith("grid.method = ['rvscgd', 'iht']: the baselines train at grid.normalise true"), problem


@pytest.mark.parametrize("value", [0, -0.5, "half"])
def test_bad_iht_eta_is_refused_naming_it(tiny, value):
    tiny["grid"]["iht_eta"] = value
    (problem,) = refused(tiny)
    assert problem.startswith(f"grid.iht_eta = {value!r}:"), problem
