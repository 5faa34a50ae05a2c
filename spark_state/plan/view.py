"""Rich rendering of host plans."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from .host_plan import HostPlan


def show_plans(console: Console, plans: list[HostPlan], verbose: bool = False) -> None:
    for plan in plans:
        console.print(_host_panel(plan, verbose))


def _table(title: str, columns: tuple[str, ...], rows: list[tuple]) -> Table:
    table = Table(title=title, title_justify="left", expand=True)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _host_panel(plan: HostPlan, verbose: bool) -> Panel:
    parts: list = []
    gpu = f"{plan.gpu} (SM {plan.compute_capability})" if plan.gpu else "GPU learned at preflight"
    parts.append(Text(f"{plan.ssh_user}@{plan.address}:{plan.ssh_port} · {gpu}", style="dim"))

    if plan.images:
        styles = {"known-bad": "red", "verified": "green", "unverified": "yellow"}
        parts.append(
            _table(
                "images",
                ("name", "ref", "TensorRT-LLM", "on this GPU"),
                [
                    (i.name, i.ref, i.trtllm_version or "-", Text(i.support, style=styles.get(i.support, "")))
                    for i in plan.images
                ],
            )
        )

    if plan.checkpoints:
        parts.append(
            _table(
                "checkpoints",
                ("name", "repo@revision", "directory", "size"),
                [
                    (c.name, f"{c.repo}@{c.revision}", c.dir, f"{c.size_gb:g} GB" if c.size_gb else "?")
                    for c in plan.checkpoints
                ],
            )
        )

    if plan.engines:
        parts.append(
            _table(
                "engines",
                ("name", "quant", "fingerprint", "directory"),
                [(e.name, e.quantization, e.fingerprint[:16], e.dir) for e in plan.engines],
            )
        )
        for e in plan.engines:
            parts.append(Text(f"convert {e.name}:", style="bold"))
            parts.append(Syntax(e.convert_command, "bash", word_wrap=True))
            parts.append(Text(f"build {e.name}:", style="bold"))
            parts.append(Syntax(e.build_command, "bash", word_wrap=True))

    if plan.services:
        memory = plan.budget.memory_items
        parts.append(
            _table(
                "services",
                ("name", "kind", "port", "unit", "memory budget"),
                [
                    (s.name, s.kind, str(s.port), s.unit_name, f"{memory[s.name]:.1f} GiB" if s.name in memory else "?")
                    for s in plan.services
                ],
            )
        )
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
    for d in plan.system_services:
        files = ", ".join(f.path for f in d.files)
        parts.append(Text(f"{d.name} ({d.unit}, configured in {files}): {d.summary}"))
    for w in plan.warnings:
        parts.append(Text(f"warning: {w}", style="yellow"))
    return Panel(Group(*parts), title=f"[bold]{plan.host}[/]", title_align="left")
