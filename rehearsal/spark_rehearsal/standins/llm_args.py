"""Stand-in for TensorRT-LLM's LLM API options loader (`tensorrt_llm/llmapi/llm_args.py`): the YAML file given
to `trtllm-serve --extra_llm_api_options` is read with `yaml.safe_load` (`update_llm_args_with_extra_options`), its
root must be a mapping ("Configuration file root must be a mapping."), the mapped sections (`kv_cache_config`, ...)
are built as their own pydantic models and the rest as `TorchLlmArgs`, every one with extra="forbid": an unknown
key ends trtllm-serve with pydantic's ValidationError, naming the model and the key.

The models' fields are those of TensorRT-LLM's main branch at commit 0004396 (after the TensorRT backend's
removal). Images older than that are checked against the same fields: the one field list we could read; a field
added since would pass on an older image here and fail on the real one."""

from __future__ import annotations

import json
import os

import yaml  # PyYAML: the real images have it, and the loader reads with its safe_load

_HERE = os.path.dirname(os.path.abspath(__file__))


def _models() -> dict[str, dict]:
    with open(os.path.join(_HERE, "llm_args_fields.json")) as f:
        return json.load(f)


def _type_name(value: object) -> str:
    return {dict: "dict", list: "list", bool: "bool", int: "int", float: "float", str: "str"}.get(
        type(value), type(value).__name__
    )


def extra_forbidden(model: str, key: str, value: object) -> str:
    """pydantic v2's text for an unknown key in a model with extra="forbid"."""
    return (
        f"1 validation error for {model}\n{key}\n  Extra inputs are not permitted "
        f"[type=extra_forbidden, input_value={value!r}, input_type={_type_name(value)}]\n"
        "    For further information visit https://errors.pydantic.dev/2.11/v/extra_forbidden"
    )


def _unknown_key(options: dict, model: str, models: dict[str, dict], at: str = "") -> tuple[str, str, object] | None:
    """(model the error names, the key's location in it, its value) of the first unknown key. The mapped sections
    are built alone, so their errors name their own model; the others are validated inside their parent, whose
    error names the path from its top (a union such as cuda_graph_config's adds its tag, `decode`)."""
    spec = models[model]
    for key, value in options.items():
        if key not in spec["fields"]:
            return model, f"{at}{key}", value
        nested = spec.get("nested", {}).get(key)
        if nested and isinstance(value, dict):
            alone = nested in spec.get("mapped", [])
            found = _unknown_key(value, nested, models, "" if alone else f"{at}{key}.{models[nested].get('tag', '')}")
            if found:
                return found if alone else (model, found[1], found[2])
    return None


def load_options(path: str) -> tuple[dict | None, str | None]:
    """(options, None) when trtllm-serve would take the file; (None, the error it dies with) when not."""
    try:
        with open(path) as f:
            options = yaml.safe_load(f)
    except OSError as exc:
        return None, f"FileNotFoundError: {exc}"
    except yaml.YAMLError as exc:
        return None, f"yaml.scanner.ScannerError: {exc}"
    if options is None:
        return {}, None
    if not isinstance(options, dict):
        return None, "ValueError: Configuration file root must be a mapping."
    found = _unknown_key(options, "TorchLlmArgs", _models())
    if found:
        return None, f"pydantic_core._pydantic_core.ValidationError: {extra_forbidden(*found)}"
    return options, None
