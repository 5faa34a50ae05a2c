"""Servers configured by command-line flags (vLLM, SGLang): the flag lists read from each server's own wheel
(stacks/data/<server>-<version>.json, written by scripts/*_flags_from_wheel.py), the options a state gives as
`flag: value`, what the server's argparse would refuse, and the argv they become.

A flag's kind: 'bool' (argparse.BooleanOptionalAction: --flag/--no-flag), 'switch' (store_true: only --flag) or
'value' (--flag VALUE)."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Annotated, Any

from pydantic import AfterValidator

from ..desired.fields import shell_arg_problem
from ..plan.quoting import systemd_problem


def _option_value(value: Any) -> Any:
    """One flag's value: true/false, a finite number, a string or a mapping (passed as its JSON), each a word a
    systemd unit can carry."""
    if isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value)):
        return value
    if isinstance(value, str | dict):
        word = value if isinstance(value, str) else json_word(value)
        if problem := systemd_problem(word) or shell_arg_problem(word):
            raise ValueError(problem)
        return value
    raise ValueError("a flag's value is true/false, a number, a string or a mapping (passed as its JSON)")


OptionValue = Annotated[Any, AfterValidator(_option_value)]


@functools.cache
def flags(server: str, version: str) -> dict[str, str] | None:
    """The server's flags at this version (flag → kind); None when not on file."""
    data = resources.files(__package__).joinpath("data", f"{server}-{version}.json")
    if not data.is_file():
        return None
    return dict(json.loads(data.read_text())["flags"])


def known_versions(server: str) -> list[str]:
    return sorted(
        entry.name.removeprefix(f"{server}-").removesuffix(".json")
        for entry in resources.files(__package__).joinpath("data").iterdir()
        if entry.name.startswith(f"{server}-")
    )


def option_problems(
    options: Mapping[str, Any],
    known: Mapping[str, str] | None,
    owned: Mapping[str, str],
    program: str,
    abbreviations: bool = False,
    refusal: str = "unrecognized arguments",
) -> Iterator[tuple[str, str]]:
    """(option, what is wrong) for each option `program` (with the flags `known`, None when not on file) would
    refuse, or spark-state sets itself (`owned`: flag → which field of the service sets it). `abbreviations`: the
    program's argparse takes unique prefixes (its default), which spark-state asks to be written in full; `refusal`:
    what the program says of an argument it does not know."""
    for name, value in options.items():
        flag = name.replace("_", "-")
        if flag in owned:
            yield name, f"--{flag} is spark-state's to set: {owned[flag]}"
            continue
        if known is None:
            continue  # the version's flags are not on file: the server checks them when the service starts
        kind = known.get(f"--{flag}")
        expansions = [f for f in known if f.startswith(f"--{flag}")]
        if kind is None and abbreviations and len(expansions) == 1:
            yield (
                name,
                (
                    f"{program} reads --{flag} as an abbreviation of {expansions[0]}: write it in full "
                    "(a later release may add a flag that makes it ambiguous)"
                ),
            )
        elif kind is None:
            yield name, f"{program} has no --{flag}: it exits with '{refusal}'"
        elif kind == "switch" and value is not True:
            yield name, f"--{flag} is a switch in {program}: only true turns it on"
        elif kind == "value" and isinstance(value, bool):
            yield name, f"--{flag} takes a value in {program}, not true/false"


def json_word(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def option_argv(options: Mapping[str, Any]) -> list[str]:
    """The flags for these options, in the order given: true/false → --flag/--no-flag, a mapping → its JSON."""
    argv: list[str] = []
    for name, value in options.items():
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(f"--{flag}" if value else f"--no-{flag}")
        elif isinstance(value, dict):
            argv += [f"--{flag}", json_word(value)]
        else:
            argv += [f"--{flag}", str(value)]
    return argv
