"""Data the built-in benchmarks share: the images a model is shown, and the simulated
datasets written once into the cache (atomically) in their real file formats."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import WorkbenchError
from ..storage import exclusive_entry

def simulation_key(options, *code):
    """Content key of a simulated dataset: its options, the source files of the code that
    writes it (simulator, hidden network, stimuli) and the package versions, so an edited
    simulator never reuses an old file."""
    import numpy

    from .. import __version__
    from ..keys import ContentKey

    return ContentKey({"options": options, "workbench": __version__, "numpy": numpy.__version__}).source(
        "code", *code).hexdigest(16)


def render_stimuli(stimulus_ids, source, stimuli_csv=None, preprocessing=None, embedded=None):
    """The images of ``stimulus_ids``, in that order, rendered for a model's
    ``preprocessing`` (default: the zoo's 32 px greyscale): from the stimulus-set CSV when
    given (only the listed ids are read), else from the embedded set that ``embedded`` names
    (a simulated recording's ``embedded_stimuli`` attribute; default scikit-learn's digits).
    An id without an image is an error naming the data source and the image set."""
    import data_adapters

    from ..simulators.macaque import embedded_stimuli
    from ..stimuli import Preprocessing, from_image_files

    preprocessing = preprocessing or Preprocessing()
    ids = [str(i) for i in stimulus_ids]
    if stimuli_csv:
        table = data_adapters.load_stimulus_set(stimuli_csv)
        index = pd.Index(table["stimulus_id"].astype(str)).get_indexer(ids)
        if (index < 0).any():
            raise WorkbenchError(f"{source}: stimulus {ids[int(np.flatnonzero(index < 0)[0])]!r} has no image "
                                 f"in {stimuli_csv}")
        chosen = table.iloc[index].reset_index(drop=True)
        chosen.attrs = dict(table.attrs)
        return from_image_files(chosen, preprocessing=preprocessing, lazy=True)  # bounded memory at scale
    embedded = embedded or {"name": "digits", "n_stimuli": None, "seed": 0}
    try:
        shown = embedded_stimuli(embedded["name"], embedded.get("n_stimuli"), embedded.get("seed", 0),
                                 preprocessing=preprocessing, ids=ids)
    except WorkbenchError as error:
        raise WorkbenchError(f"{source}: {error} (pass stimuli= the recording's stimulus-set CSV)") from None
    order = pd.Index(shown.stimulus_ids).get_indexer(ids)
    return shown.subset(order)


def embedded_of(assembly):
    """The embedded stimulus set a simulated assembly names (``None`` for real data): a dict
    with a ``name``, ``n_stimuli`` and ``seed``, or a named error when the attribute is
    damaged (the file says it is simulated, so guessing the images would score garbage)."""
    text = assembly.attrs.get("embedded_stimuli")
    if not isinstance(text, str):
        return None
    fix = "(fix: pass the recording's stimulus-set CSV with --stimuli)"
    try:
        embedded = json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: deeply nested JSON
        raise WorkbenchError(f"the recording's attribute embedded_stimuli is not JSON "
                             f"({type(error).__name__}) {fix}") from None
    integer = lambda value: value is None or (isinstance(value, int) and not isinstance(value, bool))  # noqa: E731
    if not (isinstance(embedded, dict) and isinstance(embedded.get("name"), str)
            and integer(embedded.get("n_stimuli")) and integer(embedded.get("seed", 0))):
        raise WorkbenchError(f"the recording's attribute embedded_stimuli is {text[:80]!r}, not "
                             f"{{'name': ..., 'n_stimuli': ..., 'seed': ...}} {fix}")
    return embedded


def macaque_recording(path, seed, n_stimuli, data_dir, stimulus_set="digits"):
    """The recording at ``path``, or the simulated one of ``stimulus_set`` (written once into
    ``data_dir``)."""
    import data_adapters

    from ..models import BLNet, extract
    from ..models.training import train
    from ..simulators import simulate_macaque
    from ..stimuli import digits

    if path:
        return data_adapters.load(path), path
    from .. import character_stimuli, object_stimuli

    options = {"seed": seed, "n_stimuli": n_stimuli}
    if stimulus_set != "digits":
        options["stimuli"] = stimulus_set
    key = simulation_key(options, simulate_macaque, BLNet, train, extract, digits, object_stimuli.objects,
                         character_stimuli.characters)
    path = Path(data_dir) / f"sim_macaque_{stimulus_set}_seed{seed}_n{n_stimuli}_{key}.nc"
    with exclusive_entry(path):  # report workers scoring this benchmark side by side simulate it once
        if not path.exists():
            simulate_macaque(path, n_stimuli=n_stimuli, seed=seed, brain_seed=seed, stimuli=stimulus_set,
                             model_cache=Path(data_dir).parent / "models")
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
        with exclusive_entry(directory):
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
        if stimuli_csv:
            known = set(data_adapters.load_stimulus_set(stimuli_csv)["stimulus_id"].astype(str))
        else:
            known = {f"digit_{i:04d}" for i in range(1797)}
        ids = [i for i in uncertainty.index if str(i) in known]
        if not ids:
            raise WorkbenchError(f"{path}: no rated stimulus has an image (e.g. {uncertainty.index[0]!r})")
        return render_stimuli(ids, path, stimuli_csv), uncertainty, path
    stimuli, planted = spoerer_stimuli(seed=seed)
    key = simulation_key({"seed": seed}, simulate_human_ratings, spoerer_stimuli)
    path = Path(data_dir) / f"sim_human_seed{seed}_{key}.sqlite"
    with exclusive_entry(path):
        if not path.exists():
            simulate_human_ratings(path, uncertainty=planted, seed=seed)
    return stimuli, human_uncertainty(data_adapters.load(path)), str(path)
