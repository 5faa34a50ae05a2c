"""Pure preflight and desired-vs-observed comparison on synthetic probe snapshots."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conftest import EXAMPLE_STATE

from spark_state.desired.loader import load_state, load_state_text
from spark_state.errors import ProbeError
from spark_state.observe.compare import compare
from spark_state.observe.found import found_for, sha256
from spark_state.observe.observation import Observation, probe_request
from spark_state.observe.preflight import preflight
from spark_state.on_host.probe import Snapshot, manifest_path
from spark_state.plan.host_plan import HostPlan, plan_host
from spark_state.plan.quoting import env_file_text

STATE = load_state(EXAMPLE_STATE).state
ENV = {"NGC_API_KEY": "k"}


def converged(plan: HostPlan) -> dict[str, Any]:
    """The snapshot of a host that is exactly as planned."""
    return {
        "gpu": {"name": "NVIDIA GB10", "compute_capability": "12.1", "driver_version": "580"},
        "memory": {"total_gib": 121.7, "available_gib": 110.0},
        "disk": {"path": "/var/lib/spark-state", "free_gb": 3000.0, "total_gb": 3700.0},
        "docker": {"present": True, "running": True, "version": "28", "nvidia_runtime": True},
        "images": {
            i.ref: {"id": "sha256:1", "digests": [i.ref + "@sha256:1"], "trtllm_version": i.trtllm_version}
            for i in plan.images
        },
        "manifests": {
            **{
                manifest_path(c.dir): {"manifest": {"repo": c.repo, "revision": c.revision, "sha": "s"}, "missing": []}
                for c in plan.checkpoints
            },
            **{
                manifest_path(e.dir): {
                    "manifest": {"fingerprint": e.fingerprint, "trtllm_version": e.trtllm_version},
                    "missing": [],
                }
                for e in plan.engines
            },
        },
        "engine_builds": {},
        "chat_templates": {c.dir: c.name != "llama31-8b-nvfp4" for c in plan.checkpoints},
        "files": {
            **{
                s.env_file: {"sha256": sha256(env_file_text(s.env, s.secrets, ENV)), "mode": "0o600"}
                for s in plan.services
                if s.env_file
            },
            **{f.path: {"sha256": sha256(f.text), "mode": "0o644"} for d in plan.system_services for f in d.files},
        },
        "system_units": {
            d.unit: {"load": "loaded", "active": "active", "enabled": "enabled"} for d in plan.system_services
        },
        "units": {
            s.unit_name: {
                "file": {"sha256": sha256(s.unit_text), "mode": "0o644"},
                "active": "active",
                "enabled": "enabled",
            }
            for s in plan.services
        },
        "listening": sorted(s.port for s in plan.services),
        "containers": {
            s.container_name: {"state": "running", "published": [s.port], "identity": s.identity} for s in plan.services
        },
        # each service on its own readiness path: /health (trtllm-serve), /v1/health/ready (NIM)
        "health": {str(s.port): {s.health_path: 200, "/v1/models": 200} for s in plan.services},
        "owners": {s.cache_dir: [1000, 1000] for s in plan.services if s.cache_dir},
    }


PLAN = plan_host(STATE, "spark-01")


def observed(plan: HostPlan, snapshot: dict[str, Any]) -> Observation:
    """What observe() hands on after a probe that answered `snapshot`."""
    parsed = Snapshot.parse(snapshot)
    return Observation(plan, probe_request(plan), parsed, found_for(plan, parsed))


def _preflight(snapshot: dict[str, Any], env: dict[str, str] = ENV) -> list[str]:
    return preflight(observed(PLAN, snapshot), env, 8.0)


def test_converged_host_passes_preflight_and_compares_clean() -> None:
    snap = converged(PLAN)
    assert _preflight(snap) == []
    items = compare(observed(PLAN, snap), ENV)
    assert [i for i in items if not i.ok] == []
    assert {i.kind for i in items} == {
        *("image", "checkpoint", "engine", "unit", "env", "service", "health", "cache"),
        *("system-service", "system-config"),
    }
    nim = next(i for i in items if i.kind == "health" and i.name.startswith("nim-fp8"))
    assert nim.desired == "/v1/health/ready 200, /v1/models 200"


def test_a_nim_answering_only_health_or_a_cache_root_owns_is_drift() -> None:
    snap = converged(PLAN)
    snap["health"]["8000"] = {"/v1/health/ready": 404, "/v1/models": 200}  # NIM has no /health: nothing answers
    cache = next(s.cache_dir for s in PLAN.services if s.cache_dir)
    snap["owners"] = {cache: [0, 0]}
    drifted = {(i.kind, i.observed) for i in compare(observed(PLAN, snap), ENV) if not i.ok}
    assert drifted == {("health", "/v1/health/ready 404, /v1/models 200"), ("cache", "owned by 0:0")}


def test_known_bad_image_by_tag_and_by_probe() -> None:
    snap = converged(PLAN)
    ref = "nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3"
    snap["images"][ref]["trtllm_version"] = "0.17.0.post1"  # the image says otherwise than its tag
    assert observed(PLAN, snap).found.trtllm_versions[ref] == "0.17.0.post1"
    (failure,) = _preflight(snap)
    assert ref in failure and "0.17.0.post1" in failure and "NVIDIA GB10" in failure and "25.12" in failure


def test_host_problems_are_all_reported() -> None:
    snap = converged(PLAN)
    snap["gpu"] = None
    snap["docker"]["nvidia_runtime"] = False
    snap["disk"]["free_gb"] = 1.0
    for m in snap["manifests"].values():
        m["manifest"] = {}
    snap["listening"].append(8003)
    del snap["containers"]["spark-state-trtllm-fp8"]
    failures = _preflight(snap, env={})
    assert len(failures) == 5, failures
    joined = "\n".join(failures)
    for phrase in (
        "no GPU answers nvidia-smi",
        "NVIDIA container runtime is missing",
        "GB free",
        "port 8003 (service trtllm-fp8) is already used",
        "secrets not set",
    ):
        assert phrase in joined


def test_tokenizer_without_chat_template_fails_preflight() -> None:
    text = (
        EXAMPLE_STATE.read_text()
        .replace(
            "    tokenizer: llama31-8b-fp8     # explicit; tokenizer_from on the checkpoint would choose the same\n", ""
        )
        .replace("    tokenizer_from: llama31-8b-fp8\n", "")
    )
    from spark_state.desired.loader import load_state_text

    plan = plan_host(load_state_text(text, "t.yaml").state, "spark-02")
    snap = converged(plan)
    (failure,) = preflight(observed(plan, snap), ENV, 8.0)
    assert "trtllm-nvfp4" in failure and "no chat_template" in failure and "tokenizer_from" in failure
    snap["chat_templates"] = {}  # not downloaded yet: the deploy's guard decides after the download
    assert preflight(observed(plan, snap), ENV, 8.0) == []


def test_compare_names_each_drifted_item() -> None:
    snap = converged(PLAN)
    changed = copy.deepcopy(snap)
    changed["units"]["spark-state-nim-fp8.service"]["file"]["sha256"] = "0" * 64
    changed["units"]["spark-state-trtllm-fp8.service"]["active"] = "inactive"
    changed["health"]["8003"] = {"/health": "Connection refused", "/v1/models": "Connection refused"}
    changed["units"]["spark-state-old.service"] = {
        "file": {"sha256": "1", "mode": "0o644"},
        "active": "active",
        "enabled": "enabled",
    }
    engine = next(e for e in PLAN.engines if e.name == "llama31-8b-fp8")
    changed["manifests"][manifest_path(engine.dir)]["missing"] = ["engine/rank0.engine"]
    drifted = {(i.kind, i.name) for i in compare(observed(PLAN, changed), ENV) if not i.ok}
    assert drifted == {
        ("unit", "spark-state-nim-fp8.service"),
        ("service", "trtllm-fp8"),
        ("health", "trtllm-fp8 :8003"),
        ("stale-unit", "spark-state-old.service"),
        ("engine", "llama31-8b-fp8"),
    }
    # a secret that changed on the deploying machine changes the env file's desired content
    assert {(i.kind, i.ok) for i in compare(observed(PLAN, snap), {"NGC_API_KEY": "other"}) if i.kind == "env"} == {
        ("env", False)
    }


def test_a_memory_guard_removed_stopped_or_edited_is_drift() -> None:
    snap = converged(PLAN)
    removed = copy.deepcopy(snap)
    removed["system_units"]["earlyoom.service"] = {"load": "not-found", "active": "inactive", "enabled": ""}
    removed["files"]["/etc/default/earlyoom"] = None
    drifted = {(i.kind, i.name, i.observed) for i in compare(observed(PLAN, removed), ENV) if not i.ok}
    assert drifted == {
        ("system-service", "earlyoom", "not installed"),
        ("system-config", "/etc/default/earlyoom", "absent"),
    }
    stopped = copy.deepcopy(snap)
    stopped["system_units"]["earlyoom.service"]["active"] = "failed"
    stopped["files"]["/etc/default/earlyoom"]["sha256"] = "0" * 64
    drifted = {(i.kind, i.observed) for i in compare(observed(PLAN, stopped), ENV) if not i.ok}
    assert drifted == {("system-service", "enabled/failed"), ("system-config", "sha256 000000000000")}


def test_no_memory_guard_when_the_state_turns_it_off() -> None:
    guard = STATE.fleet.memory_guard.model_copy(update={"enabled": False})
    fleet = STATE.fleet.model_copy(update={"memory_guard": guard})
    state = STATE.model_copy(update={"fleet": fleet, "monitoring": None})
    plan = plan_host(state, "spark-01")
    assert plan.system_services == () and probe_request(plan).system_units is None
    assert not [i for i in compare(observed(plan, converged(plan)), ENV) if i.kind.startswith("system-")]
    with_monitoring = plan_host(STATE.model_copy(update={"fleet": fleet}), "spark-01")
    assert [d.name for d in with_monitoring.system_services] == ["node exporter", "prometheus"]


def test_a_container_started_from_an_older_unit_is_drift() -> None:
    """A run wrote the new unit and failed before restarting: the unit file is current, the container is not."""
    snap = converged(PLAN)
    svc = PLAN.services[0]
    assert f"--label spark-state.identity={svc.identity}" in svc.unit_text
    snap["containers"][svc.container_name]["identity"] = "0123456789abcdef"
    (item,) = [i for i in compare(observed(PLAN, snap), ENV) if not i.ok]
    assert (item.kind, item.name) == ("service", f"{svc.name} container")
    assert item.observed == "running an older version than installed (0123456789abcdef)"
    # a stopped container, or a unit that is itself out of date, is reported by the other items instead
    snap["containers"][svc.container_name]["state"] = "exited"
    assert [i for i in compare(observed(PLAN, snap), ENV) if not i.ok] == []


def test_the_identity_follows_every_change_to_the_unit() -> None:
    changed = plan_host(
        STATE.model_copy(
            update={
                "services": {
                    **STATE.services,
                    "trtllm-nvfp4": STATE.services["trtllm-nvfp4"].model_copy(
                        update={"kv_cache_free_gpu_memory_fraction": 0.5}
                    ),
                }
            }
        ),
        "spark-01",
    )
    before = {s.name: s.identity for s in PLAN.services}
    after = {s.name: s.identity for s in changed.services}
    assert after["trtllm-nvfp4"] != before["trtllm-nvfp4"]
    assert {k: v for k, v in after.items() if k != "trtllm-nvfp4"} == {
        k: v for k, v in before.items() if k != "trtllm-nvfp4"
    }


def test_an_env_file_whose_secret_is_not_here_is_unchecked_not_drift() -> None:
    from spark_state.drift import HostDrift, outcome
    from spark_state.errors import Outcome

    items = compare(observed(PLAN, converged(PLAN)), {})
    (env,) = [i for i in items if i.kind == "env"]
    assert env.ok and env.unchecked and "NGC_API_KEY not set on this machine" in env.desired
    drift = HostDrift("spark-01", "10.0.0.1", items)
    assert drift.drifted == [] and drift.unchecked == [env] and outcome([drift]) is Outcome.OK


def test_a_nim_image_to_pull_without_an_ngc_key_is_refused_naming_the_image() -> None:
    nim = next(i.ref for i in PLAN.images if i.ref.startswith("nvcr.io/nim/"))
    snap = converged(PLAN)
    assert not [f for f in _preflight(snap, env={}) if nim in f]  # present: nothing to pull, no key needed
    snap["images"][nim] = None
    (failure,) = [f for f in _preflight(snap, env={}) if nim in f]
    assert "NGC_API_KEY" in failure and "nvcr.io" in failure
    assert not [f for f in _preflight(snap) if nim in f]  # with the key it may go ahead


def test_a_nim_without_an_ngc_key_among_its_secrets_is_refused_at_preflight() -> None:
    text = EXAMPLE_STATE.read_text().replace("secrets: [NGC_API_KEY]", "secrets: []")
    assert text != EXAMPLE_STATE.read_text()
    loaded = load_state_text(text)
    assert any("a NIM needs NGC_API_KEY" in str(w) for w in loaded.warnings)  # validate warns
    plan = plan_host(loaded.state, "spark-01")
    failures = preflight(observed(plan, converged(plan)), ENV, 8.0)
    assert [f for f in failures if "NIM service" in f and "no NGC_API_KEY among its secrets" in f]


TRITON_2512 = "nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3"


def test_an_image_too_big_for_the_disk_is_refused_before_any_pull_naming_it() -> None:
    snap = converged(PLAN)
    snap["images"][TRITON_2512] = None  # still to pull: the registry says 34.6 GB
    snap["download_sizes"] = {TRITON_2512: {"bytes": 34_600_000_000}}
    snap["disk"] = {"path": "/var/lib/spark-state", "free_gb": 50.0, "total_gb": 3700.0}
    (failure,) = [f for f in _preflight(snap) if "GB free" in f]
    assert failure.startswith("/var/lib/spark-state has 50.0 GB free; this run needs about 69.2 GB there")
    assert "image triton-25.12 (34.6 GB download) 69.2 GB" in failure
    snap["disk"]["free_gb"] = 80.0
    assert not [f for f in _preflight(snap) if "GB free" in f]


def test_images_count_on_dockers_file_system_and_old_builds_are_named() -> None:
    snap = converged(PLAN)
    snap["images"][TRITON_2512] = None
    snap["download_sizes"] = {TRITON_2512: {"bytes": 34_600_000_000}}
    snap["docker_disk"] = {"path": "/var/lib/docker", "free_gb": 40.0, "total_gb": 500.0}
    snap["engine_builds"] = {
        "llama31-8b-nvfp4": [{"fingerprint": "old", "files": {"engine/rank0.engine": 5_700_000_000}}]
    }
    (failure,) = [f for f in _preflight(snap) if "GB free" in f]
    assert failure.startswith("/var/lib/docker has 40.0 GB free") and "old engine builds hold 5.7 GB" in failure
    # The probe reads only JSON objects as manifests; anything else in that section is not its answer.
    snap["engine_builds"]["llama31-8b-nvfp4"].append("not a manifest")
    with pytest.raises(ProbeError, match="unexpected in engine_builds"):
        Snapshot.parse(snap)


def test_services_to_start_must_fit_the_memory_free_now() -> None:
    snap = converged(PLAN)
    stopped = PLAN.services[0]
    snap["containers"].pop(stopped.container_name)
    snap["memory"] = {"total_gib": 121.7, "available_gib": 1.0}  # another process holds the rest
    (failure,) = [f for f in _preflight(snap) if "available now" in f]
    assert f"services to start ({stopped.name})" in failure and "something else holds 120.7 GiB" in failure
    snap["containers"][stopped.container_name] = {"state": "running", "published": [stopped.port]}
    snap["memory"] = {"total_gib": 121.7, "available_gib": 1.0}  # all ours, all running: nothing to start
    assert not [f for f in _preflight(snap) if "available now" in f]


def test_a_secret_that_cannot_go_into_an_env_file_is_refused_by_name_never_shown() -> None:
    failures = _preflight(converged(PLAN), env={"NGC_API_KEY": "nvapi-line1\nline2"})
    (failure,) = [f for f in failures if "cannot go into an env file" in f]
    assert failure.endswith(": NGC_API_KEY") and "line1" not in " ".join(failures)


def test_paths_on_one_file_system_share_one_budget() -> None:
    """On a Spark, paths.root and docker's directory are on the same disk: what each needs adds up."""
    snap = converged(PLAN)
    snap["images"][TRITON_2512] = None
    snap["download_sizes"] = {TRITON_2512: {"bytes": 20_000_000_000}}
    snap["manifests"] = {path: None for path in snap["manifests"]}  # checkpoints and engines to fetch and build
    snap["disk"] = {"path": "/var/lib/spark-state", "free_gb": 60.0, "total_gb": 3700.0, "device": 2049}
    snap["docker_disk"] = {"path": "/var/lib/docker", "free_gb": 60.0, "total_gb": 3700.0, "device": 2049}
    (failure,) = [f for f in _preflight(snap) if "GB free" in f]
    assert failure.startswith("/var/lib/spark-state has 60.0 GB free") and "image triton-25.12" in failure
    assert "checkpoint llama31-8b-fp8" in failure
    snap["docker_disk"]["device"] = 2050  # another disk: each fits on its own
    assert not [f for f in _preflight(snap) if "/var/lib/docker" in f]


def test_a_secrets_directory_spark_state_did_not_create_fails_preflight() -> None:
    """Preflight refuses it before anything changes; a directory spark-state made (or none yet) passes."""
    snap = converged(PLAN)
    directory = PLAN.secrets_dir
    snap["secrets_dir"] = {"path": directory, "resolved": directory, "exists": True, "owned": False, "mode": "0o755"}
    snap["secrets_dir"]["foreign"] = ["ca-certificates.crt"]
    (failure,) = [f for f in _preflight(snap) if "paths.secrets" in f]
    assert "spark-state did not create it and holds ca-certificates.crt" in failure
    snap["secrets_dir"] |= {"owned": True, "foreign": []}
    assert not [f for f in _preflight(snap) if "paths.secrets" in f]
    snap["secrets_dir"] = {"path": directory, "resolved": directory, "exists": False, "owned": False}
    assert not [f for f in _preflight(snap) if "paths.secrets" in f]
