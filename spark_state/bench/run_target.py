"""Bench one target in a clean process: `python -m spark_state.bench.run_target < job.json > document.json`.

The deploy runs inside pyinfra's CLI, which monkey-patches sockets and threads for gevent; measuring there
would measure gevent. This process has a plain asyncio loop to itself."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from .results import to_document
from .runner import BenchSettings, run_measured
from .targets import Target, bench_target


def job(target: Target, settings: BenchSettings, resident_gib: float | None) -> str:
    return json.dumps({"target": asdict(target), "settings": asdict(settings), "resident_gib": resident_gib})


def main() -> None:
    spec = json.load(sys.stdin)
    target = Target(**spec["target"])
    result, verdict = run_measured(bench_target(target, BenchSettings(**spec["settings"]), spec["resident_gib"]))
    json.dump(to_document([result], [verdict]), sys.stdout)


if __name__ == "__main__":
    main()
