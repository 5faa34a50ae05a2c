"""The `spark-state` command. The only place errors become exit codes and rich panels."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.panel import Panel

from .errors import SparkStateError, StateFileError
from .loader import load_state
from .model import State

EXIT_OK = 0
EXIT_ERROR = 1

Handler = Callable[[argparse.Namespace, Console], int]


def _validate(args: argparse.Namespace, console: Console) -> int:
    loaded = load_state(args.file)
    for warning in loaded.warnings:
        print(f"{warning} (warning)", file=sys.stderr)
    s = loaded.state
    console.print(
        f"[green]valid[/]: {args.file} — {len(s.hosts)} hosts, {len(s.services)} services, "
        f"{len(s.engines)} engines, {len(s.checkpoints)} checkpoints, {len(s.images)} images"
    )
    return EXIT_OK


def _schema(args: argparse.Namespace, console: Console) -> int:
    print(json.dumps(State.model_json_schema(), indent=2))
    return EXIT_OK


def _plan(args: argparse.Namespace, console: Console) -> int:
    from .plan import plan_fleet
    from .plan_view import show_plans

    loaded = load_state(args.file)
    plans = plan_fleet(loaded.state, args.host)
    if args.json:
        print(json.dumps([p.to_dict() for p in plans], indent=2))
    else:
        show_plans(console, plans, verbose=args.verbose)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spark-state", description="Keep DGX Spark machines serving LLMs exactly as a state file says."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a state file; every problem as FILE:LINE:COL field: message")
    p.add_argument("file")
    p.set_defaults(handler=_validate)

    p = sub.add_parser("schema", help="print the state file's JSON Schema (for yaml-language-server)")
    p.set_defaults(handler=_schema)

    p = sub.add_parser("plan", help="show what each host will get (pure: touches no host)")
    p.add_argument("file")
    p.add_argument("--host", help="only this host")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="also print unit texts")
    p.set_defaults(handler=_plan)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    err = Console(stderr=True)
    handler: Handler = args.handler
    try:
        return handler(args, console)
    except StateFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        err.print(Panel(f"{len(exc.problems)} problem(s); nothing was changed on any host.", title="invalid state",
                        border_style="red"))
        return EXIT_ERROR
    except SparkStateError as exc:
        err.print(Panel(str(exc), title=type(exc).__name__, border_style="red"))
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
