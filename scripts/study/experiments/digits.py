"""The digits experiment (issue 12): what the ``digits:`` config block
means, one seed's split and training, and the aggregated dataset.

Pure functions of the (validated) config and arrays; no file I/O (the glue
scripts read and write). The images come in as arrays
(``sklearn.datasets.load_digits``, bundled with scikit-learn, is called by
``prepare`` and ``build`` only). The experiment contract: ``study.experiments``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from rvscgd import digits as D

from ..seeds import generator
from .digits_checks import SIDE

# SeedSequence spawn keys of the digits part: (DIGITS_KEY, seed, purpose).
# Three entries, so they can never equal a Gaussian cell's (n, k, seed, purpose).
DIGITS_KEY = 12
PURPOSE = {"split": 0, "init": 1, "minibatch": 2}
GRID_DIMS = ("penalty", "lam", "ste")
CLASSES = 10


def seed_key(config: dict, seed: int, purpose: str) -> dict:
    """Arguments of numpy.random.SeedSequence for one random object of a digits cell."""
    return {"entropy": int(config["seed"]), "spawn_key": (DIGITS_KEY, int(seed), PURPOSE[purpose])}


def make_split(config: dict, seed: int, images: np.ndarray, labels: np.ndarray) -> xr.Dataset:
    """One seed's train/test split of the images (drawn from the seed) and its
    standardised pixels (mean and scale from the training part only).

    ``images`` (N, 8, 8) or (N, 64), ``labels`` (N,) integers 0..9.
    """
    x = np.asarray(images, dtype=float).reshape(len(images), -1)
    y = np.asarray(labels).astype(np.int64)
    train, test = D.split_indices(len(x), config["digits"]["test_fraction"], generator(seed_key(config, seed, "split")))
    x_train, x_test, mean, scale = D.standardise(x[train], x[test])
    pixel = {"long_name": "pixel index (row-major in the 8 x 8 image)"}
    return xr.Dataset(
        {
            "x_train": (("train_item", "pixel"), x_train, {"long_name": "standardised training pixels", "units": "1"}),
            "x_test": (("test_item", "pixel"), x_test, {"long_name": "standardised test pixels", "units": "1"}),
            "y_train": ("train_item", y[train], {"long_name": "training labels (digit 0-9)"}),
            "y_test": ("test_item", y[test], {"long_name": "test labels (digit 0-9)"}),
            "index_train": ("train_item", train, {"long_name": "position of the image in load_digits()"}),
            "index_test": ("test_item", test, {"long_name": "position of the image in load_digits()"}),
            "mean": ("pixel", mean, {"long_name": "training-part pixel mean (raw scale 0-16)"}),
            "scale": ("pixel", scale, {"long_name": "training-part pixel standard deviation (1 where constant)"}),
        },
        coords={"pixel": ("pixel", np.arange(x.shape[1]), pixel)},
        attrs={"seed": int(seed)},
    )


def make_data(config: dict, images: np.ndarray, labels: np.ndarray) -> xr.Dataset:
    """Every seed's split, stacked along ``seed`` (all splits have the same sizes)."""
    seeds = [int(s) for s in config["digits"]["seeds"]]
    ds = xr.concat([make_split(config, s, images, labels) for s in seeds], dim="seed")
    ds = ds.assign_coords(seed=("seed", seeds, {"long_name": "seed index of the digits cell"}))
    ds.attrs = {"n_images": int(len(images)), "test_fraction": float(config["digits"]["test_fraction"])}
    return ds


def grid_runs(dcfg: dict):
    """The runs of one cell, in training order, and where each grid point reads.

    Trained: per STE one dense binary run (lam = 0, shared by every penalty),
    then every penalty x nonzero lam, then one float ReLU run. Returns
    ``(runs, dense {ste: run}, index (penalty, lam, ste) -> run, relu run)``.
    """
    g = dcfg["grid"]
    table = []  # (penalty, lam, ste, activation) of each trained run

    def add(*run):
        table.append(run)
        return len(table) - 1

    dense = {ste: add(g["penalty"][0], 0.0, ste, "binary") for ste in g["ste"]}
    index = np.zeros((len(g["penalty"]), len(g["lam"]), len(g["ste"])), dtype=int)
    for i, p in enumerate(g["penalty"]):
        for j, lam in enumerate(g["lam"]):
            for s, ste in enumerate(g["ste"]):
                index[i, j, s] = dense[ste] if lam == 0 else add(p, float(lam), ste, "binary")
    relu = add(g["penalty"][0], 0.0, "relu", "relu")
    pens, lams, stes, acts = zip(*table, strict=True)
    return D.make_digit_runs(pens, lams, stes, acts), dense, index, relu


