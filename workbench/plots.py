"""Figures of the benchmarks' report panels, drawn on matplotlib Figure objects (no pyplot
state, no display needed); :func:`figure_png` turns one into PNG bytes."""

import io

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure


def time_course_figure(time_course):
    """Encoding score over time, one panel per region, one line per model.

    Parameters
    ----------
    time_course : pandas.DataFrame
        Columns ``model``, ``region``, ``time_ms`` (bin start), ``r`` (median over sites)
        and ``sqrt_ceiling`` (median over sites of the square root of the ceiling: the
        best r the data's reliability allows).

    Returns
    -------
    matplotlib.figure.Figure
    """
    regions = list(pd.unique(time_course["region"]))
    figure = Figure(figsize=(4.2 * len(regions), 3.4), layout="constrained")
    axes = figure.subplots(1, len(regions), sharey=True, squeeze=False)[0]
    for ax, region in zip(axes, regions):
        data = time_course[time_course["region"] == region]
        ceiling = data.drop_duplicates("time_ms").sort_values("time_ms")
        ax.fill_between(ceiling["time_ms"], 0, ceiling["sqrt_ceiling"], color="0.88",
                        label="noise ceiling (sqrt)")
        sns.lineplot(data=data, x="time_ms", y="r", hue="model", marker="o", markersize=3, ax=ax)
        ax.set_title(region)
        ax.set_xlabel("time from stimulus onset (ms)")
        ax.set_ylabel("Pearson r (held-out stimuli)")
        ax.legend(fontsize=7, loc="center right")
    return figure


def figure_png(figure, dpi=110):
    """PNG bytes of a figure."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def model_vs_brain_figure(table, model_column, brain_column, ylabel):
    """Per ROI: one bar per model (its ROI-matched layer) and the brain's value (black marks).

    ``table``: DataFrame with ``model``, ``region`` and the two value columns.
    """
    regions = list(pd.unique(table["region"]))
    figure = Figure(figsize=(max(5.0, 1.4 * len(regions) + 3), 3.6), layout="constrained")
    ax = figure.subplots()
    sns.barplot(data=table, x="region", y=model_column, hue="model", ax=ax, order=regions)
    brain = table.drop_duplicates("region").set_index("region").reindex(regions)[brain_column]
    ax.scatter(range(len(regions)), brain.to_numpy(), color="black", marker="_", s=900, zorder=5,
               label="brain")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("ROI (model: layer of matching relative depth)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="best")
    return figure


def rt_scatter_figure(panels):
    """Held-out entropy RT vs human uncertainty, one panel per model.

    ``panels``: list of ``(model, rho, rt list, uncertainty list)``.
    """
    n = len(panels)
    columns = min(n, 4)
    rows = int(np.ceil(n / columns))
    figure = Figure(figsize=(3.0 * columns, 2.6 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel())
    for ax, (model, rho, rts, uncertainty) in zip(axes, panels):
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(rts))
        ax.scatter(np.asarray(uncertainty), np.asarray(rts) + jitter, s=6, alpha=0.5)
        ax.set_title(f"{model}\nrho = {rho:.2f}", fontsize=8)
        ax.set_xlabel("human uncertainty D", fontsize=8)
        ax.set_ylabel("model RT (step)", fontsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    return figure
