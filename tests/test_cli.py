from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE_STATE, REPO

from spark_state import __version__
from spark_state.cli import main


def test_validate_example_exits_0(capsys) -> None:
    assert main(["validate", str(EXAMPLE_STATE)]) == 0
    assert "valid" in capsys.readouterr().out


def test_version_answers_without_a_command(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"spark-state {__version__} (pyinfra ") and "not installed" not in out


def test_plan_prints_every_host(capsys) -> None:
    assert main(["plan", str(EXAMPLE_STATE)]) == 0
    out = capsys.readouterr().out
    assert "spark-01" in out and "spark-02" in out and "trtllm-nvfp4" in out


def test_plan_json_for_one_host(capsys) -> None:
    assert main(["plan", str(EXAMPLE_STATE), "--host", "spark-02", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    plans = document["hosts"]
    assert document["format"] == "spark-state/plan/v1" and [p["host"] for p in plans] == ["spark-02"]
    assert [s["name"] for s in plans[0]["services"]] == ["vllm-fp8", "llama-q4", "trtllm-nvfp4", "trtllm-pt-nvfp4"]


def test_plan_unknown_host_is_an_error(capsys) -> None:
    assert main(["plan", str(EXAMPLE_STATE), "--host", "spark-99"]) == 1
    assert "spark-99" in capsys.readouterr().err


def test_committed_schema_is_current() -> None:
    """spark_state/schema/spark-state.schema.json (yaml-language-server reads it) matches what the code defines."""
    out = subprocess.run(
        [sys.executable, "-m", "spark_state.cli", "schema"], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert json.loads(out) == json.loads((REPO / "spark_state" / "schema" / "spark-state.schema.json").read_text())


def test_a_file_path_is_printed_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path holding rich markup (`[/]`) is a path, not markup: validate prints it literally."""
    folder = tmp_path / "[bold]x[/]"
    folder.mkdir(parents=True)
    state = folder / "state.yaml"
    state.write_text((REPO / "inventory" / "state.yaml").read_text())
    assert main(["validate", str(state)]) == 0
    assert f"valid: {state} —" in capsys.readouterr().out


def test_every_schema_property_says_what_it_is() -> None:
    """An editor shows each property's description on hover and completion: none may be missing."""
    from spark_state.tool import schema_document

    missing: list[str] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if not (isinstance(prop, dict) and prop.get("description")):
                    missing.append(f"{where}.{name}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for value in node:
                walk(value, where)

    walk(schema_document(), "")
    assert missing == []
