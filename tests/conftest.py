import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import data_adapters
from workbench import DataFormatError, WorkbenchError

REPO = Path(__file__).resolve().parents[1]

# Zoo models trained by one of this session's processes (the tests, notebook kernels, dask
# workers) are kept here for the others: content-keyed, so a hit is the same model.
if "WORKBENCH_MODEL_CACHE" not in os.environ:
    os.environ["WORKBENCH_MODEL_CACHE"] = tempfile.mkdtemp(prefix="workbench-models-")
    atexit.register(shutil.rmtree, os.environ["WORKBENCH_MODEL_CACHE"], ignore_errors=True)


# `make test` runs the suite on two pytest-xdist workers, one test module at a time each
# (--dist loadfile). The longest modules go first, so that neither worker is left alone with
# one of them at the end while the other idles (durations measured on 2 cores, Dec 2026).
LONGEST_FIRST = (
    "tests/models/test_zoo.py",  # trains every zoo recipe (the replications reuse them)
    "tests/report/test_report.py",  # trains the simulated recording's network; dask clusters
    "tests/notebooks/test_notebooks.py",
    "tests/report/test_real_models.py",
    "tests/replications/test_replications.py",
    "tests/simulators/test_positive_control.py",
    "tests/cli/test_cli.py",
    "tests/benchmarks/test_preflight.py",
    "tests/simulators/test_slice.py",
)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker sorts alike, as xdist requires
        rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data beside the checkout (or $WORKBENCH_SHARED_DATA); missing is an error."""
    path = Path(os.environ.get("WORKBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        raise FileNotFoundError(
            f"shared fixtures not found at {path}: clone the project with ../shared beside it "
            "or set WORKBENCH_SHARED_DATA"
        )
    return path


def make_assembly(n_stimuli=6, n_neuroids=4, n_bins=3, repetitions=1, seed=0, dtype=np.float64):
    """A small valid assembly; trials are stimulus-major within each repetition."""
    rng = np.random.default_rng(seed)
    stimulus = np.tile([f"s{i}" for i in range(n_stimuli)], repetitions).astype(object)
    coords = {
        "stimulus_id": ("presentation", stimulus),
        "category_name": ("presentation", np.tile([f"c{i % 2}" for i in range(n_stimuli)], repetitions)),
        "neuroid_id": ("neuroid", np.array([f"n{i}" for i in range(n_neuroids)], dtype=object)),
        "region": ("neuroid", np.array(["V4"] * (n_neuroids // 2) + ["IT"] * (n_neuroids - n_neuroids // 2))),
        "time_bin_start": ("time_bin", 10.0 * np.arange(n_bins)),
        "time_bin_end": ("time_bin", 10.0 * np.arange(n_bins) + 10),
    }
    if repetitions > 1:
        coords["repetition"] = ("presentation", np.repeat(np.arange(repetitions), n_stimuli))
    values = rng.standard_normal((n_stimuli * repetitions, n_neuroids, n_bins)).astype(dtype)
    return xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords=coords,
                        attrs={"identifier": "test", "simulated": True})


def assert_named_error(path, match, **options):
    """``data_adapters.load(path)`` raises our DataFormatError naming the file and ``match``."""
    with pytest.raises(DataFormatError) as info:
        data_adapters.load(path, **options)
    assert str(path) in str(info.value)
    assert isinstance(info.value, WorkbenchError)
    assert match in str(info.value)
    return info.value
