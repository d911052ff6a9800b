"""Data the built-in benchmarks share: the images a model is shown, and the simulated
datasets written once into the cache (atomically) in their real file formats."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import WorkbenchError

IMAGE_SIZE = 32  # the seed zoo's input size


def simulation_key(options, *code):
    """Content key of a simulated dataset: its options, the source files of the code that
    writes it (simulator, hidden network, stimuli) and the package versions, so an edited
    simulator never reuses an old file."""
    import numpy

    from .. import __version__
    from ..keys import ContentKey

    return ContentKey({"options": options, "workbench": __version__, "numpy": numpy.__version__}).source(
        "code", *code).hexdigest(16)


def image_set(stimuli_csv=None, size=IMAGE_SIZE):
    """The images a benchmark can show: its stimulus-set CSV's, else scikit-learn's digits;
    and where they come from (for messages)."""
    import data_adapters

    from ..stimuli import digits, from_image_files

    if stimuli_csv:
        return from_image_files(data_adapters.load_stimulus_set(stimuli_csv), size=size), stimuli_csv
    return digits(size=size), "scikit-learn digits (pass stimuli= a stimulus-set CSV)"


def shown_stimuli(stimulus_ids, source, stimuli_csv=None, images=None):
    """The images of ``stimulus_ids``, in that order; an id without an image is an error
    naming the data source and the image set."""
    shown, where = images or image_set(stimuli_csv)
    index = pd.Index(shown.stimulus_ids).get_indexer(list(stimulus_ids))
    if (index < 0).any():
        missing = np.asarray(stimulus_ids)[index < 0][0]
        raise WorkbenchError(f"{source}: stimulus {missing!r} has no image in {where}")
    return shown.subset(index)


def macaque_recording(path, seed, n_stimuli, data_dir):
    """The recording at ``path``, or the simulated one (written once into ``data_dir``)."""
    import data_adapters

    from ..models import BLNet, extract
    from ..simulators import simulate_macaque
    from ..stimuli import digits

    if path:
        return data_adapters.load(path), path
    key = simulation_key({"seed": seed, "n_stimuli": n_stimuli}, simulate_macaque, BLNet, extract, digits)
    path = Path(data_dir) / f"sim_macaque_seed{seed}_n{n_stimuli}_{key}.nc"
    if not path.exists():
        simulate_macaque(path, n_stimuli=n_stimuli, seed=seed, brain_seed=seed)
    return data_adapters.load(path), str(path)


def blur_fmri(path, seed, data_dir):
    """Per-subject blur-fMRI assemblies (repetitions averaged) and their files."""
    import data_adapters

    from ..assembly import average_repetitions
    from ..simulators import simulate_blur_fmri
    from ..storage import write_json

    if path:
        paths = [path]
    else:
        from ..stimuli import blur, digits

        key = simulation_key({"seed": seed}, simulate_blur_fmri, blur, digits)
        directory = Path(data_dir) / f"sim_blur_fmri_seed{seed}_{key}"
        marker = directory / "complete.json"
        if not marker.exists():
            simulation = simulate_blur_fmri(directory, write_nifti=False, seed=seed)
            write_json(marker, {"bdata": {s: str(p) for s, p in simulation.bdata.items()}})
        paths = list(json.loads(marker.read_text())["bdata"].values())
    return [average_repetitions(data_adapters.load(p)) for p in paths], paths


def human_ratings(path, stimuli_csv, seed, data_dir):
    """``(stimuli, per-image human uncertainty D, source)``: a user's ratings file with its
    images, or simulated ratings of the Spoerer replication's noisy digits."""
    import data_adapters

    from ..replications import human_uncertainty, spoerer_stimuli
    from ..simulators import simulate_human_ratings

    if path:
        uncertainty = human_uncertainty(data_adapters.load(path))
        images = image_set(stimuli_csv)
        known = set(images[0].stimulus_ids)
        ids = [i for i in uncertainty.index if i in known]
        if not ids:
            raise WorkbenchError(f"{path}: no rated stimulus has an image (e.g. {uncertainty.index[0]!r})")
        return shown_stimuli(ids, path, images=images), uncertainty, path
    stimuli, planted = spoerer_stimuli(seed=seed)
    key = simulation_key({"seed": seed}, simulate_human_ratings, spoerer_stimuli)
    path = Path(data_dir) / f"sim_human_seed{seed}_{key}.sqlite"
    if not path.exists():
        simulate_human_ratings(path, uncertainty=planted, seed=seed)
    return stimuli, human_uncertainty(data_adapters.load(path)), str(path)
