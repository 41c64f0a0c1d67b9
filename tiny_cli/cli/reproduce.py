"""`tiny reproduce NAME`: a write-up's claims run and judged (`app.reproduce`), as a table and,
with `--report FILE`, one HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tiny_cli.cli.options import RunsDir
from tiny_cli.cli.output import ProgressBar, console, fail
from tiny_cli.errors import TinyError, echo_path, one_line

Name = Annotated[
    str, typer.Argument(metavar="NAME", help="What to reproduce: article (the registry's names).")
]
Quick = Annotated[
    bool, typer.Option("--quick", help="Fewer seeds: every row in under a minute, for class.")
]
ReportFile = Annotated[
    Path | None,
    typer.Option("--report", metavar="FILE", help="Also write the rows as one HTML page."),
]
Only = Annotated[
    list[str] | None,
    typer.Option("--only", metavar="CLAIM", help="Only this claim (repeatable), e.g. lt10-soft."),
]


def reproduce(
    name: Name,
    quick: Quick = False,
    report: ReportFile = None,
    only: Only = None,
    runs_dir: RunsDir = None,
) -> None:
    """Run every claim of the article and say whether it holds, from the runs it makes.

    Example: tiny reproduce article --quick --report article.html
    """
    from tiny_cli.app import reproduce as reproducing
    from tiny_cli.show import claims_view

    if report is not None and (not str(report).strip() or report.is_dir()):
        raise TinyError(f"--report {echo_path(report)}: give a file name")
    repro, rows = reproducing.reproduce(
        name, quick=quick, only=only, runs_dir=runs_dir, display=ProgressBar
    )
    console.print(claims_view.claims_table(rows, repro.title))
    if report is not None:
        from tiny_cli.store import files

        page = claims_view.claims_page(rows, repro.title)
        try:
            files.atomic_write(report, page.encode("utf-8", "backslashreplace"))
        except OSError as exc:
            why = f"cannot be written ({exc.strerror})"
            raise TinyError(f"--report {echo_path(report)}: {why}") from None
        console.print(f"report: {one_line(str(report))}", markup=False, soft_wrap=True)
    fail([f"{row.key}: {row.reason}" for row in rows if row.measured == "unreadable"])
