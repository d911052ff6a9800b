import json
import subprocess
import sys
from pathlib import Path

from workbench.cli import main


def test_help_runs_from_the_console_script():
    script = Path(sys.executable).parent / "workbench"
    for command in ([str(script), "--help"], [str(script), "demo", "--help"]):
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        assert "demo" in done.stdout


def test_import_both_packages():
    subprocess.run([sys.executable, "-c", "import workbench, data_adapters"], check=True)


def test_demo_writes_scores_and_report(tmp_path, capsys):
    out = tmp_path / "demo <report>"
    argv = ["demo", "--out", str(out), "--n-stimuli", "60", "--permutations", "100", "--models", "b,bl",
            "--no-replications", "--jobs", "1", "--no-progress"]
    assert main(argv) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["simulated"] is True and not scores["failures"]
    assert {record["model"] for record in scores["scores"]} == {"b", "bl"}
    assert {r["region"] for r in scores["scores"] if "macaque" in r["benchmark"]} == {"V4", "IT"}
    page = (out / "index.html").read_text()
    assert 'id="simulated-banner"' in page and "data:image/png;base64," in page
    assert "index.html" in capsys.readouterr().out


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--n-stimuli", "5000", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("workbench demo: error:") and "\n" not in err
