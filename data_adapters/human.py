"""Human animal / non-animal ratings (Eberhardt, Cader & Serre 2016 style).

Two sources, one result:

- a psiTurk sqlite database: a participants table with ``workerid``, ``status`` and a JSON
  ``datastring`` whose ``data`` list holds one ``trialdata`` record per trial;
- a jsPsych data file as jsPsych writes it (``jsPsych.data.get().csv()`` or ``.json()``,
  ``localSave``; one participant per file, or many with a participant column added by
  ``jsPsych.data.addProperties``): every record of the timeline, trials among them;
- psiTurk's ``trialdata.csv`` (``download_datafiles``), the same records without status;
- a tidy CSV with one row per trial.

All become :class:`HumanRatings`: the per-trial table (contract columns ``worker``,
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

from workbench.assembly import control_character_id
from workbench.errors import DataFormatError

from .checks import csv_first_row, csv_header

TRIAL_COLUMNS = ("worker", "stimulus_id", "truth", "response", "rt_ms", "max_rt_ms")
# psiTurk status codes of participants who finished: COMPLETED, SUBMITTED, CREDITED, BONUSED.
COMPLETED_STATUSES = (3, 4, 5, 7)
# trialdata keys of the psiTurk experiment -> contract columns (override with fields=...).
DEFAULT_FIELDS = {"stimulus": "stimulus_id", "true_response": "truth", "response": "response",
                  "rt": "rt_ms", "max_rt": "max_rt_ms"}
# jsPsych's own trial fields (``fields="jspsych"``): ``stimulus``, ``response`` and ``rt`` are
# what its response plugins save; ``correct_response`` and ``trial_duration`` are the names
# the jsPsych docs use for a trial's data= and its time limit (save both in data=).
JSPSYCH_FIELDS = {"stimulus": "stimulus_id", "correct_response": "truth", "response": "response",
                  "rt": "rt_ms", "trial_duration": "max_rt_ms"}
FIELD_PRESETS = {"psiturk": DEFAULT_FIELDS, "jspsych": JSPSYCH_FIELDS}
# Columns that name the participant in a jsPsych export (added with
# jsPsych.data.addProperties), tried in this order; without one a file is one participant.
JSPSYCH_WORKER_COLUMNS = ("worker", "workerId", "worker_id", "subject", "subject_id", "participant",
                          "participant_id", "PROLIFIC_PID", "run_id")
# every record jsPsych writes carries these (versions 6 to 8)
JSPSYCH_MARKERS = ("trial_type", "trial_index", "time_elapsed")
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
        What was dropped and why: ``timeouts`` (no response or no rt), ``too_fast`` (an rt
        under ``min_rt_ms``), ``practice_trials``, ``incomplete_participants``,
        ``duplicate_workers``.
    """

    trials: pd.DataFrame
    per_stimulus: pd.DataFrame
    report: dict = field(default_factory=dict)


def sniff_sqlite(path, head):
    return head.startswith(_SQLITE_MAGIC)


def sniff_csv(path, head):
    header = csv_header(head, path)
    return header is not None and {"stimulus_id", "response", "truth"} <= header


def sniff_jspsych(path, head):
    """A jsPsych CSV (its header has jsPsych's own record fields) or JSON array of records."""
    if head.lstrip().startswith(b"["):
        try:
            with open(path, "rb") as handle:
                start = handle.read(1 << 20)
        except OSError:
            return False
        return all(f'"{marker}"'.encode() in start for marker in JSPSYCH_MARKERS[:2])
    header = csv_header(head, path)
    return header is not None and set(JSPSYCH_MARKERS) <= header


def sniff_psiturk_trialdata(path, head):
    """psiTurk's ``trialdata.csv`` (``download_datafiles``): no header; each row ``uniqueid,
    trial number, time, trialdata JSON``."""
    row = csv_first_row(head)
    return row is not None and len(row) == 4 and ":" in row[0] and row[1].strip().isdigit() and row[3].lstrip().startswith("{")


