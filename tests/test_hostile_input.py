"""Hostile and careless input beyond the corpus: warnings that validate prints, limits that hold whatever the
file's size, and output that stays machine-readable when the state is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXAMPLE_STATE

from spark_state.cli import MAX_PROBLEMS_SHOWN, main
from spark_state.desired.loader import MAX_STATE_BYTES, load_state, load_state_text
from spark_state.errors import StateFileError

BASE = """images:
  triton: nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3
  nim: nvcr.io/nim/meta/llama-3.1-8b-instruct-dgx-spark:latest
checkpoints:
  fp8: {repo: nvidia/Llama-3.1-8B-Instruct-FP8}
  nvfp4: {repo: nvidia/Llama-3.1-8B-Instruct-NVFP4, revision: 0123456789abcdef0123456789abcdef01234567,
          tokenizer_from: fp8}
engines:
  nvfp4: {checkpoint: nvfp4, image: triton, quantization: nvfp4}
services:
  chat: {engine: nvfp4, port: 8004, env: {HF_TOKEN: hf_abcdefghijklmnopqrstuvwxyz0123, LOG_LEVEL: debug}}
  nim: {container: nim, port: 53}
hosts:
  spark-01: {address: 10.0.0.1, services: [chat, nim]}
"""


def _warnings(text: str) -> dict[str, str]:
    return {w.field: w.message for w in load_state_text(text, "state.yaml").warnings}


def test_risky_but_possible_choices_are_warnings_naming_the_field() -> None:
    warnings = _warnings(BASE)
    assert "looks like a credential in plain env" in warnings["services.chat.env.HF_TOKEN"]
    assert "services.chat.env.LOG_LEVEL" not in warnings
    assert "a NIM needs NGC_API_KEY" in warnings["services.nim.secrets"]
    assert "usually held by DNS" in warnings["services.nim.port"]
    assert "takes its tokenizer from 'fp8' at 'main', which moves" in warnings["checkpoints.nvfp4.tokenizer_from"]


def test_a_token_shaped_value_is_warned_whatever_its_name() -> None:
    text = BASE.replace("LOG_LEVEL: debug", "EXTRA: nvapi-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789")
    assert "looks like a credential" in _warnings(text)["services.chat.env.EXTRA"]


def test_a_secret_its_stack_does_not_document_is_delivered_only_when_allowed_with_a_warning() -> None:
    allowed = BASE.replace(
        "services:\n  chat: {engine: nvfp4, port: 8004,",
        "services:\n  chat: {engine: nvfp4, port: 8004, secrets: [SITE_TOKEN], allow_secrets: [SITE_TOKEN],",
    )
    warning = _warnings(allowed)["services.chat.allow_secrets[0]"]
    assert "SITE_TOKEN is not a credential trtllm-engine documents reading" in warning
    assert "delivered because allow_secrets names it" in warning
    with pytest.raises(StateFileError) as info:
        load_state_text(allowed.replace(", allow_secrets: [SITE_TOKEN]", ""), "state.yaml")
    (problem,) = info.value.problems
    assert problem.field == "services.chat.secrets[0]" and "add allow_secrets: [SITE_TOKEN]" in problem.message


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_STATE_BYTES + "\n")
    with pytest.raises(StateFileError) as info:
        load_state(big)
    (problem,) = info.value.problems
    assert (problem.line, problem.field) == (1, "<file>") and f"at most {MAX_STATE_BYTES} bytes" in problem.message


def test_validate_prints_at_most_50_problems_then_how_many_more(tmp_path: Path, capsys) -> None:
    services = "".join(f"  s{i}: {{engine: nope, port: {9000 + i}}}\n" for i in range(120))
    path = tmp_path / "many.yaml"
    path.write_text("services:\n" + services + "hosts: {spark-01: {address: 10.0.0.1}}\n")
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("unknown engine 'nope'") == MAX_PROBLEMS_SHOWN
    assert f"... and {120 - MAX_PROBLEMS_SHOWN} more" in err and "120 problem(s)" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "{bad}", "--json"],
        ["plan", "{missing}", "--json"],
        ["plan", "{example}", "--host", "spark-99", "--json"],
    ],
)
def test_json_output_stays_json_when_the_command_fails(tmp_path: Path, capsys, argv: list[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: {spark-01: {address: 10.0.0.256}}\n")
    paths = {"bad": str(bad), "missing": str(tmp_path / "nope.yaml"), "example": str(EXAMPLE_STATE)}
    assert main([a.format(**paths) for a in argv]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "spark-state/error/v1"
    assert document.get("problems") or document.get("message")


def test_a_registry_host_name_is_read_case_insensitively() -> None:
    """`NVCR.IO/nim/...` is pulled from nvcr.io: it needs the login and the NGC key as well."""
    from spark_state.desired.compat import needs_ngc_login

    assert needs_ngc_login("NVCR.IO/nim/meta/llama-3.1-8b-instruct-dgx-spark:1.0.0")
    assert needs_ngc_login("Nvcr.Io/nim/meta/llama-3.1-8b-instruct-dgx-spark:1.0.0")
    assert not needs_ngc_login("NVCR.IO/nvidia/tritonserver:25.12-trtllm-python-py3")
