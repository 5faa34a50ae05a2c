"""The corpus of bad state files: each must fail with exactly the lines in its .expected twin."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_state.cli import main
from spark_state.desired.loader import load_state
from spark_state.errors import StateFileError

CORPUS = Path(__file__).parent / "bad_states"
CASES = sorted(CORPUS.glob("*.yaml"))


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 20
    assert all(case.with_suffix(".expected").exists() for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_state_reports_exact_lines(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)
    expected = case.with_suffix(".expected").read_text().splitlines()
    with pytest.raises(StateFileError) as info:
        load_state(case.name)
    assert [str(p) for p in info.value.problems] == expected


@pytest.mark.parametrize("case", CASES[:3], ids=[c.stem for c in CASES[:3]])
def test_validate_cli_exits_1_and_prints_the_lines(
    case: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(CORPUS)
    assert main(["validate", case.name]) == 1
    err = capsys.readouterr().err
    for line in case.with_suffix(".expected").read_text().splitlines():
        assert line in err


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(StateFileError) as info:
        load_state(missing)
    (problem,) = info.value.problems
    assert problem.file == str(missing) and problem.field == "<file>"