def per_stimulus(trials):
    """pc, uncertainty D = 0.5 - |0.5 - pc|, mean_rt and n_trials per condition and stimulus."""
    correct = (trials["response"] == trials["truth"]).astype(float)
    grouped = trials.assign(correct=correct).groupby(["max_rt_ms", "stimulus_id"], sort=True)
    table = grouped.agg(pc=("correct", "mean"), mean_rt=("rt_ms", "mean"),
                        n_trials=("correct", "size")).reset_index()
    table.insert(3, "uncertainty", 0.5 - np.abs(0.5 - table["pc"]))
    return table


def _where(trials, mask):
    """'worker W, trial T' of the first row in ``mask`` (for messages)."""
    row = trials.loc[mask].iloc[0]
    return f"worker {row['worker']!r}, trial {int(row['trial'])}"


def _numeric(trials, column, path, labels=None):
    values = trials[column]
    compound = values.map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray))).astype(bool)
    if compound.any():  # JSON records may hold arrays or objects where one value belongs
        raise DataFormatError(path, f"column {column!r} holds {values[compound].iloc[0]!r}, not one value "
                              f"({_where(trials, compound)})", "each trial records one response, rt and label")
    if labels is not None and isinstance(labels, dict):
        values = values.map(lambda v: labels.get(v, labels.get(str(v), v)) if pd.notna(v) else v)
    numeric = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & numeric.isna()
    if bad.any():
        raise DataFormatError(
            path, f"column {column!r} has non-numeric values, e.g. {trials.loc[bad, column].iloc[:3].tolist()} "
            f"({_where(trials, bad)})",
            "expected numbers (rt in ms); map response labels to numbers with labels={'f': 0, 'j': 1}",
        )
    return numeric.astype(float)


# rts and time limits all below this (ms) are seconds (see _finish)
_SECONDS_BELOW_MS = 20


def _finish(trials, path, min_rt_ms, report, labels=None):
    """Validate values, count timeouts and too-fast responses, drop them, and summarise per
    stimulus.

    A trial without a response or without an rt is a timeout; one with an rt under
    ``min_rt_ms`` is too fast (an anticipation, not an answer to the image). An rt must be
    finite and >= 0, a time limit finite and > 0, and a response one of the task's labels
    (``labels``, default: the truth values, plus 0 and 1 for a 0/1 task); anything else is an
    error naming the worker and the trial.
    """
    blank = trials[["worker", "stimulus_id"]].isna() | trials[["worker", "stimulus_id"]].astype(str).apply(
        lambda column: column.str.strip().eq(""))
    if blank.any().any():
        column = blank.any().idxmax()
        row = trials.index[int(blank[column].to_numpy().argmax())]
        # a missing id would become the worker or stimulus "nan", its trials pooled as one
        raise DataFormatError(path, f"{column} is missing in {int(blank[column].sum())} trial(s), the first in "
                              f"data row {row}", f"every trial needs its {column}")
    if "trial" not in trials:
        trials = trials.assign(trial=trials.groupby("worker").cumcount())
    for column in ("truth", "response"):
        trials[column] = _numeric(trials, column, path, labels)
    for column in ("rt_ms", "max_rt_ms"):
        trials[column] = _numeric(trials, column, path)
    if trials[["truth", "max_rt_ms"]].isna().any().any() and len(trials):
        missing = trials[["truth", "max_rt_ms"]].isna().sum().to_dict()
        raise DataFormatError(path, f"missing values in {missing} ({_where(trials, trials[['truth', 'max_rt_ms']].isna().any(axis=1))})",
                              "every trial needs its true label and its time limit")
    rt, limit = trials["rt_ms"], trials["max_rt_ms"]
    bad = rt.notna() & ~(np.isfinite(rt) & (rt >= 0))
    if bad.any():
        raise DataFormatError(path, f"rt {float(rt[bad].iloc[0])!r} is not a finite time >= 0 ({_where(trials, bad)})",
                              "rt is in ms; a timeout has no rt")
    bad = ~(np.isfinite(limit) & (limit > 0))
    if bad.any():
        raise DataFormatError(path, f"time limit {float(limit[bad].iloc[0])!r} is not a finite time > 0 "
                              f"({_where(trials, bad)})")
    # seconds saved where ms belong: no human answers within 20 ms, nor is asked to. Read as
    # ms, every trial would be dropped as too fast, or (min_rt_ms=0) kept with rts 1,000 x short
    for name, values in (("time limit", limit), ("rt", rt)):
        finite = values[np.isfinite(values)]
        if len(finite) and finite.max() < _SECONDS_BELOW_MS:
            raise DataFormatError(path, f"every {name} is below {_SECONDS_BELOW_MS} ms (the largest is "
                                  f"{float(finite.max()):g}): these look like seconds",
                                  "rts and time limits are in ms: multiply them by 1000")
    truth = set(trials["truth"].dropna().tolist())
    if labels is None:
        allowed = truth | ({0.0, 1.0} if truth <= {0.0, 1.0} else set())
    else:
        allowed = set(pd.to_numeric(pd.Series(list(labels.values() if isinstance(labels, dict) else labels)),
                                    errors="coerce").tolist())
    for column in ("response", "truth"):
        bad = trials[column].notna() & ~trials[column].isin(allowed)
        if bad.any():
            raise DataFormatError(path, f"{column} {trials.loc[bad, column].iloc[0]:g} is not one of the task's labels "
                                  f"{sorted(allowed)} ({_where(trials, bad)})", "pass labels= the label set")
    timeout = rt.isna() | trials["response"].isna()
    too_fast = ~timeout & (rt < min_rt_ms)
    # counted apart: a report that called anticipations "timeouts" sent users looking for a
    # time-limit problem that was not there
    report["timeouts"], report["too_fast"] = int(timeout.sum()), int(too_fast.sum())
    trials = trials.loc[~(timeout | too_fast), list(TRIAL_COLUMNS)].reset_index(drop=True)
    trials["stimulus_id"] = trials["stimulus_id"].astype(str)
    for column in ("stimulus_id", "worker"):
        bad = control_character_id(trials[column].astype(str))
        if bad is not None:
            raise DataFormatError(path, f"{column} {bad!r} holds a control character",
                                  "ids must be printable text: clean the file")
    if trials.empty:
        raise DataFormatError(path, "no valid trial left after exclusions", str(report))
    return HumanRatings(trials, per_stimulus(trials), report)


