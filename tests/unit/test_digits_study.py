"""The digits part of the workflow (issue 12) in-process: the split of the real
bundled digits, the config checks of the ``digits:`` block, one cell's dataset
and the figure rendered from it."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from study.config import ConfigError, load
from study.experiments import digits as SD
from study.inprocess import load_config

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / ".test" / "config" / "config.yaml"


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def tiny():
    return load_config(TINY)


def test_split_has_no_overlap_and_uses_training_statistics(tiny, digits):
    data = SD.make_data(tiny, digits.images, digits.target)
    assert list(data["seed"].values) == tiny["digits"]["seeds"]
    for s in data["seed"].values:
        d = data.sel(seed=s)
        train, test = d["index_train"].values, d["index_test"].values
        assert np.intersect1d(train, test).size == 0
        np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(digits.target)))
        # No image of the test part is in the training part, even as a pixel-identical copy at another index.
        raw = digits.data.reshape(len(digits.data), -1)
        train_rows = {row.tobytes() for row in raw[train]}
        dup = sum(row.tobytes() in train_rows for row in raw[test])
        assert dup == 0, f"{dup} test images duplicate training images"
        mean, scale = d["mean"].values, d["scale"].values
        np.testing.assert_allclose(mean, raw[train].mean(axis=0))
        np.testing.assert_allclose(d["x_test"].values, (raw[test] - mean) / scale)
        np.testing.assert_array_equal(d["y_test"].values, digits.target[test])
    # Another seed, another split; the same seed, the same split.
    a, b = data.sel(seed=0)["index_test"].values, data.sel(seed=1)["index_test"].values
    assert not np.array_equal(a, b)
    again = SD.make_split(tiny, 0, digits.images, digits.target)
    np.testing.assert_array_equal(again["index_test"].values, a)


def check(cfg):
    """The config gate's problems with ``cfg`` ([] if it passes)."""
    try:
        load(cfg)
    except ConfigError as err:
        return err.problems
    return []


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("patch", 3, "digits.patch = 3: must divide the image side 8"),
        ("patch", 5, "digits.patch = 5"),
        ("filters", 0, "digits.filters = 0"),
        ("test_fraction", 1.0, "digits.test_fraction = 1.0"),
        ("test_fraction", 0.0001, "digits.test_fraction = 0.0001: leaves 0 of 1797"),
        ("steps", 0, "digits.steps = 0"),
    ],
)
def test_bad_digits_values_are_refused_naming_the_key(key, value, message):
    import yaml

    cfg = yaml.safe_load(TINY.read_text())
    cfg["digits"][key] = value
    problems = check(copy.deepcopy(cfg))
    assert any(message in p for p in problems), problems


def test_tiny_digits_config_is_valid_and_figure_lam_is_checked():
    import yaml

    cfg = yaml.safe_load(TINY.read_text())
    assert check(copy.deepcopy(cfg)) == []
    cfg.setdefault("figures", {})["digits"] = {"lam": 0.5}
    assert any("figures.digits.lam = 0.5" in p for p in check(cfg))


def test_one_cell_and_the_figure(tiny, digits, tmp_path):
    data = SD.make_data(tiny, digits.images, digits.target)
    cells = [SD.train_cell(tiny, data.sel(seed=s)) for s in tiny["digits"]["seeds"]]
    ds = SD.combine(cells, tiny, {"train": data.sizes["train_item"], "test": data.sizes["test_item"]})
    g = tiny["digits"]["grid"]
    assert list(ds["penalty"].values) == g["penalty"] and list(ds["lam"].values) == g["lam"]
    assert list(ds["ste"].values) == g["ste"] and ds.sizes["filter"] == tiny["digits"]["filters"]
    for var in ("acc_u", "acc_w", "acc_prune", "acc_u_finetuned", "acc_prune_finetuned", "sparsity"):
        assert ds[var].attrs["units"] == "1" and ds[var].attrs["long_name"], var
        assert bool(((ds[var] >= 0) & (ds[var] <= 1)).all()), var
    # lam = 0 is the dense binary network: no zeros, the same numbers under every penalty.
    dense = ds.sel(lam=0.0)
    assert float(dense["sparsity"].max()) == 0.0
    np.testing.assert_array_equal(
        dense["acc_u"].values, np.broadcast_to(ds["acc_dense"].values[:, None, :], dense["acc_u"].shape)
    )
    # Pruning to sparsity 0 is the dense network itself.
    np.testing.assert_array_equal(dense["acc_prune"].values, dense["acc_u"].values)
    # Ten classes on 599 test images: even the tiny networks are far above chance (0.1; SE 0.012).
    assert float(ds["acc_relu"].min()) > 0.4 and float(ds["acc_dense"].min()) > 0.4
    assert ds.attrs["Conventions"] == "CF-1.8"

    from study import style
    from study.figures import digits as fig_digits

    fig = fig_digits.draw({"digits": ds}, lam=None, filters_shown=3)
    png, pdf = tmp_path / "digits.png", tmp_path / "digits.pdf"
    style.save(fig, png, pdf, dpi=60)
    assert png.stat().st_size > 5000 and pdf.stat().st_size > 5000
