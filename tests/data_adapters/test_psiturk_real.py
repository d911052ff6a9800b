"""psiTurk databases as real experiments write them: psiTurk's own records, jsPsych fields,
debug participants, timeouts without an rt key, and values that must be refused."""

import json
import sqlite3

import pytest

import data_adapters
from workbench import DataFormatError

COLUMNS = ("uniqueid", "assignmentid", "workerid", "hitid", "ipaddress", "browser", "platform", "language",
           "cond", "counterbalance", "codeversion", "beginhit", "beginexp", "endhit", "bonus", "status", "mode",
           "datastring")


def _record(i, trialdata):
    return {"uniqueid": "W:A", "current_trial": i, "dateTime": 1500000000000 + i, "trialdata": trialdata}


def _participant(worker, trials, status=4, mode="live"):
    data = [_record(0, {"phase": "INSTRUCTIONS", "template": "instruct-1.html", "indexOf": 0,
                        "action": "NextPage", "viewTime": 3021}),
            _record(1, {"trial_type": "instructions", "trial_index": 0, "time_elapsed": 4100, "rt": 4012})]
    data += [_record(2 + k, t) for k, t in enumerate(trials)]
    data.append(_record(99, {"phase": "postquestionnaire", "status": "submit"}))
    datastring = json.dumps({"condition": 0, "counterbalance": 0, "assignmentId": "A", "workerId": worker,
                             "hitId": "H", "currenttrial": len(data), "bonus": 0, "data": data,
                             "questiondata": {"engagement": "5"}, "eventdata": [], "useragent": "Mozilla/5.0"})
    row = dict.fromkeys(COLUMNS)
    row.update(uniqueid=f"{worker}:A", workerid=worker, status=status, mode=mode, datastring=datastring)
    return tuple(row[c] for c in COLUMNS)


def _write(path, participants):
    with sqlite3.connect(path) as connection:
        connection.execute(f"CREATE TABLE turkdemo ({', '.join(COLUMNS)})")
        connection.executemany(f"INSERT INTO turkdemo VALUES ({', '.join('?' * len(COLUMNS))})", participants)
    connection.close()
    return path


def _trial(stimulus, truth, response, rt, max_rt=1000, **extra):
    trial = {"phase": "TEST", "stimulus": stimulus, "true_response": truth, "response": response, "max_rt": max_rt,
             **extra}
    if rt is not None:
        trial["rt"] = rt
    return trial


@pytest.fixture
def real_db(tmp_path):
    trials = [_trial(f"img{k}", k % 2, k % 2, 400 + k) for k in range(6)]
    trials.append({k: v for k, v in _trial("img6", 1, None, None).items()})  # a timeout: no response, no rt key
    return _write(tmp_path / "participants.db", [
        _participant("W1", trials), _participant("W2", trials),
        _participant("DBG", trials, mode="debug"), _participant("W3", trials[:2], status=2)])


def test_a_real_experiment_loads_with_psiturk_and_jspsych_records_skipped(real_db):
    ratings = data_adapters.load(real_db, practice_trials=2)
    report = ratings.report
    assert report["debug_participants"] == 1 and report["incomplete_participants"] == 1
    assert report["non_trial_records"] == 2 * 3  # instructions, jsPsych timeline record, questionnaire
    assert report["practice_trials"] == 2 * 2 and report["timeouts"] == 2
    assert sorted(ratings.trials["stimulus_id"].unique()) == ["img2", "img3", "img4", "img5"]
    with_debug = data_adapters.load(real_db, include_debug=True)
    assert with_debug.report["debug_participants"] == 0 and len(with_debug.trials) == 3 * 6


def test_trial_filter_by_field_or_callable(real_db):
    by_phase = data_adapters.load(real_db, trial_filter={"phase": "TEST"})
    by_callable = data_adapters.load(real_db, trial_filter=lambda t: t.get("phase") == "TEST")
    assert by_phase.trials.equals(by_callable.trials) and len(by_phase.trials) == 12
    with pytest.raises(DataFormatError, match="lacks"):
        data_adapters.load(real_db, trial_filter=lambda t: True)  # instruction records are not trials


def test_jspsych_fields_and_key_labels(tmp_path):
    trials = [{"trial_type": "image-keyboard-response", "trial_index": 3 + k, "stimulus": f"img/{k}.png",
               "response": "j" if k % 2 else "f", "rt": 350.0 + k, "correct_response": "j" if k % 3 else "f",
               "trial_duration": 2000} for k in range(5)]
    trials.append({"trial_type": "image-keyboard-response", "stimulus": "img/5.png", "response": None, "rt": None,
                   "correct_response": "f", "trial_duration": 2000})
    path = _write(tmp_path / "js.db", [_participant("W1", trials)])
    ratings = data_adapters.load(path, fields="jspsych", labels={"f": 0, "j": 1})
    assert ratings.report["timeouts"] == 1 and len(ratings.trials) == 5
    assert ratings.trials["response"].tolist() == [0, 1, 0, 1, 0] and set(ratings.trials["max_rt_ms"]) == {2000}
    with pytest.raises(DataFormatError, match="non-numeric values.*'f'.*labels="):
        data_adapters.load(path, fields="jspsych")


@pytest.mark.parametrize("bad, words", [
    (_trial("x", 1, 7, 300), "response 7 is not one of the task's labels [0.0, 1.0] (worker 'W1', trial"),
    (_trial("x", 1, 1, -5), "rt -5.0 is not a finite time >= 0 (worker 'W1', trial"),
    (_trial("x", 1, 1, float("inf")), "rt inf is not a finite time"),
    (_trial("x", 1, 1, 300, max_rt=0), "time limit 0.0 is not a finite time > 0"),
])
def test_bad_values_name_worker_and_trial(tmp_path, bad, words):
    good = [_trial(f"img{k}", k % 2, k % 2, 400) for k in range(3)]
    path = _write(tmp_path / "bad.db", [_participant("W1", good + [bad])])
    with pytest.raises(DataFormatError) as info:
        data_adapters.load(path)
    assert words in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("datastring, words", [
    ("{not json", "is not JSON"), ('[1, 2]', "has no 'data' list"), ('{"data": 5}', "has no 'data' list"),
    ('{"data": [5]}', "record 0 of worker 'W1' has no trialdata object"),
])
def test_malformed_datastrings_are_named_errors(tmp_path, datastring, words):
    row = list(_participant("W1", []))
    row[COLUMNS.index("datastring")] = datastring
    path = _write(tmp_path / "m.db", [tuple(row)])
    with pytest.raises(DataFormatError, match="W1"):
        data_adapters.load(path)
    with pytest.raises(DataFormatError) as info:
        data_adapters.load(path)
    assert words in str(info.value)
