"""The study's figures, one module per figure, plus the shared modules they draw with.

A figure is a module ``<name>.py`` here exposing ``draw(datasets, **params)``
returning a ``matplotlib.figure.Figure``: ``datasets`` maps a dataset name
(``"population"``, ``"empirical"``, ...) to an aggregated ``xarray.Dataset``
(the workflow's dataset files, or ``study.inprocess.build_datasets``),
``params`` is the figure's block of ``config["figures"]``
(``registry.figure_params``). No Snakemake and no file writing:
``scripts/plot_figure.py`` draws one figure in the workflow and saves it
through ``study.style.save``. What a figure shows is its report caption,
``workflow/report/<name>.rst``; its module docstring only points there.

Modules:

- ``registry``: name -> report category and subcategory, caption, datasets
  read, shared modules used; ``figure_params``. Imports no matplotlib,
  seaborn or xarray (the workflow reads it at parse time).
- ``catalog``: the generated figure catalogue of docs/figures.md.
- ``select``: which slice a figure shows (``resolve``: every dimension the
  figure does not show fixed by its slice or the default rule; ``lam_values``,
  ``middle_lam``, ``penalties``, ``modes``, ``series_columns``,
  ``fix_new_dims``).
- ``stats``: the status vocabulary (from ``rvscgd.STATUS``), seed statistics
  (``BAND = ("pi", 95)``), ``tidy`` (a DataArray as a tidy frame), derived
  quantities (angles, sparsity, noise floor, steps to reach, the theory
  bound per run), Wilson intervals.
- ``draw``: seaborn layers (``trace``: mean and band over seeds;
  ``seed_points``: means with band error bars; ``heatmap``), legend handles,
  notes, slice captions.
- ``compare``: traces along one dimension, one colour per value.

Seaborn draws the statistical layers, on tidy frames: ``sns.lineplot`` with
``errorbar=("pi", 95)`` for every trace with its band over seeds, and for
the means at numeric (dodged) positions whose band is drawn as a bar (by
matplotlib: the band need not hold the mean); ``sns.scatterplot``,
``sns.stripplot`` and ``sns.heatmap``.
Matplotlib stays where seaborn has no such plot: the theory overlays, the
trade-off curves (both coordinates of a point are means over seeds), stacked
bars, notes, legends (one per figure, built from handles) and log axes with
nothing finite to show. No figure uses ``FacetGrid``/``relplot``: each panel
carries its own notes and overlays, and the figures share one legend under
constrained layout, which facets would not keep.

This file stays import-free so the workflow can read the registry without
drawing anything.
"""
