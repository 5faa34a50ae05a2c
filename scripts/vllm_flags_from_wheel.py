"""Write spark_state/stacks/data/vllm-<version>.json: the flags `vllm serve` takes at that vLLM version, read from
its wheel without importing it (vLLM needs torch and a GPU to import).

    pip download --no-deps --only-binary :all: vllm==0.33.0 -d /tmp/vllm
    python scripts/vllm_flags_from_wheel.py /tmp/vllm/vllm-0.33.0-*.whl

Sources inside the wheel: vllm/entrypoints/common/cli_args.py (`make_arg_parser`: the positional model tag, its own
flags, then `FrontendArgs.add_cli_args` — one `--field-name` per dataclass field — and `AsyncEngineArgs.add_cli_args`)
and vllm/engine/arg_utils.py (`EngineArgs.add_cli_args`: explicit `add_argument("--flag", ...)` calls). A bool
field becomes `--flag/--no-flag` (`get_kwargs`: argparse.BooleanOptionalAction)."""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import Path

FRONTEND_PATHS = (
    "vllm/entrypoints/common/cli_args.py",
    "vllm/entrypoints/launchers/cli_args.py",
    "vllm/entrypoints/openai/cli_args.py",
)
OUT = Path(__file__).resolve().parent.parent / "spark_state" / "stacks" / "data"


def _annotations(tree: ast.Module, classes: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in classes:
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    found[item.target.id] = ast.unparse(item.annotation)
    return found


def _is_bool(annotation: str | None) -> bool:
    return annotation is not None and re.fullmatch(r"bool(\s*\|\s*None)?", annotation) is not None


def main(wheel: str) -> None:
    version = re.search(r"vllm-([0-9][^-]*)-", Path(wheel).name).group(1)  # type: ignore[union-attr]
    with zipfile.ZipFile(wheel) as z:
        engine = z.read("vllm/engine/arg_utils.py").decode()
        names = set(z.namelist())
        # where the frontend's arguments live moved between releases (openai/, launchers/, common/)
        frontend_path = next(p for p in FRONTEND_PATHS if p in names)
        frontend = z.read(frontend_path).decode()
    engine_fields = _annotations(ast.parse(engine), {"EngineArgs", "AsyncEngineArgs"})
    flags: dict[str, str] = {}  # flag → "bool" | "value"
    for call in re.findall(r'add_argument\(\s*((?:"-[-a-zA-Z0-9_.]+"\s*,\s*)+)', engine + frontend):
        names = re.findall(r'"(-[-a-zA-Z0-9_.]+)"', call)
        long = next((n for n in names if n.startswith("--")), names[0])
        kind = "bool" if _is_bool(engine_fields.get(long[2:].replace("-", "_"))) else "value"
        for name in names:
            flags[name] = kind
    frontend_fields = _annotations(ast.parse(frontend), {"BaseFrontendArgs", "FrontendArgs"})
    for name, annotation in frontend_fields.items():
        flags[f"--{name.replace('_', '-')}"] = "bool" if _is_bool(annotation) else "value"
    for switch in ("--headless", "--grpc"):  # store_true flags of make_arg_parser, where the release has them
        if switch in flags:
            flags[switch] = "switch"
    document = {
        "source": f"vllm {version} wheel: vllm/engine/arg_utils.py, {frontend_path}",
        "flags": dict(sorted(flags.items())),
    }
    (OUT / f"vllm-{version}.json").write_text(json.dumps(document, indent=1) + "\n")
    print(f"{len(flags)} flags → {OUT / f'vllm-{version}.json'}")


if __name__ == "__main__":
    main(sys.argv[1])
