"""Rich rendering of host plans."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from .plan import HostPlan


def show_plans(console: Console, plans: list[HostPlan], verbose: bool = False) -> None:
    for plan in plans:
        console.print(_host_panel(plan, verbose))


def _host_panel(plan: HostPlan, verbose: bool) -> Panel:
    parts: list = []
    gpu = f"{plan.gpu} (SM {plan.compute_capability})" if plan.gpu else "GPU learned at preflight"
    parts.append(Text(f"{plan.ssh_user}@{plan.address}:{plan.ssh_port} · {gpu}", style="dim"))

    if plan.images:
        t = Table(title="images", title_justify="left", expand=True)
        for col in ("name", "ref", "TensorRT-LLM", "on this GPU"):
            t.add_column(col)
        for i in plan.images:
            style = {"known-bad": "red", "verified": "green", "unverified": "yellow"}.get(i.support, "")
            t.add_row(i.name, i.ref, i.trtllm_version or "-", Text(i.support, style=style))
        parts.append(t)

    if plan.checkpoints:
        t = Table(title="checkpoints", title_justify="left", expand=True)
        for col in ("name", "repo@revision", "directory", "size"):
            t.add_column(col)
        for c in plan.checkpoints:
            t.add_row(c.name, f"{c.repo}@{c.revision}", c.dir, f"{c.size_gb:g} GB" if c.size_gb else "?")
        parts.append(t)

    if plan.engines:
        t = Table(title="engines", title_justify="left", expand=True)
        for col in ("name", "quant", "fingerprint", "directory"):
            t.add_column(col)
        for e in plan.engines:
            t.add_row(e.name, e.quantization, e.fingerprint[:16], e.dir)
        parts.append(t)
        for e in plan.engines:
            parts.append(Text(f"convert {e.name}:", style="bold"))
            parts.append(Syntax(e.convert_command, "bash", word_wrap=True))
            parts.append(Text(f"build {e.name}:", style="bold"))
            parts.append(Syntax(e.build_command, "bash", word_wrap=True))

    if plan.services:
        t = Table(title="services", title_justify="left", expand=True)
        for col in ("name", "kind", "port", "unit", "memory budget"):
            t.add_column(col)
        for s in plan.services:
            mem = plan.budget.memory_items.get(s.name)
            t.add_row(s.name, s.kind, str(s.port), s.unit_name, f"{mem:.1f} GiB" if mem is not None else "?")
        parts.append(t)
        if verbose:
            for s in plan.services:
                parts.append(Text(s.unit_path, style="bold"))
                parts.append(Syntax(s.unit_text, "ini", word_wrap=True))

    b = plan.budget
    total = f" of {b.memory_total_gib:g} GiB ({b.memory_reserved_gib:g} reserved)" if b.memory_total_gib else ""
    unknown_mem = f"; unknown: {', '.join(b.memory_unknown)}" if b.memory_unknown else ""
    unknown_disk = f"; not counted: {', '.join(b.disk_unknown)}" if b.disk_unknown else ""
    parts.append(Text(f"disk ≈ {b.disk_gb:.1f} GB{unknown_disk}"))
    parts.append(Text(f"unified memory ≈ {b.memory_gib:.1f} GiB{total}{unknown_mem}"))
    for w in plan.warnings:
        parts.append(Text(f"warning: {w}", style="yellow"))
    return Panel(Group(*parts), title=f"[bold]{plan.host}[/]", title_align="left")
