"""jsPsych data files as jsPsych writes them: ``jsPsych.data.get().csv()`` (every value
quoted, an absent field empty, a ``null`` as the text null, CRLF line ends) and ``.json()``,
with instruction, fixation and survey records among the trials."""

import json

import pytest

import data_adapters
from workbench import DataFormatError


def json2csv(records):
    """jsPsych's JSON2CSV (src/modules/data/utils.ts), in Python: columns in order of first
    appearance, every cell quoted with quotes doubled, undefined -> "", objects (and null)
    -> JSON.stringify."""
    columns = []
    for record in records:
        columns += [key for key in record if key not in columns]
    quote = lambda text: '"' + text.replace('"', '""') + '"'  # noqa: E731

    def cell(record, column):
        if column not in record:
            return ""
        value = record[column]
        if value is None or isinstance(value, (dict, list)):
            return json.dumps(value, separators=(",", ":"))
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    lines = [",".join(quote(c) for c in columns)]
    lines += [",".join(quote(cell(record, c)) for c in columns) for record in records]
    return "\r\n".join(lines) + "\r\n"


def timeline(subject, responses):
    """One participant's records: welcome, fixations, image trials (key f = animal, j = not),
    a survey; ``responses``: (image, truth key, pressed key or None, rt or None, limit)."""
    records = [{"rt": 2303.5, "stimulus": "<p>Welcome! Press any key.</p>", "response": " ",
                "trial_type": "html-keyboard-response", "trial_index": 0, "time_elapsed": 2305,
                "internal_node_id": "0.0-0.0"}]
    for i, (image, truth, key, rt, limit) in enumerate(responses):
        records.append({"rt": None, "stimulus": "+", "response": None, "trial_type": "html-keyboard-response",
                        "trial_index": len(records), "time_elapsed": 3000 + 900 * i, "internal_node_id": "0.0-1.0"})
        records.append({"rt": rt, "stimulus": image, "response": key, "trial_type": "image-keyboard-response",
                        "trial_index": len(records), "time_elapsed": 3400 + 900 * i,
                        "internal_node_id": "0.0-1.0-1.0", "correct_response": truth, "trial_duration": limit,
                        "task": "response"})
    records.append({"rt": 8000, "response": {"Q0": "sometimes \"hard\", mostly easy"},
                    "trial_type": "survey-text", "trial_index": len(records), "time_elapsed": 20000,
                    "internal_node_id": "0.0-2.0"})
    return [{**record, "subject": subject} for record in records]  # jsPsych.data.addProperties


RESPONSES = {
    "s1": [("img/cat.png", "f", "f", 512.3000000119209, 500), ("img/car.png", "j", "f", 403.1, 500),
           ("img/dog.png", "f", None, None, 500), ("img/cat.png", "f", "f", 350.0, 1000)],
    "s2": [("img/cat.png", "f", "j", 612.0, 500), ("img/car.png", "j", "j", 388.7, 500),
           ("img/dog.png", "f", "f", 95.0, 500), ("img/cat.png", "f", "f", 702.2, 1000)],
}


@pytest.fixture
def records():
    return [record for subject, responses in RESPONSES.items() for record in timeline(subject, responses)]


def _check(ratings):
    assert ratings.report["timeouts"] == 1  # s1's missing key
    assert ratings.report["too_fast"] == 1  # s2's 95 ms press (< min_rt_ms): not a timeout
    assert ratings.report["non_trial_records"] == 2 * (1 + 4 + 1)  # welcome, fixations, survey
    assert ratings.report["participant_field"] == "subject"
    trials = ratings.trials
    assert len(trials) == 6 and set(trials["worker"]) == {"s1", "s2"}
    assert trials.loc[trials["worker"] == "s1", "rt_ms"].tolist() == [512.3000000119209, 403.1, 350.0]
    table = ratings.per_stimulus.set_index(["max_rt_ms", "stimulus_id"])
    assert table.loc[(500.0, "img/cat.png"), "pc"] == 0.5 and table.loc[(500.0, "img/car.png"), "pc"] == 0.5
    assert table.loc[(1000.0, "img/cat.png"), "pc"] == 1.0 and table.loc[(1000.0, "img/cat.png"), "n_trials"] == 2
    assert (500.0, "img/dog.png") not in table.index


def test_jspsych_csv_as_jspsych_writes_it(tmp_path, records):
    path = tmp_path / "experiment.csv"
    path.write_bytes(json2csv(records).encode("utf-8"))
    assert path.read_text().startswith('"rt","stimulus","response","trial_type"')  # quoted header
    _check(data_adapters.load(path, labels={"f": 1, "j": 0}))


def test_jspsych_json_and_jatos_lines_give_the_same_trials(tmp_path, records):
    (tmp_path / "experiment.json").write_text(json.dumps(records, indent=2))
    _check(data_adapters.load(tmp_path / "experiment.json", labels={"f": 1, "j": 0}))
    by_subject = [[r for r in records if r["subject"] == s] for s in RESPONSES]
    (tmp_path / "jatos.txt").write_text("\n".join(json.dumps(chunk) for chunk in by_subject))
    _check(data_adapters.load(tmp_path / "jatos.txt", labels={"f": 1, "j": 0}))


