"""grid.lam_units = threshold: the configured values are prox thresholds,
converted per penalty and beta; checked against rvscgd.threshold."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from rvscgd import threshold
from study.units import lam_effective


def _config(units, a=1.0):
    return {"grid": {"lam_units": units, "tl1_a": a}}


@pytest.mark.parametrize("penalty", ["l0", "l1", "tl1"])
@pytest.mark.parametrize("a", [0.3, 1.0, 3.0])
def test_threshold_units_give_that_threshold(penalty, a):
    cfg = _config("threshold", a)
    for theta in (0.0, 0.01, 0.1, 0.3, a / 2, 0.9):
        for beta in (0.01, 0.05):
            lam = lam_effective(cfg, theta, 4, penalty, beta)
            assert float(threshold(lam / beta, penalty, a)) == pytest.approx(theta, rel=1e-12, abs=1e-15)


def test_threshold_units_need_penalty_and_beta():
    with pytest.raises(ValueError, match="penalty"):
        lam_effective(_config("threshold"), 0.1, 4)


def test_other_units_unchanged():
    assert lam_effective(_config("absolute"), 0.1, 4, "l0", 0.05) == 0.1
    c = 1 / (2 * 4 * np.sqrt(2 * np.pi))
    assert lam_effective(_config("relative_to_c"), 0.1, 4) == pytest.approx(0.1 * c, rel=1e-15)


def test_threshold_study_builds_in_process(tmp_path):
    """A tiny study with lam_units threshold: lam_effective spans penalty and beta,
    and the runs' u_final are thresholded at the configured value."""
    import yaml

    from study.experiments import gaussian as g
    from study.inprocess import build_datasets, load_config

    tiny = {
        "seed": 3,
        "teacher": {"sparsity": 2, "min_abs": 0.2},
        "dims": {"n": [6], "k": [2]},
        "seeds": [0],
        "grid": {"penalty": ["l0", "l1", "tl1"], "lam": [0.0, 0.1], "lam_units": "threshold", "beta": [0.05]},
        "population": {"max_steps": 200},
        "empirical": {"enabled": False},
        "trace_points": 5,
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(tiny)))
    config = load_config(path)
    ds = build_datasets(config)["population"]
    assert set(ds["lam_effective"].dims) == {"penalty", "lam", "beta", "k"}
    # The final weights are in the per-cell training files (the dataset holds summaries).
    data = g.make_data_cell(config, 6, 2, 0)
    u = g.train_cell(config, "population", data, g.predict_limits_cell(config, data))["u_final"]
    u = u.sel(lam=0.1, normalise=True).values
    kept = np.abs(u[np.isfinite(u) & (u != 0)])
    assert kept.size > 0  # lam > 0 still keeps entries
    for p in ("l0", "l1", "tl1"):
        lam = float(ds["lam_effective"].sel(penalty=p, lam=0.1, beta=0.05, k=2))
        assert float(threshold(lam / 0.05, p, 1.0)) == pytest.approx(0.1, rel=1e-12)
