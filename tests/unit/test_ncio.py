"""How study.ncio stores a variable: its chunking (the round trip of content is
tested with every stage's output in the integration tests)."""

import math

import netCDF4
import numpy as np
import pytest
import xarray as xr

from study.ncio import CHUNK_BYTES, chunk_shape, open_checked, write_netcdf


@pytest.mark.parametrize(
    "shape, itemsize, limit",
    [
        ((3, 4, 5), 8, 10_000),  # fits: one chunk
        ((100, 50, 40), 8, 10_000),  # cut the leading dimension
        ((7, 3, 2, 100_000), 8, 1_000_000),  # leading ones down to 1, the last whole
        ((1, 1, 10**6), 4, 1000),  # even the last dimension alone is too big
        ((2, 1, 2, 1, 2, 2, 3, 4, 4, 2, 2, 64), 8, CHUNK_BYTES),
    ],
)
def test_a_chunk_is_the_whole_variable_or_at_most_the_limit(shape, itemsize, limit):
    chunks = chunk_shape(shape, itemsize, limit)
    assert len(chunks) == len(shape)
    assert all(1 <= c <= d for c, d in zip(chunks, shape, strict=True))
    whole = math.prod(shape) * itemsize
    if whole <= limit:
        assert chunks == tuple(shape)
    else:
        assert math.prod(chunks) * itemsize <= limit
        # Only leading dimensions are cut: after the first cut one, all are whole.
        cut = [i for i, (c, d) in enumerate(zip(chunks, shape, strict=True)) if c < d]
        assert all(chunks[i] == 1 for i in cut[:-1])
        assert all(chunks[i] == shape[i] for i in range(cut[-1] + 1, len(shape)))


def test_written_variables_are_stored_in_one_chunk(tmp_path):
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"x": (("a", "b", "c", "d"), rng.standard_normal((2, 3, 4, 50))), "s": ((), 1.0)},
        coords={"a": [0, 1], "b": [1, 2, 3], "c": np.arange(4), "d": np.arange(50)},
        attrs={"complete": "yes"},  # what provenance() marks
    )
    path = tmp_path / "x.nc"
    write_netcdf(ds, path)
    with netCDF4.Dataset(path) as nc:
        assert nc.variables["x"].chunking() == [2, 3, 4, 50]
    xr.testing.assert_identical(open_checked(path)["x"], ds["x"])
