"""Fuzzing the loaders: a damaged file either loads into the contract or raises DataFormatError.

Never a bare KeyError/IndexError/OSError from inside a library. Hypothesis damages small,
valid files of every format: truncation anywhere, and overwritten byte runs (derandomized,
so CI runs the same cases every time).
"""

import shutil
import warnings

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import data_adapters
from workbench import simulators
from conftest import make_assembly
from data_adapters import bdata
from workbench.assembly import to_netcdf, validate
from workbench.errors import DataFormatError

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("valid")
    files = {}
    to_netcdf(make_assembly(repetitions=2), root / "assembly.nc")
    files["brainio"] = root / "assembly.nc"
    shutil.copy(shared_data / "bdata" / "sample_vmap.h5", root / "bdata.h5")
    files["bdata"] = root / "bdata.h5"
    table = bdata.read_table(files["bdata"])
    bdata.write_mat(root / "bdtb.mat", table.dataset, list(zip(table.keys, table.descriptions, table.values)))
    files["mat5"] = root / "bdtb.mat"
    import scipy.io

    content = scipy.io.loadmat(files["mat5"])
    scipy.io.savemat(root / "bdtbz.mat", {k: v for k, v in content.items() if not k.startswith("__")},
                     do_compression=True)
    files["mat5z"] = root / "bdtbz.mat"
    files["psiturk"] = simulators.simulate_human_ratings(root / "ratings.db", n_workers=4, n_images=6).path
    files["human_csv"] = simulators.simulate_human_ratings(root / "ratings.csv", format="csv",
                                                              n_workers=4, n_images=6).path
    import json

    from test_jspsych import RESPONSES, json2csv, timeline

    records = [record for subject, responses in RESPONSES.items() for record in timeline(subject, responses)]
    (root / "jspsych.csv").write_text(json2csv(records))
    (root / "jspsych.json").write_text(json.dumps(records))
    files["jspsych"], files["jspsych_json"] = root / "jspsych.csv", root / "jspsych.json"
    from test_human import _trialdata_csv

    files["psiturk_trialdata"] = _trialdata_csv(files["psiturk"], root / "trialdata.csv")
    return files


# bdpy's sample file has no ROI keys: load it whole (an option the other formats refuse by name)
OPTIONS = {"bdata": {"require_roi": False}, "mat5": {"require_roi": False}, "mat5z": {"require_roi": False},
           "jspsych": {"labels": {"f": 1, "j": 0}}, "jspsych_json": {"labels": {"f": 1, "j": 0}}}


def _load_or_named_error(path, **options):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = data_adapters.load(path, **options)
    except DataFormatError as error:
        assert str(path) in str(error)
        return
    if hasattr(result, "dims"):
        validate(result)
    else:  # human ratings
        assert {"pc", "uncertainty", "mean_rt", "n_trials"} <= set(result.per_stimulus.columns)


@pytest.mark.parametrize("name", ["brainio", "bdata", "mat5", "psiturk", "human_csv", "jspsych", "jspsych_json",
                                  "psiturk_trialdata"])
@FUZZ
@given(fraction=st.floats(0, 1, exclude_max=True))
def test_truncated_files(valid_files, tmp_path, name, fraction):
    source = valid_files[name].read_bytes()
    path = tmp_path / f"cut{valid_files[name].suffix}"
    path.write_bytes(source[: int(len(source) * fraction)])
    _load_or_named_error(path, **OPTIONS.get(name, {}))


# "mat5" and "mat5z" (compressed, as MATLAB writes -v7): scipy's compiled reader crashes the
# interpreter on some damaged elements, so data_adapters.mat5 checks them first (a crash here
# fails the whole run, loudly)
@pytest.mark.parametrize("name", ["brainio", "bdata", "mat5", "mat5z", "psiturk", "human_csv", "jspsych",
                                  "jspsych_json", "psiturk_trialdata"])
@FUZZ
@given(data=st.data())
def test_overwritten_bytes(valid_files, tmp_path, name, data):
    source = bytearray(valid_files[name].read_bytes())
    start = data.draw(st.integers(0, len(source) - 1), label="start")
    junk = data.draw(st.binary(min_size=1, max_size=64), label="junk")
    source[start:start + len(junk)] = junk
    path = tmp_path / f"damaged{valid_files[name].suffix}"
    path.write_bytes(bytes(source))
    _load_or_named_error(path, **OPTIONS.get(name, {}))


@FUZZ
@given(columns=st.lists(st.sampled_from(["worker", "stimulus_id", "truth", "response", "rt_ms",
                                         "max_rt_ms", "extra"]), unique=True),
       rt=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5)))
def test_csv_columns_and_rt_values(tmp_path, columns, rt):
    frame = pd.DataFrame({c: ["w1", "w2"] if c in ("worker", "stimulus_id") else [1, 0] for c in columns})
    if "rt_ms" in frame:
        frame["rt_ms"] = [rt, 400]
    path = tmp_path / "trials.csv"
    frame.to_csv(path, index=False)
    _load_or_named_error(path)


# Found by fuzzing: these bytes at byte 1186 of the v5 file above make scipy.io.loadmat
# segfault (a struct field whose element claims 44,239 bytes in the 4-byte small form), and
# these at byte 1066 make it raise UnboundLocalError. Run in a child process, so that a
# regression is a failed test, not a crashed run.
DAMAGE = {"segfault": (1186, "cfac22fc7e940ad04fcb8a5b2505"), "unbound-local": (1066, "bdfa0ff0169dc9575674066676")}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_mat5_damage_that_crashes_scipy_is_a_named_error(valid_files, tmp_path, case):
    import subprocess
    import sys

    source = bytearray(valid_files["mat5"].read_bytes())
    assert len(source) == 1592  # the offsets below are this file's
    at, junk = DAMAGE[case]
    source[at:at + len(bytes.fromhex(junk))] = bytes.fromhex(junk)
    path = tmp_path / "damaged.mat"
    path.write_bytes(bytes(source))
    code = ("import sys, data_adapters\n"
            "from workbench.errors import DataFormatError\n"
            "try:\n    data_adapters.load(sys.argv[1], require_roi=False)\n"
            "except DataFormatError as error:\n    print(error)\n")
    child = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    assert str(path) in child.stdout and "damaged MATLAB v5 file in variable 'metaData'" in child.stdout
