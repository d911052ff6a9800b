"""Human animal / non-animal ratings (Eberhardt, Cader & Serre 2016 style).

Two sources, one result:

- a psiTurk sqlite database: a participants table with ``workerid``, ``status`` and a JSON
  ``datastring`` whose ``data`` list holds one ``trialdata`` record per trial;
- a tidy CSV with one row per trial.

Both become :class:`HumanRatings`: the per-trial table (contract columns ``worker``,
``stimulus_id``, ``truth``, ``response``, ``rt_ms``, ``max_rt_ms``) and per-stimulus
``pc``, ``uncertainty`` D = 0.5 - |0.5 - PC|, ``mean_rt`` and ``n_trials`` for each
maximum-response-time condition.
"""

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import DataFormatError

from .checks import csv_header

TRIAL_COLUMNS = ("worker", "stimulus_id", "truth", "response", "rt_ms", "max_rt_ms")
# psiTurk status codes of participants who finished: COMPLETED, SUBMITTED, CREDITED, BONUSED.
COMPLETED_STATUSES = (3, 4, 5, 7)
# trialdata keys of the psiTurk experiment -> contract columns (override with fields=...).
DEFAULT_FIELDS = {"stimulus": "stimulus_id", "true_response": "truth", "response": "response",
                  "rt": "rt_ms", "max_rt": "max_rt_ms"}
_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass
class HumanRatings:
    """Loaded ratings.

    Attributes
    ----------
    trials : pandas.DataFrame
        Valid trials, columns ``TRIAL_COLUMNS`` (rt in ms).
    per_stimulus : pandas.DataFrame
        One row per (``max_rt_ms``, ``stimulus_id``): ``pc``, ``uncertainty``,
        ``mean_rt``, ``n_trials``.
    report : dict
        What was dropped and why: ``timeouts``, ``practice_trials``,
        ``incomplete_participants``, ``duplicate_workers``.
    """

    trials: pd.DataFrame
    per_stimulus: pd.DataFrame
    report: dict = field(default_factory=dict)


def sniff_sqlite(path, head):
    return head.startswith(_SQLITE_MAGIC)


def sniff_csv(path, head):
    header = csv_header(head)
    return header is not None and {"stimulus_id", "response", "truth"} <= header


def per_stimulus(trials):
    """pc, uncertainty D = 0.5 - |0.5 - pc|, mean_rt and n_trials per condition and stimulus."""
    correct = (trials["response"] == trials["truth"]).astype(float)
    grouped = trials.assign(correct=correct).groupby(["max_rt_ms", "stimulus_id"], sort=True)
    table = grouped.agg(pc=("correct", "mean"), mean_rt=("rt_ms", "mean"),
                        n_trials=("correct", "size")).reset_index()
    table.insert(3, "uncertainty", 0.5 - np.abs(0.5 - table["pc"]))
    return table


def _finish(trials, path, min_rt_ms, report):
    for column in ("truth", "response", "rt_ms", "max_rt_ms"):
        numeric = pd.to_numeric(trials[column], errors="coerce")
        bad = trials[column].notna() & numeric.isna()
        if bad.any():
            raise DataFormatError(
                path, f"column {column!r} has non-numeric values, e.g. "
                f"{trials.loc[bad, column].iloc[:3].tolist()}", "expected numbers (rt in ms)",
            )
        trials[column] = numeric
    if trials[["truth", "response", "max_rt_ms"]].isna().any().any() and len(trials):
        missing = trials[["truth", "response", "max_rt_ms"]].isna().sum().to_dict()
        raise DataFormatError(path, f"missing values in {missing}", "every trial needs them")
    timeout = trials["rt_ms"].isna() | (trials["rt_ms"] < min_rt_ms)
    report["timeouts"] = int(timeout.sum())
    trials = trials.loc[~timeout, list(TRIAL_COLUMNS)].reset_index(drop=True)
    trials["stimulus_id"] = trials["stimulus_id"].astype(str)
    if trials.empty:
        raise DataFormatError(path, "no valid trial left after exclusions", str(report))
    return HumanRatings(trials, per_stimulus(trials), report)