def read_csv(path, min_rt_ms=100, practice_trials=0, labels=None):
    """Tidy CSV trials (columns ``TRIAL_COLUMNS``, rt in ms; empty rt or response = timeout).

    ``practice_trials`` drops the first trials (in file order) of each worker, or of each
    (worker, session) when the optional ``session`` column is present; a worker with
    several sessions is reported in ``duplicate_workers``. ``labels``: the task's response
    labels (a sequence, or a dict mapping recorded values to numbers).
    """
    try:
        # ids as written: read as numbers, "0001" became "1.0" once a column held a blank
        trials = pd.read_csv(path, dtype={"worker": str, "stimulus_id": str, "session": str})
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
    trials = trials.assign(trial=trials.groupby("worker").cumcount())
    return _finish(trials.loc[~practice].copy(), path, min_rt_ms, report, labels)


def _trial_rule(trial_filter, fields, path):
    """A predicate on trialdata dicts from ``trial_filter`` (see :func:`read_psiturk`)."""
    if trial_filter is None:
        stimulus_key = next(key for key, column in fields.items() if column == "stimulus_id")
        return lambda trial: stimulus_key in trial
    if callable(trial_filter):
        return trial_filter
    if isinstance(trial_filter, dict):
        wanted = {key: set(v) if isinstance(v, (list, tuple, set)) else {v} for key, v in trial_filter.items()}
        return lambda trial: all(trial.get(key) in values for key, values in wanted.items())
    raise DataFormatError(path, f"trial_filter must be None, a dict or a callable, got {trial_filter!r}")


