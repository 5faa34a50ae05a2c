"""`spark-state drift` on the rehearsal fleet: exit 0 when converged, 2 naming exactly what drifted (host and
item), read-only on the hosts, and 0 again after a deploy. Runs after test_deploy.py on the same fleet."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from conftest import Fleet
from e2e_helpers import (
    ALPHA,
    BETA,
    ENGINE_ROOT,
    GAMMA,
    answers,
    deploy,
    drift,
    drifted,
    read_fleet,
    series,
    state_text,
    targets_when_scraped,
)

HOSTS = {ALPHA: "alpha", BETA: "beta", GAMMA: "gamma"}
NVFP4_HOSTS = ("alpha", "beta", "gamma")


def host_fingerprint(fleet: Fleet, index: int) -> str:
    """Files, units and containers of a host, to prove a check changed nothing."""
    return fleet.root(
        fleet.hosts[index],
        (
            "find /etc/systemd/system /etc/spark-state /var/lib/spark-state /var/cache/spark-state -xdev "
            "-path '*/proc' -prune -o -printf '%p %s %T@ %m\\n' 2>/dev/null | sort | sha256sum; "
            "systemctl list-units 'spark-state-*' --all --no-legend --plain | sort; "
            "docker ps -a --no-trunc --format '{{.ID}} {{.Names}} {{.Status}}' | sed 's/Up [^)]*/Up/' | sort"
        ),
    ).stdout


@pytest.fixture(scope="module")
def converged(fleet: Fleet, workdir: Path) -> str:
    text = state_text(nvfp4_batch=16) + "monitoring: {host: alpha, scrape_interval_s: 5}\n"
    proc = deploy(workdir, text)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return text


def test_converged_fleet_exits_0_and_the_check_changes_nothing(fleet: Fleet, workdir: Path, converged: str) -> None:
    before = [host_fingerprint(fleet, i) for i in HOSTS]
    code, report = drift(workdir, converged)
    assert (code, drifted(report)) == (0, set())
    assert all(h["in_sync"] for h in report["hosts"])
    assert [host_fingerprint(fleet, i) for i in HOSTS] == before


def test_status_shows_what_runs_since_when_health_and_the_last_verdict(workdir: Path, converged: str) -> None:
    code, report = read_fleet("status", workdir, converged)
    rows = {(h["host"], s["service"]): s for h in report["hosts"] for s in h["services"]}
    assert code == 0 and set(rows) == {
        ("alpha", "nim-fp8"),
        ("alpha", "trtllm-fp8"),
        ("alpha", "trtllm-nvfp4"),
        ("beta", "trtllm-nvfp4"),
        ("gamma", "trtllm-nvfp4"),
    }
    for row in rows.values():
        assert row["unit"] == "enabled/active" and row["running"].startswith("Up") and row["healthy"], row
        assert row["since"].endswith("UTC") and row["bench"].startswith("pass "), row
    assert rows[("alpha", "nim-fp8")]["health"] == "/v1/health/ready 200"


def test_unit_edited_by_hand(fleet: Fleet, workdir: Path, converged: str) -> None:
    unit = "/etc/systemd/system/spark-state-trtllm-nvfp4.service"
    fleet.root(fleet.hosts[BETA], f"cp {unit} /root/unit.bak && sed -i 's/RestartSec=5/RestartSec=1/' {unit}")
    try:
        code, report = drift(workdir, converged)
        assert (code, drifted(report)) == (2, {("beta", "unit", "spark-state-trtllm-nvfp4.service")})
    finally:
        fleet.root(fleet.hosts[BETA], f"mv /root/unit.bak {unit}")


def test_service_stopped(fleet: Fleet, workdir: Path, converged: str) -> None:
    fleet.root(fleet.hosts[ALPHA], "systemctl stop spark-state-trtllm-fp8")
    try:
        code, report = drift(workdir, converged)
        assert code == 2
        assert drifted(report) == {("alpha", "service", "trtllm-fp8"), ("alpha", "health", "trtllm-fp8 :8003")}
        code, report = read_fleet("status", workdir, converged, "--host", "alpha")
        (row,) = [s for s in report["hosts"][0]["services"] if s["service"] == "trtllm-fp8"]
        assert code == 2 and row["unit"] in ("enabled/inactive", "enabled/failed") and not row["healthy"], row
    finally:
        fleet.root(fleet.hosts[ALPHA], "systemctl start spark-state-trtllm-fp8")
        deadline = time.monotonic() + 60
        while not answers(fleet, ALPHA, 8003) and time.monotonic() < deadline:
            time.sleep(0.5)


def test_engine_file_deleted(fleet: Fleet, workdir: Path, converged: str) -> None:
    engine = fleet.root(
        fleet.hosts[BETA], f"ls -t {ENGINE_ROOT}/llama31-8b-nvfp4/*/engine/rank0.engine | head -1"
    ).stdout.strip()
    fleet.root(fleet.hosts[BETA], f"mv {engine} /root/rank0.engine.bak")
    try:
        code, report = drift(workdir, converged)
        assert (code, drifted(report)) == (2, {("beta", "engine", "llama31-8b-nvfp4")})
        item = next(d for h in report["hosts"] for d in h["drift"])
        assert "engine/rank0.engine" in item["observed"]
    finally:
        fleet.root(fleet.hosts[BETA], f"mv /root/rank0.engine.bak {engine}")


def test_checkpoint_revision_bumped(workdir: Path, converged: str) -> None:
    text = converged.replace(
        "repo: nvidia/Llama-3.1-8B-Instruct-NVFP4, revision: main",
        "repo: nvidia/Llama-3.1-8B-Instruct-NVFP4, revision: v1",
    )
    code, report = drift(workdir, text)
    assert code == 2
    assert drifted(report) == {
        item
        for host in NVFP4_HOSTS
        for item in (
            (host, "checkpoint", "llama31-8b-nvfp4"),
            (host, "engine", "llama31-8b-nvfp4"),
            (host, "unit", "spark-state-trtllm-nvfp4.service"),
        )
    }


def test_image_bumped_to_2603(workdir: Path, converged: str) -> None:
    text = converged.replace("tritonserver:25.12-trtllm-python-py3", "tritonserver:26.03-trtllm-python-py3")
    code, report = drift(workdir, text)
    assert code == 2
    expected = set()
    for host in NVFP4_HOSTS:
        expected |= {
            (host, "image", "nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3"),
            (host, "engine", "llama31-8b-nvfp4"),
            (host, "unit", "spark-state-trtllm-nvfp4.service"),
        }
    expected |= {("alpha", "engine", "llama31-8b-fp8"), ("alpha", "unit", "spark-state-trtllm-fp8.service")}
    assert drifted(report) == expected
    engine = next(d for h in report["hosts"] if h["host"] == "beta" for d in h["drift"] if d["kind"] == "engine")
    assert "TensorRT-LLM 1.2.0" in engine["desired"] and "TensorRT-LLM 1.1.0" in engine["observed"]


def test_slowed_standin_is_performance_drift(fleet: Fleet, workdir: Path, converged: str) -> None:
    gpu = "/etc/spark-sim/gpu.json"
    slow = "python3 -c \"import json; d=json.load(open('{0}')); d['slowdown']={1}; json.dump(d, open('{0}', 'w'))\""
    fleet.root(fleet.hosts[GAMMA], slow.format(gpu, 1.3) + " && systemctl restart spark-state-trtllm-nvfp4")
    try:
        deadline = time.monotonic() + 60
        while not answers(fleet, GAMMA, 8004) and time.monotonic() < deadline:
            time.sleep(0.5)
        code, report = drift(workdir, converged, "--bench")
        assert code == 2
        hosts = {h for h, _, _ in drifted(report)}
        kinds = {k for _, k, _ in drifted(report)}
        names = {n.split()[0] for _, _, n in drifted(report)}
        # against its expectations, its last bench and the baseline of its last good deploy
        assert (
            hosts == {"gamma"} and kinds <= {"bench", "bench-history", "baseline-bench"} and names == {"trtllm-nvfp4"}
        )
        # resident memory is measured through the operator's sudo on every host, the one asking a password too
        resident = [
            i for h in report["hosts"] for i in h["in_sync"] + h["drift"] if i["name"].endswith("resident (GiB)")
        ]
        assert {i["host"] for i in resident} == {"alpha", "beta", "gamma"} and all(
            i["observed"] != "-" for i in resident
        )
        assert ("gamma", "baseline-bench", "trtllm-nvfp4 decode (tok/s)") in drifted(report)
        assert ("gamma", "bench-history", "trtllm-nvfp4 decode (tok/s)") in drifted(report)
    finally:
        fleet.root(fleet.hosts[GAMMA], slow.format(gpu, 1.0) + " && systemctl restart spark-state-trtllm-nvfp4")
        deadline = time.monotonic() + 60
        while not answers(fleet, GAMMA, 8004) and time.monotonic() < deadline:
            time.sleep(0.5)


def test_unreachable_host_is_an_error_for_that_host_only(fleet: Fleet, workdir: Path, converged: str) -> None:
    netns = fleet.hosts[GAMMA].netns
    subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)
    try:
        code, report = drift(workdir, converged)
        assert code == 1
        by_host = {h["host"]: h for h in report["hosts"]}
        assert by_host["gamma"]["error"] and by_host["alpha"]["error"] is None and by_host["beta"]["error"] is None
        assert by_host["alpha"]["in_sync"] and not by_host["alpha"]["drift"]
    finally:
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
        subprocess.run(["ip", "-n", netns, "route", "replace", "default", "via", fleet.layout.gateway], check=True)


def earlyoom_argv(fleet: Fleet, index: int) -> list[str]:
    """The running earlyoom's arguments on a host ([] when none runs)."""
    out = fleet.root(
        fleet.hosts[index], "for p in $(pgrep -x earlyoom); do tr '\\0' '\\n' < /proc/$p/cmdline; done", check=False
    ).stdout
    return out.splitlines()


