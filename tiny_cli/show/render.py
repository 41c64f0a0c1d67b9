"""The views `tiny`'s commands print, under one name: each is defined in the show module
of its job (`tables`, `run_views`, `compare_view`, `sweep_views`, `tasks_table`,
`readout_view`, `solutions_view`) and named here for the callers that import them from this
module (tiny_cli/cli, app/solutions). Renderables return, never print."""

from __future__ import annotations

from tiny_cli.show.compare_view import compare_view
from tiny_cli.show.phase import phase_view
from tiny_cli.show.readout_view import readout_view
from tiny_cli.show.run_views import run_view, runs_table
from tiny_cli.show.solutions_view import solutions_markdown, solutions_view
from tiny_cli.show.sweep_views import partial_line, seed_tables, sweep_table, sweep_view
from tiny_cli.show.tables import metrics_table, parameters_table
from tiny_cli.show.tasks_table import tasks_table

__all__ = [
    "compare_view",
    "metrics_table",
    "parameters_table",
    "partial_line",
    "phase_view",
    "readout_view",
    "run_view",
    "runs_table",
    "seed_tables",
    "solutions_markdown",
    "solutions_view",
    "sweep_table",
    "sweep_view",
    "tasks_table",
]
