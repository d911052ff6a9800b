"""Human ratings: psiTurk sqlite and tidy CSV, against a simulator with planted difficulty."""

import sqlite3

import numpy as np
import pandas as pd
import pytest

import data_adapters
from workbench import simulators
from workbench import DataFormatError


@pytest.fixture(scope="module")
def sqlite_sim(tmp_path_factory):
    return simulators.simulate_human_ratings(tmp_path_factory.mktemp("h") / "ratings.db", seed=0)


def test_path_with_uri_characters(tmp_path):
    sim = simulators.simulate_human_ratings(tmp_path / "a?b#c%d.db", n_workers=5, n_images=6)
    assert len(data_adapters.load(sim.path).trials) > 0


def test_psiturk_exclusions_are_counted(sqlite_sim):
    ratings = data_adapters.load(sqlite_sim.path, practice_trials=sqlite_sim.practice_trials)
    report = ratings.report
    assert report["incomplete_participants"] == sqlite_sim.n_incomplete
    assert report["duplicate_workers"] == [sqlite_sim.duplicate_worker]
    assert report["practice_trials"] == 60 * sqlite_sim.practice_trials  # completed sessions only
    assert report["timeouts"] > 0
    assert not ratings.trials["stimulus_id"].str.startswith("practice").any()
    assert ratings.trials["rt_ms"].notna().all()
    assert set(ratings.per_stimulus["max_rt_ms"]) == {500, 1000, 2000}


def test_uncertainty_recovers_planted_difficulty(sqlite_sim):
    trials = data_adapters.load(sqlite_sim.path, practice_trials=3).trials
    pc = (trials["response"] == trials["truth"]).groupby(trials["stimulus_id"]).mean()
    estimated = (0.5 - np.abs(0.5 - pc)).loc[sqlite_sim.uncertainty.index]
    # ~50 valid answers per image: SE of PC <= 0.07, so D tracks the planted value closely.
    assert np.corrcoef(estimated, sqlite_sim.uncertainty)[0, 1] > 0.85
    assert float(np.mean(estimated - sqlite_sim.uncertainty)) == pytest.approx(0.0, abs=0.03)


def test_per_stimulus_closed_form():
    trials = pd.DataFrame({"worker": list("abcd"), "stimulus_id": ["x"] * 4, "truth": [1] * 4,
                           "response": [1, 1, 1, 0], "rt_ms": [300.0, 500, 400, 600], "max_rt_ms": [1000] * 4})
    row = data_adapters.human.per_stimulus(trials).iloc[0]
    assert (row.pc, row.uncertainty, row.mean_rt, row.n_trials) == (0.75, 0.25, 450.0, 4)


def test_csv_and_sqlite_give_the_same_trials(tmp_path):
    db = simulators.simulate_human_ratings(tmp_path / "r.db", seed=3)
    csv = simulators.simulate_human_ratings(tmp_path / "r.csv", format="csv", seed=3)
    from_db = data_adapters.load(db.path, practice_trials=3)
    from_csv = data_adapters.load(csv.path, practice_trials=3)
    pd.testing.assert_frame_equal(from_db.per_stimulus, from_csv.per_stimulus)
    assert from_csv.report["duplicate_workers"] == ["W000"]
    assert from_csv.report["practice_trials"] == from_db.report["practice_trials"]


def test_sqlite_without_participants_table(tmp_path):
    path = tmp_path / "empty.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE other (x INTEGER)")
    connection.close()
    with pytest.raises(DataFormatError, match="no single participants table") as info:
        data_adapters.load(path)
    assert str(path) in str(info.value)


