"""spark-state's bench client and guidellm side by side, against the truth of a known-timing server (run on
demand, prints figures; not a test).

The project's stand-in server (spark_rehearsal.standins.openai_server) runs in its own process with a fixed
prefill (TTFT) and inter-token gap, one fresh server per tool, level and run. Both tools run closed-loop streams
at each concurrency c for 2·c requests of TOKENS tokens. Truth:
  - TTFT: the configured prefill, and what the server itself recorded (request read → first token written);
  - aggregate: c · TOKENS / (TTFT + (TOKENS − 1) · gap) — c streams that never wait between requests.
Both tools' aggregates use one definition: Σ completion tokens / (last end − first start).

guidellm is not a dependency of spark-state; install it beside the project for this script only:
    python3 -m venv .venv-guidellm && .venv-guidellm/bin/pip install guidellm
    python benchmarks/client_vs_guidellm.py [--levels 1,8,64,256] [--runs 3] [--guidellm .venv-guidellm/bin/guidellm]
Targets (issue 14): c=64 not client-limited, TTFT p50 within +2 ms, aggregate within 1 %; c=256 completes,
aggregate within 3 %, TTFT p50 within +10 ms; c ≤ 8 as before.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

import client_accuracy  # beside this script
import httpx

from spark_state.bench.results import RequestResult
from spark_state.bench.runner import BenchSettings, run_level, run_measured
from spark_state.bench.stats import percentile

TTFT_MS, GAP_MS, TOKENS = 50.0, 25.0, 200
PROMPT = "In one paragraph: what is retrieval-augmented generation and when is it the wrong tool?"


def start_server() -> tuple[subprocess.Popen[str], str]:
    return client_accuracy.start_server(TTFT_MS, GAP_MS)


def true_aggregate(concurrency: int) -> float:
    return concurrency * TOKENS / ((TTFT_MS + (TOKENS - 1) * GAP_MS) / 1000)


def server_ttft_p50(url: str) -> float | None:
    timings = httpx.get(f"{url}/debug/timings", timeout=30).json()
    return percentile([(t[1] - t[0]) * 1000 for t in timings.values() if t[1]], 50)


def spark_state_run(url: str, concurrency: int) -> dict[str, float | None]:
    # ignore_eos: exactly TOKENS tokens, as guidellm asks for them too (the example prompt's answer ends at 165)
    settings = BenchSettings(
        prompt=PROMPT,
        max_tokens=TOKENS,
        concurrency=[concurrency],
        requests_per_level=2 * concurrency,
        timeout_s=600,
        ignore_eos=True,
    )
    sink: list[RequestResult] = []
    level = run_measured(run_level(url, "standin", settings, concurrency, sink=sink))
    return {
        "done": float(level.ok),
        "ttft_p50": level.ttft_ms["p50"],
        "server_ttft_p50": server_ttft_p50(url),
        "aggregate": level.aggregate_tok_s,
        "dispatch_lag_p50": level.dispatch_lag_ms["p50"],
        "limited": float(level.client.limited),
    }


def guidellm_run(binary: str, url: str, concurrency: int) -> dict[str, float | None]:
    requests = 2 * concurrency
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "prompts.jsonl"
        row = json.dumps({"prompt": PROMPT, "output_tokens_count": TOKENS})
        data.write_text((row + "\n") * requests)  # one row per request: guidellm stops when its data runs out
        out = Path(tmp) / "result.json"
        proc = subprocess.run(
            [
                binary,
                "run",
                "--backend",
                f"kind=openai_http,target={url}",
                "--profile",
                f"kind=concurrent,streams={concurrency}",
                "--constraint",
                f"kind=max_requests,count={requests}",
                "--data",
                f"kind=json_file,path={data}",
                "--output",
                f"kind=json,path={out}",
                "--disable-console",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp,
        )
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"guidellm failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-800:]}")
        bench = json.loads(out.read_text())["benchmarks"][0]
    done = bench["requests"]["successful"]
    tokens = bench["metrics"]["output_token_count"]["successful"]["total_sum"]
    starts = [r["info"]["timings"]["request_start"] for r in done]
    ends = [r["info"]["timings"]["request_end"] for r in done]
    return {
        "done": float(len(done)),
        "ttft_p50": bench["metrics"]["time_to_first_token_ms"]["successful"]["median"],
        "server_ttft_p50": server_ttft_p50(url),
        "aggregate": tokens / (max(ends) - min(starts)) if done else None,
        "dispatch_lag_p50": None,
        "limited": None,
    }


def median(runs: list[dict[str, float | None]], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else None  # type: ignore[type-var]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,8,64,256")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--guidellm", default=".venv-guidellm/bin/guidellm", help="path of guidellm ('' to skip)")
    args = parser.parse_args()
    tools = {"spark-state": spark_state_run}
    if args.guidellm and os.access(args.guidellm, os.X_OK):
        binary = os.path.abspath(args.guidellm)
        tools["guidellm"] = lambda url, c: guidellm_run(binary, url, c)
    elif args.guidellm:
        print(f"guidellm not found at {args.guidellm}: spark-state only (see the docstring to install it)")
    print(
        f"truth: TTFT {TTFT_MS:g} ms, gap {GAP_MS:g} ms ({1000 / GAP_MS:g} tok/s per stream), {TOKENS} tokens, "
        f"2·c requests per level; median of {args.runs} runs, a fresh server each"
    )
    print(
        f"{'c':>4} {'tool':<12} {'done':>6} {'TTFT p50':>9} {'vs truth':>9} {'vs server':>10} "
        f"{'aggregate':>10} {'truth':>8} {'err %':>7} {'dispatch p50':>13} limited"
    )
    for c in (int(x) for x in args.levels.split(",")):
        for tool, run in tools.items():
            runs = []
            for _ in range(args.runs):
                proc, url = start_server()
                try:
                    runs.append(run(url, c))
                finally:
                    proc.terminate()
                    proc.wait()
            ttft, server, agg = median(runs, "ttft_p50"), median(runs, "server_ttft_p50"), median(runs, "aggregate")
            lag, limited = median(runs, "dispatch_lag_p50"), median(runs, "limited")
            truth = true_aggregate(c)
            print(
                f"{c:>4} {tool:<12} {int(median(runs, 'done') or 0):>6} {ttft or 0:>9.2f} "
                f"{(ttft or 0) - TTFT_MS:>+9.2f} {(ttft or 0) - (server or 0):>+10.2f} {agg or 0:>10.1f} "
                f"{truth:>8.1f} {((agg or 0) / truth - 1) * 100:>+7.2f} "
                f"{'-' if lag is None else f'{lag:.2f} ms':>13} "
                f"{'-' if limited is None else ('yes' if limited else 'no')}",
                flush=True,
            )


if __name__ == "__main__":
    main()
