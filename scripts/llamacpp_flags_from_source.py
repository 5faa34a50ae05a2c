"""Write spark_state/stacks/data/llama.cpp-b<BUILD>.json: the flags `llama-server` takes at that llama.cpp build, read
from common/arg.cpp (`common_params_parser_init`) as llama-cpp-python's source distribution vendors it.

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcpp   # vendors llama.cpp@0c1e57098
    tar xzf /tmp/lcpp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcpp
    python scripts/llamacpp_flags_from_source.py \
        /tmp/lcpp/llama_cpp_python-0.3.36/vendor/llama.cpp/common/arg.cpp b11312 0c1e57098

Every `add_opt(common_arg(...))` whose examples include LLAMA_EXAMPLE_SERVER or LLAMA_EXAMPLE_COMMON (or that names
none) and does not exclude the server is one of llama-server's (the `add_opt` lambda's rule). common_arg's
constructors tell the kind: (names, help, handler) a switch; (names, negative names, help, handler) a pair — kept
as 'bool' when its negative is `--no-NAME` (the form spark-state writes), else each name a switch; (names, hint,
[hint,] help, handler) a flag with a value."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "spark_state" / "stacks" / "data"
SERVER, COMMON = "LLAMA_EXAMPLE_SERVER", "LLAMA_EXAMPLE_COMMON"


def _balanced(text: str, start: int) -> int:
    """The index just past the parenthesis that closes the one at `start` (strings and chars skipped)."""
    depth, i = 0, start
    while i < len(text):
        ch = text[i]
        if ch == '"':
            i += 1
            while text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif ch == "'":
            i += 3 if text[i + 1] != "\\" else 4
            continue
        elif ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced")


def _top_level_args(call: str) -> list[str]:
    """The comma-separated arguments of `(...)`, at depth one."""
    args, depth, current, i = [], 0, "", 0
    inner = call[1:-1]
    while i < len(inner):
        ch = inner[i]
        if ch == '"':
            j = i + 1
            while inner[j] != '"':
                j += 2 if inner[j] == "\\" else 1
            current += inner[i : j + 1]
            i = j + 1
            continue
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        if ch == "," and depth == 0:
            args.append(current.strip())
            current = ""
        else:
            current += ch
        i += 1
    args.append(current.strip())
    return args


def _names(arg: str) -> list[str]:
    return re.findall(r'"(-[^"]+)"', arg)


def server_flags(source: str) -> dict[str, str]:
    flags: dict[str, str] = {}
    for match in re.finditer(r"add_opt\(common_arg\(", source):
        call_start = match.end() - 1
        call_end = _balanced(source, call_start)
        opt_end = _balanced(source, match.start() + len("add_opt"))
        tail = source[call_end:opt_end]
        examples = re.search(r"set_examples\(\{([^}]*)\}", tail)
        excludes = re.search(r"set_excludes\(\{([^}]*)\}", tail)
        in_server = examples is None or SERVER in examples.group(1) or COMMON in examples.group(1)
        if not in_server or (excludes and SERVER in excludes.group(1)):
            continue
        args = _top_level_args(source[call_start:call_end])
        names = _names(args[0])
        if args[1].startswith("{"):  # a pair: positive names, negative names
            negatives = _names(args[1])
            paired = any(n.startswith("--") and f"--no-{n[2:]}" in negatives for n in names)
            for name in names:
                flags[name] = "bool" if paired else "switch"
            for name in negatives:
                flags[name] = "switch"
        elif len(args) == 3:
            for name in names:
                flags[name] = "switch"
        else:
            for name in names:
                flags[name] = "value"
    return flags


def main(arg_cpp: str, build: str, commit: str) -> None:
    flags = server_flags(Path(arg_cpp).read_text())
    document = {
        "source": f"llama.cpp {build} (commit {commit}) common/arg.cpp, as llama-cpp-python's sdist vendors it",
        "flags": dict(sorted(flags.items())),
    }
    out = OUT / f"llama.cpp-{build}.json"
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"{len(flags)} flags → {out}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
