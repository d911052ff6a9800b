"""Data the built-in benchmarks share: the images a model is shown, and the simulated
datasets written once into the cache (atomically) in their real file formats."""

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataFormatError, DataWarning, WorkbenchError
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
        index = image_index(ids, table, stimuli_csv)
        if (index < 0).any():
            raise WorkbenchError(f"{source}: stimulus {ids[int(np.flatnonzero(index < 0)[0])]!r} has no image "
                                 f"in {stimuli_csv} (matched by stimulus_id, then by file name)")
        chosen = table.iloc[index].reset_index(drop=True)
        chosen.attrs = dict(table.attrs)
        if chosen["stimulus_id"].astype(str).tolist() != ids:
            # labelled as the data names them (a file path, say), so everything downstream
            # aligns with the data by stimulus_id; the set's own id is kept beside it
            chosen["stimulus_set_id"] = chosen["stimulus_id"].astype(str)
            chosen["stimulus_id"] = ids
        return from_image_files(chosen, preprocessing=preprocessing, lazy=True)  # bounded memory at scale
    embedded = embedded or {"name": "digits", "n_stimuli": None, "seed": 0}
    try:
        shown = embedded_stimuli(embedded["name"], embedded.get("n_stimuli"), embedded.get("seed", 0),
                                 preprocessing=preprocessing, ids=ids)
    except WorkbenchError as error:
        raise WorkbenchError(f"{source}: {error} (pass stimuli= the recording's stimulus-set CSV)") from None
    order = pd.Index(shown.stimulus_ids).get_indexer(ids)
    return shown.subset(order)


# jsPsych's html-keyboard-response saves the HTML it showed: <img src="img/cat_01.jpg">
# (bounded: an unbounded pattern took 38 s on 100 kB of "<img <img ...", quadratic)
_IMG_SOURCE = re.compile(r"""<img\b[^>]{0,1000}?\bsrc\s*=\s*["']?([^"'\s>]{1,2048})""", re.IGNORECASE)
_MAX_REFERENCE = 4096  # characters of a reference searched for a tag


def _file_keys(reference):
    """What an image reference may be matched by, most specific first: the path as written
    (the ``src`` of an ``<img>`` tag; no URL query or fragment; forward slashes), its file
    name, its stem (the name less a file extension)."""
    text = str(reference).strip()
    found = _IMG_SOURCE.search(text[:_MAX_REFERENCE])
    if found:
        text = found.group(1)
    text = re.split(r"[?#]", text, maxsplit=1)[0].replace("\\", "/")
    name = text.rsplit("/", 1)[-1]
    # only a file extension is cut: "1.5" is not "1" with an extension
    stem = re.sub(r"(?<=.)\.[A-Za-z][A-Za-z0-9]{0,4}$", "", name)
    return list(dict.fromkeys(key for key in (text, name, stem) if key))


def image_index(ids, table, stimuli_csv):
    """Row of the stimulus-set ``table`` that shows each of ``ids`` (-1: none).

    Data files name their stimuli in different ways: BrainIO by the set's ``stimulus_id``,
    jsPsych by the image path it showed (``img/cat_01.jpg``, or the ``<img>`` tag of an HTML
    stimulus), BIDS events by ``stim_file``. An id is matched to the set's ``stimulus_id``
    first, then its path, file name or stem to the ``filename`` column's (or to a
    ``stimulus_id``). A key that names two images is an error, not a guess.
    """
    set_ids = table["stimulus_id"].astype(str).tolist()
    exact = {sid: row for row, sid in enumerate(set_ids)}
    keys = {}
    filenames = table["filename"].tolist() if "filename" in table else [None] * len(table)
    for row, (sid, filename) in enumerate(zip(set_ids, filenames)):
        references = [sid] + ([filename] if isinstance(filename, str) and filename.strip() else [])
        for key in {key for reference in references for key in _file_keys(reference)}:
            keys.setdefault(key, set()).add(row)
    index = np.full(len(ids), -1, dtype=np.int64)
    for i, data_id in enumerate(map(str, ids)):
        if data_id in exact:
            index[i] = exact[data_id]
            continue
        for key in _file_keys(data_id):
            rows = keys.get(key)
            if rows and len(rows) > 1:
                names = ", ".join(repr(set_ids[r]) for r in sorted(rows)[:3])
                raise WorkbenchError(f"stimulus {data_id!r} matches several images of {stimuli_csv} by {key!r} "
                                     f"({names}): name the images uniquely, or give the data the set's stimulus_id")
            if rows:
                index[i] = next(iter(rows))
                break
    return index


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