def test_the_memory_guard_runs_everywhere_and_its_removal_is_drift(fleet: Fleet, workdir: Path, converged: str) -> None:
    """earlyoom from the package mirror, with the state's threshold (4 GiB: -M in KiB) and the daemons it spares."""
    for index in HOSTS:
        argv = earlyoom_argv(fleet, index)
        assert argv[:3] == ["/usr/bin/earlyoom", "-M", str(4 * 2**20)] and "--avoid" in argv, (index, argv)
        assert fleet.root(fleet.hosts[index], "systemctl is-enabled earlyoom").stdout.strip() == "enabled"
    fleet.root(fleet.hosts[BETA], "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q earlyoom")
    code, report = drift(workdir, converged)
    assert (code, drifted(report)) == (
        2,
        {("beta", "system-service", "earlyoom"), ("beta", "system-config", "/etc/default/earlyoom")},
    )
    (item,) = [d for h in report["hosts"] for d in h["drift"] if d["kind"] == "system-service"]
    assert item["observed"] == "not installed"


def test_after_a_deploy_drift_exits_0_again(fleet: Fleet, workdir: Path, converged: str) -> None:
    bumped = converged.replace("tritonserver:25.12-trtllm-python-py3", "tritonserver:26.03-trtllm-python-py3")
    proc = deploy(workdir, bumped)
    assert proc.returncode == 0, proc.stdout[-4000:]
    code, report = drift(workdir, bumped)
    assert (code, drifted(report)) == (0, set())
    assert earlyoom_argv(fleet, BETA)[:3] == ["/usr/bin/earlyoom", "-M", str(4 * 2**20)]  # installed again


