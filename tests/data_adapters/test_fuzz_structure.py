"""Fuzzing every loader's structure, not only its bytes: dropped keys, changed dtypes and
shapes, damaged JSON, and the byte-level damage of the formats test_fuzz.py does not cover
(NIfTI, stimulus sets, zarr stores, BData with ROIs). Each mutated file either loads into the
contract or raises the project's DataFormatError naming it, within a time limit: never
another exception, never a hang."""

import contextlib
import json
import shutil
import signal
import sqlite3
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import data_adapters
from workbench import simulators
from workbench.assembly import validate
from workbench.errors import DataFormatError, ExtractionError
from workbench.models import extract, open_activations, zoo
from workbench.stimuli import digits, from_image_files

FUZZ = settings(max_examples=20, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
TIME_LIMIT_S = 30


@contextlib.contextmanager
def time_limit(seconds=TIME_LIMIT_S):
    def expire(*_):
        raise TimeoutError(f"a loader ran over {seconds} s (a hang)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def load_or_named_error(path, loader=None, also=(), **options):
    """The loader's result (validated) or our named error naming ``path`` (or a file in
    ``also``, e.g. the events table); anything else fails the test."""
    try:
        with time_limit(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = (loader or data_adapters.load)(path, **options)
    except (DataFormatError, ExtractionError) as error:
        assert any(p.name in str(error) for p in (path, *also)), error
        return None
    if hasattr(result, "dims"):
        validate(result)
    return result


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    blur = simulators.simulate_blur_fmri(root / "blur", n_subjects=1, seed=1)
    subject = next(iter(blur.bdata))
    nifti = blur.nifti[subject]
    folder = root / "images"
    folder.mkdir()
    shown = digits(4, size=8)
    from PIL import Image

    for i in range(4):
        pixels = (255 * (shown.images[i, 0] - shown.images.min()) / np.ptp(shown.images)).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"im{i}.png")
    pd.DataFrame({"image_id": [f"s{i}" for i in range(4)], "filename": [f"im{i}.png" for i in range(4)],
                  "category": ["a", "b", "a", "b"]}).to_csv(folder / "set.csv", index=False)
    store = root / "acts.zarr"
    extract(zoo.build("b", channels=(4, 8)), digits(8, size=16), store=store, progress=False, batch_size=4)
    psiturk = simulators.simulate_human_ratings(root / "ratings.db", n_workers=3, n_images=4).path
    return {"bdata": blur.bdata[subject], "nifti": nifti, "stimuli": folder / "set.csv", "store": store,
            "psiturk": psiturk}


def _nifti_options(nifti):
    return dict(events=nifti["events"], labels=nifti["labels"], n_time_bins=2)


@FUZZ
@given(fraction=st.floats(0.05, 1, exclude_max=True), start=st.floats(0, 1, exclude_max=True),
       junk=st.binary(min_size=1, max_size=32), truncate=st.booleans())
def test_nifti_series_bytes(files, tmp_path, fraction, start, junk, truncate):
    source = bytearray(files["nifti"]["series"].read_bytes())
    if truncate:
        source = source[: int(len(source) * fraction)]
    else:
        at = int(len(source) * start)
        source[at:at + len(junk)] = junk
    path = tmp_path / ("damaged" + "".join(files["nifti"]["series"].suffixes))
    path.write_bytes(bytes(source))
    load_or_named_error(path, **_nifti_options(files["nifti"]))


@FUZZ
@given(column=st.sampled_from(["onset", "duration", "stimulus_id", "trial_type"]),
       value=st.one_of(st.text(max_size=6), st.floats(allow_nan=True, allow_infinity=True), st.none(),
                       st.integers(-10**12, 10**12)),
       row=st.integers(0, 5), drop=st.booleans())
def test_events_tables(files, tmp_path, column, value, row, drop):
    events = pd.read_csv(files["nifti"]["events"], sep=None, engine="python")
    if drop and column in events:
        events = events.drop(columns=[column])
    elif column in events and row < len(events):
        events[column] = events[column].astype(object)
        events.loc[row, column] = value
    path = tmp_path / "events.tsv"
    events.to_csv(path, sep="\t", index=False, na_rep="n/a")
    load_or_named_error(files["nifti"]["series"], also=(path,), **{**_nifti_options(files["nifti"]), "events": path})


@FUZZ
@given(mutation=st.sampled_from(["drop", "dtype", "shape", "strings", "empty"]),
       target=st.sampled_from(["dataset", "metadata/key", "metadata/value", "metadata/description"]))
def test_bdata_structure(files, tmp_path, mutation, target):
    path = tmp_path / "mutated.h5"
    shutil.copy(files["bdata"], path)
    with h5py.File(path, "r+") as handle:
        data = handle[target][()]
        del handle[target]
        if mutation == "dtype":
            handle[target] = np.asarray(data).astype("S8") if np.asarray(data).dtype.kind != "S" else np.zeros(3)
        elif mutation == "shape":
            handle[target] = np.asarray(data).reshape(-1)[: max(1, np.asarray(data).size // 2)]
        elif mutation == "strings":
            handle[target] = np.array([b"x"] * max(1, np.asarray(data).shape[0]))
        elif mutation == "empty":
            handle[target] = np.zeros((0,) + np.asarray(data).shape[1:], dtype=np.asarray(data).dtype)
    load_or_named_error(path)


@FUZZ
@given(fraction=st.floats(0, 1, exclude_max=True))
def test_bdata_with_rois_truncated(files, tmp_path, fraction):
    source = files["bdata"].read_bytes()
    path = tmp_path / "cut.h5"
    path.write_bytes(source[: int(len(source) * fraction)])
    load_or_named_error(path)


@FUZZ
@given(mutation=st.sampled_from(["drop_coord", "dtype", "transpose", "duplicate", "huge_time", "empty"]),
       coord=st.sampled_from(["stimulus_id", "neuroid_id", "time_bin_start", "time_bin_end", "region"]))
def test_brainio_structure(tmp_path, mutation, coord):
    from conftest import make_assembly

    da = make_assembly(repetitions=2)
    da.attrs = {}
    if mutation == "drop_coord":
        da = da.drop_vars(coord)
    elif mutation == "dtype":
        da = da.assign_coords({coord: (da[coord].dims, np.arange(da[coord].size) * 1e300)})
    elif mutation == "transpose":
        da = da.transpose("time_bin", "neuroid", "presentation")
    elif mutation == "duplicate":
        da = da.assign_coords({coord: (da[coord].dims, np.repeat(da[coord].values[:1], da[coord].size))})
    elif mutation == "huge_time":
        da = da.assign_coords(time_bin_start=("time_bin", [0.0, 1e308, 2e308][: da.sizes["time_bin"]]))
    else:
        da = da.isel(neuroid=[])
    path = tmp_path / "mutated.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        da.to_dataset(name="data").to_netcdf(path)  # xarray's writer: no contract check
    load_or_named_error(path)


@FUZZ
@given(key=st.sampled_from(["stimulus", "true_response", "response", "rt", "max_rt", "data", "trialdata"]),
       value=st.one_of(st.none(), st.text(max_size=4), st.floats(allow_nan=True, allow_infinity=True),
                       st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(),
                                                                             max_size=2)),
       drop=st.booleans())
def test_psiturk_json_structure(files, tmp_path, key, value, drop):
    path = tmp_path / "mutated.db"
    shutil.copy(files["psiturk"], path)
    with sqlite3.connect(path) as connection:
        table = next(t for (t,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'"))
        worker, datastring = connection.execute(f'SELECT workerid, datastring FROM "{table}"').fetchone()
        data = json.loads(datastring)
        if key == "data":
            data = {"data": value} if not drop else {}
        elif key == "trialdata":
            data["data"][0] = {"trialdata": value} if not drop else {}
        else:
            trial = data["data"][-1]["trialdata"]
            if drop:
                trial.pop(key, None)
            else:
                trial[key] = value
        connection.execute(f'UPDATE "{table}" SET datastring = ? WHERE workerid = ?', (json.dumps(data), worker))
    connection.close()
    load_or_named_error(path)


@FUZZ
@given(fraction=st.floats(0, 1, exclude_max=True), victim=st.integers(0, 3), column=st.booleans())
def test_stimulus_sets_and_images(files, tmp_path, fraction, victim, column):
    folder = tmp_path / "set"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(files["stimuli"].parent, folder)
    image = folder / f"im{victim}.png"
    image.write_bytes(image.read_bytes()[: int(image.stat().st_size * fraction)])
    table = pd.read_csv(folder / "set.csv")
    if column:
        table = table.drop(columns=["filename"])
    table.to_csv(folder / "set.csv", index=False)
    loaded = load_or_named_error(folder / "set.csv")
    if loaded is not None:
        load_or_named_error(folder / "set.csv", also=(image,),
                            loader=lambda p: from_image_files(data_adapters.load(p)))


@FUZZ
@given(victim=st.integers(0, 10**6), fraction=st.floats(0, 1, exclude_max=True))
def test_activation_stores(files, tmp_path, victim, fraction):
    store = tmp_path / "acts.zarr"
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(files["store"], store)
    members = sorted(p for p in store.rglob("*") if p.is_file())
    target = members[victim % len(members)]
    target.write_bytes(target.read_bytes()[: int(target.stat().st_size * fraction)])
    result = load_or_named_error(store, loader=open_activations, also=(target,))
    if result is not None:
        result.load()


@FUZZ
@given(key=st.sampled_from(["stimulus", "correct_response", "response", "rt", "trial_duration", "subject",
                            "trial_type", "trial_index"]),
       value=st.one_of(st.none(), st.text(max_size=4), st.floats(allow_nan=True, allow_infinity=True),
                       st.booleans(), st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)),
       drop=st.booleans(), as_csv=st.booleans(), row=st.integers(0, 30))
def test_jspsych_record_structure(tmp_path, key, value, drop, as_csv, row):
    """One field of one jsPsych record changed or dropped, in the CSV or the JSON jsPsych writes."""
    from test_jspsych import RESPONSES, json2csv, timeline

    records = [record for subject, responses in RESPONSES.items() for record in timeline(subject, responses)]
    record = records[row % len(records)]
    if drop:
        record.pop(key, None)
    else:
        record[key] = value
    path = tmp_path / ("data.csv" if as_csv else "data.json")
    path.write_text(json2csv(records) if as_csv else json.dumps(records))
    load_or_named_error(path, format="jspsych", labels={"f": 1, "j": 0})