def train_cell(config: dict, split: xr.Dataset) -> xr.Dataset:
    """Train one seed's grid (batched), the baselines, pruning and fine-tuning;
    the accuracies on the held-out part and the learned filters."""
    dcfg = config["digits"]
    seed = int(split["seed"]) if "seed" in split.coords else int(split.attrs["seed"])
    dtype = dcfg["precision"]
    patch = int(dcfg["patch"])
    Ztr = D.patches(split["x_train"].values, patch).astype(dtype)
    Zte = D.patches(split["x_test"].values, patch).astype(dtype)
    ytr, yte = split["y_train"].values.astype(np.int64), split["y_test"].values.astype(np.int64)
    runs, dense, index, relu = grid_runs(dcfg)
    binary = runs.activation == "binary"
    W0 = D.init_params(generator(seed_key(config, seed, "init")), Ztr.shape[2], dcfg["filters"])
    steps = int(dcfg["steps"])
    record = np.unique(np.round(np.linspace(0, steps, min(steps, 20) + 1)).astype(int))
    res = D.train(
        Ztr,
        ytr,
        runs,
        W0,
        classes=CLASSES,
        steps=steps,
        eta=dcfg["eta"],
        eta_readout=dcfg["eta_readout"],
        beta=dcfg["beta"],
        a=dcfg["grid"]["tl1_a"],
        batch_size=dcfg["batch_size"],
        seed=np.random.SeedSequence(**seed_key(config, seed, "minibatch")),
        record_steps=record,
        dtype=dtype,
    )
    acc_w = D.accuracy(Zte, yte, res.W, res.V, res.b, binary)
    acc_u = D.accuracy(Zte, yte, res.U, res.V, res.b, binary)
    sparsity = D.filter_sparsity(res.U)
    # Magnitude pruning: the dense binary network of the same STE, cut to each run's sparsity.
    ste_of = np.array([dense[s] for s in runs.ste])
    pruned = D.magnitude_prune(res.W[ste_of], sparsity).astype(dtype)
    acc_prune = D.accuracy(Zte, yte, pruned, res.V[ste_of], res.b[ste_of], binary)
    out = {
        "acc_w": (acc_w, "test accuracy with the dense filters w", "1"),
        "acc_u": (acc_u, "test accuracy with the sparse filters u = prox(w) (deployed)", "1"),
        "sparsity": (sparsity, "fraction of zero pixel weights of u (bias excluded)", "1"),
        "acc_prune": (acc_prune, "test accuracy, dense binary network magnitude-pruned to the same sparsity", "1"),
    }
    ft = dcfg["finetune"]
    if ft["enabled"]:
        both = np.concatenate([res.U, pruned])
        V2, b2 = D.finetune_readout(
            Ztr,
            ytr,
            both,
            np.concatenate([res.V, res.V[ste_of]]),
            np.concatenate([res.b, res.b[ste_of]]),
            np.concatenate([binary, binary]),
            steps=ft["steps"],
            eta=ft["eta"],
            classes=CLASSES,
        )
        acc_ft = D.accuracy(Zte, yte, both, V2, b2, np.concatenate([binary, binary]))
        R = len(runs)
        out["acc_u_finetuned"] = (acc_ft[:R], "test accuracy with u after readout-only fine-tuning", "1")
        out["acc_prune_finetuned"] = (acc_ft[R:], "test accuracy of the pruned network after readout fine-tuning", "1")

    g = dcfg["grid"]
    coords = {
        "penalty": ("penalty", list(g["penalty"]), {"long_name": "sparsity penalty"}),
        "lam": ("lam", [float(x) for x in g["lam"]], {"long_name": "penalty weight lambda (absolute)", "units": "1"}),
        "ste": ("ste", list(g["ste"]), {"long_name": "straight-through estimator of the filters"}),
        "step": ("step", res.record_steps, {"long_name": "iteration t"}),
        "feature": (
            "feature",
            np.arange(Ztr.shape[2]),
            {"long_name": "filter entry (patch pixels row-major, then bias)"},
        ),
        "filter": ("filter", np.arange(W0.shape[1]), {"long_name": "filter index"}),
    }
    data_vars = {}
    for name, (values, long_name, units) in out.items():
        data_vars[name] = (GRID_DIMS, values[index].astype(float), {"long_name": long_name, "units": units})
    data_vars["train_loss"] = (
        GRID_DIMS + ("step",),
        res.loss[index].astype(float),
        {"long_name": "training cross-entropy (minibatch of the step)", "units": "nat"},
    )
    for name, arr, long_name in (("u", res.U, "sparse filters u = prox(w)"), ("w", res.W, "filters w (unit norm)")):
        data_vars[name] = (GRID_DIMS + ("feature", "filter"), arr[index].astype(float), {"long_name": long_name})
    dense_ix = [dense[s] for s in g["ste"]]
    data_vars["acc_dense"] = (
        "ste",
        acc_u[dense_ix].astype(float),
        {"long_name": "test accuracy, dense binary network (lam = 0)", "units": "1"},
    )
    data_vars["acc_relu"] = (
        (),
        float(acc_w[relu]),
        {"long_name": "test accuracy, float ReLU network (plain gradient)", "units": "1"},
    )
    data_vars["train_loss_relu"] = (
        "step",
        res.loss[relu].astype(float),
        {"long_name": "training cross-entropy of the float ReLU network", "units": "nat"},
    )
    ds = xr.Dataset(data_vars, coords=coords)
    return ds.expand_dims(seed=[seed])


