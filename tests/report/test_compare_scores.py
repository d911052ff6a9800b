"""scripts/compare_scores.py: records matched by key, values compared exactly, and one line
naming the file (exit 2) when an input is not a report's scores.json."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_scores.py"


def _run(*paths):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, paths)], capture_output=True, text=True,
                          timeout=60)


def test_compare_scores_finds_differences_and_names_unreadable_inputs(tmp_path):
    record = {"model": "bl", "benchmark": "sim-macaque.IT.shared-time-ridge", "region": "IT", "value": 0.5,
              "p_value": None}
    (tmp_path / "old.json").write_text(json.dumps({"scores": [record]}))
    (tmp_path / "same.json").write_text(json.dumps({"scores": [dict(record)]}))
    (tmp_path / "new.json").write_text(json.dumps({"scores": [{**record, "value": 0.51}]}))
    same = _run(tmp_path / "old.json", tmp_path / "same.json")
    assert same.returncode == 0 and "IDENTICAL VALUES" in same.stdout
    changed = _run(tmp_path / "old.json", tmp_path / "new.json")
    assert changed.returncode == 1 and "value: 0.5 != 0.51" in changed.stdout
    (tmp_path / "list.json").write_text("[1, 2]")
    for bad, words in ((tmp_path / "missing.json", "cannot be read"), (SCRIPT, "cannot be read"),
                       (tmp_path / "list.json", "not a report's scores.json")):
        result = _run(tmp_path / "old.json", bad)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip() == result.stderr.strip().splitlines()[0]  # one line
        assert f"compare_scores: error: {bad}: {words}" in result.stderr
