# PYTHON_ARGCOMPLETE_OK  (argcomplete's marker: completion answers before any command runs)
"""The `spark-state` command. The only place errors become exit codes and rich panels."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from .console import make_console, make_table, print_table, shown
from .defaults import DRIFT_MARGIN
from .desired.loader import load_state
from .desired.model import MAX_PROMPT_TOKENS, DesiredState
from .errors import Outcome, SparkStateError, StateFileError, UsageError

# Exit codes, one meaning each (README, "Exit codes"):
EXIT_OK = 0  # done: converged, every expectation met
EXIT_ERROR = 1  # an error: nothing or not everything could be done
EXIT_FINDINGS = 2  # it ran to its end and found something: drift, a service down, a missed expectation, no pin
EXIT_USAGE = 64  # the command was used wrongly (sysexits.h EX_USAGE; argparse's own 2 would read as findings)
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report a process SIGINT ended (128 + 2)
MAX_PROBLEMS_SHOWN = 50  # a file with thousands of problems is one mistake repeated: show the first ones
EXIT_CODES = {Outcome.OK: EXIT_OK, Outcome.FINDINGS: EXIT_FINDINGS, Outcome.HOST_ERRORS: EXIT_ERROR}
JSON_FORMAT = "spark-state/{}/v1"  # every --json document names itself so: spark-state/drift/v1, ...

Handler = Callable[[argparse.Namespace, Console], Outcome | int]  # an int: a code passed through (pyinfra's)


def _validate(args: argparse.Namespace, console: Console) -> Outcome:
    loaded = load_state(args.state)
    for warning in loaded.warnings:
        print(f"{warning} (warning)", file=sys.stderr)
    s = loaded.state
    counts = {
        "hosts": len(s.hosts),
        "services": len(s.services),
        "engines": len(s.engines),
        "checkpoints": len(s.checkpoints),
        "images": len(s.images),
    }
    if args.json:
        document = {"file": args.state, "valid": True, "warnings": [str(w) for w in loaded.warnings], **counts}
        print(json.dumps({"format": JSON_FORMAT.format("validate"), **document}, indent=2))
        return Outcome.OK
    said = ", ".join(f"{n} {what}" for what, n in counts.items())
    # soft_wrap: a long path is one line a reader can copy, never broken at the console's width
    console.print(Text.assemble(("valid", "green"), ": ", shown(args.state), f" — {said}"), soft_wrap=True)
    return Outcome.OK


def _schema(args: argparse.Namespace, console: Console) -> Outcome:
    from . import tool

    if args.install is None:
        print(json.dumps(tool.schema_document(), indent=2))
        return Outcome.OK
    path = tool.install_schema(Path(args.install) if args.install else None)
    console.print(Text.assemble("schema written: ", shown(path)))
    console.print(
        Text.assemble("first line of a state file: ", shown(f"# yaml-language-server: $schema={path.as_uri()}"))
    )
    return Outcome.OK


def _dashboard(args: argparse.Namespace, console: Console) -> Outcome:
    from importlib.resources import files

    print(files("spark_state").joinpath("shipped", "grafana-fleet.json").read_text(), end="")
    return Outcome.OK


def _init(args: argparse.Namespace, console: Console) -> Outcome:
    from . import tool

    path = Path(args.file)
    if path.exists() and not args.force:
        raise SparkStateError(f"{path} exists: nothing was written (--force replaces it)")
    hosts = tool.init_hosts(args.hosts, args.address or [])
    path.write_text(tool.init_text(path, hosts, tool.install_schema()))
    console.print(Text.assemble(("written", "green"), ": ", shown(path), f" ({len(hosts)} hosts); next: "))
    console.print(
        Text.assemble("  spark-state validate ", shown(path), "  then  spark-state apply ", shown(path), " --dry")
    )
    return Outcome.OK


def _completion(args: argparse.Namespace, console: Console) -> Outcome:
    import argcomplete

    print(argcomplete.shellcode(["spark-state"], shell=args.shell))
    return Outcome.OK


def _apply(args: argparse.Namespace, console: Console) -> int:
    from . import tool

    pyinfra_args = list(args.pyinfra_args)
    if args.limit:
        pyinfra_args += ["--limit", args.limit]
    if args.dry:
        pyinfra_args.append("--dry")
    if args.yes:
        pyinfra_args.append("-y")
    load_state(args.state)  # an invalid state is said here, in spark-state's words, before pyinfra starts
    return tool.apply(Path(args.state), args.inventory, pyinfra_args)


def _plan(args: argparse.Namespace, console: Console) -> Outcome:
    from .inventory import hosts_named
    from .plan.host_plan import plan_host
    from .plan.view import show_plans

    loaded = load_state(args.state)
    plans = [plan_host(loaded.state, h) for h in hosts_named(loaded.state, args.host)]
    if args.json:
        print(json.dumps({"format": JSON_FORMAT.format("plan"), "hosts": [p.to_dict() for p in plans]}, indent=2))
    else:
        show_plans(console, plans, verbose=args.verbose)
    return Outcome.OK


def _concurrency(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("concurrency levels are positive integers")
    return values


def _rates(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not values or any(not 0 < v <= 10_000 for v in values):
        raise argparse.ArgumentTypeError("request rates are requests per second, above 0 and at most 10000")
    return values


def _depths(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values or any(not 0 <= v <= MAX_PROMPT_TOKENS for v in values):
        raise argparse.ArgumentTypeError(f"context depths are token counts, from 0 to {MAX_PROMPT_TOKENS}")
    return values


def _whole_number(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`; `what` names it in the error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what}, from {low} to {high}")
        return value

    return parse


def _bench(args: argparse.Namespace, console: Console) -> Outcome:
    from .bench.command import run_bench

    return run_bench(args, console)


def _fleet(args: argparse.Namespace) -> tuple[DesiredState, list[tuple[str, dict[str, Any]]], Path | None]:
    """The state, how to reach the hosts --host names (the inventory's connection data, else the state's) and
    the bench history directory, for the commands that read a fleet."""
    from .inventory import fleet

    state, entries = fleet(args.state, args.inventory, args.host)
    return state, entries, Path(args.results_dir) if args.results_dir else None


def _drift(args: argparse.Namespace, console: Console) -> Outcome:
    from . import drift
    from .inventory import every_address

    state, entries, history_dir = _fleet(args)
    results = drift.run_drift(
        state,
        entries,
        dict(os.environ),
        with_bench=args.bench,
        margin=args.margin,
        history_dir=history_dir,
        addresses=every_address(args.state, args.inventory) if args.host else None,
    )
    outcome = drift.outcome(results)
    if args.json:
        print(json.dumps(drift.to_json(results, EXIT_CODES[outcome]), indent=2))
        return outcome
    for r in results:
        if r.error:
            console.print(
                Text.assemble((r.host, "bold red"), f" ({r.address}): unreachable or unreadable — ", shown(r.error))
            )
            continue
        note = r.performance_note()
        if not r.drifted:
            console.print(f"[green]{r.host}[/] ({r.address}): converged ({len(r.items)} items checked)")
        else:
            table = make_table(
                f"{r.host} ({r.address}): {len(r.drifted)} drifted", "kind", "item", "desired", "observed"
            )
            for item in r.drifted:
                table.add_row(item.kind, item.name, shown(item.desired), shown(item.observed, "red"))
            print_table(console, table)
        if note:
            console.print(Text.assemble(f"{r.host}: ", shown(note)))
        for item in r.unchecked:
            console.print(
                Text.assemble(
                    f"{r.host}: ", ("not checked", "yellow"), f" {item.kind} {item.name}: ", shown(item.desired)
                )
            )
    return outcome


def _status(args: argparse.Namespace, console: Console) -> Outcome:
    from . import status

    state, entries, history_dir = _fleet(args)
    hosts = status.fleet_status(state, entries, history_dir)
    outcome = status.outcome(hosts)
    if args.json:
        print(json.dumps(status.to_json(hosts, EXIT_CODES[outcome]), indent=2))
        return outcome
    for h in hosts:
        if h.error:
            console.print(
                Text.assemble((h.host, "bold red"), f" ({h.address}): unreachable or unreadable — ", shown(h.error))
            )
            continue
        table = make_table(
            f"{h.host} ({h.address})", "service", "port", "unit", "container", "since", "health", "last bench", "image"
        )
        for s in h.services:
            health = shown(s.health, "green" if s.healthy else "red")
            bench = shown(s.bench, "red" if s.bench.startswith("FAIL") else "")
            table.add_row(
                s.service, str(s.port), shown(s.unit), shown(s.running), shown(s.since), health, bench, shown(s.image)
            )
        print_table(console, table)
    return outcome


def _pin(args: argparse.Namespace, console: Console) -> Outcome:
    from . import pin

    path = Path(args.state)
    pins = pin.pins_for(path)
    if args.json and (args.check or not pins):
        listed = [{"kind": p.kind, "name": p.name, "written": p.current} for p in pins]
        print(json.dumps({"format": JSON_FORMAT.format("pin"), "file": str(path), "unpinned": listed}, indent=2))
        return Outcome.FINDINGS if pins else Outcome.OK
    if not pins:
        console.print(f"[green]pinned[/]: every image of {path} has a digest and every revision is a commit")
        return Outcome.OK
    if args.check:
        table = make_table(f"{path}: {len(pins)} not pinned", "kind", "name", "written")
        for p in pins:
            table.add_row(p.kind, p.name, p.current)
        print_table(console, table)
        return Outcome.FINDINGS
    document = pin.request(pins, os.environ)
    if args.inventory:
        from .inventory import fleet

        address, data = fleet(path, args.inventory)[1][0]
        answer = pin.resolve_through(address, data, document)
    else:
        answer = pin.resolve_here(document)
    done = pin.resolved(pins, answer)
    pin.pin_file(path, done)
    if args.json:
        written = [{"kind": p.kind, "name": p.name, "was": p.current, "now": str(p.pinned)} for p in done]
        print(json.dumps({"format": JSON_FORMAT.format("pin"), "file": str(path), "pinned": written}, indent=2))
        return Outcome.OK
    table = make_table(f"{path}: pinned {len(done)}", "kind", "name", "was", "now")
    for p in done:
        table.add_row(p.kind, p.name, p.current, str(p.pinned))
    print_table(console, table)
    return Outcome.OK


def _gigabytes(count: int) -> str:
    return f"{count / 1e9:.2f} GB"


def _prune(args: argparse.Namespace, console: Console) -> Outcome:
    from . import prune
    from .remote import on_each_host

    state, entries, _ = _fleet(args)
    done = on_each_host(entries, lambda address, data: prune.prune_host(state, address, data, args.keep, args.yes))
    results = [r for _, _, r in done]
    if args.json:
        print(
            json.dumps(
                {
                    "format": JSON_FORMAT.format("prune"),
                    "removed": args.yes,
                    "hosts": [
                        {
                            "host": r.host,
                            "address": r.address,
                            "error": r.error,
                            "removed": r.removed,
                            "bytes": r.bytes,
                            "items": [vars(i) for i in r.items],
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )
    else:
        for r in results:
            if r.error and not r.items:
                console.print(Text.assemble((r.host, "bold red"), f" ({r.address}): ", shown(r.error)))
                continue
            if not r.items:
                console.print(f"[green]{r.host}[/] ({r.address}): nothing to prune")
                continue
            verb = "removed" if r.removed else "would free"
            table = make_table(f"{r.host} ({r.address}): {verb} {_gigabytes(r.bytes)}", "kind", "what", "size", "why")
            for i in r.items:
                table.add_row(i.kind, shown(i.what), _gigabytes(i.bytes), i.why)
            print_table(console, table)
            if r.error:
                console.print(Text.assemble((r.host, "bold red"), ": ", shown(r.error)))
        if not args.yes and any(r.items for r in results):
            console.print("nothing was removed: run again with --yes to remove what is listed")
    return Outcome.HOST_ERRORS if any(r.error for r in results) else Outcome.OK


def _keep(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("--keep is at least 1: the rollback target is always kept")
    return value


def _version() -> str:
    """spark-state's version and the pyinfra it deploys with (both from their installed metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    try:
        pyinfra = version("pyinfra")
    except PackageNotFoundError:
        pyinfra = "not installed"
    return f"spark-state {__version__} (pyinfra {pyinfra})"


