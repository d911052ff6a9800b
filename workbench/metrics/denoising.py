"""De-noising index (Lindsay et al., eq. 1) on model and neural assemblies.

For an image pair (clean image, its degraded copy) and a group of units (a layer or ROI),

.. math:: d = r(A^{ff}_{clean}, A^{rec}_{noisy}) - r(A^{ff}_{clean}, A^{ff}_{noisy})

with ``r`` the Pearson correlation across the group's units. ``d > 0``: the recurrent
response to the degraded image is closer to the feedforward response to the clean one,
i.e. recurrence de-noises.

On fMRI there is no feedforward network. Following Lindsay et al.'s reading of the blur
fMRI data, the first time bin after onset stands for the feedforward response and the
last for the recurrent one, and the clean image's *first* bin is the reference for both:

.. math:: d = r(C_{first}, B_{last}) - r(C_{first}, B_{first})

(C clean, B blurred; patterns centred per voxel and bin over presentations, which removes
the voxel baselines). This is :func:`fmri_denoising_index`'s default
(``definition="paper"``), the same equation as the model's with ``A^{ff} = `` first bin.
An earlier variant kept under ``definition="matched_bins"`` compares each bin with the
clean image's *same* bin, ``r(C_{last}, B_{last}) - r(C_{first}, B_{first})``; it asks
whether the blurred pattern converges on the clean pattern *of its own time*, which a
late change of the clean response itself would also move. The BOLD amplitude differs
between bins: a noisy (low-amplitude) clean first bin attenuates both correlations of the
paper's index alike, shrinking d toward 0, while a blurred last bin with a higher
signal-to-noise ratio than the blurred first bin biases d upwards in either definition;
choose bins of similar amplitude when that matters.

Significance: sign-flip permutation over image pairs (the pair is the unit of
exchangeability), Benjamini-Hochberg FDR across groups.
"""

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import MetricError
from ..scores import Score, Scores
from ..stats.multiple import fdr
from ..stats.resampling import sign_flip_test

PAIR_COORDS = ("source_id", "image_code")


def _pair_coord(da, pair_by):
    if pair_by is not None:
        if pair_by not in da.coords:
            raise MetricError(f"assembly has no {pair_by!r} coord to pair degraded with clean images")
        return pair_by
    for name in PAIR_COORDS:
        if name in da.coords:
            return name
    raise MetricError(f"degraded assembly has none of the coords {PAIR_COORDS} naming each image's clean "
                      "source; pass pair_by= the coord that does")


def at_step(da, step, name):
    """``da`` at model step ``step`` (time bins dropped); ``name`` is used in the error."""
    if "time_bin" not in da.dims:
        return da
    if da.sizes["time_bin"] == 1:
        return da.isel(time_bin=0)
    if step is None:
        raise MetricError(f"{name} has {da.sizes['time_bin']} time bins; pass the step to use")
    return da.isel(time_bin=step)


def group_codes(da, by):
    """Integer group code per neuroid and the group labels, grouping by neuroid coord(s) ``by``."""
    if by is None:
        return np.zeros(da.sizes["neuroid"], dtype=np.int64), np.array(["all"])
    names = [by] if isinstance(by, str) else list(by)
    missing = [n for n in names if n not in da.coords]
    if missing:
        raise MetricError(f"assembly has no neuroid coord {missing[0]!r} to group by")
    # one array per coord, then one label per unit (an xarray lookup per unit and coord cost
    # seconds on a few thousand voxels)
    columns = [np.asarray(da[n].values).astype(str) for n in names]
    labels = pd.Series(columns[0] if len(columns) == 1 else ["|".join(parts) for parts in zip(*columns)])
    codes, uniques = pd.factorize(labels)
    return codes, np.asarray(uniques)


def pattern_correlations(a, b, codes, n_groups):
    """Pearson r across units within each group, per row.

    ``a``, ``b``: ``(n_pairs, n_units)``; ``codes``: ``(n_units,)`` group of each unit.
    Returns ``(n_pairs, n_groups)``; constant patterns give NaN.
    """
    out = np.empty((a.shape[0], n_groups))
    for g in range(n_groups):
        x = a[:, codes == g].astype(np.float64)
        y = b[:, codes == g].astype(np.float64)
        x = x - x.mean(1, keepdims=True)
        y = y - y.mean(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, g] = (x * y).sum(1) / np.sqrt((x * x).sum(1) * (y * y).sum(1))
    return out


