"""Report figures, drawn on matplotlib Figure objects (no pyplot state, no display needed)."""

import io

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