def test_prometheus_scrapes_every_declared_target_and_each_services_bench(fleet: Fleet, converged: str) -> None:
    """Prometheus on alpha (installed by the first deploy of this module): itself, every host's node exporter and
    the NIM's /v1/metrics (the engine services' trtllm-serve has no Prometheus text without return_perf_metrics:
    not declared), all up; the last deploy's bench TTFT of every service on every host, from each host's node
    exporter."""
    targets = targets_when_scraped(fleet, ALPHA)
    declared = {(t["labels"]["job"], t["labels"]["host"], t["labels"].get("service", "")) for t in targets}
    assert declared == {
        ("prometheus", "alpha", ""),
        *(("node", host, "") for host in HOSTS.values()),
        ("llm", "alpha", "nim-fp8"),
    }
    assert all(t["health"] == "up" for t in targets), [(t["scrapeUrl"], t["lastError"]) for t in targets]
    ttft = series(fleet, ALPHA, "spark_state_bench_ttft_p50_seconds", wait_for=5)
    assert set(ttft) == {
        ("alpha", "nim-fp8"),
        ("alpha", "trtllm-fp8"),
        *((host, "trtllm-nvfp4") for host in NVFP4_HOSTS),
    }, ttft
    assert all(0 < value < 5 for value in ttft.values()), ttft
    assert series(fleet, ALPHA, 'generation_tokens_total{service="nim-fp8"}')["alpha", "nim-fp8"] > 0
