"""Converged re-run speed on the rehearsal fleet (run on demand as root; prints figures).

For 1, 4 and 8 simulated Sparks, all already converged (one NVFP4 service each, bench off), times
  converged: pyinfra -y inventory/sim.py deploys/serve.py
  bare:      pyinfra -y inventory/sim.py benchmarks/bare_deploy.py   (one fact, no operation)
  drift:     spark-state drift STATE --inventory inventory/sim.py    (read-only, exit 0 on a converged fleet)
  status:    spark-state status STATE --inventory inventory/sim.py   (read-only)
interleaved in the same run, medians over --runs. Targets (issue 29): converged / bare ≤ 1.15 at 1 host, ≤ 1.3
at 4, ≤ 1.5 at 8; drift and status ≤ 1.2 × converged.

    python benchmarks/deploy_speed.py [--runs 5]
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spark_rehearsal import fleet
from spark_rehearsal.layout import Layout

REPO = Path(__file__).resolve().parent.parent
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
SPARK_STATE = str(Path(sys.executable).parent / "spark-state")


def state(hosts: int) -> str:
    lines = [
        "images: {triton: nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3}",
        "checkpoints:",
        "  fp8: {repo: nvidia/Llama-3.1-8B-Instruct-FP8}",
        "  nvfp4: {repo: nvidia/Llama-3.1-8B-Instruct-NVFP4, tokenizer_from: fp8}",
        "engines: {nvfp4: {checkpoint: nvfp4, image: triton, quantization: nvfp4}}",
        "services: {chat: {engine: nvfp4, port: 8004}}",
        "hosts:",
    ]
    lines += [f"  s{i:02d}: {{address: 10.9.1.{i + 1}, services: [chat]}}" for i in range(hosts)]
    return "\n".join(lines) + "\n"


STATE_WORD = "{state}"  # stands for the state file in a command line


def run(argv: list[str], state_file: Path) -> float:
    env = {**os.environ, "SPARK_STATE_FILE": str(state_file), "SPARK_STATE_BENCH": "off"}
    argv = [str(state_file) if word == STATE_WORD else word for word in argv]
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv[:3])} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return elapsed


COMMANDS = {
    "converged": [PYINFRA, "-y", "inventory/sim.py", "deploys/serve.py"],
    "bare": [PYINFRA, "-y", "inventory/sim.py", "benchmarks/bare_deploy.py"],
    "drift": [SPARK_STATE, "drift", STATE_WORD, "--inventory", "inventory/sim.py"],
    "status": [SPARK_STATE, "status", STATE_WORD, "--inventory", "inventory/sim.py"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the fleet up afterwards")
    args = parser.parse_args()
    layout = Layout.default()
    # Byte-compiled, as pip leaves an installed wheel: pyinfra's CLI never writes bytecode
    # (sys.dont_write_bytecode), so in a checkout every module it imports would be compiled from source on every
    # run, a cost no installed tool pays.
    compileall.compile_dir(REPO / "spark_state", quiet=1)
    compileall.compile_dir(REPO / "rehearsal" / "spark_rehearsal", quiet=1)
    fleet.up(8, layout, log=lambda m: print(m, flush=True))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            files = {}
            for n in (1, 4, 8):
                files[n] = Path(tmp) / f"state-{n}.yaml"
                files[n].write_text(state(n))
            print("converging 8 hosts once ...", flush=True)
            run(COMMANDS["converged"], files[8])
            rows: dict[int, dict[str, float]] = {}
            for n in (1, 4, 8):
                times: dict[str, list[float]] = {name: [] for name in COMMANDS}
                for _ in range(args.runs):  # interleaved, so drift in machine load hits all alike
                    for name, argv in COMMANDS.items():
                        times[name].append(run(argv, files[n]))
                rows[n] = {name: statistics.median(t) for name, t in times.items()}
            print(f"\nmedians over {args.runs} runs (seconds)")
            print(
                f"{'hosts':>5} {'converged':>10} {'bare':>6} {'ratio':>6} {'drift':>6} {'/conv':>6} {'status':>7} {'/conv':>6}"
            )
            for n, r in rows.items():
                c = r["converged"]
                print(
                    f"{n:>5} {c:>10.2f} {r['bare']:>6.2f} {c / r['bare']:>6.2f} {r['drift']:>6.2f} "
                    f"{r['drift'] / c:>6.2f} {r['status']:>7.2f} {r['status'] / c:>6.2f}"
                )
            print(f"8 hosts / 1 host (converged): {rows[8]['converged'] / rows[1]['converged']:.2f}")
    finally:
        if not args.keep:
            fleet.down(layout, log=lambda *_: None)


if __name__ == "__main__":
    main()
