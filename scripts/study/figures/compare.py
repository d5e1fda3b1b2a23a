"""Traces along one dimension, one colour per value: the STE and normalisation figures."""

from __future__ import annotations

from matplotlib.lines import Line2D

from study import style

from .draw import columns, join, slice_text, trace
from .select import modes, resolve
from .stats import diverged_note


def compare_traces(datasets, slice, lam, penalties, along, colors, labels, rows, empty_text):  # noqa: A002
    """Traces of the runs along one dimension (``along``: one colour per value),
    one column per series (plain CGD, then each penalty at one lambda).

    ``rows``: list of ``(quantity, ylabel, yscale, ymin, modes)``; a row with
    two modes draws population solid and empirical dashed in the same panel.
    """
    shown = modes(datasets)
    first = datasets[shown[0]]
    cols = columns(first, lam, penalties)
    values = first[along].values.tolist()
    rows = [(q, lab, scale, ymin, [m for m in row_modes if m in shown]) for q, lab, scale, ymin, row_modes in rows]
    rows = [r for r in rows if r[4]]
    sels, subtitles = {}, []
    for mode in shown:
        sels[mode] = resolve(datasets[mode], slice, shown=("penalty", "lam", along))
        subtitles.append(f"{mode}: " + slice_text(sels[mode], seeds=datasets[mode].sizes["seed"]))
    with style.context():
        fig, axes = style.subplots(len(rows), len(cols), height=1.45 * len(rows) + 1.1, sharex=True, sharey="row")
        for i, (quantity, ylabel, yscale, ymin, row_modes) in enumerate(rows):
            for j, (p, x, title) in enumerate(cols):
                ax = axes[i, j]
                notes = []
                for mode in row_modes:
                    r = datasets[mode].sel(sels[mode]).sel(penalty=p, lam=x)
                    ls = "--" if (mode == "empirical" and len(row_modes) > 1) else "-"
                    for v in values:
                        rv = r.sel({along: v})
                        trace(ax, rv[quantity], rv["status"], colors[v], ls=ls)
                    notes.append(diverged_note(r["status"], f"{mode} runs" if len(row_modes) > 1 else "runs"))
                style.note(ax, join(*notes), "lower left")
                style.log_steps(ax)
                ax.set_yscale(yscale)
                if i == 0:
                    ax.set_title(title)
                if j == 0:
                    where = f"{row_modes[0]} mode" if len(row_modes) == 1 else "both modes"
                    ax.set_ylabel(f"{where}\n{ylabel}")
                if i == len(rows) - 1:
                    ax.set_xlabel(style.LABEL["step"])
            if ymin is not None:
                style.bottom_at(axes[i], ymin)
        handles = [Line2D([], [], color=colors[v], label=labels[v]) for v in values]
        if len(values) < 2:
            handles.append(Line2D([], [], ls="", label=empty_text))
        if any(len(r[4]) > 1 for r in rows):
            handles += [
                Line2D([], [], color="0.3", ls="-", label="population"),
                Line2D([], [], color="0.3", ls="--", label="empirical"),
            ]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        fig.suptitle("\n".join(subtitles), fontsize=7)
    return fig
