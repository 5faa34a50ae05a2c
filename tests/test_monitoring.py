"""`monitoring:` as data: the scrape configuration Prometheus gets, and the bench results the node exporter serves
(parsed as Prometheus parses them). The rehearsal fleet runs the real Prometheus on them (tests/e2e)."""

from __future__ import annotations

from conftest import EXAMPLE_STATE
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

from spark_state.deploy.operations import bench_metrics_text
from spark_state.deploy.rollout import ServiceOutcome, Verification
from spark_state.desired.loader import load_state
from spark_state.plan.host_plan import plan_host
from spark_state.plan.system_services import BenchMetricsPlan, prometheus_config

STATE = load_state(EXAMPLE_STATE).state


def _jobs(text: str) -> dict[str, list[dict]]:
    document = YAML(typ="safe").load(text)
    return {job["job_name"]: job["static_configs"] for job in document["scrape_configs"]}


def test_every_host_and_every_service_with_prometheus_text_is_a_target_where_the_inventory_reaches_it() -> None:
    jobs = _jobs(prometheus_config(STATE, {"spark-02": "10.200.0.12"}))
    assert [c["targets"] for c in jobs["node"]] == [["192.168.1.21:9100"], ["10.200.0.12:9100"]]
    services = {c["labels"]["service"]: (c["targets"][0], c["labels"]["__metrics_path__"]) for c in jobs["llm"]}
    assert services == {
        "nim-fp8": ("192.168.1.21:8000", "/v1/metrics"),
        "sglang-fp8": ("192.168.1.21:30000", "/metrics"),
        "trtllm-pt-nvfp4": ("10.200.0.12:8355", "/prometheus/metrics"),
        "vllm-fp8": ("10.200.0.12:8000", "/metrics"),
        "llama-q4": ("10.200.0.12:8080", "/metrics"),
    }  # the engine services: trtllm-serve's /metrics is JSON, and they are not given return_perf_metrics
    assert jobs["prometheus"] == [{"targets": ["localhost:9090"], "labels": {"host": "spark-01"}}]


def test_a_scraped_trtllm_service_is_given_return_perf_metrics_unless_the_state_turns_it_off() -> None:
    (options,) = plan_host(STATE, "spark-02").config_files.values()
    assert '"return_perf_metrics": true' in options
    svc = STATE.services["trtllm-pt-nvfp4"]
    off = svc.model_copy(update={"llm_api_options": {**svc.llm_api_options, "return_perf_metrics": False}})
    state = STATE.model_copy(update={"services": {**STATE.services, "trtllm-pt-nvfp4": off}})
    assert "trtllm-pt-nvfp4" not in {c["labels"]["service"] for c in _jobs(prometheus_config(state, {}))["llm"]}


def test_bench_results_are_prometheus_text_with_escaped_labels() -> None:
    plan = BenchMetricsPlan("/x.prom", {"chat": {"service": "chat", "stack": "vllm", "model": 'odd "name"\\n'}})
    verification = Verification(
        done=True,
        at="2026-12-07T23:00:00+00:00",
        outcomes={"chat": ServiceOutcome(benched=True), "down": ServiceOutcome(reason="no answer", fatal=True)},
        figures={"chat": {"TTFT p50 (ms)": 41.5, "decode (tok/s)": 55.0, "aggregate c=8 (tok/s)": 300.0}},
    )
    samples = {
        (s.name, s.labels.get("concurrency")): (s.labels, s.value)
        for family in text_string_to_metric_families(bench_metrics_text(plan, verification) + "\n")
        for s in family.samples
    }
    assert samples["spark_state_bench_ttft_p50_seconds", None][1] == 0.0415
    assert samples["spark_state_bench_aggregate_tokens_per_second", "8"][1] == 300.0
    assert samples["spark_state_bench_passed", None][1] == 1.0
    assert samples["spark_state_bench_timestamp_seconds", None][1] == 1796684400.0
    assert samples["spark_state_bench_decode_tokens_per_second", None][0]["model"] == 'odd "name"\\n'
    assert {labels["service"] for labels, _ in samples.values()} == {"chat"}  # "down" was not benched
