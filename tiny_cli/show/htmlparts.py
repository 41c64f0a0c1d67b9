"""The pieces of the report's HTML: escaped text, tables, data: URIs (show/report.py)."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from typing import Any

from tiny_cli.store.runs import MetricValue


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def metric_text(value: MetricValue) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(metric_text(v) for v in value) + "]"
    return "-" if value is None else str(value)


def table(headers: Sequence[str] | None, rows: Iterable[Sequence[str]], numeric: int = 1) -> str:
    """`rows` are already escaped HTML; columns from `numeric` on are right-aligned."""
    cells = "".join(f"<th>{esc(h)}</th>" for h in headers or [])
    head = f"<thead><tr>{cells}</tr></thead>" if headers else ""
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i >= numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>\n"
        for row in rows
    )
    return f"<table>{head}<tbody>\n{body}</tbody></table>"
