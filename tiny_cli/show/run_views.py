"""Runs: the list of `tiny runs` and the top of `tiny inspect` (a run's facts, its metrics
and parameters), with the labels other views share (a run's init, seeds, epochs)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tiny_cli.errors import one_line
from tiny_cli.show.tables import (
    Column,
    Fitted,
    config_view,
    fit,
    metric_text,
    metrics_table,
    parameters_table,
    safe_text,
)
from tiny_cli.store.runs import Details, RunMeta, RunRecord, short_ids, show_value


def status_style(status: str | None) -> str:
    return {
        "completed": "green",
        "running": "yellow",
        "starting": "yellow",
        "interrupted": "yellow",
    }.get(str(status), "red")


def _duration(meta: RunMeta) -> str:
    """Wall time of a run ('-' while it runs or if unknown)."""
    if meta.started is None or meta.finished is None:
        return "-"
    seconds = max(0.0, (meta.finished - meta.started).total_seconds())
    return f"{seconds:.1f}s" if seconds < 60 else f"{seconds / 60:.1f}m"


def _local(when: datetime | None) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else "-"


def init_label(meta: RunMeta, sep: str = ", ") -> str:
    """A sweep whose grid varies init.mode shows the grid's modes, in the grid's order."""
    modes = (meta.grid or {}).get("init.mode")
    if meta.is_sweep and modes:
        return sep.join(show_value(m) for m in modes)
    return meta.init or "-"


def seed_label(meta: RunMeta) -> str:
    if meta.seeds:
        return (
            f"{meta.seeds[0]}-{meta.seeds[1]}"
            if meta.seeds[1] > meta.seeds[0]
            else str(meta.seeds[0])
        )
    return "-" if meta.seed is None else str(meta.seed)


def sweep_epochs(meta: RunMeta, compact: bool = False) -> str:
    """A sweep's epochs per seed: the grid's values where it varies them (`20,1000000`;
    `compact`: `20..1000000`), else the config's."""
    values = [v for v in (meta.grid or {}).get("train.epochs") or [] if isinstance(v, int)]
    if len(set(values)) > 1:
        return f"{min(values)}..{max(values)}" if compact else ",".join(map(str, values))
    return "-" if meta.epochs is None else str(meta.epochs)


def epochs_label(meta: RunMeta) -> str:
    """Epochs done (of how many, while unfinished); a sweep's epochs per seed (it trains its
    seeds in chunks, so what is done is counted in chunks, not epochs)."""
    if meta.is_sweep:
        return sweep_epochs(meta, compact=True)
    done, total = meta.epochs_done, meta.epochs
    if done is None:
        return "-"
    if total is not None and done != total and meta.status != "completed":
        return f"{done}/{total}"
    return str(done)


def _score(r: RunRecord) -> str:
    solved = r.metrics.get("solved")
    if r.meta.is_sweep and isinstance(solved, float | int):
        return f"{solved:.1%} solved"
    return metric_text(r.metrics.get("accuracy"))


def _origin(meta: RunMeta, shorts: Mapping[str, str]) -> str:
    if meta.sweep:
        return f"sweep {shorts.get(meta.sweep, meta.sweep)}"
    if meta.from_run:
        return f"from {shorts.get(meta.from_run, meta.from_run)}"
    return ""


def _status_cell(r: RunRecord) -> Text:
    if r.problem:
        return Text(one_line(f"broken: {r.problem}"), style="red")
    return Text(one_line(r.status), style=status_style(r.status))


def runs_table(records: Sequence[RunRecord], wide: bool = False) -> Fitted:
    """One row per run, a problem shown in place of the status. Short ids (see
    runs.short_ids) unless `wide`; `wide` also shows every column, whatever the width."""
    shorts = short_ids([r.run.id for r in records])
    title = Text(f"{len(records)} run" + ("" if len(records) == 1 else "s"))
    show_origin = any(r.meta.sweep or r.meta.from_run for r in records)

    def col(header: str, cell: Callable[[RunRecord], Text | str], **kw: Any) -> Column:
        cells = [c if isinstance(c, Text) else Text(one_line(c)) for c in map(cell, records)]
        return Column(header, cells, **kw)

    def build(width: int) -> Table:
        columns = [
            col("run id", lambda r: r.run.id if wide else shorts[r.run.id], style="cyan"),
            col("task", lambda r: r.meta.task or "-"),
            col("kind", lambda r: r.meta.kind or "-", keep=7),
            col("init", lambda r: init_label(r.meta), wrap=True, keep=5),
            col("seed", lambda r: seed_label(r.meta), justify="right", keep=4),
            col("epochs", lambda r: epochs_label(r.meta), justify="right", keep=6),
            col("loss", lambda r: metric_text(r.metrics.get("loss")), justify="right", keep=2),
            col("accuracy", _score, justify="right", wrap=True, keep=3),
            col("status", _status_cell, wrap=True),
            col("time", lambda r: _duration(r.meta), justify="right", keep=8),
        ]
        if show_origin or wide:
            columns.append(col("from", lambda r: _origin(r.meta, shorts), wrap=True, keep=9))
        if wide:
            columns.insert(1, col("started", lambda r: _local(r.meta.started), wrap=True))
            return fit([Column(**{**c.__dict__, "keep": 0}) for c in columns], 10_000, title)
        return fit(columns, width, title)

    return Fitted(build)


def header(
    what: str,
    record: RunRecord,
    detail: str,
    config: Mapping[str, Any] | None,
    problem: str,
    arch: str | None = None,
) -> list[RenderableType]:
    """The top of `tiny inspect`: id, status, why it stopped, what is broken, the config.
    `arch`: what to say instead of the stored architecture (a sweep's grid over nets)."""
    meta = record.meta
    parts: list[RenderableType] = [
        Text.assemble(
            (f"{what} ", "bold"),
            (one_line(record.run.id), "bold cyan"),
            "  ",
            (one_line(record.status), status_style(record.status)),
            one_line(f"  ({detail})"),
        )
    ]
    facts = [
        ("task", meta.task),
        ("arch", arch or meta.arch),
        ("init", init_label(meta, ",") if meta.init or meta.grid else None),
        (
            "seed" + ("s" if meta.seeds else ""),
            seed_label(meta) if meta.seeds or meta.seed is not None else None,
        ),
        ("started", _local(meta.started) if meta.started else None),
        ("kept by sweep", meta.sweep),
        ("from run", meta.from_run),
    ]
    line = "  ".join(f"{k} {v}" for k, v in facts if v)
    if line:
        parts.append(safe_text(line, style="dim"))
    if meta.reason:
        parts.append(safe_text(f"reason: {meta.reason}", style="yellow"))
    if problem:
        parts.append(safe_text(f"problem: {problem}", style="red"))
    if config is not None:
        parts.append(config_view(config))
    return parts


def run_view(
    record: RunRecord,
    info: Details,
    precision: int = 2,
    metrics_precision: int = 4,
) -> Group:
    detail = f"{record.meta.kind or '?'}, {epochs_label(record.meta)} epochs"
    parts = header("run", record, detail, info.config, "; ".join(info.problems))
    if record.metrics:
        parts.append(metrics_table(record.metrics, metrics_precision))
    if info.params is not None:
        parts.append(parameters_table(info.params, precision))
    if info.pictures:
        where = record.run.path
        parts.append(safe_text(f"pictures in {where}: {', '.join(info.pictures)}", style="dim"))
    return Group(*parts)