def test_one_participant_per_file_and_a_time_limit_the_records_lack(tmp_path, records):
    """localSave writes one participant's file without a participant field; jsPsych saves a
    trial's time limit only when the experiment puts it in data."""
    alone = [{k: v for k, v in record.items() if k not in ("subject", "trial_duration")}
             for record in records if record["subject"] == "s1"]
    path = tmp_path / "sub-07.csv"
    path.write_text(json2csv(alone))
    with pytest.raises(DataFormatError, match="lacks \\['trial_duration'\\]"):
        data_adapters.load(path, labels={"f": 1, "j": 0})
    ratings = data_adapters.load(path, labels={"f": 1, "j": 0}, max_rt_ms=750)
    assert set(ratings.trials["worker"]) == {"sub-07"} and ratings.report["participant_field"] == "(the file name)"
    assert (ratings.trials["max_rt_ms"] == 750).all() and len(ratings.trials) == 3


def test_jspsych_files_with_bad_content_are_named_errors(tmp_path, records):
    path = tmp_path / "bad.csv"
    path.write_text(json2csv([{**r, "rt": "fast"} if r.get("correct_response") else r for r in records]))
    with pytest.raises(DataFormatError, match="column 'rt_ms' has non-numeric values, e.g. \\['fast'"):
        data_adapters.load(path, labels={"f": 1, "j": 0})
    path.write_text(json2csv(records))
    with pytest.raises(DataFormatError, match="response 'f'|non-numeric values, e.g. \\['f'"):
        data_adapters.load(path)  # key presses without labels=
    with pytest.raises(DataFormatError, match="no record has the participant field 'PROLIFIC_PID'"):
        data_adapters.load(path, worker_column="PROLIFIC_PID", labels={"f": 1, "j": 0})
    (tmp_path / "bad.json").write_text('[{"trial_type": "x", "trial_index": 0}, 3]')
    with pytest.raises(DataFormatError, match="not an array of jsPsych records"):
        data_adapters.load(tmp_path / "bad.json")
    (tmp_path / "deep.json").write_text('[{"trial_type": "x", "trial_index": 0, "a": ' + "[" * 100000 + "]" * 100000 + "}]")
    with pytest.raises(DataFormatError, match="not jsPsych JSON"):
        data_adapters.load(tmp_path / "deep.json")


def test_quoted_and_wide_headers_are_recognised(tmp_path):
    """R's write.csv quotes the header; a jsPsych header can be wider than the 512 bytes
    the format check reads first; a multi-byte character may straddle those 512 bytes."""
    tidy, accent = tmp_path / "tidy.csv", "\u00e9" * 60
    tidy.write_text('"","worker","stimulus_id","truth","response","rt_ms","max_rt_ms"\n'
                    '"1","w1","caf\u00e9",1,1,500,1000\n' + "".join(
                        f'"{i}","w1","{accent}{i}",1,0,600,1000\n' for i in range(2, 12)))
    assert len(data_adapters.load(tidy).trials) == 11
    wide = [{"trial_type": "image-keyboard-response", "trial_index": 0, "time_elapsed": 10,
             **{f"field_{i:03d}": i for i in range(80)}, "stimulus": "a.png", "response": "f", "rt": 400,
             "correct_response": "f", "trial_duration": 500}]
    (tmp_path / "wide.csv").write_text(json2csv(wide))
    assert len((tmp_path / "wide.csv").read_text().splitlines()[0]) > 512
    assert data_adapters.load(tmp_path / "wide.csv", labels={"f": 1, "j": 0}).trials["stimulus_id"].tolist() == ["a.png"]


@pytest.mark.parametrize("key, value, words", [
    ("subject", [], "participant field 'subject' holds []"),  # TypeError: unhashable type: 'list'
    ("correct_response", {}, "column 'truth' holds {}, not one value"),  # TypeError in the label map
    ("response", [1, 2], "column 'response' holds [1, 2], not one value"),
    ("stimulus", ["a.png", "b.png"], "'stimulus' holds ['a.png', 'b.png'], not one stimulus"),
])
def test_json_arrays_or_objects_where_one_value_belongs_are_named(tmp_path, records, key, value, words):
    """Found by fuzzing the records: jsPsych JSON may hold an array (an animation's frames)
    or an object (a survey's answers) in any field."""
    trial = next(r for r in records if r.get("correct_response"))
    trial[key] = value
    (tmp_path / "data.json").write_text(json.dumps(records))
    with pytest.raises(DataFormatError, match=words.replace("[", "\\[").replace("]", "\\]")
                       .replace("{", "\\{").replace("}", "\\}").replace("(", "\\(")):
        data_adapters.load(tmp_path / "data.json", labels={"f": 1, "j": 0})
