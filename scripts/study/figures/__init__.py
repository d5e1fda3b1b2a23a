"""The study's figures, one module per figure, plus the shared modules they draw with.

A figure is a module ``<name>.py`` here exposing ``draw(datasets, **params)``
returning a ``matplotlib.figure.Figure``: ``datasets`` maps a dataset name
(``"population"``, ``"empirical"``) to an aggregated ``xarray.Dataset`` (the
files of rule ``aggregate``, or ``study.inprocess.build_datasets``), ``params``
is the figure's block of ``config["figures"]`` (``registry.figure_params``).
No Snakemake and no file writing: ``scripts/plot_figure.py`` draws one figure
in the workflow and saves it through ``study.style.save``.

Shared modules: ``select`` (which slice a figure shows), ``stats`` (seed
statistics, derived quantities, the status vocabulary), ``draw`` (seaborn
traces and heat maps, legend handles, notes), ``compare`` (traces along one
dimension). ``registry`` lists the figures and is importable without
matplotlib. This file stays import-free so the workflow can read the registry
without drawing anything.
"""
