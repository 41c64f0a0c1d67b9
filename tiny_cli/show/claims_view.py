"""`tiny reproduce`'s verdicts as a person sees them: a table that fits 80 columns and the
same rows as one self-contained HTML page with the pictures of the runs behind them.

The rows are made in `app/reproduce.py`, each from the runs it made; this module only shows
them. Claims, numbers and reasons are plain text (never rich markup; HTML-escaped)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rich.table import Table
from rich.text import Text

from tiny_cli.show.htmlparts import esc, table
from tiny_cli.show.report import CSP, STYLE, _image, _section
from tiny_cli.store.runs import short_ids

Verdict = Literal["holds", "differs", "refuted"]
VERDICT_STYLES = {"holds": "green", "differs": "yellow", "refuted": "red"}


@dataclass(frozen=True)
class ClaimRow:
    """One claim checked: what the article says, what its runs measured, and why the verdict."""

    key: str  # `--only KEY`
    claim: str
    says: str  # what the article (or tiny's own finding) says
    measured: str
    verdict: Verdict
    reason: str  # one line
    runs: tuple[str, ...] = ()  # the run and sweep ids behind the row
    pictures: tuple[tuple[str, bytes], ...] = field(default=(), compare=False)  # caption, PNG


def claims_table(rows: Sequence[ClaimRow], title: str) -> Table:
    """One row per claim: claim (its runs' short ids under it), the article, the measure,
    the verdict with its reason."""
    grid = Table(title=Text(title), title_justify="left", show_lines=True, expand=False)
    grid.add_column("claim", ratio=3, overflow="fold")
    grid.add_column("article", ratio=2, overflow="fold")
    grid.add_column("measured", ratio=2, overflow="fold")
    grid.add_column("verdict", ratio=3, overflow="fold")
    shorts = short_ids([r for row in rows for r in row.runs])
    for row in rows:
        claim = Text(row.claim)
        if row.runs:
            claim.append("\n" + "\n".join(shorts.get(r, r) for r in row.runs), style="dim")
        verdict = Text(row.verdict, style=f"bold {VERDICT_STYLES[row.verdict]}")
        verdict.append(f"\n{row.reason}")
        grid.add_row(claim, Text(row.says), Text(row.measured), verdict)
    return grid


def claims_html_table(rows: Sequence[ClaimRow]) -> str:
    """The rows as the report's kind of table (escaped; the verdicts coloured)."""
    cells = [
        (
            esc(row.claim),
            esc(row.says),
            esc(row.measured),
            f'<span class="{VERDICT_STYLES[row.verdict]}"><b>{esc(row.verdict)}</b></span>'
            f"<br>{esc(row.reason)}",
            "<br>".join(f"<code>{esc(r)}</code>" for r in row.runs),
        )
        for row in rows
    ]
    return table(["claim", "article", "measured", "verdict", "runs"], cells, numeric=9)


def claims_page(rows: Sequence[ClaimRow], title: str) -> str:
    """`tiny reproduce --report FILE`: the table, then each row's pictures; nothing to fetch."""
    parts = [f"<h1>{esc(title)}</h1>", claims_html_table(rows)]
    for row in rows:
        if row.pictures:
            figures = "\n".join(_image(caption, png, caption) for caption, png in row.pictures)
            parts.append(_section(row.claim, figures))
    body = "\n".join(parts)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{STYLE}</style>
</head>
<body>
{body}
<footer><p><small>made by tiny reproduce</small></p></footer>
</body>
</html>
"""