def read_psiturk(path, table=None, practice_trials=0, min_rt_ms=100,
                 statuses=COMPLETED_STATUSES, fields=None, trial_filter=None, include_debug=False, labels=None):
    """Read a psiTurk participants database.

    A real experiment's ``data`` list mixes trial records with psiTurk's instruction and
    questionnaire records and jsPsych's timeline records; ``trial_filter`` selects the
    trials before any field check and before practice trials are counted.

    Parameters
    ----------
    path : pathlib.Path
    table : str, optional
        Participants table; by default the one table with a ``datastring`` column.
    practice_trials : int
        Leading trials (after ``trial_filter``) of each participant to drop.
    min_rt_ms : float
        Trials with no rt (or no response) count as timeouts, those with a faster rt as
        too fast; both are excluded and counted in ``report``.
    statuses : sequence of int
        psiTurk status codes kept (completed ones by default).
    fields : dict or {"psiturk", "jspsych"}, optional
        trialdata key -> contract column, default ``DEFAULT_FIELDS``; ``"jspsych"`` maps
        jsPsych's native fields (``JSPSYCH_FIELDS``).
    trial_filter : None, dict or callable
        Which records are trials: None keeps records whose trialdata has the stimulus key;
        ``{"phase": "TEST"}`` or ``{"trial_type": ["image-keyboard-response"]}`` keeps
        records whose field has one of the values; a callable takes the trialdata dict.
        Other records are counted in ``report["non_trial_records"]``.
    include_debug : bool
        Keep participants whose psiTurk ``mode`` is ``"debug"`` (dropped and counted in
        ``report["debug_participants"]`` by default).
    labels : sequence or dict, optional
        The task's response labels, or a mapping from recorded responses (e.g. jsPsych key
        names ``{"f": 0, "j": 1}``) to them.
    """
    fields = _field_map(fields or DEFAULT_FIELDS, path)
    is_trial = _trial_rule(trial_filter, fields, path)
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
            columns = set(_columns(connection, table))
            missing = {"workerid", "status", "datastring"} - columns
            if missing:
                raise DataFormatError(path, f"table {table!r} lacks columns {sorted(missing)}")
            mode = '"mode"' if "mode" in columns else "NULL"
            rows = connection.execute(f'SELECT workerid, status, datastring, {mode} FROM "{table}"').fetchall()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as error:  # a damaged name or text is not UTF-8
        raise DataFormatError(path, f"cannot be read as sqlite ({type(error).__name__}: {error})") from None

    debug = [row for row in rows if row[3] == "debug"] if not include_debug else []
    rows = [row for row in rows if include_debug or row[3] != "debug"]
    kept = [row for row in rows if row[1] in statuses]
    workers = pd.Series([row[0] for row in kept], dtype=object)
    report = {"incomplete_participants": len(rows) - len(kept), "debug_participants": len(debug),
              "duplicate_workers": sorted(workers[workers.duplicated()].unique().tolist()),
              "practice_trials": 0, "non_trial_records": 0}
    participants = []
    for worker, _, datastring, _ in kept:
        data = _participant_data(path, worker, datastring)
        for i, entry in enumerate(data):
            if not isinstance(entry, dict) or not isinstance(entry.get("trialdata"), dict):
                raise DataFormatError(path, f"record {i} of worker {worker!r} has no trialdata object",
                                      "psiTurk records look like {'trialdata': {...}}")
        participants.append((worker, [entry["trialdata"] for entry in data]))
    return _trial_table(path, participants, fields, is_trial, practice_trials, min_rt_ms, report, labels)


def read_psiturk_trialdata(path, practice_trials=0, min_rt_ms=100, fields=None, trial_filter=None,
                           include_debug=False, labels=None):
    """Read psiTurk's ``trialdata.csv``, as ``psiturk download_datafiles`` writes it.

    Each row is one ``recordTrialData`` call: ``uniqueid`` (``workerid:assignmentid``), the
    trial number, the time and the trialdata as JSON. The file has no status column, so
    participants who did not finish cannot be told apart (``report["incomplete_participants"]``
    is None: read the database itself for that). Participants whose unique id starts with
    ``debug`` (psiTurk's debug mode) are dropped unless ``include_debug``. Other options as
    :func:`read_psiturk`.
    """
    import csv
    import io

    fields = _field_map(fields or DEFAULT_FIELDS, path)
    is_trial = _trial_rule(trial_filter, fields, path)
    try:
        rows = list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8-sig"))))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataFormatError(path, f"cannot be read as CSV text ({type(error).__name__}: {error})") from None
    participants, debug = {}, set()  # unique id -> records, in file order
    for number, row in enumerate(rows, 1):
        if not row:
            continue
        if len(row) != 4:
            raise DataFormatError(path, f"row {number} has {len(row)} fields",
                                  "psiTurk's trialdata.csv rows are uniqueid, trial, time, trialdata JSON")
        uniqueid, _, _, text = row
        trial = _json(path, text, f"row {number}: trialdata is not JSON")
        if not isinstance(trial, dict):
            raise DataFormatError(path, f"row {number}: trialdata is not an object",
                                  "psiTurk records look like {'trialdata': {...}}")
        if uniqueid.startswith("debug") and not include_debug:
            debug.add(uniqueid)
            continue
        participants.setdefault(uniqueid, []).append(trial)
    workers = pd.Series([uniqueid.split(":", 1)[0] for uniqueid in participants], dtype=object)  # workerid:assignmentid
    report = {"incomplete_participants": None, "debug_participants": len(debug),
              "duplicate_workers": sorted(workers[workers.duplicated()].unique().tolist()),
              "practice_trials": 0, "non_trial_records": 0}
    return _trial_table(path, list(zip(workers, participants.values())), fields, is_trial, practice_trials,
                        min_rt_ms, report, labels)


