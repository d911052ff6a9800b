"""Layer-to-region mapping without double dipping.

The stimuli are split once (seeded, stratified by object/category) into a *mapping* set
and an *evaluation* set. Every candidate layer is scored on the mapping set only (with its
own cross-validation inside it); each region takes a layer by one of two rules; the chosen
layer is then scored on the evaluation set, whose images played no part in the choice.
Reporting the best layer's score on the images that chose it would be biased upwards by
the maximum over layers.

Rules (``rule=``):

- ``"median"`` (default): the layer with the best median score over the region's sites;
- ``"unit_majority"``: Nayebi et al.'s procedure as the paper describes it (paraphrased):
  each site is assigned the layer that predicts it best, and the region takes the layer
  most of its sites were assigned (ties: the earlier layer).
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from ..assembly import average_repetitions, has_repetitions, is_member, select_neuroids, take_positions, validate
from ..errors import DataWarning, MetricError, check_interval
from ..stats.groups import GroupSummary
from ..stats.permutation import columns_vary
from .encoding import STRATA_COORDS, encoding_score, select_stimuli, summarize


@dataclass
class LayerMapping:
    """Result of :func:`map_layers_to_regions`.

    Attributes
    ----------
    selection : xarray.DataArray
        ``(layer, region)`` median score of every candidate on the mapping stimuli.
    layer_for_region : dict
        Region -> chosen layer.
    evaluation : dict
        Region -> encoding result (:func:`encoding_score` Dataset) of the chosen layer
        on the evaluation stimuli.
    score : str
        ``"normalized"`` or ``"r"`` (when the recording has no repetitions).
    layer_time : xarray.DataArray
        ``(layer, region, time_bin)``: every candidate's median r over the region's sites
        per time bin on the mapping stimuli (the layer x time map).
    votes : xarray.DataArray
        ``(layer, region)``: how many of the region's sites each layer predicts best on the
        mapping stimuli (the ``unit_majority`` rule's tally).
    rule : str
    """

    selection: xr.DataArray
    layer_for_region: dict
    evaluation: dict = field(repr=False)
    score: str = "normalized"
    mapping_stimuli: np.ndarray = field(repr=False, default=None)
    evaluation_stimuli: np.ndarray = field(repr=False, default=None)
    layer_time: xr.DataArray = field(repr=False, default=None)
    votes: xr.DataArray = field(repr=False, default=None)
    rule: str = "median"

    def records(self):
        """One tidy record per region: chosen layer, held-out score and its spread."""
        rows = []
        for region, layer in self.layer_for_region.items():
            summary = summarize(self.evaluation[region], by="region")[0]
            rows.append({"region": region, "layer": layer,
                         "mapping_score": float(self.selection.sel(layer=layer, region=region)),
                         **{key: summary[key] for key in ("value", "value_fold_std", "ceiling", "normalized", "n")}})
        return rows


def split_stimuli(ids, fraction, seed=0, strata=None):
    """Seeded, stratified split of ``ids`` into (first, second) with ``fraction`` in first."""
    check_interval("mapping_fraction", fraction, "(0, 1)", error=MetricError)
    ids = np.asarray(ids)
    codes = np.zeros(len(ids), np.int64) if strata is None else pd.factorize(np.asarray(strata))[0]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    shuffled = [rng.permutation(np.flatnonzero(codes == stratum)) for stratum in np.unique(codes)]
    # each stratum gets floor(fraction * size); the strata with the largest remainders (ties in
    # a seeded order) one more, until the first set holds round(fraction * n). Rounding each
    # stratum alone sent every single-image stratum to the second set (round(0.5) is 0):
    # 32 images of 27 objects split 5 / 27
    exact = fraction * np.array([len(members) for members in shuffled], dtype=np.float64)
    counts = np.floor(exact).astype(np.int64)
    missing = int(np.floor(fraction * len(ids) + 0.5)) - int(counts.sum())
    order = np.lexsort((rng.random(len(shuffled)), -(exact - counts)))
    counts[order[:max(missing, 0)]] += 1
    first = np.zeros(len(ids), bool)
    for members, count in zip(shuffled, counts):
        first[members[:count]] = True
    return ids[first], ids[~first]


RULES = ("median", "unit_majority")


def score_regions(features, recording, layer_for_region, region_coord="region", estimator=None, stimuli=None,
                  **options):
    """Score each region's sites from its layer (:func:`encoding_score`), one fit per layer.

    Regions committed to the same layer are fitted together and the result is split by site
    when the estimator fits every target on its own (:class:`~.ridge.RidgeCV`: one alpha per
    target, chosen on that target's errors), so a site's fit does not depend on which other
    sites share the call, while the features' moments and eigendecompositions are computed
    once. Any other estimator (PLS mixes the targets into shared components) is fitted region
    by region.

    Parameters
    ----------
    features : xarray.DataArray
        Model assembly ``(presentation, neuroid, time_bin)`` with a ``layer`` neuroid coord.
    recording : xarray.DataArray
        Neural assembly with a ``region_coord`` neuroid coord.
    layer_for_region : dict of str to str
        The layer each region is scored from.
    region_coord : str
    estimator : object, optional
        As in :func:`encoding_score` (default its ``RidgeCV``).
    stimuli : array-like of str, optional
        Score on these stimulus ids only (e.g. a layer mapping's evaluation set), selected
        after the layer and the sites, so that no other layer or region is copied.
    **options
        Passed to :func:`encoding_score` (``mode``, ``n_splits``, ``seed``, ``ceiling``, ...).

    Returns
    -------
    dict of str to xarray.Dataset
        Per region, :func:`encoding_score`'s result on the region's sites: the same as
        scoring the region alone, up to float32 rounding of the shared products.
    """
    if region_coord not in recording.coords:
        raise MetricError(f"the recording has no {region_coord!r} neuroid coord to score regions by")
    site_regions = recording.coords[region_coord].values.astype(str)
    missing = sorted(str(region) for region in layer_for_region if str(region) not in set(site_regions))
    if missing:
        raise MetricError(f"the recording has no sites with {region_coord} in {missing}")
    if "layer" not in features.coords:
        raise MetricError("the model assembly has no 'layer' neuroid coord to score regions from")
    unknown = sorted(set(layer_for_region.values()) - set(features.coords["layer"].values))
    if unknown:
        raise MetricError(f"unknown layer(s) {unknown}; the model assembly has "
                          f"{list(pd.unique(features.coords['layer'].values))}")
    targetwise = estimator is None or getattr(estimator, "fits_targets_separately", False)
    groups = {}
    for region, layer in layer_for_region.items():
        groups.setdefault((layer, region if not targetwise else None), []).append(region)
    results = {}
    for (layer, _), regions in groups.items():
        names = [str(region) for region in regions]
        # a region's sites usually run consecutively: then a view, not a copy
        sites = np.flatnonzero(is_member(site_regions, names))
        chosen, neural = select_neuroids(features, layer=layer), take_positions(recording, "neuroid", sites)
        if stimuli is not None:
            chosen, neural = select_stimuli(chosen, stimuli), select_stimuli(neural, stimuli)
        result = encoding_score(chosen, neural, estimator, **options)
        scored = result.coords[region_coord].values.astype(str)
        for region in regions:
            results[region] = (result if len(regions) == 1 else
                               take_positions(result, "neuroid", np.flatnonzero(scored == str(region))))
    return {region: results[region] for region in layer_for_region}


def map_layers_to_regions(features, recording, layers=None, region_coord="region", mapping_fraction=0.5,
                          estimator=None, mode="shared", n_splits=5, seed=0, progress=False, ceiling="split_half",
                          rule="median", evaluation_features=None):
    """Choose a layer per region on mapping stimuli; score it on held-out stimuli.

    Parameters
    ----------
    features : xarray.DataArray
        Model assembly whose neuroids carry a ``layer`` coord.
    recording : xarray.DataArray
        Neural assembly with a ``region_coord`` neuroid coord (trial-level for ceilings).
    layers : list of str, optional
        Candidate layers (default: all, in order of appearance).
    mapping_fraction : float
        Share of stimuli used to choose layers; the rest evaluate the choice.
    estimator, mode, n_splits, seed, progress, ceiling :
        As in :func:`encoding_score` (``n_splits`` applies inside each set). A precomputed
        ceiling lets an already averaged recording be normalised (and the layers chosen on
        the normalised score).
    rule : {"median", "unit_majority"}
        How a region's layer is chosen (module docstring).
    evaluation_features : xarray.DataArray, optional
        The assembly the chosen layer is scored from on the evaluation stimuli (default
        ``features``): e.g. a richer reduction of the same layers than the sketch the
        layers are chosen on, when fitting every candidate at full width costs too much.

    Returns
    -------
    LayerMapping
    """
    validate(features)
    validate(recording)
    if rule not in RULES:
        raise MetricError(f"rule must be one of {RULES}, got {rule!r}")
    if "layer" not in features.coords:
        raise MetricError("the model assembly has no 'layer' neuroid coord to map from")
    if region_coord not in recording.coords:
        raise MetricError(f"the recording has no {region_coord!r} neuroid coord to map to")
    available = list(pd.unique(features.coords["layer"].values))
    layers = available if layers is None else list(layers)
    unknown = sorted(set(layers) - set(available))
    if unknown:
        raise MetricError(f"unknown layer(s) {unknown}; the model assembly has {available}")
    neural = average_repetitions(recording) if has_repetitions(recording) else recording
    ids = pd.Index(neural.coords["stimulus_id"].values)
    ids = ids[ids.isin(features.coords["stimulus_id"].values)]
    strata = next((neural.coords[name].values for name in STRATA_COORDS if name in neural.coords), None)
    if strata is not None:
        strata = pd.Series(strata, index=neural.coords["stimulus_id"].values).loc[ids].values
    mapping_ids, evaluation_ids = split_stimuli(ids.values, mapping_fraction, seed, strata)
    regions = list(pd.unique(recording.coords[region_coord].values))
    if evaluation_features is not None:
        validate(evaluation_features)
        if "layer" not in evaluation_features.coords:
            raise MetricError("evaluation_features has no 'layer' neuroid coord")
        missing = sorted(set(layers) - set(evaluation_features.coords["layer"].values))
        if missing:
            raise MetricError(f"evaluation_features lacks layer(s) {missing} of the candidates")
    scored_from = features if evaluation_features is None else evaluation_features
    scores = np.full((len(layers), len(regions)), np.nan)
    score = "normalized" if has_repetitions(recording) or isinstance(ceiling, xr.DataArray) else "value"
    mapping_recording = select_stimuli(recording, mapping_ids)
    over_time, silent = None, []
    for i, layer in enumerate(layers):
        # one layer's copy at a time (all of them at once held a second copy of every layer)
        candidate = select_stimuli(select_neuroids(features, layer=layer), mapping_ids)
        if not columns_vary(candidate.values).any():
            # every unit constant (a spiking layer that never fires, a dead ReLU stage): it
            # predicts nothing, and is not a candidate (its scores stay NaN)
            silent.append(str(layer))
            continue
        result = encoding_score(candidate, mapping_recording, estimator, mode=mode, n_splits=n_splits, seed=seed,
                                progress=progress, ceiling=ceiling)
        per_region = {record["group"]: record[score] for record in summarize(result, by=region_coord)}
        scores[i] = [per_region.get(str(region), np.nan) for region in regions]
        site_regions = result.coords[region_coord].values.astype(str)
        if over_time is None:
            over_time = np.full((len(layers), len(regions), result.sizes["time_bin"]), np.nan)
            bin_starts = result.coords["time_bin_start"].values
            site_scores = np.full((len(layers), result.sizes["neuroid"]), np.nan)
        cells = GroupSummary(result, region_coord)
        r_cells = result["r"].transpose("neuroid", "time_bin").values.reshape(1, -1)
        site_scores[i] = (cells.site_normalized(r_cells, result["ceiling"].transpose("neuroid", "time_bin").values)
                          if score == "normalized" else cells.per_site(r_cells))[0]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for j, region in enumerate(regions):
                over_time[i, j] = np.nanmedian(result["r"].values[site_regions == str(region)], axis=0)
    if len(silent) == len(layers):
        raise MetricError(f"every candidate layer {silent} has zero variance across the mapping stimuli (every "
                          "unit constant); check the layer names, the stimuli, or the extraction's reduction (a "
                          "spiking network that never fires: its inputs' scale, or its membrane potentials)")
    if silent:
        warnings.warn(f"layer(s) {silent} do not vary across the mapping stimuli (every unit constant, e.g. a "
                      "spiking layer that never fires) and are left out of the candidates", DataWarning, stacklevel=2)
    if np.isnan(scores).all(axis=0).any():
        bad = [str(regions[j]) for j in np.flatnonzero(np.isnan(scores).all(axis=0))]
        raise MetricError(f"no layer could be scored for region(s) {bad} (ceilings below min_ceiling?)")
    selection = xr.DataArray(scores, dims=("layer", "region"),
                             coords={"layer": layers, "region": [str(r) for r in regions]},
                             attrs={"score": score, "stimuli": "mapping set"})
    votes = np.zeros((len(layers), len(regions)), np.int64)
    scored = np.isfinite(site_scores).any(axis=0)
    best = np.where(scored, np.argmax(np.where(np.isfinite(site_scores), site_scores, -np.inf), axis=0), -1)
    for j, region in enumerate(regions):
        members = (site_regions == str(region)) & scored
        votes[:, j] = np.bincount(best[members], minlength=len(layers))
    if rule == "median":
        chosen = {str(region): layers[int(np.nanargmax(scores[:, j]))] for j, region in enumerate(regions)}
    else:  # np.argmax takes the first (earlier) layer on a tie
        chosen = {str(region): layers[int(np.argmax(votes[:, j]))] for j, region in enumerate(regions)}
    evaluation = score_regions(scored_from, recording, chosen, region_coord, estimator, stimuli=evaluation_ids,
                               mode=mode, n_splits=n_splits, seed=seed, progress=progress, ceiling=ceiling)
    layer_time = xr.DataArray(over_time, dims=("layer", "region", "time_bin"),
                              coords={"layer": layers, "region": [str(r) for r in regions],
                                      "time_bin_start": ("time_bin", bin_starts)},
                              attrs={"score": "median r over the region's sites", "stimuli": "mapping set"})
    tally = xr.DataArray(votes, dims=("layer", "region"),
                         coords={"layer": layers, "region": [str(r) for r in regions]},
                         attrs={"score": f"sites whose best layer (mean {score} over usable bins) it is",
                                "stimuli": "mapping set"})
    return LayerMapping(selection, chosen, evaluation, score="normalized" if score == "normalized" else "r",
                        mapping_stimuli=mapping_ids, evaluation_stimuli=evaluation_ids, layer_time=layer_time,
                        votes=tally, rule=rule)