def test_csv_missing_columns_and_non_numeric_rt(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("worker,stimulus_id,truth,response\na,x,1,1\n")
    with pytest.raises(DataFormatError, match=r"missing columns \['rt_ms', 'max_rt_ms'\]"):
        data_adapters.load(path)
    path.write_text("worker,stimulus_id,truth,response,rt_ms,max_rt_ms\na,x,1,1,fast,1000\n")
    with pytest.raises(DataFormatError, match="column 'rt_ms' has non-numeric values, e.g. \\['fast'\\]"):
        data_adapters.load(path)


def test_rts_and_time_limits_saved_in_seconds_are_named(tmp_path):
    path = tmp_path / "t.csv"
    header = "worker,stimulus_id,truth,response,rt_ms,max_rt_ms\n"
    path.write_text(header + "a,x,1,1,0.61,2\na,y,0,0,0.83,2\n")  # both in seconds
    with pytest.raises(DataFormatError, match="every time limit is below 20 ms .*largest is 2.*seconds") as info:
        data_adapters.load(path)
    assert str(path) in str(info.value) and "multiply them by 1000" in str(info.value)
    path.write_text(header + "a,x,1,1,0.61,2000\na,y,0,0,0.83,2000\n")  # rts alone, even with no rt floor
    with pytest.raises(DataFormatError, match="every rt is below 20 ms"):
        data_adapters.load(path, min_rt_ms=0)
    path.write_text(header + "a,x,1,1,610,2000\na,y,0,0,,2000\n")  # ms, one timeout: loads
    assert data_adapters.load(path).report["timeouts"] == 1


def test_trial_missing_a_field_names_it(tmp_path):
    path = tmp_path / "bad.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE p (workerid TEXT, status INTEGER, datastring TEXT)")
        connection.execute("INSERT INTO p VALUES ('w', 3, ?)", ('{"data": [{"trialdata": {"stimulus": "x"}}]}',))
    connection.close()
    with pytest.raises(DataFormatError, match="trial 0 of worker 'w' lacks"):
        data_adapters.load(path)


@pytest.mark.parametrize("column", ["worker", "stimulus_id"])
def test_a_trial_without_worker_or_stimulus_is_a_named_error(tmp_path, column):
    """A missing worker or stimulus id became the worker or stimulus "nan" (its trials
    pooled as if one stimulus); now a named error giving the data row."""
    path = simulators.simulate_human_ratings(tmp_path / "r.csv", format="csv", n_workers=3, n_images=4).path
    frame = pd.read_csv(path).astype(object)
    frame.loc[5, column] = np.nan
    frame.to_csv(path, index=False)
    with pytest.raises(DataFormatError, match=rf"{column} is missing in 1 trial\(s\), the first in data row 5") as info:
        data_adapters.load(path)
    assert str(path) in str(info.value)


def test_a_database_whose_schema_text_is_not_utf8_is_a_named_error(tmp_path):
    """Python's sqlite3 raises a bare UnicodeDecodeError (not a DatabaseError) for a damaged
    table name in sqlite_master (found by fuzzing)."""
    path = tmp_path / "participants.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE turkdemo (workerid TEXT, status INT, datastring TEXT)")
        connection.execute("INSERT INTO turkdemo VALUES ('w', 3, '{}')")
    connection.close()
    raw = bytearray(path.read_bytes())
    raw[raw.find(b"tableturkdemoturkdemo") + 5] = 0x80  # the name column of sqlite_master's row
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match="cannot be read as sqlite \\(UnicodeDecodeError"):
        data_adapters.load(path)


def _trialdata_csv(database, path):
    """psiTurk's download_datafiles: one csv.writer row per record, (uniqueid, trial, time,
    json.dumps(trialdata)), every participant that has a datastring, no header."""
    import csv
    import json

    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT uniqueid, datastring FROM turkdemo").fetchall()
    connection.close()
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        for uniqueid, datastring in rows:
            for record in json.loads(datastring)["data"]:
                writer.writerow((uniqueid, record["current_trial"], "2026-12-06 10:00:00",
                                 json.dumps(record["trialdata"])))
    return path


def test_psiturk_trialdata_csv_gives_the_trials_of_the_database(tmp_path):
    sim = simulators.simulate_human_ratings(tmp_path / "participants.db", n_workers=6, n_images=8, seed=3)
    path = _trialdata_csv(sim.path, tmp_path / "trialdata.csv")
    from_csv = data_adapters.load(path, practice_trials=3)
    everyone = data_adapters.load(sim.path, practice_trials=3, statuses=range(10))
    pd.testing.assert_frame_equal(from_csv.trials, everyone.trials)
    pd.testing.assert_frame_equal(from_csv.per_stimulus, everyone.per_stimulus)
    assert from_csv.report["incomplete_participants"] is None  # the file has no status to tell
    assert from_csv.report["practice_trials"] == everyone.report["practice_trials"]
    text = path.read_text().splitlines()
    path.write_text("\n".join(text[:2] + ['debugXYZ:debugABC,0,t,"{""stimulus"": ""img_0000"", ""true_response"": 1, '
                                          '""response"": 1, ""rt"": 400, ""max_rt"": 500}"'] + text[2:]) + "\n")
    assert data_adapters.load(path, practice_trials=3).report["debug_participants"] == 1
    path.write_text(text[0] + "\n" + text[1].rsplit(",", 1)[0] + ',"{not json"\n')
    with pytest.raises(DataFormatError, match="row 2: trialdata is not JSON"):
        data_adapters.load(path)
