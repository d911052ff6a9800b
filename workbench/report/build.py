"""Write a batch report: scores.json, scores.csv, figures/, index.html, provenance.json."""

import hashlib
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..storage import atomic_path, write_json, write_text
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
    tasks = plan(config)
    results = execute(tasks, cache_dir, jobs=jobs, scheduler=scheduler, progress=progress)
    records, failures = split_results(results)
    benchmarks = [benchmark_of(spec, config.settings) for spec in config.benchmarks]
    # a real-file benchmark fed a simulator's file is simulated too (the file's attrs say so)
    simulated = any(r["simulated"] for r in records) or all(b.simulated for b in benchmarks)
    scores = {"title": config.settings["title"], "simulated": simulated, "workbench": __version__,
              "settings": config.settings, "scores": records, "failures": failures,
              "normalization": "normalized = sign(r) r^2 / ceiling (split-half Spearman-Brown ceiling)"}
    write_json(out / "scores.json", scores)
    frame = pd.DataFrame(records)
    columns = [c for c in RECORD_COLUMNS if c in frame] + [c for c in frame if c not in RECORD_COLUMNS]
    with atomic_path(out / "scores.csv") as tmp:
        frame.reindex(columns=columns).to_csv(tmp, index=False)
    sections = report_sections(benchmarks, results)
    for section in sections:
        for name, png, _ in section.figures:
            with atomic_path(out / "figures" / name) as tmp:
                tmp.write_bytes(png)
    provenance = {"versions": _versions(), "config": config.as_dict(), "seed": config.settings["seed"],
                  "inputs": _checksums([r.get("data") for r in records if r.get("data")], cache_dir),
                  "tasks": {f"{r['model']} x {r['benchmark']}": r["key"] for r in results if "key" in r},
                  "cache": str(cache_dir)}
    write_json(out / "provenance.json", provenance)
    page = render_batch_report(scores, config, benchmarks, sections, provenance)
    write_text(out / "index.html", page)
    return scores