# what data_adapters.load returns, by the kind of data a file holds
DATA_KINDS = {"recording": "a neural recording (an assembly: BrainIO netCDF, BData, NIfTI)",
              "ratings": "human ratings (psiTurk sqlite, a CSV of trials, jsPsych)",
              "stimulus set": "a stimulus set (the list of images)"}


def load_data_file(path, wanted, load_options=None):
    """``data_adapters.load(path, **load_options)``, refused with a named error when the file
    holds another kind of data than ``wanted`` ("recording" or "ratings"): a benchmark given
    its stimulus CSV as the data, or one dataset's file for another's benchmark."""
    import data_adapters
    import xarray as xr

    loaded = data_adapters.load(path, **(load_options or {}))
    kind = ("recording" if isinstance(loaded, xr.DataArray) else "stimulus set" if isinstance(loaded, pd.DataFrame)
            else "ratings" if hasattr(loaded, "per_stimulus") else None)
    if kind != wanted:
        fix = {"stimulus set": "pass it as stimuli=/--stimuli, and the data file as path=/--path",
               "recording": "data for the macaque.* and blur-fmri.* benchmarks",
               "ratings": "data for human.rt-uncertainty"}.get(kind)
        raise DataFormatError(path, f"holds {DATA_KINDS.get(kind, f'a {type(loaded).__name__}')}, not "
                              f"{DATA_KINDS[wanted]}", fix)
    return loaded


def macaque_recording(path, seed, n_stimuli, data_dir, stimulus_set="digits", load_options=None):
    """The recording at ``path`` (read with ``load_options``), or the simulated one of
    ``stimulus_set`` (written once into ``data_dir``)."""
    import data_adapters

    from ..models import BLNet, extract
    from ..models.training import train
    from ..simulators import simulate_macaque
    from ..stimuli import digits

    if path:
        return load_data_file(path, "recording", load_options), path
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


def blur_fmri(path, seed, data_dir, load_options=None):
    """Per-subject blur-fMRI assemblies (repetitions averaged) and their files: ``path``, one
    file or a list of them (one per subject), each read with ``load_options``; else the
    simulated experiment."""
    from ..assembly import average_repetitions
    from ..simulators import simulate_blur_fmri
    from ..storage import write_json

    if path:
        paths = [str(p) for p in path] if isinstance(path, (list, tuple)) else [str(path)]
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
    options = (load_options or {}) if path else {}
    return [average_repetitions(load_data_file(p, "recording", options)) for p in paths], paths


def human_ratings(path, stimuli_csv, seed, data_dir, load_options=None, preprocessing=None):
    """``(stimuli, per-image human uncertainty D, source)``: a user's ratings file (read with
    ``load_options``) with its images rendered at ``preprocessing`` (default the zoo's 32 px
    greyscale), or simulated ratings of the Spoerer replication's noisy digits (32 px
    greyscale). A rated stimulus is found in ``stimuli_csv`` by id, then by file name
    (:func:`image_index`)."""
    import data_adapters

    from ..replications import human_uncertainty, spoerer_stimuli
    from ..simulators import simulate_human_ratings

    if path:
        uncertainty = human_uncertainty(load_data_file(path, "ratings", load_options))
        rated = [str(i) for i in uncertainty.index]
        if stimuli_csv:
            has_image = image_index(rated, data_adapters.load_stimulus_set(stimuli_csv), stimuli_csv) >= 0
        else:
            has_image = np.isin(rated, [f"digit_{i:04d}" for i in range(1797)])
        ids = [i for i, keep in zip(uncertainty.index, has_image) if keep]
        where = f"in {stimuli_csv}" if stimuli_csv else "among the embedded digits (pass stimuli= the stimulus-set CSV)"
        if not ids:
            raise WorkbenchError(f"{path}: no rated stimulus has an image {where} (e.g. {uncertainty.index[0]!r}; "
                                 "matched by stimulus_id, then by file name)")
        if len(ids) < len(rated):  # scored on the rest, but never silently
            missing = [i for i, keep in zip(rated, has_image) if not keep]
            warnings.warn(f"{path}: {len(missing)} of {len(rated)} rated stimuli have no image {where} and are left "
                          f"out (e.g. {missing[:3]})", DataWarning, stacklevel=2)
        return render_stimuli(ids, path, stimuli_csv, preprocessing=preprocessing), uncertainty, path
    stimuli, planted = spoerer_stimuli(seed=seed)
    key = simulation_key({"seed": seed}, simulate_human_ratings, spoerer_stimuli)
    path = Path(data_dir) / f"sim_human_seed{seed}_{key}.sqlite"
    with exclusive_entry(path):
        if not path.exists():
            simulate_human_ratings(path, uncertainty=planted, seed=seed)
    return stimuli, human_uncertainty(data_adapters.load(path)), str(path)
