"""Every real-format file in ../shared/data loads through ``data_adapters.load``."""

import pandas as pd

import data_adapters
from workbench.assembly import DIMS, validate

ONE_TRIAL = pd.DataFrame({"onset": [0.0], "duration": [2.0], "stimulus_id": ["volume"]})
# Options a file needs beyond its content (NIfTI volumes carry no events or ROIs; bdpy's
# sample BData file has no ROI keys, which is an error unless asked for).
OPTIONS = {".hdr": dict(events=ONE_TRIAL, masks="epi", tr_s=2.0, n_time_bins=1),
           ".img": dict(events=ONE_TRIAL, masks="epi", tr_s=2.0, n_time_bins=1),
           ".h5": dict(require_roi=False)}


def test_every_shared_file_loads(shared_data):
    files = sorted(p for p in shared_data.rglob("*") if p.is_file() and p.name != "README.md")
    assert len(files) == 14
    kinds = {}
    for path in files:
        result = data_adapters.load(path, **OPTIONS.get(path.suffix, {}))
        if isinstance(result, pd.DataFrame):  # the HvM stimulus set
            assert len(result) == 5760 and result["stimulus_id"].is_unique
            kinds[path.name] = "stimulus_set"
            continue
        validate(result)
        assert result.dims == DIMS and all(result.sizes[d] > 0 for d in DIMS), path
        kinds[path.name] = "assembly"
    assert kinds["hvm_stimulus_metadata.csv"] == "stimulus_set"
    # the EPI folder as one series
    series = data_adapters.load(shared_data / "fmri_epi", events=ONE_TRIAL, masks="epi", tr_s=2.0,
                                n_time_bins=5)
    assert series.sizes["time_bin"] == 5
