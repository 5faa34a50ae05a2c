"""The host baseline as plain data: facts from a probe snapshot, what changed since, figures against figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXAMPLE_STATE

from spark_state.bench.results import ClientHealth, EndpointResult, LevelResult, SerialResult
from spark_state.desired.loader import load_state
from spark_state.observe import baseline
from spark_state.on_host.probe import Snapshot
from spark_state.plan.host_plan import plan_host

SNAPSHOT = {
    "gpu": {"name": "NVIDIA GB10", "compute_capability": "12.1", "driver_version": "580.95.05"},
    "docker": {"present": True, "running": True, "version": "20.10.24"},
    "host": {"cuda": "13.0", "kernel": "6.11.0-1016-nvidia", "os": "Ubuntu 24.04.3 LTS", "container_toolkit": "1.17.8"},
    "images": {
        "nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3": {"id": "sha256:aaaa1111bbbb2222", "digests": []},
        "nvcr.io/nim/meta/llama:latest": None,
    },
}
TRITON = "nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3"
SERVICES = {"trtllm-nvfp4": "1111aaaa2222bbbb"}  # what each service's bench verified


def _recorded(**facts: str) -> dict:
    return baseline.make_baseline(
        "spark-02",
        {**baseline.host_facts(Snapshot.parse(SNAPSHOT)), **facts},
        baseline.image_digests(Snapshot.parse(SNAPSHOT)),
        {"trtllm-nvfp4": {baseline.TTFT: 31.0, baseline.DECODE: 38.8}},
        "2026-11-24T10:00:00+00:00",
        SERVICES,
    )


def test_facts_come_from_the_gpu_docker_and_host_sections() -> None:
    assert baseline.host_facts(Snapshot.parse(SNAPSHOT)) == {
        "driver": "580.95.05",
        "cuda": "13.0",
        "kernel": "6.11.0-1016-nvidia",
        "os": "Ubuntu 24.04.3 LTS",
        "docker": "20.10.24",
        "container_toolkit": "1.17.8",
    }
    assert baseline.host_facts(Snapshot.parse({})) == dict.fromkeys(
        baseline.HOST_FACTS
    )  # no driver, no docker: unknown, not a crash
    assert baseline.image_digests(Snapshot.parse(SNAPSHOT)) == {
        TRITON: "sha256:aaaa1111bbbb2222",
        "nvcr.io/nim/meta/llama:latest": None,
    }
    # pulled from a registry: the digest it was pulled at, not the local id
    pulled = {
        "images": {
            TRITON: {
                "id": "sha256:aaaa",
                "digests": ["other/repo@sha256:ffff", "nvcr.io/nvidia/tritonserver@sha256:9999"],
            }
        }
    }
    assert baseline.image_digests(Snapshot.parse(pulled)) == {TRITON: "sha256:9999"}


def test_an_unchanged_host_has_no_changes_and_every_item_in_sync() -> None:
    recorded = _recorded()
    facts, images = baseline.host_facts(Snapshot.parse(SNAPSHOT)), baseline.image_digests(Snapshot.parse(SNAPSHOT))
    assert baseline.changes(recorded, facts, images, SERVICES) == []
    items = baseline.host_items("spark-02", recorded, facts, images, SERVICES)
    assert items and all(i.ok and i.kind == "host" for i in items)
    assert {i.name for i in items} >= {"NVIDIA driver", "kernel", f"image {TRITON}"}


def test_a_driver_upgrade_is_named_with_then_and_now() -> None:
    recorded = _recorded()
    upgraded = {**SNAPSHOT, "gpu": {**SNAPSHOT["gpu"], "driver_version": "590.10.01"}}
    facts, images = baseline.host_facts(Snapshot.parse(upgraded)), baseline.image_digests(Snapshot.parse(upgraded))
    assert baseline.changes(recorded, facts, images, SERVICES) == ["NVIDIA driver 580.95.05 → 590.10.01"]
    (drift,) = [i for i in baseline.host_items("spark-02", recorded, facts, images, SERVICES) if not i.ok]
    assert (drift.name, drift.observed) == ("NVIDIA driver", "590.10.01")
    assert drift.desired == "580.95.05 (baseline 2026-11-24T10:00:00+00:00)"


def test_a_retagged_image_and_a_new_kernel_both_show() -> None:
    recorded = _recorded()
    later = {
        **SNAPSHOT,
        "host": {**SNAPSHOT["host"], "kernel": "6.14.0-1001-nvidia"},
        "images": {**SNAPSHOT["images"], TRITON: {"id": "sha256:cccc3333dddd4444"}},
    }
    assert baseline.changes(
        recorded, baseline.host_facts(Snapshot.parse(later)), baseline.image_digests(Snapshot.parse(later)), SERVICES
    ) == ["kernel 6.11.0-1016-nvidia → 6.14.0-1001-nvidia", f"image {TRITON} aaaa1111bbbb → cccc3333dddd"]


def test_no_baseline_yet_is_a_reason_to_bench_but_not_drift() -> None:
    assert baseline.changes(None, baseline.host_facts(Snapshot.parse(SNAPSHOT)), {}, {}) == ["no baseline recorded yet"]
    (item,) = baseline.host_items("spark-02", None, baseline.host_facts(Snapshot.parse(SNAPSHOT)), {}, {})
    assert item.ok and item.observed == "none recorded yet"
    assert baseline.valid({"format": "something else"}) is None and baseline.valid("[]") is None
    assert baseline.valid(_recorded()) is not None


def test_an_image_the_state_dropped_is_not_drift() -> None:
    recorded = _recorded()
    items = baseline.host_items(
        "spark-02",
        recorded,
        baseline.host_facts(Snapshot.parse(SNAPSHOT)),
        {TRITON: "sha256:aaaa1111bbbb2222"},
        SERVICES,
    )
    assert all(i.ok for i in items) and not any("nim" in i.name for i in items)


@pytest.mark.parametrize(
    ("ttft", "decode", "worse"),
    [(31.5, 38.5, set()), (31.0, 25.9, {"decode (tok/s)"}), (47.0, 38.8, {"TTFT p50 (ms)"})],
)
def test_figures_against_the_baseline_within_a_margin(ttft: float, decode: float, worse: set[str]) -> None:
    then = {baseline.TTFT: 31.0, baseline.DECODE: 38.8}
    items = baseline.figure_items(
        "spark-02",
        "trtllm-nvfp4",
        "baseline-bench",
        {baseline.TTFT: ttft, baseline.DECODE: decode},
        then,
        "baseline x",
        0.10,
    )
    assert {i.name.removeprefix("trtllm-nvfp4 ") for i in items if not i.ok} == worse
    assert len(items) == 2


def _level(
    concurrency: int, requests: int, aggregate: float | None, duration: float, tokens: int, health: ClientHealth
) -> LevelResult:
    return LevelResult(
        concurrency=concurrency,
        requests=requests,
        ok=requests,
        aggregate_tok_s=aggregate,
        per_stream_decode_tok_s={},
        ttft_ms={},
        duration_s=duration,
        completion_tokens=tokens,
        early_stops=0,
        errors=[],
        client=health,
    )


def test_bench_figures_from_a_result() -> None:
    health = ClientHealth()
    serial = SerialResult(3, 3, {"p50": 30.8}, {"p50": 38.82}, {"p50": 5.1}, 200, 0, [], 0, health)
    levels = [
        _level(8, 16, 264.7, 12.0, 3200, health),
        _level(4, 8, None, 6.0, 0, health),
    ]
    result = EndpointResult("http://x:8004", "m", "spark-02", "trtllm-nvfp4", "now", {}, serial, levels)
    assert baseline.bench_figures(result) == {
        baseline.TTFT: 30.8,
        baseline.DECODE: 38.82,
        "aggregate c=8 (tok/s)": 264.7,
    }


def test_local_history_keeps_each_baseline_and_reads_the_newest(tmp_path: Path) -> None:
    first, second = _recorded(), _recorded(driver="590.10.01")
    baseline.save_local(first, tmp_path)
    baseline.save_local(second, tmp_path)
    (tmp_path / "spark-02" / "99999999T999999999999Z.json").write_text("{not json")  # a torn write is skipped
    assert len(list((tmp_path / "spark-02").glob("*.json"))) == 3
    assert baseline.latest_local("spark-02", tmp_path) == json.loads(json.dumps(second))
    assert baseline.latest_local("spark-01", tmp_path) is None


def test_a_service_changed_since_its_last_bench_shows_until_a_bench_passes() -> None:
    """A change deployed but never benched (the run killed during its bench, or the bench off) is a reason to
    bench and drift; a service the baseline never benched too; a baseline older than this record says nothing."""
    recorded = _recorded()
    facts, images = baseline.host_facts(Snapshot.parse(SNAPSHOT)), baseline.image_digests(Snapshot.parse(SNAPSHOT))
    now = {"trtllm-nvfp4": "3333cccc4444dddd", "nim-fp8": "5555eeee6666ffff"}
    assert baseline.changes(recorded, facts, images, now) == [
        "service nim-fp8 as benched never benched → 5555eeee6666ffff, not benched since it changed",
        "service trtllm-nvfp4 as benched 1111aaaa2222bbbb → 3333cccc4444dddd, not benched since it changed",
    ]
    older = {k: v for k, v in recorded.items() if k != "services"}
    assert baseline.changes(older, facts, images, now) == []


def test_what_a_bench_verified_is_the_running_unit_and_the_env_file_the_host_has() -> None:
    plan = plan_host(load_state(EXAMPLE_STATE).state, "spark-01")
    svc = next(s for s in plan.services if s.env_file)

    def verified(identity: str, env_sha: str) -> dict[str, str]:
        containers = {s.container_name: {"state": "running", "identity": identity} for s in plan.services}
        files = {svc.env_file: {"sha256": env_sha, "mode": "0o600"}}
        return baseline.verified_services(plan, Snapshot.parse({"containers": containers, "files": files}))

    before = verified("1111", "a" * 64)
    assert set(before) == {s.name for s in plan.services}
    assert before[svc.name] != verified("1111", "b" * 64)[svc.name]  # a new env file is a new thing to bench
    assert all(before[name] != after for name, after in verified("2222", "a" * 64).items())  # a restarted unit too
    assert baseline.verified_services(plan, Snapshot.parse({})) == {}  # nothing runs: nothing to say
