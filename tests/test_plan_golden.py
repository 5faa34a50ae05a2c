"""Golden files: the exact unit texts, daemon files (/etc/default/earlyoom) and command lines the example state
renders.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/test_plan_golden.py` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import EXAMPLE_STATE

from spark_state.desired.loader import load_state
from spark_state.plan.host_plan import HostPlan, plan_fleet

GOLDEN = Path(__file__).parent / "golden"


def _rendered(plan: HostPlan) -> dict[str, str]:
    files = {s.unit_name: s.unit_text for s in plan.services}
    files |= {f.path.rsplit("/", 1)[1]: f.text for d in plan.system_services for f in d.files}
    lines = []
    for e in plan.engines:
        lines += [f"# {e.name} fingerprint {e.fingerprint}", e.convert_command, e.build_command]
    files["commands.sh"] = "\n".join(lines) + "\n"
    return files


PLANS = plan_fleet(load_state(EXAMPLE_STATE).state)
CASES = [(p.host, name, text) for p in PLANS for name, text in _rendered(p).items()]


@pytest.mark.parametrize(("host", "name", "text"), CASES, ids=[f"{h}/{n}" for h, n, _ in CASES])
def test_rendered_file_matches_golden(host: str, name: str, text: str) -> None:
    path = GOLDEN / host / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text


def test_no_stale_golden_files() -> None:
    expected = {(h, n) for h, n, _ in CASES}
    present = {(p.parent.name, p.name) for p in GOLDEN.glob("*/*")}
    assert present == expected