def combine(cells: list[xr.Dataset], config: dict, split_sizes: dict) -> xr.Dataset:
    """Stack the seeds' cells into the labelled digits dataset (CF attributes)."""
    ds = xr.concat(cells, dim="seed").sortby("seed")
    ds["seed"].attrs.update(long_name="seed index of the digits cell (its split, start and minibatches)")
    dcfg = config["digits"]
    k = (SIDE // dcfg["patch"]) ** 2
    ds.attrs = {
        "title": "RVSCGD study, sparse-filter binary-activation networks on the 8x8 digits",
        "Conventions": "CF-1.8",
        "source": (
            "sklearn.datasets.load_digits (UCI optical recognition of handwritten digits, 1797 images), "
            "trained with the rvscgd study workflow (rvscgd.digits)"
        ),
        "mode": "digits",
        "patch": int(dcfg["patch"]),
        "k": k,
        "n": int(dcfg["patch"]) ** 2,
        "filters": int(dcfg["filters"]),
        "steps": int(dcfg["steps"]),
        "batch_size": "full" if dcfg["batch_size"] is None else int(dcfg["batch_size"]),
        "beta": float(dcfg["beta"]),
        "finetune": "yes" if dcfg["finetune"]["enabled"] else "no",
        **{f"n_{part}": int(v) for part, v in split_sizes.items()},
    }
    return ds


# ---- the experiment contract (study.experiments) ---------------------------------
REQUIRED = {
    "data": (("x_train", "y_train", "x_test", "y_test"), ()),
    "train": (("acc_u", "acc_w", "sparsity", "u", "acc_relu"), ()),
}


def _bundled():
    from sklearn.datasets import load_digits  # bundled images, no download; only the digits part needs it

    return load_digits()


def prepare(config: dict, wildcards: dict) -> tuple[dict[str, xr.Dataset], list[str]]:
    """Every seed's train/test split, standardised with the training part's
    statistics (rule prepare_digits; cached for the train jobs)."""
    import sklearn

    bundled = _bundled()
    ds = make_data(config, bundled.images, bundled.target)
    ds.attrs["scikit_learn_version"] = sklearn.__version__  # the images come from its bundled copy
    return {"data": ds}, [f"digits: {ds.sizes['train_item']} train / {ds.sizes['test_item']} test images per seed"]


def train(config: dict, wildcards: dict, inputs: dict, threads: int = 1) -> tuple[xr.Dataset, list[str]]:
    """One seed's whole penalty x lam x ste grid (batched) and its baselines,
    evaluated on the held-out part (rule train_digits)."""
    seed = int(wildcards["seed"])
    data = inputs["data"]
    if seed not in data["seed"].values:
        raise ValueError(f"the digits data have no split for digits seed {seed}; rerun rule prepare_digits")
    ds = train_cell(config, data.sel(seed=seed))
    ds.attrs["seed"] = seed
    return ds, [
        f"digits seed {seed}: float ReLU {float(ds['acc_relu'].squeeze()):.3f}, dense binary "
        f"{', '.join(f'{v:.3f}' for v in ds['acc_dense'].values.ravel())}"
    ]


def _split_sizes(data: xr.Dataset) -> dict:
    return {"train": data.sizes["train_item"], "test": data.sizes["test_item"]}


def aggregate(config: dict, dataset: str, inputs: dict) -> tuple[xr.Dataset, list[str]]:
    """The seeds' cells as one labelled dataset (rule aggregate_digits)."""
    data = next(iter(inputs["data"]))
    cells = []
    for cell in inputs["train"]:
        cell.attrs = {}
        cells.append(cell)
    ds = combine(cells, config, _split_sizes(data))
    mean = ds.mean("seed")
    return ds, [
        f"digits: {ds.sizes['seed']} seeds; float ReLU {float(mean['acc_relu']):.3f}, dense binary "
        f"{', '.join(f'{v:.3f}' for v in mean['acc_dense'].values)}"
    ]


def build(config: dict) -> dict[str, xr.Dataset]:
    """The digits dataset (rules prepare_digits, train_digits, aggregate_digits) in one process."""
    if not config["digits"]["enabled"]:
        return {}
    bundled = _bundled()
    data = make_data(config, bundled.images, bundled.target)
    parts = [train_cell(config, data.sel(seed=s)) for s in config["digits"]["seeds"]]
    return {"digits": combine(parts, config, _split_sizes(data))}


def jobs(config: dict) -> str:
    """Its jobs for the config, in words (study.plan's first line; not listed there so far)."""
    return ""


def plan(config: dict, fraction: float, compare_direct: bool = False) -> dict:
    """Not timed: a few seconds per seed on the bundled images (docs/figures.md, digits)."""
    return {"core_s": 0.0}
