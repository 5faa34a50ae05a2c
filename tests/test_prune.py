"""What `spark-state prune` may remove, decided from a host's snapshot (pure; the fleet test removes for real)."""

from __future__ import annotations

import pytest
from conftest import EXAMPLE_STATE

from spark_state.desired.loader import load_state
from spark_state.on_host.probe import Snapshot
from spark_state.plan.host_plan import plan_host
from spark_state.prune import removable, removal_command

STATE = load_state(EXAMPLE_STATE).state
HOST = next(iter(STATE.hosts))
PLAN = plan_host(STATE, HOST)
ENGINE = next(e for e in PLAN.engines)
SERVICE = next(s for s in PLAN.services if s.engine == ENGINE.name)
OLD_IMAGE = "nvcr.io/nvidia/tritonserver:25.09-trtllm-python-py3"


def _build(fingerprint: str, mtime: float, image: str = OLD_IMAGE, partial: bool = False) -> dict:
    path = f"{PLAN.root}/engines/{ENGINE.name}/{fingerprint[:16]}" + (".partial" if partial else "")
    manifest = None if partial else {"fingerprint": fingerprint, "trtllm_version": "1.0.0", "image": image}
    return {"name": ENGINE.name, "path": path, "bytes": 5_000_000_000, "mtime": mtime, "manifest": manifest}


def _snapshot(
    builds: list[dict],
    rollback_unit: str | None = None,
    images: list[dict] | None = None,
    files: list[dict] | None = None,
) -> Snapshot:
    current = {"sha256": "0" * 64, "mode": "0o644", "text": SERVICE.unit_text}
    doc = {
        "units": {SERVICE.unit_name: {"file": current, "active": "active", "enabled": "enabled"}},
        "rollback": {
            "units": {SERVICE.unit_name: {"sha256": "1" * 64, "mode": "0o644", "text": rollback_unit}}
            if rollback_unit
            else {}
        },
        "containers": {
            SERVICE.container_name: {"state": "running", "image": SERVICE.image_ref, "mounts": [f"{ENGINE.dir}/engine"]}
        },
        "artifacts": {
            "engines": [_build(ENGINE.fingerprint, 50.0, ENGINE.image_ref), *builds],
            "checkpoints": [],
            "files": files or [],
            "images": images or [],
        },
    }
    return Snapshot.parse(doc)


def test_replaced_builds_go_the_rollback_target_and_the_served_build_stay() -> None:
    target = _build("b" * 64, 40.0)
    rollback_unit = SERVICE.unit_text.replace(ENGINE.dir, target["path"])
    older, partial = _build("c" * 64, 30.0), _build("d" * 64, 20.0, partial=True)
    items = removable(STATE, PLAN, _snapshot([target, older, partial], rollback_unit))
    assert {(i.kind, i.target) for i in items} == {("engine", older["path"]), ("interrupted build", partial["path"])}
    # --keep 2: one more previous build per engine survives
    items = removable(STATE, PLAN, _snapshot([target, older, _build("e" * 64, 10.0)], rollback_unit), keep=2)
    assert [i.target for i in items] == [f"{PLAN.root}/engines/{ENGINE.name}/{'e' * 16}"]


def test_images_only_of_our_repositories_and_only_unused() -> None:
    images = [
        {"id": "sha256:1", "tags": [OLD_IMAGE], "bytes": 30_000_000_000},
        {"id": "sha256:2", "tags": [SERVICE.image_ref], "bytes": 34_000_000_000},
        {"id": "sha256:3", "tags": ["debian:12"], "bytes": 100_000_000},  # the user's own
        {"id": "sha256:4", "tags": ["nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3"], "bytes": 1},
    ]
    target = _build("b" * 64, 40.0, image="nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3")
    rollback_unit = SERVICE.unit_text.replace(ENGINE.dir, target["path"]).replace(
        SERVICE.image_ref, "nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3"
    )
    items = removable(STATE, PLAN, _snapshot([target], rollback_unit, images))
    assert [(i.kind, i.target) for i in items] == [("image", OLD_IMAGE)]
    assert removal_command(PLAN, items) == f"{PLAN.docker} image rm {OLD_IMAGE}"


def test_files_of_services_the_state_dropped() -> None:
    files = [
        {"path": f"{PLAN.secrets_dir}/gone.env", "bytes": 40},
        {"path": f"{PLAN.rollback_dir}/spark-state-gone.service", "bytes": 900},
    ]
    files += [{"path": s.env_file, "bytes": 40} for s in PLAN.services if s.env_file]
    items = removable(STATE, PLAN, _snapshot([], files=files))
    assert sorted(i.target for i in items) == sorted(f["path"] for f in files[:2])


def test_a_path_outside_our_directories_is_never_a_candidate() -> None:
    bad = {"name": ENGINE.name, "path": "/etc/passwd-dir", "bytes": 1, "mtime": 1.0, "manifest": None}
    with pytest.raises(AssertionError, match="refusing"):
        removable(STATE, PLAN, _snapshot([bad]))
