"""The aggregated Gaussian datasets hold summaries, not weights (issue 23):
the final weights and the listed fixed points' weights stay in the per-cell
files, the listed fixed points are a CF contiguous ragged array, and what the
figures computed from the dropped weights is stored per run / per point with
the same numbers. On the tiny config, in one process."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from study.experiments import gaussian as g
from study.figures import phase_diagram, select
from study.figures.stats import sparsity, vector_angle
from study.inprocess import load_config
from study.ncio import write_netcdf
from study.stacking import unstack_ragged

TINY = "config/config.yaml"


@pytest.fixture(scope="module")
def tiny():
    from pathlib import Path

    config = load_config(Path(__file__).parents[2] / ".test" / "config" / "config.yaml")
    cells = {}
    for c in g.cells(config, "population"):
        key = (c["n"], c["k"], c["seed"])
        data = g.make_data_cell(config, *key)
        cells[key] = (data, g.predict_limits_cell(config, data))
    return config, cells


def _build(config, cells, mode, dropped=g.DROPPED_VARS):
    """The mode's dataset as ``gaussian.build`` makes it, and each cell's training
    dataset; ``dropped``: the variables ``cell_dataset`` leaves out."""
    parts, trains = [], {}
    old = g.DROPPED_VARS
    g.DROPPED_VARS = dropped
    try:
        for key, (data, limits) in cells.items():
            trains[key] = g.train_cell(config, mode, data, limits)
            parts.append(g.cell_dataset(trains[key], data, limits, mode, **g.match_args(config, mode)))
    finally:
        g.DROPPED_VARS = old
    return g.combine(parts, config, mode), trains


@pytest.fixture(scope="module")
def built(tiny):
    config, cells = tiny
    return {mode: _build(config, cells, mode) for mode in ("population", "empirical")}


@pytest.mark.parametrize("mode", ["population", "empirical"])
def test_weights_stay_in_the_cell_files(built, mode):
    ds, trains = built[mode]
    for name in ("w_final", "u_final", "fp_w_bar"):
        assert name not in ds, name
    assert "fixed_point" not in ds.dims
    assert all("w_final" in t and "u_final" in t for t in trains.values())
    # Settings-level vectors stay: no run dims on them.
    for name in ("w_star", "w0", "w_bar", "u_bar", "cont_base"):
        assert not {"method", "normalise", "batch_size"} & set(ds[name].dims), name


@pytest.mark.parametrize("mode", ["population", "empirical"])
def test_ragged_fixed_points_rebuild_the_cell_limits_bit_for_bit(tiny, built, mode):
    """Rebuilt per setting from the ragged variables (the figures' helper), the
    fp_* variables equal the per-cell limits files' (and, empirical, the training
    files' fp_floor_*) on every listed point, and list exactly the listed points."""
    config, cells = tiny
    ds, trains = built[mode]
    count = ds["fp_count"]
    assert count.attrs["sample_dimension"] == "listed_point"
    assert set(count.dims) == {"n", "k", "seed", *g.LIMIT_DIMS}
    assert int(count.sum()) == ds.sizes["listed_point"]
    names = [v for v in ds.data_vars if ds[v].dims[:1] == ("listed_point",)]
    assert {"fp_stable", "fp_multiplicity", "fp_N", "fp_flags", "fp_support_exact"} <= set(names)
    if mode == "empirical":
        assert {"fp_floor_match_distance", "fp_floor_hops"} <= set(names)
    # Any order of the cells' coordinates in the file: the offsets follow the count's C order.
    for (n, k, seed), (_data, limits) in cells.items():
        at = {"n": n, "k": k, "seed": seed}
        rebuilt = unstack_ragged(ds, names, "fp_count", sel=at)
        listed = (limits["fp_stable"] >= 0).sum("fixed_point")
        assert np.array_equal(count.sel(at).transpose(*g.LIMIT_DIMS).values, listed.values)
        P = rebuilt.sizes["fixed_point"]
        assert P == max(int(listed.max()), 1)
        mask = (limits["fp_stable"] >= 0).isel(fixed_point=slice(0, P)).transpose(*g.LIMIT_DIMS, "fixed_point").values
        for v in names:
            src = trains[(n, k, seed)] if v.startswith("fp_floor") else limits
            if v == "fp_support_exact":
                continue
            want = src[v].isel(fixed_point=slice(0, P))
            got = rebuilt[v].transpose(*want.dims)
            extra = want.ndim - mask.ndim
            m = np.broadcast_to(mask.reshape(mask.shape + (1,) * extra), want.shape)
            assert got.dtype == want.dtype, v
            assert np.array_equal(got.values[m], want.values[m], equal_nan=True), v
            pad = -1 if got.dtype.kind != "f" else np.nan
            assert np.array_equal(got.values[~m], np.full((~m).sum(), pad, dtype=got.dtype), equal_nan=True), v


def test_ragged_arrays_survive_a_netcdf_round_trip(built, tmp_path):
    """Written by the study's writer and opened with plain xarray: the same
    ragged variables and count, and the helper rebuilds the same arrays."""
    ds, _ = built["empirical"]
    path = tmp_path / "empirical.nc"
    write_netcdf(ds, path)
    with xr.open_dataset(path) as back:
        assert back["fp_count"].attrs["sample_dimension"] == "listed_point"
        names = ["fp_stable", "fp_N", "fp_floor_match_distance"]
        a = unstack_ragged(ds, names, "fp_count")
        b = unstack_ragged(back, names, "fp_count")
        for v in names:
            np.testing.assert_array_equal(a[v].values, b[v].values)


@pytest.mark.parametrize("mode", ["population", "empirical"])
def test_run_summaries_equal_what_the_figures_computed_from_the_weights(tiny, built, mode):
    """sparsity_u_final, predicted_sparsity_u_final and predicted_angle_u_final are
    the old figure code's sparsity / vector_angle of the NaN-padded u_final and
    u_bar; angle_u_final (rvscgd.angle) is vector_angle of u_final up to rounding."""
    config, cells = tiny
    with_weights, _ = _build(config, cells, mode, dropped=("fp_w_bar",))
    ds, _ = built[mode]
    xr.testing.assert_identical(with_weights.drop_vars(["w_final", "u_final"]), ds)
    u, w_star, ok = with_weights["u_final"], with_weights["w_star"], with_weights["status"] != 2
    old_sparsity = sparsity(u, ds["n"]).where(ok).transpose(*ds["sparsity_u_final"].dims)
    np.testing.assert_array_equal(ds["sparsity_u_final"].where(ok), old_sparsity)
    old_pred_sparsity = sparsity(ds["u_bar"], ds["n"]).transpose(*ds["predicted_sparsity_u_final"].dims)
    np.testing.assert_array_equal(ds["predicted_sparsity_u_final"], old_pred_sparsity)
    old_pred = vector_angle(ds["u_bar"], w_star).transpose(*ds["predicted_angle_u_final"].dims)
    np.testing.assert_allclose(ds["predicted_angle_u_final"], old_pred, rtol=1e-13, atol=1e-15)
    old_angle = vector_angle(u, w_star).where(ok).transpose(*ds["angle_u_final"].dims)
    np.testing.assert_allclose(ds["angle_u_final"].where(ok), old_angle, rtol=1e-12, atol=1e-14)
    assert int(np.isfinite(old_angle).sum()) > 0 and int((ds["sparsity_u_final"] > 0).sum()) > 0


def test_fp_support_exact_is_what_the_phase_diagram_computed_from_fp_w_bar(tiny, built):
    """The phase diagram's old test on the padded fixed points (|fp_w_bar| above
    the threshold has exactly w*'s support) equals fp_support_exact on every
    listed point, through the figure's own helper."""
    config, cells = tiny
    ds, _ = built["population"]
    for (n, k, seed), (data, limits) in cells.items():
        at = {"n": n, "k": k, "seed": seed}
        sub = phase_diagram.fixed_points(ds, at)
        w_star = data["w_star"]
        kept = np.abs(limits["fp_w_bar"]) > limits["threshold"]
        old = (kept == (w_star != 0)).all("feature")
        listed = limits["fp_stable"] >= 0
        P = sub.sizes["fixed_point"]
        new = phase_diagram._fp_recovers(sub).transpose(*old.dims)
        keep = listed.isel(fixed_point=slice(0, P)).transpose(*old.dims).values
        assert np.array_equal(new.values[keep], old.isel(fixed_point=slice(0, P)).values[keep])
        assert set(np.unique(select.fixed_points(ds, ["fp_support_exact"], at)["fp_support_exact"])) <= {-1, 0, 1}