def _pairs(clean, noisy, pair_by):
    """Row index into ``clean`` for every ``noisy`` presentation (by source id).

    A degraded image's pairing coord (``source_id`` or ``image_code``) names its clean
    source: the clean presentation with the same value of that coord when the clean set has
    it (a BIDS events table gives every image its numeric ``image_code``, clean ones
    included), else the one whose ``stimulus_id`` it is (the workbench's renders, BData's
    named codes)."""
    key = _pair_coord(noisy, pair_by)
    sources = noisy[key].values.astype(str)
    candidates = [key] if key in clean.coords and key != "stimulus_id" else []
    rows, missing = None, None
    for name in candidates + ["stimulus_id"]:
        index = pd.Index(clean[name].values.astype(str))
        if index.has_duplicates:
            if name == "stimulus_id":
                raise MetricError("clean assembly repeats stimulus_id values; average repetitions first")
            continue  # not one clean image per code: not a pairing coord on this side
        rows = index.get_indexer(sources)
        if (rows >= 0).all():
            return rows
        missing = sources[rows < 0] if missing is None else missing
    raise MetricError(f"{len(missing)} degraded image(s) have no clean partner (e.g. {str(missing[0])!r} in "
                      f"coord {key!r}, looked up in the clean images' {' and '.join(candidates + ['stimulus_id'])}); "
                      "clean and degraded sets must be paired")


def _index_array(d, degraded, clean, rows, groups, definition):
    """``(pair, group)`` indices labelled by degraded id, clean source id and group."""
    return xr.DataArray(d, dims=("pair", "group"), coords={
        "stimulus_id": ("pair", degraded.stimulus_id.values.astype(str)),
        "source_id": ("pair", clean.stimulus_id.values[rows].astype(str)),
        "group": groups}, name="denoising_index", attrs={"definition": definition})


def denoising_index(clean_ff, noisy_rec, noisy_ff, by="layer", step=-1, pair_by=None):
    """Per image pair and group: ``r(clean_ff, noisy_rec) - r(clean_ff, noisy_ff)``.

    Parameters
    ----------
    clean_ff : Assembly
        Feedforward responses to the clean images (one presentation per image).
    noisy_rec, noisy_ff : Assembly
        Recurrent and feedforward responses to the degraded images; the same presentations
        and neuroids in both (aligned by ``stimulus_id``/``neuroid_id``). Each degraded
        image names its clean source in ``pair_by`` (default ``source_id`` or
        ``image_code``).
    by : str or list of str or None
        Neuroid coord(s) whose groups are compared separately (``layer``; ``region``).
    step : int or None
        Time bin used where an assembly has several (default the last).

    Returns
    -------
    xarray.DataArray
        ``(pair, group)`` de-noising indices with coords ``stimulus_id`` (degraded),
        ``source_id`` and ``group``.
    """
    clean = at_step(clean_ff, step, "clean_ff")
    rec = at_step(noisy_rec, step, "noisy_rec")
    ff = at_step(noisy_ff, step, "noisy_ff")
    if rec.sizes["presentation"] == 0:
        raise MetricError("no degraded presentations to score")
    same = (np.array_equal(rec.stimulus_id.values, ff.stimulus_id.values)
            and np.array_equal(rec.neuroid_id.values, ff.neuroid_id.values)
            and np.array_equal(clean.neuroid_id.values, rec.neuroid_id.values))
    if not same:
        raise MetricError("noisy_rec, noisy_ff and clean_ff must have the same neuroids, and the two noisy "
                          "assemblies the same presentations, in the same order")
    rows = _pairs(clean, rec, pair_by)
    codes, groups = group_codes(rec, by)
    clean_values = clean.values[rows]
    d = (pattern_correlations(clean_values, rec.values, codes, len(groups))
         - pattern_correlations(clean_values, ff.values, codes, len(groups)))
    return _index_array(d, rec, clean, rows, groups,
                        "r(clean_ff, noisy_rec) - r(clean_ff, noisy_ff), Pearson across units")


FMRI_DEFINITIONS = ("paper", "matched_bins")


