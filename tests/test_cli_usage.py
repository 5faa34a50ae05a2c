"""Every command used wrongly — arguments swapped, missing, unknown, files that are not what they should be —
answers in one line with the documented exit code (README, "Exit codes"), never a traceback; used rightly with
--json, each answers one document named `spark-state/<command>/v1`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXAMPLE_STATE, REPO

from spark_state.cli import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, main

STATE = str(EXAMPLE_STATE)
SIM_INVENTORY = str(REPO / "inventory" / "sim.py")


def _run(argv: list[str]) -> int:
    """main(), with argparse's own exits taken as the exit codes they are."""
    try:
        return main(argv)
    except SystemExit as exit:
        return int(exit.code or 0)


USAGE_MISTAKES = {
    "no command": [],
    "unknown command": ["deploy", STATE],
    "validate without its file": ["validate"],
    "validate with two files": ["validate", STATE, STATE],
    "plan with an unknown flag": ["plan", STATE, "--bogus"],
    "drift with the inventory where the state goes": ["drift", SIM_INVENTORY],
    "drift with an unknown flag": ["drift", STATE, "--bogus"],
    "status without its file": ["status"],
    "status with the inventory where the state goes": ["status", SIM_INVENTORY, "--state", STATE],
    "prune keeping nothing": ["prune", STATE, "--keep", "0"],
    "pin with the inventory where the state goes": ["pin", SIM_INVENTORY],
    "bench with neither a state file nor --url": ["bench", "--no-save"],
    "pyinfra options for a command that is not apply": ["plan", STATE, "--", "--data", "x=y"],
    "apply with the inventory where the state goes": ["apply", SIM_INVENTORY, "--dry"],
    "bench with a concurrency that is not a number": ["bench", "--url", "http://127.0.0.1:9", "--concurrency", "x"],
}


@pytest.mark.parametrize("argv", USAGE_MISTAKES.values(), ids=USAGE_MISTAKES.keys())
def test_a_usage_mistake_is_one_line_and_exit_64(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    said = [line for line in captured.err.splitlines() if line.strip()]
    assert said and ("--help" in captured.err or "usage" in captured.err), captured.err


def test_files_that_are_not_what_they_should_be_are_errors_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.yaml")
    cases = {
        ("status", missing): "nope.yaml",
        ("drift", STATE, "--inventory", STATE): "not a pyinfra inventory",
        ("drift", STATE, "--inventory", str(tmp_path / "nope.py")): "no such inventory file",
        ("plan", STATE, "--host", "spark-99"): "unknown host 'spark-99'",
    }
    for argv, expected in cases.items():
        assert _run(list(argv)) == EXIT_ERROR, argv
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, (argv, err)


def test_panels_are_titled_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["plan", STATE, "--host", "spark-99"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "unknown host" in err.splitlines()[0] and "Error" not in err.splitlines()[0]


def test_a_group_is_taken_wherever_a_host_is(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["plan", STATE, "--host", "nvfp4-fleet", "--json"]) == EXIT_OK
    hosts = [p["host"] for p in json.loads(capsys.readouterr().out)["hosts"]]
    assert hosts == ["spark-01", "spark-02"]
    assert _run(["plan", STATE, "--host", "nope-fleet"]) == EXIT_ERROR
    assert "groups: nvfp4-fleet" in capsys.readouterr().err


def test_every_json_document_names_its_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["validate", STATE, "--json"]) == EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "spark-state/validate/v1" and document["valid"] and document["hosts"] == 2
    assert _run(["pin", STATE, "--check", "--json"]) == EXIT_FINDINGS  # the example pins nothing
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "spark-state/pin/v1" and {i["kind"] for i in document["unpinned"]} >= {"image"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: [\n")
    assert _run(["validate", str(bad), "--json"]) == EXIT_ERROR
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "spark-state/error/v1" and document["error"] == "invalid state"


def test_the_shell_completes_commands_and_options(tmp_path: Path) -> None:
    """argcomplete answers a completion request (as bash's `complete` asks it) before any command runs."""
    import os
    import subprocess
    import sys

    answer = tmp_path / "completions"
    spark_state = str(Path(sys.executable).parent / "spark-state")

    def complete(line: str) -> list[str]:
        env = {
            **os.environ,
            "_ARGCOMPLETE": "1",
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_STDOUT_FILENAME": str(answer),
        }
        subprocess.run([spark_state], env=env, check=True, timeout=60, capture_output=True)
        return answer.read_text().split()

    assert complete("spark-state dr") == ["drift"]
    assert "--inventory" in complete("spark-state drift state.yaml --i")
    shell = subprocess.run([spark_state, "completion", "bash"], capture_output=True, text=True, timeout=60)
    assert shell.returncode == 0 and "complete " in shell.stdout and "spark-state" in shell.stdout


def test_the_plan_fits_80_columns_when_piped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """COLUMNS is honoured without a terminal, and nothing is cut to fit it (long paths fold)."""
    monkeypatch.setenv("COLUMNS", "80")
    assert _run(["plan", STATE]) == EXIT_OK
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) == 80 and "…" not in out
    assert "spark-state-convert-llama31-8b-nvfp4" in out  # a long word, folded or whole but there
