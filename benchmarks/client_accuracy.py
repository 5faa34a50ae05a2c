"""How far the bench client's figures are from the truth, on this machine (run on demand, prints figures).

A stand-in server with known timing (TTFT, fixed inter-token gap) runs in its own process; the bench runner
measures it at several concurrencies. Two truths are compared:
  - configured: the TTFT and gap the server was told to use;
  - server-observed: what the server itself recorded (received → first token written, same monotonic clock),
    which removes the server's own scheduling jitter and leaves the client's overhead.

    python benchmarks/client_accuracy.py [--levels 1,8,64,256] [--runs 3]
Targets (issue 5): TTFT within +2 ms at c=1 and +10 ms at c=64, decode within 2 %, c=256 runs to the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

import httpx

from spark_state.bench.results import RequestResult
from spark_state.bench.runner import BenchSettings, run_level, run_measured
from spark_state.bench.stats import percentile

TTFT_MS, GAP_MS, TOKENS = 50.0, 20.0, 64


def start_server(ttft_ms: float = TTFT_MS, gap_ms: float = GAP_MS) -> tuple[subprocess.Popen[str], str]:
    """The known-timing stand-in in its own process; returns it and its URL once it listens."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spark_rehearsal.standins.openai_server",
            "--port",
            "0",
            "--ttft-ms",
            str(ttft_ms),
            "--step-ms",
            str(gap_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    return proc, f"http://127.0.0.1:{line.split()[-1]}"


async def measure(url: str, concurrency: int) -> dict[str, float | None]:
    settings = BenchSettings(
        max_tokens=TOKENS, concurrency=[concurrency], requests_per_level=2 * concurrency, timeout_s=600
    )
    sink: list[RequestResult] = []
    async with httpx.AsyncClient(timeout=600) as client:
        await client.get(f"{url}/v1/models")  # the client's first request pays one-time setup costs
        level = await run_level(url, "standin", settings, concurrency, sink=sink)
        server = (await client.get(f"{url}/debug/timings")).json()
    ok = [r for r in sink if r.ok]
    server_ttft = [(t[1] - t[0]) * 1000 for t in server.values() if t[1]]
    client_ttft = [r.ttft * 1000 for r in ok if r.ttft is not None]
    return {
        "completed": float(len(ok)),
        "issued": float(len(sink)),
        "ttft_p50": percentile(client_ttft, 50),
        "ttft_err_vs_config": (percentile(client_ttft, 50) or 0) - TTFT_MS,
        "ttft_err_vs_server": (percentile(client_ttft, 50) or 0) - (percentile(server_ttft, 50) or 0),
        "decode_p50": level.per_stream_decode_tok_s["p50"],
        "decode_err_pct": ((level.per_stream_decode_tok_s["p50"] or 0) / (1000 / GAP_MS) - 1) * 100,
        "loop_lag_p99": level.client.loop_lag_p99_ms,
        "limited": float(level.client.limited),
    }


def _median(runs: list[dict[str, float | None]], key: str) -> float:
    return statistics.median(r[key] or 0.0 for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,8,64,256")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    print(
        f"truth: TTFT {TTFT_MS:g} ms, gap {GAP_MS:g} ms ({1000 / GAP_MS:g} tok/s), {TOKENS} tokens; "
        f"median of {args.runs} runs, each on a fresh server"
    )
    print(
        f"{'c':>4} {'done':>9} {'TTFT p50':>9} {'err/config':>11} {'err/server':>11} {'decode':>8} {'err %':>7} "
        f"{'lag p99':>8} client-limited"
    )
    for c in levels:
        runs = []
        for _ in range(args.runs):
            proc, url = start_server()
            try:
                runs.append(run_measured(measure(url, c)))
            finally:
                proc.terminate()
                proc.wait()

        print(
            f"{c:>4} {int(_median(runs, 'completed')):>4}/{int(_median(runs, 'issued')):<4} {_median(runs, 'ttft_p50'):>9.2f} "
            f"{_median(runs, 'ttft_err_vs_config'):>+11.2f} {_median(runs, 'ttft_err_vs_server'):>+11.2f} {_median(runs, 'decode_p50'):>8.2f} "
            f"{_median(runs, 'decode_err_pct'):>+7.2f} {_median(runs, 'loop_lag_p99'):>8.1f} {'yes' if _median(runs, 'limited') else 'no'}"
        )


if __name__ == "__main__":
    main()
