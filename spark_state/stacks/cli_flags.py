"""Servers configured by command-line flags (vLLM, SGLang, llama.cpp): the flag lists read from each server's own
source (stacks/data/<server>-<version>.json, written by scripts/*_flags_from_*.py), the options a state gives as
`flag: value`, what the server's argparse would refuse, and the argv they become.

A flag's kind: 'bool' (argparse.BooleanOptionalAction: --flag/--no-flag), 'switch' (store_true: only --flag) or
'value' (--flag VALUE)."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from ..desired.fields import Name, ServiceBase, shell_arg_problem
from ..plan.quoting import systemd_problem
from .base import LaunchInputs


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
MODEL_IN_CONTAINER = "/model"
TOKENIZER_IN_CONTAINER = "/tokenizer"


class CheckpointFlagService(ServiceBase):
    """What a service of a flag-configured server on a checkpoint declares besides its stack's own fields."""

    checkpoint: Name = Field(description="The checkpoint it serves.")
    image: Name = Field(
        description="The image it runs in (its tag tells the server version its options are checked against)."
    )
    tokenizer: Name | None = Field(default=None, description="Checkpoint whose tokenizer to serve with.")
    served_model_name: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$", description="The model id clients ask for."
    )
    shm_size_gb: int = Field(default=16, ge=1, le=1024, description="The container's /dev/shm (the server's IPC).")

    def docker_options(self, inputs: LaunchInputs) -> list[str]:
        """`docker run` options: /dev/shm, the port, the checkpoint (and tokenizer) read-only, no hub look-ups."""
        docker = [f"--shm-size={self.shm_size_gb}g", "-p", f"{inputs.port}:{inputs.port}"]
        docker += ["-v", f"{inputs.model_dir}:{MODEL_IN_CONTAINER}:ro"]
        if self.tokenizer:
            docker += ["-v", f"{inputs.tokenizer_dir}:{TOKENIZER_IN_CONTAINER}:ro"]
        return docker + ["-e", "HF_HUB_OFFLINE=1"]  # the checkpoint is on disk: no hub look-ups at start


@functools.cache
def _flags(server: str, version: str) -> dict[str, str] | None:
    data = resources.files(__package__).joinpath("data", f"{server}-{version}.json")
    if not data.is_file():
        return None
    return dict(json.loads(data.read_text())["flags"])


@dataclass(frozen=True)
class FlagServer:
    """A server configured by command-line flags, as spark-state checks a service's options against it."""

    name: str  # its flag lists are stacks/data/<name>-<version>.json
    label: str  # for people: "vLLM"
    command: str  # for people: "`vllm serve`"
    owned: Mapping[str, str]  # flag → the service field that sets it (spark-state passes it itself)
    version_for_image: Callable[[str], str | None]  # the version an image reference tells, if any
    abbreviations: bool = False  # its argparse takes unique prefixes (argparse's default)
    refusal: str = "unrecognized arguments"  # what it says of an argument it does not know

    def flags(self, version: str) -> dict[str, str] | None:
        """Its flags at this version (flag → kind); None when not on file."""
        return _flags(self.name, version)

    def known_versions(self) -> list[str]:
        return sorted(
            entry.name.removeprefix(f"{self.name}-").removesuffix(".json")
            for entry in resources.files(__package__).joinpath("data").iterdir()
            if entry.name.startswith(f"{self.name}-")
        )

    def option_problems(self, options: Mapping[str, Any], version: str | None) -> Iterator[tuple[str, str]]:
        """(option, what is wrong) for each option the server at `version` would refuse (its flags not on file:
        only those spark-state sets itself), or spark-state sets itself. An abbreviation the server would take
        is asked for in full."""
        known = self.flags(version) if version else None
        program = f"{self.label} {version}'s {self.command}"
        for name, value in options.items():
            flag = name.replace("_", "-")
            if flag in self.owned:
                yield name, f"--{flag} is spark-state's to set: {self.owned[flag]}"
                continue
            if known is None:
                continue  # the version's flags are not on file: the server checks them when the service starts
            kind = known.get(f"--{flag}")
            expansions = [f for f in known if f.startswith(f"--{flag}")]
            if kind is None and self.abbreviations and len(expansions) == 1:
                yield (
                    name,
                    (
                        f"{program} reads --{flag} as an abbreviation of {expansions[0]}: write it in full "
                        "(a later release may add a flag that makes it ambiguous)"
                    ),
                )
            elif kind is None:
                yield name, f"{program} has no --{flag}: it exits with '{self.refusal}'"
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
