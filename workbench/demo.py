"""The embedded-default demo: simulate a recording, score two models, write a report.

A hidden recurrent network ("network A") generates a simulated macaque recording
(V4-like and IT-like sites, Poisson spikes in 10 ms bins). Two candidate models are scored
against it with one linear map shared over time: network A itself and a randomly
initialised twin. A sound pipeline ranks network A first and its estimated ceiling
matches the simulator's planted reliability.
"""

import platform
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .metrics import shared_time_encoding, summarize
from .models import BLNet, PresentationProtocol, extract
from .report import render_report, time_course_figure
from .report.figures import figure_png
from .storage import write_json, write_text

BENCHMARK = "sim-macaque.shared-time-ridge"


def _versions():
    import sklearn
    import torch
    import xarray

    return {
        "workbench": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "xarray": xarray.__version__,
        "scikit-learn": sklearn.__version__,
    }


def run_demo(out, n_stimuli=300, seed=0, progress=True):
    """Run the demo and write ``out/scores.json`` and ``out/index.html``.

    Parameters
    ----------
    out : str or os.PathLike
        Report directory (created; the simulated recording goes to ``out/data``).
    n_stimuli : int
        Digits shown to the simulated animal.
    seed : int
        Seeds the simulation, the folds and the ceiling splits.
    progress : bool

    Returns
    -------
    dict
        The content of ``scores.json``.
    """
    import data_adapters

    out = Path(out)
    simulation = data_adapters.simulate_macaque(
        out / "data" / "sim_macaque.nc", n_stimuli=n_stimuli, seed=seed, brain_seed=0,
        progress=progress,
    )
    trials = data_adapters.load(simulation.path)
    # The model's first step is aligned with the earliest (V4) latency of the recording.
    protocol = PresentationProtocol(image_steps=10, blank_steps=15, step_ms=10,
                                    onset_ms=min(latency for _, _, latency in simulation.regions))
    candidates = {
        "BLNet network A (generated the data)": BLNet.from_config(simulation.brain),
        "BLNet random init (seed 1)": BLNet.from_config(simulation.brain, seed=1),
    }
    records, time_course = [], []
    for name, model in candidates.items():
        features = extract(model, simulation.stimuli, protocol=protocol, progress=progress)
        result = shared_time_encoding(features, trials, seed=seed, progress=progress)
        for record in summarize(result, by="region"):
            records.append({
                "model": name, "benchmark": BENCHMARK, "region": record.pop("group"),
                **record, "seed": seed, "simulated": True,
            })
        frame = result[["r", "ceiling"]].to_dataframe().reset_index()
        frame["sqrt_ceiling"] = np.sqrt(frame["ceiling"].clip(lower=0))
        summary = frame.groupby(["region", "time_bin_start"], sort=False)[["r", "sqrt_ceiling"]].median()
        summary = summary.reset_index().rename(columns={"time_bin_start": "time_ms"})
        summary.insert(0, "model", name)
        time_course.append(summary)
    time_course = pd.concat(time_course, ignore_index=True)

    true_reliability = simulation.site_reliability.to_series().groupby(
        simulation.site_reliability.coords["region"].values).median()
    scores = {
        "benchmark": BENCHMARK,
        "simulated": True,
        "normalization": "normalized = sign(r) * r**2 / ceiling, per site and time bin; "
                         "value = median over sites of mean r over bins with ceiling >= "
                         "min_ceiling",
        "scores": records,
        "true_site_reliability_median": true_reliability.to_dict(),
        "time_course": time_course.to_dict(orient="records"),
        "provenance": {"versions": _versions(), "seed": seed, "n_stimuli": n_stimuli,
                       "data": str(simulation.path), "protocol": protocol.as_dict()},
    }
    write_json(out / "scores.json", scores)
    png = figure_png(time_course_figure(time_course))
    page = render_report(
        "Workbench demo: shared-over-time encoding on a simulated macaque recording",
        records,
        ["model", "region", "value", "ceiling", "normalized", "n", "n_time_bins"],
        figures=[("Median Pearson r across sites per 10 ms bin (held-out stimuli); grey: "
                  "square root of the median noise ceiling.", png)],
        notes=[
            "Network A generated the simulated spikes; a sound pipeline ranks it above its "
            "randomly initialised twin.",
            "value: median over sites of the mean Pearson r over reliable bins; normalized: "
            "sign(r) r^2 / ceiling (1 = at the data's reliability).",
        ],
        simulated=True,
        provenance={**_versions(), "seed": seed, "n_stimuli": n_stimuli},
    )
    write_text(out / "index.html", page)
    return scores