def read_csv(path, min_rt_ms=100, practice_trials=0):
    """Tidy CSV trials (columns ``TRIAL_COLUMNS``, rt in ms; empty rt = timeout).

    ``practice_trials`` drops the first trials (in file order) of each worker, or of each
    (worker, session) when the optional ``session`` column is present; a worker with
    several sessions is reported in ``duplicate_workers``.
    """
    try:
        trials = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataFormatError(path, f"cannot be read as CSV ({error})") from error
    missing = [c for c in TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise DataFormatError(path, f"missing columns {missing}", f"a trial table needs {list(TRIAL_COLUMNS)}")
    sessions = ["worker", "session"] if "session" in trials.columns else ["worker"]
    practice = trials.groupby(sessions).cumcount() < practice_trials
    per_worker = trials.groupby("worker")["session"].nunique() if "session" in trials.columns else None
    report = {"practice_trials": int(practice.sum()), "incomplete_participants": 0,
              "duplicate_workers": [] if per_worker is None else sorted(per_worker[per_worker > 1].index)}
    return _finish(trials.loc[~practice].copy(), path, min_rt_ms, report)


def read_psiturk(path, table=None, practice_trials=0, min_rt_ms=100,
                 statuses=COMPLETED_STATUSES, fields=None):
    """Read a psiTurk participants database.

    Parameters
    ----------
    path : pathlib.Path
    table : str, optional
        Participants table; by default the one table with a ``datastring`` column.
    practice_trials : int
        Leading trials of each participant to drop.
    min_rt_ms : float
        Trials with no rt or a faster rt count as timeouts and are excluded.
    statuses : sequence of int
        psiTurk status codes kept (completed ones by default).
    fields : dict, optional
        trialdata key -> contract column, default ``DEFAULT_FIELDS``.
    """
    fields = fields or DEFAULT_FIELDS
    try:
        # Read-only URI; as_uri() percent-encodes '?', '#' and '%' in the path.
        with sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True) as connection:
            tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            if table is None:
                candidates = [t for t in tables if "datastring" in _columns(connection, t)]
                if len(candidates) != 1:
                    raise DataFormatError(
                        path, f"no single participants table with a 'datastring' column (tables: {tables})",
                        "pass table=NAME",
                    )
                table = candidates[0]
            elif table not in tables:
                raise DataFormatError(path, f"no table {table!r} (tables: {tables})")
            needed = {"workerid", "status", "datastring"}
            missing = needed - set(_columns(connection, table))
            if missing:
                raise DataFormatError(path, f"table {table!r} lacks columns {sorted(missing)}")
            rows = connection.execute(f'SELECT workerid, status, datastring FROM "{table}"').fetchall()
    except sqlite3.DatabaseError as error:
        raise DataFormatError(path, f"cannot be read as sqlite ({error})") from error

    kept = [row for row in rows if row[1] in statuses]
    workers = pd.Series([row[0] for row in kept])
    report = {"incomplete_participants": len(rows) - len(kept),
              "duplicate_workers": sorted(workers[workers.duplicated()].unique().tolist()),
              "practice_trials": 0}
    records = []
    for worker, _, datastring in kept:
        try:
            data = json.loads(datastring or "{}").get("data", [])
        except json.JSONDecodeError as error:
            raise DataFormatError(path, f"datastring of worker {worker!r} is not JSON ({error})") from error
        for i, entry in enumerate(data):
            trial = entry.get("trialdata", {})
            absent = [key for key in fields if key not in trial and key != "rt"]
            if absent:
                raise DataFormatError(path, f"trial {i} of worker {worker!r} lacks {absent}",
                                      "map the experiment's keys with fields={key: column}")
            if i < practice_trials:
                report["practice_trials"] += 1
                continue
            records.append({"worker": worker, **{column: trial.get(key) for key, column in fields.items()}})
    trials = pd.DataFrame(records, columns=list(TRIAL_COLUMNS))
    return _finish(trials, path, min_rt_ms, report)


def _columns(connection, table):
    return [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')]
