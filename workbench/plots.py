"""Figures of the benchmarks' report panels, drawn on matplotlib Figure objects (no pyplot
state, no display needed); :func:`figure_png` turns one into PNG bytes."""

import io

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure


def time_course_figure(time_course, clusters=None):
    """Encoding score over time, one panel per region (or dataset), one line per model.

    Parameters
    ----------
    time_course : pandas.DataFrame
        Columns ``model``, ``region``, ``time_ms`` (bin start), ``r`` (median over sites)
        and ``sqrt_ceiling`` (median over sites of the square root of the ceiling: the
        best r the data's reliability allows).
    clusters : dict, optional
        ``{model: [[start_ms, end_ms], ...]}``: significant time clusters, drawn as bars
        under the curves in the model's colour.

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
        if clusters:
            colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
            for k, (model, spans) in enumerate(clusters.items()):
                for start, end in spans:
                    ax.plot([start, end], [-0.04 - 0.03 * k] * 2, lw=3, color=colours.get(model, "black"),
                            solid_capstyle="butt")
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


def layer_time_figure(maps, time_ms, title):
    """Layer x time maps, one heatmap per model: median r of every candidate layer per bin.

    ``maps``: ``{model: {layer: [r per bin]}}``; ``time_ms``: bin starts.
    """
    n = len(maps)
    figure = Figure(figsize=(4.2 * min(n, 3), 2.4 * int(np.ceil(n / 3)) + 0.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(int(np.ceil(n / 3)), min(n, 3), squeeze=False).ravel())
    values = [np.asarray(list(layers.values()), dtype=float) for layers in maps.values()]
    top = max(float(np.nanmax(np.abs(v))) if np.isfinite(v).any() else 0.0 for v in values) or 1.0
    for ax, (model, layers), grid in zip(axes, maps.items(), values):
        image = ax.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-top, vmax=top, interpolation="nearest",
                          extent=(time_ms[0], time_ms[-1] + (time_ms[1] - time_ms[0] if len(time_ms) > 1 else 10),
                                  len(layers) - 0.5, -0.5))
        ax.set_yticks(range(len(layers)), labels=list(layers), fontsize=7)
        ax.set_title(model, fontsize=8)
        ax.set_xlabel("time from stimulus onset (ms)", fontsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    figure.colorbar(image, ax=axes[:n].tolist(), shrink=0.8, label="median r")
    figure.suptitle(title, fontsize=9)
    return figure
