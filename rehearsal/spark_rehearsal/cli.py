"""The `spark-rehearsal` command: boot, inspect, disturb and tear down the rehearsal fleet (root). The only
place the rehearsal's errors become exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from spark_state.console import make_console, make_table

from .errors import SimError

Handler = Callable[[argparse.Namespace, Console], int]


def _up(args: argparse.Namespace, console: Console) -> int:
    from . import fleet

    record = fleet.up(args.count, log=lambda m: console.print(m, style="dim", markup=False))
    console.print(
        f"[green]rehearsal fleet up[/]: {len(record.hosts)} hosts; "
        "target them with `pyinfra inventory/sim.py deploys/serve.py`"
    )
    return 0


def _down(args: argparse.Namespace, console: Console) -> int:
    from . import fleet

    fleet.require_root()
    removed = fleet.down(log=lambda m: console.print(m, style="dim", markup=False))
    remaining = fleet.leftovers()
    if remaining:
        raise SimError(f"still present after spark-rehearsal down: {', '.join(remaining)}")
    console.print(f"[green]rehearsal fleet down[/]: nothing left ({len(removed)} traces removed)")
    return 0


def _upgrade(args: argparse.Namespace, console: Console) -> int:
    from . import upgrade

    now = upgrade.upgrade(args.host, driver=args.driver, cuda=args.cuda, kernel=args.kernel, toolkit=args.toolkit)
    console.print(
        f"{args.host} now reports: driver {now['driver']}, CUDA {now['cuda']}, kernel {now['kernel']}, "
        f"container toolkit {now['toolkit']}",
        markup=False,
    )
    return 0


def _repush(args: argparse.Namespace, console: Console) -> int:
    from . import upgrade

    console.print(f"{args.ref} now points at {upgrade.repush(args.ref)}", markup=False)
    return 0


def _slow(args: argparse.Namespace, console: Console) -> int:
    from . import upgrade

    updated = upgrade.slow(args.host, args.factor)
    running = f" (running now in {', '.join(updated)})" if updated else " (no GPU container running)"
    console.print(f"{args.host}: GPU stand-in ×{args.factor:g} slower{running}", markup=False)
    return 0


def _registry(args: argparse.Namespace, console: Console) -> int:
    from . import registry
    from .layout import Layout

    registry.outage(Layout.default(), args.after_blobs if args.state == "down" else None)
    later = f" after {args.after_blobs} more blob request(s)" if args.after_blobs else ""
    console.print("nvcr.io is " + ("up" if args.state == "up" else "down" + later))
    return 0


def _reboot(args: argparse.Namespace, console: Console) -> int:
    from . import upgrade

    seconds = upgrade.reboot(args.host)
    console.print(
        f"{args.host} rebooted: SSH and docker answer again after {seconds:.1f} s "
        "(its services start by themselves; `spark-state drift` says when they answer)",
        markup=False,
    )
    return 0


def _status(args: argparse.Namespace, console: Console) -> int:
    from . import fleet

    _, hosts, services = fleet.status()
    table = make_table("rehearsal fleet", "host", "address", "machine", "ssh")
    for h in hosts:
        table.add_row(h.name, h.address, _mark(h.machine_running), _mark(h.ssh))
    for name, ok in services.items():
        table.add_row(name, "", _mark(ok), "")
    console.print(table)
    healthy = all(h.machine_running and h.ssh for h in hosts) and all(services.values())
    return 0 if healthy else 1


def _mark(ok: bool) -> str:
    return "[green]up[/]" if ok else "[red]down[/]"


def _inventory(args: argparse.Namespace, console: Console) -> int:
    """The inventory file shipped in this package (spark_rehearsal/inventory.py), for `spark-state apply
    --inventory` and `pyinfra` without a checkout."""
    print(Path(__file__).with_name("inventory.py"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spark-rehearsal", description="The rehearsal fleet: simulated Sparks on this machine (root)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="ACTION")
    p = sub.add_parser("up", help="boot N simulated Sparks (cleans up a previous fleet first)")
    p.add_argument("count", type=int)
    p.set_defaults(handler=_up)
    p = sub.add_parser("down", help="stop the fleet and remove every process, mount, namespace and link")
    p.set_defaults(handler=_down)
    p = sub.add_parser("status", help="show the fleet's hosts and services")
    p.set_defaults(handler=_status)
    p = sub.add_parser("upgrade", help="make one simulated Spark report a new driver, CUDA, kernel or toolkit")
    p.add_argument("host", help="a simulated host, e.g. spark-02")
    p.add_argument("--driver", help="NVIDIA driver version nvidia-smi reports, e.g. 590.10")
    p.add_argument("--cuda", help="CUDA version nvidia-smi reports, e.g. 13.1")
    p.add_argument("--kernel", help="kernel release (/proc/sys/kernel/osrelease), e.g. 6.11.0-1016-nvidia")
    p.add_argument("--toolkit", help="NVIDIA container toolkit version, e.g. 1.18.0")
    p.set_defaults(handler=_upgrade)
    p = sub.add_parser("reboot", help="reboot one simulated Spark through its own systemd (same disk and address)")
    p.add_argument("host", help="a simulated host, e.g. spark-02")
    p.set_defaults(handler=_reboot)
    p = sub.add_parser("repush", help="push new bits under an existing image tag (a vendor re-pushing a tag)")
    p.add_argument("ref", help="e.g. nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3")
    p.set_defaults(handler=_repush)
    p = sub.add_parser("slow", help="make one simulated Spark's GPU stand-in FACTOR times slower (1 restores)")
    p.add_argument("host", help="a simulated host, e.g. spark-02")
    p.add_argument("factor", type=float, help="e.g. 1.5; 1 restores full speed")
    p.set_defaults(handler=_slow)
    p = sub.add_parser("inventory", help="print the path of the pyinfra inventory file of the rehearsal fleet")
    p.set_defaults(handler=_inventory)
    p = sub.add_parser("registry", help="take nvcr.io down (every /v2/ request answers 503) or bring it back")
    p.add_argument("state", choices=("down", "up"))
    p.add_argument(
        "--after-blobs",
        type=int,
        default=0,
        metavar="K",
        help="stay up for K more blob requests first (a pull under way breaks off mid-way)",
    )
    p.set_defaults(handler=_registry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, make_console())
    except SimError as exc:
        make_console(stderr=True).print(Panel(str(exc), title="rehearsal fleet", border_style="red", expand=False))
        return 1


if __name__ == "__main__":
    sys.exit(main())