def _field_map(fields, path):
    """A trialdata key -> contract column dict from a dict or a preset's name."""
    fields = FIELD_PRESETS.get(fields, fields) if isinstance(fields, str) else fields
    if not isinstance(fields, dict) or "stimulus_id" not in fields.values():
        raise DataFormatError(path, f"fields must map trialdata keys to {list(TRIAL_COLUMNS[1:])} "
                              f"or name a preset {sorted(FIELD_PRESETS)}, got {fields!r}")
    return fields


def _trial_table(path, participants, fields, is_trial, practice_trials, min_rt_ms, report, labels):
    """Trials of ``participants`` (``(worker, [record dict, ...])`` in file order): records
    ``is_trial`` keeps, each with every mapped field (a missing rt or response is a timeout),
    less each participant's first ``practice_trials``; then :func:`_finish`."""
    records = []
    for worker, data in participants:
        n_trials = 0
        for i, trial in enumerate(data):
            if not is_trial(trial):
                report["non_trial_records"] += 1
                continue
            absent = [key for key in fields if key not in trial and fields[key] not in ("rt_ms", "response")]
            if absent:
                raise DataFormatError(path, f"trial {i} of worker {worker!r} lacks {absent}",
                                      "map the experiment's keys with fields={key: column}, or select trials "
                                      "with trial_filter=")
            named = [key for key, column in fields.items()
                     if column == "stimulus_id" and isinstance(trial.get(key), (list, dict))]
            if named:  # e.g. an animation's list of frames: no one stimulus to score
                raise DataFormatError(path, f"trial {i} of worker {worker!r}: {named[0]!r} holds "
                                      f"{trial[named[0]]!r}, not one stimulus",
                                      "select single-image trials with trial_filter=")
            n_trials += 1
            if n_trials <= practice_trials:
                report["practice_trials"] += 1
                continue
            records.append({"worker": worker, "trial": i,
                            **{column: trial.get(key) for key, column in fields.items()}})
    trials = pd.DataFrame(records, columns=["trial", *TRIAL_COLUMNS])
    return _finish(trials, path, min_rt_ms, report, labels)


