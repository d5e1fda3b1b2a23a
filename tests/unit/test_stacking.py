"""study.stacking, study.units, study.starts: the pieces every experiment shares."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import rvscgd
from study.seeds import rng
from study.stacking import stack_cells
from study.starts import at_angle, orthogonal_direction
from study.units import relu_constant


def cell(n: int, k: int, seed: int, points: int) -> xr.Dataset:
    return xr.Dataset(
        {
            "w": (("lam", "feature"), np.full((2, n), float(n))),
            "fp": (("lam", "fixed_point"), np.ones((2, points), dtype=np.int8)),
            "status": ("lam", np.array([0, 2], dtype=np.int8)),
        },
        coords={"lam": [0.0, 0.1], "feature": np.arange(n)},
        attrs={"n": n, "k": k, "seed": seed},
    )


def test_cells_of_different_sizes_stack_padded():
    ds = stack_cells([cell(4, 2, 0, 1), cell(6, 2, 0, 3), cell(4, 2, 1, 2)], pad=("feature", "fixed_point", "unit"))
    assert dict(ds.sizes) == {"n": 2, "k": 1, "seed": 2, "lam": 2, "feature": 6, "fixed_point": 3}
    assert ds["feature"].values.tolist() == list(range(6)) and ds["feature"].attrs["long_name"]
    assert ds["fixed_point"].values.tolist() == [0, 1, 2]
    w = ds["w"].sel(n=4, k=2, seed=0)
    assert np.all(w.isel(feature=slice(0, 4)) == 4) and np.all(np.isnan(w.isel(feature=slice(4, None))))
    assert np.all(np.isnan(ds["w"].sel(n=6, seed=1)))  # no such cell: NaN, not invented
    assert ds["status"].dtype.kind == "f" and ds.attrs == {}


def test_consuming_the_cells_stacks_the_same_and_frees_them():
    """consume=True (the aggregate's): the same dataset, bit for bit and with the
    same attributes; the list is emptied and each cell's arrays are released
    (no reference left to them once the caller drops its own)."""
    import gc
    import weakref

    def cells():
        return [cell(4, 2, 0, 1), cell(6, 2, 0, 3), cell(4, 2, 1, 2), cell(6, 2, 1, 2)]

    pad = ("feature", "fixed_point")
    kept = stack_cells(cells(), pad=pad)
    parts = cells()
    arrays = [weakref.ref(p["w"].variable._data) for p in parts]
    consumed = stack_cells(parts, pad=pad, consume=True)
    assert parts == []
    xr.testing.assert_identical(consumed, kept)
    gc.collect()
    assert all(a() is None for a in arrays)


def test_a_full_grid_stacks_as_xarray_combines_it(monkeypatch):
    """The cells filling the (n, k, seed) grid are placed directly (the fast
    path of ``stack_cells``): the same dataset as xarray's ``combine_by_coords``
    of the whole cells, values, dtypes, order, variable attributes (conflicting
    ones dropped, array-valued ones compared whole) and encodings, whatever
    order the cells come in."""
    gen = np.random.default_rng(3)
    cells = []
    for n in (8, 4):
        for k in (2, 3):
            for seed in (1, 0, 2):
                c = xr.Dataset(
                    {
                        "x": (("lam", "step"), gen.standard_normal((2, 3)), {"units": "1", "cell": f"{n}-{seed}"}),
                        "code": ("lam", gen.integers(0, 5, 2).astype(np.int8), {"flag_values": np.arange(3)}),
                    },
                    coords={"lam": [0.0, 0.1], "step": [0, 5, 10], "label": ("lam", ["a", "b"])},
                    attrs={"n": n, "k": k, "seed": seed},
                )
                c["x"].encoding = {"zlib": True}
                cells.append(c)
    gen.shuffle(cells)
    whole = xr.combine_by_coords(
        [c.expand_dims({d: [c.attrs[d]] for d in ("n", "k", "seed")}) for c in cells],
        combine_attrs="drop_conflicts",
    )
    whole.attrs = {}

    def refuse(*args, **kwargs):
        raise AssertionError("a full grid must not need xarray's alignment")

    monkeypatch.setattr(xr, "combine_by_coords", refuse)
    ds = stack_cells(list(cells))
    xr.testing.assert_identical(ds, whole)
    assert ds["code"].dtype == np.int8 and "cell" not in ds["x"].attrs and ds["x"].encoding["zlib"]
    assert list(ds["n"].values) == [4, 8] and list(ds["seed"].values) == [0, 1, 2]


def test_the_relu_constant_is_the_librarys():
    """units.relu_constant stays plain Python (parse time); it equals rvscgd.coarse_constant bit for bit."""
    for k in (1, 2, 3, 4, 7, 16, 100):
        assert relu_constant(k) == rvscgd.coarse_constant(k)


@pytest.mark.parametrize("angle", [0.1, np.pi / 2, 0.9 * np.pi])
def test_a_start_at_an_angle(angle):
    w_star = rvscgd.make_teacher(20, 4, np.random.default_rng(0))
    e = orthogonal_direction(w_star, rng({"seed": 1}, 20, 4, 0, "basin_starts"))
    assert abs(e @ w_star) < 1e-12 and np.isclose(np.linalg.norm(e), 1.0)
    w0 = at_angle(w_star, e, angle)
    assert np.isclose(rvscgd.angle(w0, w_star), angle)