def fmri_denoising_index(assembly, level, early=0, late=-1, by=("subject", "hemisphere", "region"),
                         level_coord="blur_level", pair_by=None, definition="paper"):
    """De-noising of one subject's (or several subjects') fMRI patterns: late vs early bin.

    ``definition="paper"`` (default): ``d = r(clean_early, degraded_late) -
    r(clean_early, degraded_early)``; the clean image's early (feedforward) pattern is the
    reference, as in the model index ``r(A_ff clean, A_rec noisy) - r(A_ff clean, A_ff
    noisy)`` of Lindsay et al. (eq. 1) with the first bin as the feedforward response and the
    last as the recurrent one. ``definition="matched_bins"``: ``r(clean_late,
    degraded_late) - r(clean_early, degraded_early)`` (each bin against the clean image's
    same bin; the workbench's earlier default).

    Parameters
    ----------
    assembly : Assembly
        Repetition-averaged responses to clean (``level_coord == 0``) and degraded images.
    level : float
        Degradation level to score (e.g. 25 % blur).
    early, late : int
        Time bins standing for the feedforward and the recurrent response.
    by : neuroid coord(s), default subject x hemisphere x region (those present).
    definition : {"paper", "matched_bins"}

    Returns
    -------
    xarray.DataArray
        ``(pair, group)`` as :func:`denoising_index`.
    """
    if "time_bin" not in assembly.dims or assembly.sizes["time_bin"] < 2:
        raise MetricError("fMRI de-noising compares an early and a late time bin; the assembly has "
                          f"{assembly.sizes.get('time_bin', 0)} (need at least 2)")
    if level_coord not in assembly.coords:
        raise MetricError(f"assembly has no {level_coord!r} coord marking clean (0) and degraded images")
    if definition not in FMRI_DEFINITIONS:
        raise MetricError(f"definition must be one of {FMRI_DEFINITIONS}, got {definition!r}")
    if isinstance(by, (list, tuple)):
        by = [name for name in by if name in assembly.coords] or None
    centred = assembly - assembly.mean("presentation")
    levels = assembly[level_coord].values
    clean = centred.isel(presentation=np.flatnonzero(levels == 0))
    degraded = centred.isel(presentation=np.flatnonzero(levels == level))
    if degraded.sizes["presentation"] == 0:
        raise MetricError(f"no presentations at {level_coord} = {level}; levels present: {sorted(set(levels))}")
    rows = _pairs(clean, degraded, pair_by)
    codes, groups = group_codes(degraded, by)
    clean_early = clean.isel(time_bin=early).values[rows]
    r_early = pattern_correlations(clean_early, degraded.isel(time_bin=early).values, codes, len(groups))
    if definition == "paper":
        r_late = pattern_correlations(clean_early, degraded.isel(time_bin=late).values, codes, len(groups))
        text = (f"r(clean bin {early}, degraded bin {late}) - r(clean bin {early}, degraded bin {early}), "
                "Pearson across voxels of patterns centred per voxel and bin (Lindsay et al.)")
    else:
        r_late = pattern_correlations(clean.isel(time_bin=late).values[rows], degraded.isel(time_bin=late).values,
                                      codes, len(groups))
        text = (f"r(clean, degraded) in time bin {late} minus in time bin {early} (matched bins), Pearson "
                "across voxels of patterns centred per voxel and bin")
    return _index_array(r_late - r_early, degraded, clean, rows, groups, text)


def denoising_test(index, n_permutations=10000, seed=0, alpha=0.05, alternative="two-sided"):
    """Mean de-noising per group, sign-flip p-values over image pairs, BH FDR across groups.

    Parameters
    ----------
    index : xarray.DataArray
        From :func:`denoising_index` or :func:`fmri_denoising_index`.

    Returns
    -------
    workbench.scores.Scores
        One score per group (docs/DESIGN.md §3): ``region`` (the group; also
        ``score["group"]``), ``value`` (mean d), ``ci_low``/``ci_high`` (2.5/97.5 % of the
        mean over a pair bootstrap), ``p_value``, ``q_value`` (FDR), ``p_fwe``, ``null_n``,
        ``n`` (pairs), ``seed``, ``units="denoising_index"``.
    """
    values = index.transpose("pair", "group").values
    finite = np.isfinite(values).all(1)
    if finite.sum() < 2:
        raise MetricError("fewer than 2 image pairs with defined pattern correlations (constant patterns?)")
    values = values[finite]
    test = sign_flip_test(values, n_permutations=n_permutations, seed=seed, alternative=alternative)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    boot = np.stack([values[rng.integers(0, len(values), len(values))].mean(0) for _ in range(1000)])
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    q, _ = fdr(test["p_value"], alpha=alpha)
    return Scores(Score(region=str(g), value=float(test["statistic"][i]), ci_low=float(low[i]),
                        ci_high=float(high[i]), p_value=float(test["p_value"][i]), q_value=float(q[i]),
                        p_fwe=float(test["p_fwe"][i]), null_n=test["n_permutations"], n=int(len(values)),
                        seed=seed, units="denoising_index",
                        extra={"metric": "denoising_index", "alternative": alternative})
                  for i, g in enumerate(index["group"].values))
