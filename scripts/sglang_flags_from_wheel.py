"""Write spark_state/stacks/data/sglang-<version>.json: the flags `python3 -m sglang.launch_server` takes at that
SGLang version, read from its wheel without importing it (SGLang needs torch and a GPU to import).

    pip download --no-deps --only-binary :all: sglang==0.5.23 -d /tmp/sglang
    python scripts/sglang_flags_from_wheel.py /tmp/sglang/sglang-0.5.23-*.whl

Sources inside the wheel: sglang/srt/arg_groups/fields/*.py (every `A[T, "help"]` or `A[T, Arg(...)]` field of a
namespace becomes a flag in `add_cli_args_from_dataclass`, sglang/srt/arg_groups/arg_utils.py: `--field-name` unless
`Arg(cli_name=...)`, plus `Arg(aliases=[...])`; `no_cli=True` skips it; a bool field is `store_true` unless its
Arg names an action) and sglang/srt/server_args.py (`ServerArgs.add_cli_args`: the flags registered by hand)."""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import Path

FIELDS_DIR = "sglang/srt/arg_groups/fields/"
SERVER_ARGS = "sglang/srt/server_args.py"
OUT = Path(__file__).resolve().parent.parent / "spark_state" / "stacks" / "data"


def _arg_call(annotation: ast.expr) -> tuple[ast.expr, ast.Call | None] | None:
    """(type, Arg(...) call or None) of an `A[T, "help"]` / `A[T, Arg(...)]` annotation; None for other fields."""
    if not (isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name)):
        return None
    if annotation.value.id not in ("A", "Annotated") or not isinstance(annotation.slice, ast.Tuple):
        return None
    kind, meta = annotation.slice.elts[0], annotation.slice.elts[1]
    if isinstance(meta, ast.Call) and isinstance(meta.func, ast.Name) and meta.func.id == "Arg":
        return kind, meta
    if isinstance(meta, ast.Constant | ast.JoinedStr | ast.BinOp):
        return kind, None  # a bare help string
    return None


def _keyword(call: ast.Call | None, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None) if call else None


def _is_bool(kind: ast.expr) -> bool:
    return re.fullmatch(r"(Optional\[bool\]|bool(\s*\|\s*None)?)", ast.unparse(kind)) is not None


def _field_flags(tree: ast.Module) -> dict[str, str]:
    flags: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                continue
            found = _arg_call(item.annotation)
            if found is None:
                continue
            kind, arg = found
            no_cli = _keyword(arg, "no_cli")
            if isinstance(no_cli, ast.Constant) and no_cli.value is True:
                continue
            cli_name = _keyword(arg, "cli_name")
            names = [cli_name.value if isinstance(cli_name, ast.Constant) else "--" + item.target.id.replace("_", "-")]
            aliases = _keyword(arg, "aliases")
            if isinstance(aliases, ast.List):
                names += [e.value for e in aliases.elts if isinstance(e, ast.Constant)]
            action = _keyword(arg, "action")
            if action is not None:
                text = ast.unparse(action)
                flag_kind = "bool" if "BooleanOptionalAction" in text else "switch" if "store_true" in text else "value"
            else:
                flag_kind = "switch" if _is_bool(kind) else "value"
            for name in names:
                flags[name] = flag_kind
    return flags


def _hand_registered(source: str) -> dict[str, str]:
    flags: dict[str, str] = {}
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
            names = [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")]
            action = ast.unparse(_keyword(node, "action") or ast.Constant(None))
            kind = (
                "bool"
                if "BooleanOptionalAction" in action
                else "switch"
                if "StoreTrue" in action or "store_true" in action or "StoreConst" in action
                else "value"
            )
            for name in names:
                flags[name] = kind
    return flags


def main(wheel: str) -> None:
    version = re.search(r"sglang-([0-9][^-]*)-", Path(wheel).name).group(1)  # type: ignore[union-attr]
    flags: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as z:
        sources = sorted(n for n in z.namelist() if n.startswith(FIELDS_DIR) and n.endswith(".py"))
        for name in sources:
            flags.update(_field_flags(ast.parse(z.read(name).decode())))
        flags.update(_hand_registered(z.read(SERVER_ARGS).decode()))
    document = {
        "source": f"sglang {version} wheel: {FIELDS_DIR}*.py, {SERVER_ARGS}",
        "flags": dict(sorted(flags.items())),
    }
    (OUT / f"sglang-{version}.json").write_text(json.dumps(document, indent=1) + "\n")
    print(f"{len(flags)} flags → {OUT / f'sglang-{version}.json'}")


if __name__ == "__main__":
    main(sys.argv[1])
