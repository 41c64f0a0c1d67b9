"""`tiny tasks`: every registered task, its parameters, default net and constructions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from rich import box
from rich.table import Table
from rich.text import Text

from tiny_cli.errors import one_line, printable


def tasks_table(entries: Sequence[Any]) -> Table:
    """`entries` are catalog.TaskEntry: one row per task; wraps to fit 80 columns."""
    from tiny_cli.tasks.base import REQUIRED as tasks_required

    table = Table(
        title=f"{len(entries)} tasks (task.name in a config)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_lines=True,
    )
    table.add_column("task", style="bold cyan", no_wrap=True)
    table.add_column("parameters (default)", overflow="fold", ratio=2)
    table.add_column("default net; constructions (neurons)", overflow="fold", ratio=3)
    for e in entries:
        name = Text(one_line(e.name))
        if e.aliases:
            name.append("\n" + one_line(", ".join(e.aliases)), style="dim")
        name.append(f"\n{one_line(e.kind[:14])}", style="dim")
        params = "\n".join(
            f"{k}: {v if v == tasks_required else _plain(v)}" for k, v in e.parameters.items()
        )
        net = Text(printable(e.summary) + "\n", style="italic")
        net.append(one_line(f"net: {e.default_model}"))
        for c in e.constructions:
            net.append("\n" + one_line(f"hardwired {c.name} ({c.units}): {c.summary}"))
        if not e.constructions:
            net.append("\nno construction", style="dim")
        if e.origin != "built in":
            net.append("\n" + one_line(f"plugin: {e.origin}"), style="dim")
        table.add_row(name, Text(printable(params or "-")), net)
    return table


def _plain(value: Any) -> str:
    """A config value as YAML writes it: null, true, [1, 2]."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")
