"""Property: any string in any free-text field is either rejected by validation, or every command line and
unit text the plan renders parses back (shlex.split) to exactly the intended argv, carrying the string intact."""

from __future__ import annotations

import copy
import io
import shlex
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from spark_state.desired.loader import load_state_text
from spark_state.errors import StateFileError
from spark_state.plan.host_plan import plan_fleet

BASE: dict[str, Any] = {
    "paths": {"root": "/srv/spark", "docker": "/usr/bin/docker", "secrets": "/etc/ss", "units": "/etc/systemd/system"},
    "images": {
        "triton": "nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3",
        "nim": {"ref": "nvcr.io/nim/meta/llama-3.1-8b-instruct-dgx-spark:latest", "trtllm_version": "1.1.0"},
    },
    "checkpoints": {
        "fp8": {"repo": "nvidia/Llama-3.1-8B-Instruct-FP8", "revision": "main"},
        "nvfp4": {"repo": "nvidia/Llama-3.1-8B-Instruct-NVFP4", "tokenizer_from": "fp8"},
    },
    "engines": {
        "e4": {
            "checkpoint": "nvfp4",
            "image": "triton",
            "quantization": "nvfp4",
            "convert_script": "/opt/convert.py",
            "convert_args": ["--workers", "1"],
            "build_args": ["--log_level", "info"],
        }
    },
    "services": {
        "eng": {"engine": "e4", "port": 8003, "extra_args": ["--log_level", "info"], "env": {"A": "b"}},
        "pt": {"checkpoint": "fp8", "backend": "pytorch", "image": "triton", "port": 8010, "extra_args": ["-x"]},
        "nim": {"container": "nim", "port": 8000, "shm_size": "16GB", "extra_args": ["--y"], "env": {"B": "c"}},
    },
    "bench": {"prompt": "hello"},
    "hosts": {"h1": {"address": "10.0.0.1", "ssh_user": "root", "services": ["eng", "pt", "nim"]}},
}

# (path into BASE, whether the value must appear as one whole argv word, or only inside one)
FIELDS: list[tuple[tuple[Any, ...], str]] = [
    (("images", "triton"), "word"),
    (("images", "nim", "ref"), "word"),
    (("images", "nim", "trtllm_version"), "none"),
    (("checkpoints", "fp8", "repo"), "none"),
    (("checkpoints", "fp8", "revision"), "none"),  # becomes one directory name; see test_plan.py
    (("engines", "e4", "convert_script"), "word"),
    (("engines", "e4", "convert_args", 1), "word"),
    (("engines", "e4", "build_args", 1), "word"),
    (("services", "eng", "extra_args", 1), "word"),
    (("services", "pt", "extra_args", 0), "word"),
    (("services", "nim", "extra_args", 0), "word"),
    (("services", "nim", "shm_size"), "inside"),
    (("services", "eng", "env", "A"), "none"),
    (("paths", "root"), "inside"),
    (("paths", "docker"), "word"),
    (("paths", "secrets"), "inside"),
    (("hosts", "h1", "address"), "none"),
    (("hosts", "h1", "ssh_user"), "none"),
    (("bench", "prompt"), "none"),
]

TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from(list("ab/.-_:=$%'\"\\ ;|&`\n\t*?~#!(){}<>@+,0123")), max_size=30),
    st.sampled_from(["", " ", "'", '"', "\\", "$(id)", "%n", "a b", "--x=1 --y", "/srv/x y", "/a/../b", "-", "ø"]),
)


def _dump(data: dict[str, Any]) -> str:
    out = io.StringIO()
    YAML(typ="rt").dump(data, out)
    return out.getvalue()


def _set(data: dict[str, Any], path: tuple[Any, ...], value: str) -> None:
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _get(state: Any, path: tuple[Any, ...]) -> Any:
    node: Any = state
    for part in path:
        node = node[part] if isinstance(node, (dict, list)) else getattr(node, str(part))
    return node.ref if hasattr(node, "ref") and path[0] == "images" else node


def _exec_lines(unit_text: str) -> list[str]:
    return [line.split("=", 1)[1].lstrip("-") for line in unit_text.splitlines() if line.startswith("Exec")]


@pytest.mark.parametrize(("path", "appears"), FIELDS, ids=[".".join(map(str, p)) for p, _ in FIELDS])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=TEXT)
def test_free_text_is_rejected_or_carried_as_one_word(path: tuple[Any, ...], appears: str, value: str) -> None:
    data = copy.deepcopy(BASE)
    _set(data, path, value)
    try:
        loaded = load_state_text(_dump(data), "prop.yaml")
    except StateFileError as exc:
        assert exc.problems, "a rejection must name at least one problem"
        return
    carried = _get(loaded.state, path)
    (plan,) = plan_fleet(loaded.state)
    argvs: list[list[str]] = []
    for engine in plan.engines:
        for command, argv in ((engine.convert_command, engine.convert_argv), (engine.build_command, engine.build_argv)):
            assert shlex.split(command) == list(argv)
            argvs.append(list(argv))
    for service in plan.services:
        exec_lines = _exec_lines(service.unit_text)
        assert len(exec_lines) == (4 if service.followers else 3)  # rm, run, [wait until it answers,] stop
        parsed = [shlex.split(line) for line in exec_lines]
        assert parsed[1] == list(service.run_argv)
        argvs.extend(parsed)
    words = [w for argv in argvs for w in argv]
    if appears == "word":
        assert carried in words
    elif appears == "inside":
        assert any(carried in w for w in words)
