"""How long `spark-state validate` takes on every hostile or broken state in tests/bad_states/ (run on demand;
prints figures). Target (issue 12): every validate answers within 2 s on this machine, no traceback for any input.

Each case runs as a user runs it (a fresh `spark-state validate FILE` process), --runs times; the table shows the
median and the worst run per case, slowest first, and the load_state share (in-process, the same file).

    python benchmarks/validate_corpus.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from spark_state.desired.loader import load_state
from spark_state.errors import StateFileError

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "bad_states"
SPARK_STATE = str(Path(sys.executable).parent / "spark-state")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for case in sorted(CORPUS.glob("*.yaml")):
        walls, tracebacks = [], 0
        for _ in range(args.runs):
            started = time.perf_counter()
            proc = subprocess.run(
                [SPARK_STATE, "validate", case.name], cwd=CORPUS, capture_output=True, text=True, timeout=60
            )
            walls.append(time.perf_counter() - started)
            tracebacks += "Traceback" in proc.stderr + proc.stdout
        started = time.perf_counter()
        try:
            load_state(case)
        except StateFileError:
            pass
        rows.append((statistics.median(walls), max(walls), time.perf_counter() - started, tracebacks, case.name))
    rows.sort(reverse=True)
    print(f"{'case':48} {'median s':>9} {'worst s':>8} {'load s':>7} tracebacks")
    for median, worst, load, tracebacks, name in rows:
        print(f"{name:48} {median:9.3f} {worst:8.3f} {load:7.3f} {tracebacks}")
    worst_all = max(r[1] for r in rows)
    print(
        f"\n{len(rows)} cases, {args.runs} runs each: worst {worst_all:.3f} s, median of medians "
        f"{statistics.median(r[0] for r in rows):.3f} s, tracebacks {sum(r[3] for r in rows)}; "
        f"target ≤ 2 s: {'met' if worst_all <= 2 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