def read_jspsych(path, worker_column=None, fields="jspsych", trial_filter=None, practice_trials=0,
                 min_rt_ms=100, max_rt_ms=None, labels=None):
    """Read a jsPsych data file: the CSV or JSON jsPsych writes (``jsPsych.data.get().csv()``,
    ``.json()``, ``localSave``), one record per timeline node, trials among them.

    In jsPsych's CSV every value is quoted, a field a record does not have is empty and a
    ``null`` (a timeout's rt and response) is the text ``null``; both are read as in the JSON.
    JATOS-style files (one JSON array per line, one line per participant) are read too.

    Parameters
    ----------
    path : pathlib.Path
    worker_column : str, optional
        The record field naming the participant; default the first of
        ``JSPSYCH_WORKER_COLUMNS`` present. Without one, the file is one participant named by
        the file (each line of a JATOS file one participant).
    fields : dict or {"jspsych", "psiturk"}
        Record field -> contract column, default jsPsych's (``JSPSYCH_FIELDS``: ``stimulus``,
        ``correct_response``, ``response``, ``rt``, ``trial_duration``).
    trial_filter : None, dict or callable
        Which records are trials; default: records with a stimulus and a correct response
        (instructions and fixations have no correct response). Others are counted in
        ``report["non_trial_records"]``. As :func:`read_psiturk`.
    practice_trials, min_rt_ms, labels :
        As :func:`read_psiturk` (``labels={"f": 0, "j": 1}`` maps key presses).
    max_rt_ms : float, optional
        The time limit of trials whose records do not carry one (jsPsych saves a trial's
        ``trial_duration`` only when the experiment puts it in ``data``).
    """
    fields = _field_map(fields, path)
    records = _jspsych_records(path)
    present = set().union(*(record.keys() for _, record in records)) if records else set()
    if worker_column is None:
        worker_column = next((c for c in JSPSYCH_WORKER_COLUMNS if c in present), None)
    elif worker_column not in present:
        raise DataFormatError(path, f"no record has the participant field {worker_column!r}",
                              f"fields present: {sorted(present)[:20]}")
    limit_key = next((key for key, column in fields.items() if column == "max_rt_ms"), None)
    participants = {}
    for line, record in records:
        if max_rt_ms is not None and limit_key is not None and record.get(limit_key) is None:
            record = {**record, limit_key: max_rt_ms}
        worker = record.get(worker_column) if worker_column else (
            Path(path).stem if line is None else f"{Path(path).stem}:{line}")
        if isinstance(worker, (list, dict)):
            raise DataFormatError(path, f"a record's participant field {worker_column!r} holds {worker!r}",
                                  "a participant is named by one text or number")
        participants.setdefault(worker, []).append(record)
    if trial_filter is None:
        needed = [key for key, column in fields.items() if column in ("stimulus_id", "truth")]
        is_trial = lambda record: all(record.get(key) is not None for key in needed)  # noqa: E731
    else:
        is_trial = _trial_rule(trial_filter, fields, path)
    report = {"incomplete_participants": 0, "duplicate_workers": [], "practice_trials": 0,
              "non_trial_records": 0, "participant_field": worker_column or "(the file name)"}
    return _trial_table(path, list(participants.items()), fields, is_trial, practice_trials, min_rt_ms,
                        report, labels)


def _jspsych_records(path):
    """``[(line or None, record dict), ...]`` of a jsPsych CSV or JSON file, in file order."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataFormatError(path, f"cannot be read as UTF-8 text ({error})") from None
    if text.lstrip().startswith("["):
        try:
            chunks = [(None, json.loads(text))]
        except (ValueError, RecursionError):  # JATOS: one participant's array per line
            chunks = [(n, _json(path, line, "is not jsPsych JSON", "expected the array jsPsych.data.get().json() "
                                "writes")) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        records = []
        for line, chunk in chunks:
            if not isinstance(chunk, list) or not all(isinstance(record, dict) for record in chunk):
                raise DataFormatError(path, "is not an array of jsPsych records (objects)",
                                      "expected the array jsPsych.data.get().json() writes")
            records += [(line, record) for record in chunk]
        return records
    import io

    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
        raise DataFormatError(path, f"cannot be read as CSV ({error})") from None
    # jsPsych writes an absent field as "" and a null as the text "null"
    return [(None, {key: (None if value == "null" else value) for key, value in row.items() if value != ""})
            for row in table.to_dict("records")]


def _json(path, text, problem, fix=None):
    """``text`` parsed as JSON, or a DataFormatError ``problem (error)`` naming ``path``: the
    records of every human-data format are JSON from a participant's browser."""
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError) as error:  # deep nesting, 5,000-digit numbers
        raise DataFormatError(path, f"{problem} ({type(error).__name__}: {str(error)[:200]})", fix) from None


def _participant_data(path, worker, datastring):
    """The ``data`` list of one participant's datastring, or a named error."""
    parsed = _json(path, datastring or "{}", f"datastring of worker {worker!r} is not JSON")
    data = parsed.get("data", []) if isinstance(parsed, dict) else None
    if not isinstance(data, list):
        raise DataFormatError(path, f"datastring of worker {worker!r} has no 'data' list",
                              "psiTurk writes {'data': [...], 'questiondata': {...}, ...}")
    return data


def _columns(connection, table):
    return [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')]
