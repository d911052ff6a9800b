"""Simulated blur fMRI (Abdelhack & Kamitani 2018 style) with a planted de-noising effect.

Each subject sees clean digits and Gaussian-blurred copies (0, 6, 12, 25 % of the width) for
``n_time_bins`` TRs each. A voxel of ROI ``r`` reads a fixed random linear combination of
the image's pixels, ``p_v(x)``, scaled to unit variance over the clean images. The BOLD
value of a trial showing image ``x`` blurred to ``b(x)``, in time bin ``t``, is

.. math:: y_{v t} = \\beta_v + h_t \\left[(1 - w_t)\\, p_v(b(x)) + w_t\\, p_v(x)\\right]
          + \\varepsilon, \\quad \\varepsilon \\sim N(0, \\sigma^2),

with ``beta_v`` a baseline (about 100), ``h_t`` a haemodynamic amplitude per bin and
``w_t`` the planted de-noising weight: ``strength * t / (T - 1)`` in the chosen ROIs and
subjects (the blurred image's pattern drifts toward the clean one's over the trial, the
effect Abdelhack & Kamitani and Lindsay et al. looked for), 0 everywhere else and for clean
trials. The truth returned is the noiseless pattern similarity (Pearson across voxels,
mean over images) between each blurred trial and its clean image per bin: flat where
nothing was planted, rising where it was.

Files per subject: a BData ``.h5`` (``VoxelData``, ``ROI_LH_V1``-style ROI keys,
``voxel_x/y/z``, sample keys ``ImageCode`` (value-mapped to the stimulus id),
``Modification``, ``Category``, ``Run``, ``TimeBin``) and a NIfTI series (one volume per
sample) with a label image and an events table, both readable by
:func:`data_adapters.load`.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from workbench import stimuli as stimulus_sets
from workbench.errors import WorkbenchError, check_count, check_interval
from workbench.storage import atomic_path, write_json

from data_adapters import bdata
from data_adapters.nifti import SIMULATED_MARK

DEFAULT_ROIS = ("V1", "V2", "V4", "LOC")
BLUR_LEVELS = (0.0, 6.0, 12.0, 25.0)
# BOLD amplitude in each TR bin of an 8 s presentation (rise, peak, plateau, fall).
HRF_BINS = (0.35, 1.0, 0.85, 0.45)
GRID = (10, 10, 10)  # NIfTI grid; the left hemisphere holds x < 5
HEMISPHERES = (("LH", "left"), ("RH", "right"))


@dataclass
class BlurFmriSimulation:
    """What :func:`simulate_blur_fmri` wrote and the truth it planted.

    Attributes
    ----------
    directory : pathlib.Path
    bdata : dict
        ``{subject: path}`` of the BData files.
    nifti : dict
        ``{subject: {"series", "events", "labels": path, "label_names": {code: roi}}}``;
        pass them as ``load(series, events=..., labels=..., label_names=...)``.
    stimuli : workbench.stimuli.StimulusSet
        The clean images (blurred copies: ``workbench.stimuli.blur(stimuli, level)``).
    signal : dict
        ``{subject: xarray.DataArray}`` noiseless BOLD ``(presentation, neuroid,
        time_bin)``: one presentation per (image, blur level), ids as the loaders name them.
    denoising : xarray.DataArray
        Planted weight ``w_t``, dims ``(subject, hemisphere, region, time_bin)``.
    similarity : xarray.DataArray
        Noiseless clean-vs-blurred pattern correlation, dims ``(subject, hemisphere,
        region, blur_level, time_bin)``.
    """

    directory: Path
    bdata: dict
    nifti: dict
    stimuli: object
    signal: dict
    denoising: xr.DataArray
    similarity: xr.DataArray
    params: dict = field(default_factory=dict)


def _subject_name(index):
    return f"sub-{index + 1:02d}"


def simulate_blur_fmri(directory, n_subjects=3, rois=DEFAULT_ROIS, n_images=24,
                       blur_levels=BLUR_LEVELS, voxels_per_roi=30, n_repetitions=2,
                       n_time_bins=4, tr_s=2.0, noise_sd=0.5, denoising_rois=("V4", "LOC"),
                       denoising_subjects=None, denoising_strength=0.4, image_size=16,
                       write_nifti=True, seed=0):
    """Write per-subject BData (and NIfTI) files of a blur experiment with planted truth.

    Parameters
    ----------
    directory : path
        Created if missing; files are ``<subject>.h5`` and ``<subject>_bold.nii.gz``,
        ``<subject>_labels.nii.gz``, ``<subject>_events.tsv`` and the BIDS sidecar
        ``<subject>_bold.json`` (``RepetitionTime``).
    n_subjects : int
        At least 1 (3 by default, like the issue's minimum).
    rois : tuple of str
        ROI names, each present in both hemispheres.
    n_images : int
        Clean digits; each is shown at every blur level ``n_repetitions`` times.
    denoising_rois, denoising_subjects : tuple
        Where the de-noising effect is planted (default subjects: all but the last, so
        one subject is a planted null).
    denoising_strength : float
        Final weight ``w_{T-1}`` in [0, 1].
    noise_sd : float
        Measurement noise (signal patterns have unit variance over images).

    Returns
    -------
    BlurFmriSimulation
    """
    for name, value, minimum in (("n_subjects", n_subjects, 1), ("n_images", n_images, 1),
                                 ("voxels_per_roi", voxels_per_roi, 1), ("n_repetitions", n_repetitions, 1),
                                 ("n_time_bins", n_time_bins, 2), ("image_size", image_size, 1), ("seed", seed, 0)):
        check_count(name, value, minimum)
    check_interval("denoising_strength", denoising_strength, "[0, 1]")
    if n_time_bins > len(HRF_BINS):
        raise WorkbenchError(f"at most {len(HRF_BINS)} time bins (the HRF profile's length)")
    if 2 * len(rois) * voxels_per_roi > np.prod(GRID):
        raise WorkbenchError(f"{len(rois)} ROIs x {voxels_per_roi} voxels x 2 hemispheres "
                             f"do not fit the {GRID} grid")
    unknown = set(denoising_rois) - set(rois)
    if unknown:
        raise WorkbenchError(f"denoising_rois {sorted(unknown)} are not among rois {list(rois)}")
    subjects = [_subject_name(i) for i in range(n_subjects)]
    if denoising_subjects is None:
        denoising_subjects = tuple(subjects[:-1]) if n_subjects > 1 else tuple(subjects)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    clean = stimulus_sets.digits(n_images, size=image_size, seed=seed)
    levels = [float(level) for level in blur_levels]
    if 0.0 not in levels:
        raise WorkbenchError("blur_levels must include 0 (the clean images)")
    shown = {level: stimulus_sets.blur(clean, level) for level in levels}
    pixels = {level: s.images.reshape(n_images, -1).astype(np.float64) for level, s in shown.items()}
    hrf = np.asarray(HRF_BINS[:n_time_bins])
    ramp = np.arange(n_time_bins) / (n_time_bins - 1)

    weights = np.zeros((n_subjects, 2, len(rois), n_time_bins))
    similarity = np.zeros((n_subjects, 2, len(rois), len(levels), n_time_bins))
    params = dict(n_subjects=n_subjects, rois=list(rois), n_images=n_images, blur_levels=levels,
                  voxels_per_roi=voxels_per_roi, n_repetitions=n_repetitions,
                  n_time_bins=n_time_bins, tr_s=tr_s, noise_sd=noise_sd,
                  denoising_rois=list(denoising_rois), denoising_subjects=list(denoising_subjects),
                  denoising_strength=denoising_strength, image_size=image_size, seed=seed)
    codes = np.array([int(s.split("_")[1]) for s in clean.stimulus_ids])
    image_names = dict(zip(codes.astype(float), clean.stimulus_ids))
    bdata_files, nifti_files, signals = {}, {}, {}
    for s_index, subject in enumerate(subjects):
        columns = []  # (hemisphere tag, roi, grid position) per voxel column
        patterns = []  # per voxel column: (n_levels, n_images) before mixing
        w_columns = []
        for h_index, (tag, _) in enumerate(HEMISPHERES):
            positions = _hemisphere_positions(h_index)
            cursor = 0
            for r_index, roi in enumerate(rois):
                projection = rng.standard_normal((voxels_per_roi, pixels[0.0].shape[1]))
                clean_p = pixels[0.0] @ projection.T  # (n_images, n_vox)
                scale = clean_p.std(axis=0)
                planted = roi in denoising_rois and subject in denoising_subjects
                w = denoising_strength * ramp if planted else np.zeros(n_time_bins)
                weights[s_index, h_index, r_index] = w
                per_level = np.stack([(pixels[lv] @ projection.T) / scale for lv in levels])
                for l_index, level in enumerate(levels):
                    w_level = w if level > 0 else np.zeros(n_time_bins)
                    mixed = ((1 - w_level)[:, None, None] * per_level[l_index][None]
                             + w_level[:, None, None] * per_level[0][None])  # (T, img, vox)
                    similarity[s_index, h_index, r_index, l_index] = [
                        np.mean([np.corrcoef(mixed[t, i], per_level[0][i])[0, 1] for i in range(n_images)])
                        for t in range(n_time_bins)]
                columns += [(tag, roi, position)
                            for position in positions[cursor:cursor + voxels_per_roi]]
                cursor += voxels_per_roi
                patterns.append(per_level)  # (n_levels, n_images, n_vox)
                w_columns.append(np.repeat(w[None, :], voxels_per_roi, axis=0))
        per_level = np.concatenate(patterns, axis=2)  # (n_levels, n_images, n_vox)
        w_vox = np.concatenate(w_columns, axis=0)  # (n_vox, T)
        n_vox = per_level.shape[2]
        baseline = 100.0 + 5.0 * rng.standard_normal(n_vox)
        # noiseless response per (level, image, vox, t)
        blur_weight = np.where(np.asarray(levels)[:, None, None] > 0, w_vox[None], 0.0)  # (L, vox, T)
        signal = baseline[None, None, :, None] + hrf[None, None, None, :] * (
            (1 - blur_weight)[:, None] * per_level[..., None]
            + blur_weight[:, None] * per_level[0][None, ..., None])  # (L, img, vox, T)
        trials = [(l_index, i, rep) for rep in range(n_repetitions)
                  for l_index in range(len(levels)) for i in range(n_images)]
        order = rng.permutation(len(trials))
        trials = [trials[k] for k in order]
        trials.sort(key=lambda trial: trial[2])  # runs = repetitions, shuffled within
        n_trials = len(trials)
        level_of, image_of, run_of = (np.array(column) for column in zip(*trials))
        bold = signal[level_of, image_of].transpose(0, 2, 1)  # (n_trials, T, n_vox)
        bold = bold + noise_sd * rng.standard_normal(bold.shape)
        samples = bold.reshape(n_trials * n_time_bins, n_vox)
        sample_fields = {
            "ImageCode": np.repeat(codes[image_of], n_time_bins).astype(float),
            "Modification": np.repeat(np.asarray(levels)[level_of], n_time_bins),
            "Category": np.repeat(clean.metadata["label"].to_numpy()[image_of], n_time_bins).astype(float),
            "Run": np.repeat(run_of + 1, n_time_bins).astype(float),
            "TimeBin": np.tile(np.arange(n_time_bins), n_trials).astype(float),
        }
        bdata_files[subject] = _write_bdata(directory / f"{subject}.h5", samples, columns,
                                            sample_fields, image_names, params, subject)
        names = _stimulus_names(clean.stimulus_ids, levels)
        signals[subject] = xr.DataArray(
            signal.reshape(len(levels) * n_images, n_vox, n_time_bins),
            dims=("presentation", "neuroid", "time_bin"),
            coords={
                "stimulus_id": ("presentation", names.ravel()),
                "blur_level": ("presentation", np.repeat(levels, n_images)),
                "neuroid_id": ("neuroid", np.array(
                    [f"{subject}.{roi}.{dict(HEMISPHERES)[tag]}.{c}" for c, (tag, roi, _) in enumerate(columns)],
                    dtype=object)),
                "region": ("neuroid", np.array([roi for _, roi, _ in columns], dtype=object)),
                "hemisphere": ("neuroid", np.array([dict(HEMISPHERES)[tag] for tag, _, _ in columns], dtype=object)),
                **{axis: ("neuroid", np.array([pos[a] for _, _, pos in columns])) for a, axis in enumerate("ijk")},
                "time_bin_start": ("time_bin", np.arange(n_time_bins) * tr_s * 1000.0),
                "time_bin_end": ("time_bin", (np.arange(n_time_bins) + 1) * tr_s * 1000.0),
            },
            attrs={"simulated": True, "subject": subject},
        )
        if write_nifti:
            nifti_files[subject] = _write_nifti(directory, subject, samples, columns, trials,
                                                names, levels, codes, n_time_bins, tr_s)
    dims_w = ("subject", "hemisphere", "region", "time_bin")
    coords = {"subject": subjects, "hemisphere": [name for _, name in HEMISPHERES],
              "region": list(rois), "time_bin": np.arange(n_time_bins)}
    return BlurFmriSimulation(
        directory=directory, bdata=bdata_files, nifti=nifti_files, stimuli=clean, signal=signals,
        denoising=xr.DataArray(weights, dims=dims_w, coords=coords),
        similarity=xr.DataArray(similarity, dims=dims_w[:3] + ("blur_level", "time_bin"),
                                coords={**coords, "blur_level": levels}),
        params=params,
    )


def _hemisphere_positions(h_index):
    """Grid positions of one hemisphere (x < 5 left, x >= 5 right), C order."""
    half = GRID[0] // 2
    xs = range(0, half) if h_index == 0 else range(half, GRID[0])
    return [(x, y, z) for x in xs for y in range(GRID[1]) for z in range(GRID[2])]


def _stimulus_names(clean_ids, levels):
    """``(n_levels, n_images)`` stimulus ids as the loaders name them."""
    return np.array([[sid if level == 0 else f"{sid}_blur_{level:g}" for sid in clean_ids]
                     for level in levels], dtype=object)


def _write_bdata(path, samples, columns, sample_fields, image_names, params, subject):
    n_vox = samples.shape[1]
    n_columns = n_vox + len(sample_fields)
    dataset = np.concatenate([samples, np.stack(list(sample_fields.values()), axis=1)], axis=1)

    def row(flags):
        values = np.full(n_columns, np.nan)
        for column, value in flags.items():
            values[column] = value
        return values

    metadata = [("VoxelData", "1 = voxel data", row({c: 1 for c in range(n_vox)}))]
    for tag, _ in HEMISPHERES:
        for roi in dict.fromkeys(roi for _, roi, _ in columns):
            members = [c for c, (t, r, _) in enumerate(columns) if t == tag and r == roi]
            metadata.append((f"ROI_{tag}_{roi}", f"1 = ROI {roi} ({tag})", row({c: 1 for c in members})))
    for a, axis in enumerate("xyz"):
        metadata.append((f"voxel_{axis}", f"voxel {axis} index on the NIfTI grid",
                         row({c: pos[a] for c, (_, _, pos) in enumerate(columns)})))
    for offset, key in enumerate(sample_fields):
        metadata.append((key, f"1 = {key}", row({n_vox + offset: 1})))
    bdata.write(path, dataset, metadata, vmap={"ImageCode": image_names},
                attrs={"simulated": True, "simulator": "data_adapters.simulate_blur_fmri",
                       "seed": params["seed"], "subject": subject})
    return path


def _write_nifti(directory, subject, samples, columns, trials, names, levels, codes,
                 n_time_bins, tr_s):
    import nibabel as nib

    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    n_volumes = samples.shape[0]
    series = np.zeros(GRID + (n_volumes,), dtype=np.float32)
    labels = np.zeros(GRID, dtype=np.int16)
    label_names = {}
    for c, (tag, roi, (i, j, k)) in enumerate(columns):
        code = label_names.setdefault(f"{tag}_{roi}", len(label_names) + 1)
        labels[i, j, k] = code
        series[i, j, k] = samples[:, c]
    paths = {"series": directory / f"{subject}_bold.nii.gz",
             "labels": directory / f"{subject}_labels.nii.gz",
             "events": directory / f"{subject}_events.tsv"}
    bold = nib.Nifti1Image(series, affine)
    bold.header.set_xyzt_units("mm", "sec")
    bold.header["pixdim"][4] = tr_s
    bold.header["descrip"] = SIMULATED_MARK
    with atomic_path(paths["series"]) as tmp:
        nib.save(bold, str(tmp) + ".nii.gz")
        Path(str(tmp) + ".nii.gz").replace(tmp)
    with atomic_path(paths["labels"]) as tmp:
        nib.save(nib.Nifti1Image(labels, affine), str(tmp) + ".nii.gz")
        Path(str(tmp) + ".nii.gz").replace(tmp)
    events = pd.DataFrame({
        "onset": np.arange(len(trials)) * n_time_bins * tr_s,
        "duration": float(n_time_bins * tr_s),
        "stimulus_id": [names[l, i] for l, i, _ in trials],
        "condition": ["clean" if levels[l] == 0 else f"blur_{levels[l]:g}" for l, _, _ in trials],
        "blur_level": [levels[l] for l, _, _ in trials],
        "image_code": [int(codes[i]) for _, i, _ in trials],
        "run": [rep + 1 for _, _, rep in trials],
    })
    with atomic_path(paths["events"]) as tmp:
        events.to_csv(tmp, sep="\t", index=False)
    # BIDS keeps the repetition time in the run's JSON sidecar (required there)
    paths["sidecar"] = directory / f"{subject}_bold.json"
    write_json(paths["sidecar"], {"RepetitionTime": float(tr_s), "SimulatedBy": "neural-workbench"})
    paths["label_names"] = {code: name for name, code in label_names.items()}
    return paths