class _PrintVersion(argparse.Action):
    """argparse's version action, with the versions read only when asked (not on every command's start)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(_version())
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake said in one line and exit code EXIT_USAGE."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _state_file(text: str) -> str:
    """The state file argument: a Python file there is an inventory given in the state file's place."""
    if text.endswith(".py"):
        raise argparse.ArgumentTypeError(
            f"{text} looks like a pyinfra inventory; the state file (YAML) comes first, the inventory with --inventory"
        )
    return text


STATE_HELP = "the state file (YAML)"
INVENTORY_HELP = "a pyinfra inventory for connection data (e.g. inventory/sim.py); default: the state's addresses"
HOST_HELP = "only this host, or the hosts of this group (names as in the state file)"


def _fleet_arguments(p: argparse.ArgumentParser, state_required: bool = True) -> None:
    """The one convention of every command that reads the fleet: the state file, an optional inventory, --host."""
    p.add_argument("state", type=_state_file, nargs=None if state_required else "?", help=STATE_HELP)
    p.add_argument("--inventory", help=INVENTORY_HELP)
    p.add_argument("--host", help=HOST_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spark-state",
        description="Keep DGX Spark machines serving LLMs exactly as a state file says.",
        epilog="exit codes: 0 ok, 1 error, 2 findings (drift, down, missed expectation, not pinned), 64 usage",
    )
    parser.add_argument("--version", action=_PrintVersion, help="print the versions and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a state file; every problem as FILE:LINE:COL field: message")
    p.add_argument("state", type=_state_file, help=STATE_HELP)
    p.add_argument("--json", action="store_true", help="print the result (or every problem) as JSON")
    p.set_defaults(handler=_validate)

    p = sub.add_parser("schema", help="print the state file's JSON Schema (for yaml-language-server)")
    p.add_argument(
        "--install",
        nargs="?",
        const="",
        metavar="DIR",
        help="write it where editors find it (default ~/.local/share/spark-state) and print the modeline",
    )
    p.set_defaults(handler=_schema)

    p = sub.add_parser(
        "dashboard",
        help="print the Grafana dashboard of the fleet's Prometheus (monitoring:), for Grafana's Import dashboard",
    )
    p.set_defaults(handler=_dashboard)

    p = sub.add_parser("init", help="write a minimal, commented state file for N Sparks (vLLM serving Llama 3.1 8B)")
    p.add_argument("file", nargs="?", default="state.yaml", help="where (default state.yaml; never replaced)")
    p.add_argument("--hosts", type=int, default=1, help="how many Sparks (spark-01, spark-02, ...)")
    p.add_argument("--address", action="append", help="each host's address, in order (default spark-NN.local)")
    p.add_argument("--force", action="store_true", help="replace the file when it exists")
    p.set_defaults(handler=_init)

    p = sub.add_parser(
        "apply",
        help="make the fleet match the state: the shipped deploy through pyinfra (its output and exit codes); "
        "pyinfra's own options after --, e.g. -- --data spark_bench=off",
    )
    p.add_argument("state", type=_state_file, help=STATE_HELP)
    p.add_argument("--inventory", help="a pyinfra inventory (default: the state's hosts at their addresses)")
    p.add_argument("--limit", help="only these hosts or groups (pyinfra's --limit)")
    p.add_argument("--dry", action="store_true", help="show what would change; change nothing")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask before changing (pyinfra's -y)")
    p.set_defaults(handler=_apply)

    p = sub.add_parser(
        "completion",
        help="print the shell code that completes spark-state's commands, options and files "
        '(bash: eval "$(spark-state completion bash)" in ~/.bashrc)',
    )
    p.add_argument("shell", choices=("bash", "zsh", "fish", "tcsh", "powershell"))
    p.set_defaults(handler=_completion)

    p = sub.add_parser("plan", help="show what each host will get (pure: touches no host)")
    p.add_argument("state", type=_state_file, help=STATE_HELP)
    p.add_argument("--host", help=HOST_HELP)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="also print unit texts")
    p.set_defaults(handler=_plan)

    p = sub.add_parser("bench", help="measure endpoints: TTFT, decode, aggregate tok/s; judge against the state")
    _fleet_arguments(p, state_required=False)
    p.add_argument("--service", help="only this service")
    p.add_argument("--url", help="bench any OpenAI-compatible endpoint instead, e.g. http://10.0.0.5:8000/v1")
    p.add_argument("--model", help="model name for --url (default: the first of /v1/models)")
    p.add_argument(
        "--metrics-path",
        default="/metrics",
        help="for --url: the server's Prometheus metrics, read during the run ('' for none; NIM: /v1/metrics)",
    )
    p.add_argument("--prompt")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--serial", type=int, dest="serial_requests", help="serial requests after warm-up")
    p.add_argument("--warmup", type=int, dest="warmup_requests")
    p.add_argument("--concurrency", type=_concurrency, help="levels, e.g. 1,2,4,8")
    p.add_argument("--requests-per-level", type=int)
    p.add_argument("--duration", type=float, dest="duration_s", help="seconds per level instead of a count")
    p.add_argument("--rate", type=_rates, dest="rates", help="open-loop runs at these requests/s (Poisson arrivals)")
    p.add_argument("--requests-per-rate", type=int)
    p.add_argument(
        "--input-tokens",
        type=_whole_number(1, MAX_PROMPT_TOKENS, "a number of prompt tokens"),
        help="every request a synthetic prompt of N tokens as the server counts them, instead of --prompt",
    )
    p.add_argument(
        "--depth",
        type=_depths,
        dest="depths",
        help="context depths in tokens, e.g. 0,4096,8192: prefill and generation t/s at each (llama-bench's table)",
    )
    p.add_argument(
        "--pp",
        type=_whole_number(1, MAX_PROMPT_TOKENS, "a number of prompt tokens"),
        dest="prompt_tokens",
        help="with --depth: the prompt's own tokens after the context (2048)",
    )
    p.add_argument("--timeout", type=float, dest="timeout_s", help="per-request timeout (s)")
    p.add_argument("--completions", action="store_true", help="use /v1/completions instead of chat")
    p.add_argument(
        "--ignore-eos",
        action="store_true",
        default=None,
        help="ask for exactly --max-tokens tokens (trtllm-serve, vLLM/NIM): figures comparable across stacks",
    )
    p.add_argument(
        "--repeat",
        type=_whole_number(1, 100, "a number of runs"),
        help="run the whole bench N times (1-100): each headline figure's mean and 95%% confidence interval",
    )
    p.add_argument("--baseline", help="service for the delta table (default: the state's bench.baseline)")
    p.add_argument("--json", action="store_true", help="print the result document to stdout")
    p.add_argument("--html", help="write an HTML report here")
    p.add_argument("--results-dir", help="history directory (default ~/.local/state/spark-state/bench)")
    p.add_argument("--no-save", action="store_true", help="keep no history of this run")
    p.add_argument("--no-resident", action="store_true", help="do not measure container memory over SSH")
    p.set_defaults(handler=_bench)

    p = sub.add_parser("drift", help="what differs from the state, per host (read-only; exit 0 / 2 drift / 1 error)")
    _fleet_arguments(p)
    p.add_argument("--bench", action="store_true", help="also measure each service: expectations and last bench")
    p.add_argument(
        "--margin",
        type=float,
        default=DRIFT_MARGIN,
        help=f"bench regression allowed vs the last run ({DRIFT_MARGIN:.2f})",
    )
    p.add_argument("--results-dir", help="bench history directory")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_drift)

    p = sub.add_parser(
        "status",
        help="per host and service: what runs, since when, health, last bench verdict "
        "(read-only; exit 0 / 2 something down / 1 error)",
    )
    _fleet_arguments(p)
    p.add_argument("--results-dir", help="bench history directory")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_status)

    p = sub.add_parser(
        "pin",
        help="write image digests and checkpoint commit shas into a state file, in place "
        "(--check: exit 2 when something is not pinned)",
    )
    p.add_argument("state", type=_state_file, help="the state file (rewritten in place; comments and formatting kept)")
    p.add_argument("--check", action="store_true", help="change nothing; list what is not pinned (exit 2)")
    p.add_argument(
        "--inventory",
        help="resolve through this inventory's first host (when only the hosts reach "
        "the registry and hub, as on the rehearsal fleet)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_pin)

    p = sub.add_parser(
        "prune",
        help="list, per host, engine builds, checkpoints, images and files nothing needs any "
        "more, with the space each frees; remove them with --yes",
    )
    _fleet_arguments(p)
    p.add_argument(
        "--keep",
        type=_keep,
        default=1,
        help="rollback targets kept per engine (default 1: the unit each service ran before its last change)",
    )
    p.add_argument("--yes", action="store_true", help="remove what is listed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_prune, results_dir=None)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if argv is None:  # a completion request from the shell is answered here, and the process ends
        import argcomplete

        argcomplete.autocomplete(parser)
    words = list(sys.argv[1:] if argv is None else argv)
    passed_on = words[words.index("--") + 1 :] if "--" in words else []  # apply's: for pyinfra itself
    args = parser.parse_args(words[: words.index("--")] if "--" in words else words)
    if passed_on and args.command != "apply":
        parser.error(f"only apply passes options on after --: {' '.join(passed_on)}")
    args.pyinfra_args = passed_on
    console = make_console()
    err = make_console(stderr=True)
    handler: Handler = args.handler
    try:
        result = handler(args, console)
        return result if isinstance(result, int) else EXIT_CODES[result]
    except StateFileError as exc:
        if getattr(args, "json", False):  # whoever asked for JSON parses stdout: give them a document there too
            document = {"error": exc.title, "problems": [asdict(p) for p in exc.problems]}
            print(json.dumps({"format": JSON_FORMAT.format("error"), **document}, indent=2))
        for problem in exc.problems[:MAX_PROBLEMS_SHOWN]:
            print(problem, file=sys.stderr)
        if len(exc.problems) > MAX_PROBLEMS_SHOWN:
            print(f"... and {len(exc.problems) - MAX_PROBLEMS_SHOWN} more", file=sys.stderr)
        err.print(
            Panel(
                f"{len(exc.problems)} problem(s); nothing was changed on any host.",
                title=exc.title,
                border_style="red",
                expand=False,
            )
        )
        return EXIT_ERROR
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say, and no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own advice (signal docs)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("spark-state: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SparkStateError as exc:
        code = EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR
        if getattr(args, "json", False):
            document = {"error": exc.title, "message": str(exc)}
            print(json.dumps({"format": JSON_FORMAT.format("error"), **document}))
        err.print(Panel(shown(str(exc)), title=exc.title, border_style="red", expand=False))
        return code


if __name__ == "__main__":
    sys.exit(main())
