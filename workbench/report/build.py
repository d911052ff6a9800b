"""Write a batch report: scores.json, scores.csv, figures/, index.html, provenance.json."""

import hashlib
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import WorkbenchError
from ..storage import atomic_path, json_text
from .html import render_batch_report
from .runner import CACHE_MARK, benchmark_of, execute, plan

# scores.csv: these first (when present), then every other field of the records
RECORD_COLUMNS = ["model", "benchmark", "region", "layer", "value", "ci_low", "ci_high", "ceiling", "normalized",
                  "p_value", "null_n", "n", "seed", "simulated"]


def _versions():
    import sklearn
    import torch
    import xarray

    return {"workbench": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "pandas": pd.__version__, "torch": torch.__version__, "xarray": xarray.__version__,
            "scikit-learn": sklearn.__version__}


def _checksums(paths, cache_dir):
    out = {}
    for path in sorted(set(paths)):
        for single in str(path).split(", "):
            p = Path(single.replace(CACHE_MARK, str(cache_dir)))
            if p.is_file():
                out[single] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def split_results(results):
    """Score records of the finished tasks, and ``{model, benchmark, error}`` of the failed."""
    records = [record for result in results if result["status"] != "error" for record in result["records"]]
    failures = [{"model": r["model"], "benchmark": r["benchmark"], "error": r["error"]}
                for r in results if r["status"] == "error"]
    return records, failures


def data_warnings(results):
    """``{model, benchmark, warning}`` of what the finished tasks' data warned about."""
    return [{"model": r["model"], "benchmark": r["benchmark"], "warning": text}
            for r in results if r["status"] != "error" for text in r.get("warnings", [])]


def report_sections(benchmarks, results):
    """One :class:`~workbench.benchmarks.Section` per panel class, in the order the
    benchmarks first appear; each gets the finished tasks of its benchmarks."""
    panels = {}
    for benchmark in benchmarks:
        panels.setdefault(benchmark.panel, set()).add(benchmark.identifier)
    finished = [r for r in results if r["status"] != "error"]
    return [panel().section([r for r in finished if r["benchmark"] in names]) for panel, names in panels.items()]


def build_report(config, out, jobs=1, scheduler=None, cache_dir=None, progress=True):
    """Run every task of ``config`` and write the report into ``out``.

    Returns
    -------
    dict
        The content of ``scores.json`` (``scores``: records; ``failures``: failed tasks).
    """
    out = Path(out)
    cache_dir = Path(cache_dir) if cache_dir else out / "cache"
    check_writable(out)
    check_writable(cache_dir)
    tasks = plan(config)
    results = execute(tasks, cache_dir, jobs=jobs, scheduler=scheduler, progress=progress)
    records, failures = split_results(results)
    benchmarks = [benchmark_of(spec, config.settings) for spec in config.benchmarks]
    # a real-file benchmark fed a simulator's file is simulated too (the file's attrs say so)
    simulated = any(r["simulated"] for r in records) or all(b.simulated for b in benchmarks)
    scores = {"title": config.settings["title"], "simulated": simulated, "workbench": __version__,
              "settings": config.settings, "scores": records, "failures": failures,
              "warnings": data_warnings(results),
              "normalization": "normalized = sum sign(r) r^2 / sum ceiling over a site's reliable bins, "
                                "median over sites (split-half Spearman-Brown ceiling)"}
    sections = report_sections(benchmarks, results)
    provenance = {"versions": _versions(), "config": config.as_dict(), "seed": config.settings["seed"],
                  "inputs": _checksums([r.get("data") for r in records if r.get("data")], cache_dir),
                  "tasks": {f"{r['model']} x {r['benchmark']}": r["key"] for r in results if "key" in r},
                  # what each model was shown and how it was called (its declared input)
                  "model_inputs": {f"{r['model']} x {r['benchmark']}": {k: r[k] for k in ("input", "convention")}
                                   for r in records if r.get("input")},
                  "cache": str(cache_dir)}
    page = render_batch_report(scores, config, benchmarks, sections, provenance)
    frame = pd.DataFrame(records)
    columns = [c for c in RECORD_COLUMNS if c in frame] + [c for c in frame if c not in RECORD_COLUMNS]
    files = {"scores.csv": spreadsheet_safe(frame.reindex(columns=columns)).to_csv(index=False).encode(),
             "provenance.json": None, "index.html": page.encode("utf-8"), "scores.json": None}
    files.update({f"figures/{name}": png for section in sections for name, png, _ in section.figures})
    publish(out, files, {"provenance.json": provenance, "scores.json": scores})
    return scores


def check_writable(folder):
    """Create ``folder`` and prove a file can be written there, before any work is done;
    a one-line error naming the folder otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / ".write-test") as tmp:
            tmp.write_bytes(b"ok")
        (folder / ".write-test").unlink()
    except OSError as error:
        raise WorkbenchError(f"{folder}: cannot write there ({error.strerror or error}); choose another --out "
                             "or free space") from None


def publish(out, files, json_files):
    """Write every report file into a staging folder inside ``out``, then rename each into
    place, ``scores.json`` last: a full disk or a read-only folder leaves the previous
    report as it was and no half-written file."""
    import shutil
    import uuid

    staging = out / f".report-{uuid.uuid4().hex}.tmp"
    try:
        for name, data in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if name in json_files:
                data = json_text(json_files[name]).encode()
            target.write_bytes(data)
        for name in sorted(files, key=lambda n: n == "scores.json"):
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).replace(out / name)
    except OSError as error:
        raise WorkbenchError(f"{out}: the report could not be written ({error.strerror or error}); "
                             "the previous report, if any, is unchanged") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame):
    """Text cells that a spreadsheet would run as a formula (starting ``= + - @``, tab or
    carriage return) get a leading apostrophe, as OWASP advises for CSV exports."""
    frame = frame.copy()
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column]):
            frame[column] = frame[column].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_PREFIXES) else v)
    return frame
