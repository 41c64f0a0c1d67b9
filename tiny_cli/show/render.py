"""Rich renderables for parameters, metrics, configs, runs and sweeps. They return, never print.

Inputs are the typed views of runs.py (or plain nested lists), so listing runs needs no torch.
Every string that comes from disk, a config or an argument becomes a `Text`, never markup: a
task named `[bold]` prints as `[bold]`.

Tables that list runs fit the console: each column has a priority, and columns are dropped,
lowest first, until every remaining cell fits whole (long cells wrap at spaces, never inside
a word); nothing is cut with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml
from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from tiny_cli.store.runs import (
    Details,
    GridValue,
    MetricValue,
    Nested,
    RunMeta,
    RunRecord,
    SeedResult,
    SolutionPoint,
    Solutions,
    SweepPoint,
    short_ids,
    show_value,
)

GAP = 2  # columns between two table columns (padding 1 + an invisible rule)


def _number(value: float, precision: int) -> str:
    text = f"{value:.{precision}f}"
    # The article rounds with numpy, which shows -0.0 as "-0."; a sign on zero is noise here.
    return text[1:] if text.startswith("-") and float(text) == 0 else text


SUMMARY_THRESHOLD = 16  # more elements than this: show the edges, as numpy does
EDGE = 3


def _summarised(values: Nested) -> Nested | str:
    """Rows and columns beyond 2 * EDGE cut to their first and last EDGE, the cut marked '...'."""
    if not isinstance(values, Sequence):
        return values
    items: list[Any] = [_summarised(v) for v in values]
    if len(items) > 2 * EDGE:
        items = [*items[:EDGE], "...", *items[-EDGE:]]
    return items


def _count(values: Nested) -> int:
    return sum(_count(v) for v in values) if isinstance(values, Sequence) else 1


def format_values(values: Nested, precision: int = 2) -> str:
    """Nested lists as a numpy-like block: `[[ 0.71 -0.71]]`, columns aligned; a big tensor
    shows its first and last three rows and columns, as numpy does."""
    shown: Any = _summarised(values) if _count(values) > SUMMARY_THRESHOLD else values
    flat: list[float] = []

    def collect(v: Any) -> None:
        if isinstance(v, str):
            return
        if isinstance(v, Sequence):
            for item in v:
                collect(item)
        else:
            flat.append(float(v))

    collect(shown)
    width = max((len(_number(v, precision)) for v in flat), default=0)

    def fmt(v: Any, depth: int) -> str:
        if isinstance(v, str):
            return v.rjust(width)
        if not isinstance(v, Sequence):
            return _number(float(v), precision).rjust(width)
        if v and any(isinstance(item, Sequence) and not isinstance(item, str) for item in v):
            inner = ("\n" + " " * (depth + 1)).join(
                (" " * (depth + 1) + "...") if isinstance(item, str) else fmt(item, depth + 1)
                for item in v
            )
            return f"[{inner.lstrip() if inner.startswith(' ') else inner}]"
        return "[" + " ".join(fmt(item, depth + 1) for item in v) + "]"

    return fmt(shown, 0)


def _shape(values: Nested) -> tuple[int, ...]:
    shape: list[int] = []
    while isinstance(values, Sequence):
        shape.append(len(values))
        values = values[0] if values else 0.0
    return tuple(shape)


def parameters_table(
    params: Mapping[str, Nested], precision: int = 2, title: str = "Parameters"
) -> Table:
    table = Table(title=Text(title), title_justify="left")
    table.add_column("parameter", style="bold", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    table.add_column(f"value (rounded to {precision} decimals)", overflow="fold")
    for name, values in params.items():
        shape = "x".join(map(str, _shape(values))) or "scalar"
        table.add_row(Text(name), shape, Text(format_values(values, precision)))
    return table


def _metric(value: Any, precision: int = 4) -> str:
    """A metric value: `precision` decimals, tiny values in scientific notation, null as -."""
    if isinstance(value, float):
        if abs(value) < 1e-3 and value:
            return f"{value:.{max(precision, 1)}g}"
        return _number(value, precision)
    if isinstance(value, list):
        return "[" + ", ".join(_metric(v, precision) for v in value) + "]"
    if value is None:
        return "-"
    return str(value)


def metrics_table(
    metrics: Mapping[str, MetricValue], precision: int = 4, title: str = "Metrics"
) -> Table:
    table = Table(title=Text(title), title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(Text(name), Text(_metric(value, precision)))
    return table


def config_view(config: Mapping[str, Any]) -> Syntax:
    return Syntax(yaml.safe_dump(dict(config), sort_keys=False).rstrip(), "yaml", theme="ansi_dark")


# --- tables that fit the console -------------------------------------------------------


@dataclass
class Column:
    """A table column to fit: `keep` 0 is never dropped; higher numbers are dropped first.
    `wrap` columns may wrap at spaces; the others are one line per cell, always whole."""

    header: str
    cells: list[Text] = field(default_factory=list)
    justify: Any = "left"
    wrap: bool = False
    keep: int = 0
    style: str = ""


def _lines(text: Text | str) -> list[str]:
    return (text.plain if isinstance(text, Text) else text).split("\n")


def _natural(col: Column) -> int:
    texts: list[Text | str] = [col.header, *col.cells]
    return max(len(line) for t in texts for line in _lines(t))


def _longest_word(texts: Iterable[Text | str]) -> int:
    return max((len(w) for t in texts for line in _lines(t) for w in line.split()), default=0)


def _floor(col: Column) -> int:
    """The narrowest the column can be with every word whole (headers wrap at spaces)."""
    cells = (
        _longest_word(col.cells)
        if col.wrap
        else max((len(line) for t in col.cells for line in _lines(t)), default=0)
    )
    return max(cells, _longest_word([col.header]))


def _need(cols: Sequence[Column], gap: int) -> int:
    return sum(_floor(c) for c in cols) + gap * (len(cols) - 1)


def _keep(columns: Sequence[Column], width: int, gap: int) -> list[Column]:
    cols = list(columns)
    while _need(cols, gap) > width and any(c.keep for c in cols):
        cols.remove(max((c for c in cols if c.keep), key=lambda c: c.keep))
    return cols


def fit(columns: Sequence[Column], width: int, title: Text | None = None) -> Table:
    """A table of `columns` at most `width` wide: drop columns (highest `keep` first) until
    the rest fit whole (two spaces between columns, one if that keeps a column more), then
    give wrapping columns what is left, up to their natural width."""
    gap = GAP
    cols = _keep(columns, width, gap)
    tight = _keep(columns, width, 1)
    if len(tight) > len(cols) or _need(cols, gap) > width:
        gap, cols = 1, tight
    widths = [_floor(c) for c in cols]
    spare = width - _need(cols, gap)
    # the columns that need least to become one line get it first
    for i in sorted(range(len(cols)), key=lambda i: _natural(cols[i]) - widths[i]):
        extra = min(max(spare, 0), _natural(cols[i]) - widths[i])
        widths[i] += extra
        spare -= extra
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, gap - 1, 0, 0),
    )
    for c, w in zip(cols, widths, strict=True):
        table.add_column(
            Text(c.header),
            justify=c.justify,
            width=w,
            overflow="fold",
            style=c.style,
        )
    for c in cols:
        for cell in c.cells:
            cell.no_wrap = not c.wrap
    for row in zip(*(c.cells for c in cols), strict=True):
        table.add_row(*row)
    return table


class Fitted:
    """A renderable built for the width it is given (a terminal, a pipe, a test console)."""

    def __init__(self, build: Callable[[int], RenderableType]) -> None:
        self.build = build

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        built = self.build(options.max_width)
        width = options.max_width
        if isinstance(built, Table):  # `--wide`: wider than the console rather than cut
            cols = built.columns
            gap = built.padding[1] + 1
            width = max(width, sum(c.width or 0 for c in cols) + gap * (len(cols) - 1))
        yield from console.render(built, options.update_width(width))


# --- runs ------------------------------------------------------------------------------


def _status_style(status: str | None) -> str:
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


def _epochs(meta: RunMeta) -> str:
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
    return _metric(r.metrics.get("accuracy"))


def _origin(meta: RunMeta, shorts: Mapping[str, str]) -> str:
    if meta.sweep:
        return f"sweep {shorts.get(meta.sweep, meta.sweep)}"
    if meta.from_run:
        return f"from {shorts.get(meta.from_run, meta.from_run)}"
    return ""


def _status_cell(r: RunRecord) -> Text:
    if r.problem:
        return Text(f"broken: {r.problem}", style="red")
    return Text(r.status, style=_status_style(r.status))


def runs_table(records: Sequence[RunRecord], wide: bool = False) -> Fitted:
    """One row per run, a problem shown in place of the status. Short ids (see
    runs.short_ids) unless `wide`; `wide` also shows every column, whatever the width."""
    shorts = short_ids([r.run.id for r in records])
    title = Text(f"{len(records)} run" + ("" if len(records) == 1 else "s"))
    show_origin = any(r.meta.sweep or r.meta.from_run for r in records)

    def col(header: str, cell: Callable[[RunRecord], Text | str], **kw: Any) -> Column:
        cells = [c if isinstance(c, Text) else Text(c) for c in map(cell, records)]
        return Column(header, cells, **kw)

    def build(width: int) -> Table:
        columns = [
            col("run id", lambda r: r.run.id if wide else shorts[r.run.id], style="cyan"),
            col("task", lambda r: r.meta.task or "-"),
            col("kind", lambda r: r.meta.kind or "-", keep=7),
            col("init", lambda r: init_label(r.meta), wrap=True, keep=5),
            col("seed", lambda r: seed_label(r.meta), justify="right", keep=4),
            col("epochs", lambda r: _epochs(r.meta), justify="right", keep=6),
            col("loss", lambda r: _metric(r.metrics.get("loss")), justify="right", keep=2),
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


def _header(
    what: str, record: RunRecord, detail: str, config: Mapping[str, Any] | None, problem: str
) -> list[RenderableType]:
    """The top of `tiny inspect`: id, status, why it stopped, what is broken, the config."""
    meta = record.meta
    parts: list[RenderableType] = [
        Text.assemble(
            (f"{what} ", "bold"),
            (record.run.id, "bold cyan"),
            "  ",
            (record.status, _status_style(record.status)),
            f"  ({detail})",
        )
    ]
    facts = [
        ("task", meta.task),
        ("arch", meta.arch),
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
        parts.append(Text(line, style="dim"))
    if meta.reason:
        parts.append(Text(f"reason: {meta.reason}", style="yellow"))
    if problem:
        parts.append(Text(f"problem: {problem}", style="red"))
    if config is not None:
        parts.append(config_view(config))
    return parts


def run_view(
    record: RunRecord,
    info: Details,
    precision: int = 2,
    metrics_precision: int = 4,
) -> Group:
    detail = f"{record.meta.kind or '?'}, {_epochs(record.meta)} epochs"
    parts = _header("run", record, detail, info.config, "; ".join(info.problems))
    if record.metrics:
        parts.append(metrics_table(record.metrics, metrics_precision))
    if info.params is not None:
        parts.append(parameters_table(info.params, precision))
    return Group(*parts)


def _lr(config: Mapping[str, Any] | None) -> str | None:
    train = (config or {}).get("train")
    lr = train.get("lr") if isinstance(train, Mapping) else None
    return None if lr is None else show_value(lr)


def _kind(meta: RunMeta, full: bool = True) -> str:
    """What made a run, in a word or three: hardwired, trained, kept from sweep X (`full`;
    else kept)."""
    if meta.sweep:
        return f"kept from sweep {short_ids([meta.sweep])[meta.sweep]}" if full else "kept"
    return {"hardwire": "hardwired", "train": "trained"}.get(meta.kind or "", meta.kind or "?")


def _run_label(record: RunRecord, short: str, config: Mapping[str, Any] | None) -> str:
    """Which run a compare column is: short id, kind, init, seed, lr (one per line)."""
    meta = record.meta
    lines = [short, _kind(meta)]
    if meta.init:
        lines.append(f"init {init_label(meta, ',')}")
    if meta.seed is not None or meta.seeds:
        lines.append(f"seed {seed_label(meta)}")
    if (lr := _lr(config)) is not None:
        lines.append(f"lr {lr}")
    return "\n".join(lines)


def _canonical_rows(canonical: Sequence[Mapping[str, Any]]) -> list[str]:
    """`1 relu weight`, `1 relu bias`, ...: one row per canonical layer's weights and biases
    (layers numbered from 1, the read-out last); runs whose layers differ get rows of their
    own, "-" for the others."""
    rows: list[str] = []
    for c in canonical:
        for k, layer in enumerate(c.get("layers") or [], start=1):
            rows += [f"{k} {layer['activation']} weight", f"{k} {layer['activation']} bias"]
    return list(dict.fromkeys(rows))


def _canonical_value(c: Mapping[str, Any], row: str, precision: int) -> str:
    number, activation, what = row.split(" ")
    layers = c.get("layers") or []
    k = int(number) - 1
    if k >= len(layers) or layers[k]["activation"] != activation:
        return "-"
    return format_values(layers[k][what], precision)


def _yes_no(value: Any) -> str:
    return "-" if value is None else "yes" if value else "no"


def compare_view(
    records: Sequence[RunRecord],
    configs: Sequence[Mapping[str, Any] | None],
    params: Sequence[Mapping[str, Nested] | None],
    precision: int = 2,
    metrics_precision: int = 4,
    canonical: Sequence[Mapping[str, Any]] | None = None,
) -> Fitted:
    """Runs side by side, one column per run: metrics; with `canonical`
    (`readout.Compared.as_dict()` per run) the canonical forms layer by layer and each run
    against the first; the parameters as stored when some run has them but no canonical
    form (or without `canonical`). A table of values that does not fit side by side lists
    its runs one under the other."""
    shorts = short_ids([r.run.id for r in records])
    labels = [_run_label(r, shorts[r.run.id], c) for r, c in zip(records, configs, strict=True)]
    names = list(dict.fromkeys(k for r in records for k in r.metrics))
    keys = list(dict.fromkeys(k for p in params if p for k in p))
    forms = list(canonical or [])
    form_rows = _canonical_rows(forms)
    raw = bool(keys) and (
        not forms or any(p and not c.get("layers") for p, c in zip(params, forms, strict=True))
    )
    tol = next((c["tolerance"] for c in forms if c.get("tolerance")), None)
    against: dict[str, Callable[[Mapping[str, Any]], str]] = {
        "max |difference|": lambda c: _metric(c["max_abs_difference"], metrics_precision),
        "same function" + (f" (within {tol:.3g})" if tol else ""): lambda c: _yes_no(
            c["same_function"]
        ),
        "canonical distance": lambda c: _metric(c["parameters"], metrics_precision),
    }

    def side_by_side(
        first: str, rows: list[str], cell: Callable[[int, str], str], justify: str
    ) -> list[Column]:
        cols = [Column(first, [Text(n) for n in rows], style="bold")]
        for i, label in enumerate(labels):
            values = [Text(cell(i, n)) for n in rows]
            cols.append(Column(label, values, justify=justify))
        return cols

    def table(
        width: int,
        title: str,
        first: str,
        rows: list[str],
        cell: Callable[[int, str], str],
        justify: str = "left",  # arrays: a matrix's rows, one a line, stay aligned
    ) -> Table:
        cols = side_by_side(first, rows, cell, justify)
        if _need(cols, 1) <= width:
            return fit(cols, width, Text(title))
        names_runs, values = [], []  # one run under the other, under the row's name
        for row in rows:
            names_runs.append(Text(row, style="bold"))
            values.append(Text(""))
            for i, r in enumerate(records):
                names_runs.append(Text(f"  {shorts[r.run.id]} {_kind(r.meta, full=False)}"))
                values.append(Text(cell(i, row)))
        stacked = [Column(f"{first}, run", names_runs, wrap=True), Column("value", values)]
        return fit(stacked, width, Text(title))

    def metric(i: int, name: str) -> str:
        return _metric(records[i].metrics.get(name), metrics_precision)

    def form(i: int, row: str) -> str:
        return _canonical_value(forms[i], row, precision)

    def versus(i: int, row: str) -> str:
        return against[row](forms[i]) if i else "-"

    def value(i: int, key: str) -> str:
        p = params[i]
        return format_values(p[key], precision) if p and key in p else "-"

    def build(width: int) -> Group:
        parts: list[RenderableType] = [table(width, "Metrics", "metric", names, metric, "right")]
        if form_rows:
            title = "Canonical form (units matched to the first run)"
            parts.append(table(width, title, "layer", form_rows, form))
        if any(c.get("max_abs_difference") is not None for c in forms):
            first = shorts[records[0].run.id]
            title = f"Against {first}, on its task's domain"
            parts.append(table(width, title, "", list(against), versus, "right"))
        if raw:
            parts.append(table(width, "Parameters (as stored)", "parameter", keys, value))
        return Group(*parts)

    return Fitted(build)


# --- sweeps -----------------------------------------------------------------------------

OUTCOME_STYLES = {
    "solved": "green",
    "stuck at mean": "yellow",
    "dead": "red",
    "partial": "cyan",
    "diverged": "magenta",
}


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 600 else f"{value / 60:.1f} min"


def _short(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _grid_lines(grid: Mapping[str, GridValue], split: bool) -> list[str]:
    """`key=value` per line; `split` puts a long value under its key."""
    out = []
    for k, v in grid.items():
        out.extend([f"{k}=", f"  {show_value(v)}"] if split else [f"{k}={show_value(v)}"])
    return out


def sweep_table(
    summary: Sequence[SweepPoint] | Sequence[Mapping[str, Any]], title: str = "Outcomes"
) -> Fitted:
    """One row per grid point: count and fraction per outcome, final-loss quantiles; time taken
    and seed-epochs per second under the grid point."""
    points = [p if isinstance(p, SweepPoint) else SweepPoint.model_validate(p) for p in summary]
    outcomes = list(points[0].counts) if points else list(OUTCOME_STYLES)
    seeds = points[0].seeds if points else 0
    heading = Text(f"{title} of {seeds} seeds per grid point")

    def build(width: int) -> Table:
        def label_column(split: bool) -> Column:
            cells = []
            for p in points:
                label = "\n".join(_grid_lines(p.grid, split)) or "base config"
                speed = p.seed_epochs_per_second
                rate = f", {speed:,.0f} seed-epochs/s" if speed is not None else ""
                cells.append(Text.assemble(label, "\n", (f"{_seconds(p.seconds)}{rate}", "dim")))
            return Column("grid point, time, speed", cells, wrap=True)

        columns = [label_column(split=False)]
        for name in outcomes:
            header = name.replace(" at mean", "\nat mean").replace("diverged", "diver-\nged")
            cells = [Text(f"{p.counts[name]}\n{p.fractions[name]:.1%}") for p in points]
            columns.append(
                Column(header, cells, justify="right", style=OUTCOME_STYLES.get(name, ""))
            )
        quantiles = [
            Text("\n".join(_short(p.loss.get(q)) for q in ("q10", "q50", "q90"))) for p in points
        ]
        columns.append(Column("loss\nq10,50,90", quantiles, justify="right", keep=1))
        if sum(_floor(c) for c in columns) + GAP * (len(columns) - 1) > width:
            columns[0] = label_column(split=True)
        return fit(columns, width, heading)

    return Fitted(build)


def sweep_view(record: RunRecord, info: Details) -> Group:
    meta = record.meta
    detail = f"seeds {seed_label(meta)}, {_epochs(meta)} epochs"
    parts = _header("sweep", record, detail, info.config, "; ".join(info.problems))
    if meta.grid:
        grid = "  ".join(
            f"{k}={','.join(show_value(v) for v in values)}" for k, values in meta.grid.items()
        )
        parts.append(Text(f"grid: {grid}"))
    if info.summary:
        parts.append(sweep_table(info.summary))
    for kept in meta.kept or []:
        parts.append(
            Text(f"kept seed {kept.seed} ({kept.why}, grid point {kept.point}): run {kept.run}")
        )
    return Group(*parts)


def seed_tables(seed: int, results: Iterable[SeedResult], precision: int = 2) -> Group:
    """`tiny inspect SWEEP --seed N`: the seed's parameters at every grid point."""
    tables = []
    for r in results:
        accuracy = f", accuracy {r.accuracy:.4f}" if r.accuracy is not None else ""
        title = (
            f"seed {seed}, {r.label}: {r.outcome} "
            f"(loss {r.loss:.4g}{accuracy}, {r.epochs_done} epochs)"
        )
        tables.append(parameters_table(r.parameters, precision, title=title))
    return Group(*tables)


# --- tasks ------------------------------------------------------------------------------


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
        name = Text(e.name)
        if e.aliases:
            name.append("\n" + ", ".join(e.aliases), style="dim")
        name.append(f"\n{e.kind[:14]}", style="dim")
        params = "\n".join(
            f"{k}: {v if v == tasks_required else _plain(v)}" for k, v in e.parameters.items()
        )
        net = Text(e.summary + "\n", style="italic")
        net.append(f"net: {e.default_model}")
        for c in e.constructions:
            net.append(f"\nhardwired {c.name} ({c.units}): {c.summary}")
        if not e.constructions:
            net.append("\nno construction", style="dim")
        if e.origin != "built in":
            net.append(f"\nplugin: {e.origin}", style="dim")
        table.add_row(name, Text(params or "-"), net)
    return table


def _plain(value: Any) -> str:
    """A config value as YAML writes it: null, true, [1, 2]."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")


# --- read-out ---------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, int | float) else "-"


Line = list[tuple[str, str]]  # (text, rich style) segments; "" is no style


def readout_lines(readout: Mapping[str, Any], formula_chars: int | None = None) -> list[Line]:
    """The read-out as lines of styled plain text: formula, exactness, meaning, diagnosis.
    `readout` is `readout.Readout.as_dict()` (plain data). `tiny inspect` prints them
    (`readout_view`: a formula longer than `formula_chars` is cut, and says where it is
    whole), `tiny report` writes them as HTML."""
    exact = readout.get("exact")
    label = ("exact", "green") if exact else ("approximate", "yellow")
    formula = str(readout.get("formula"))
    cut: list[tuple[str, str]] = []
    if formula_chars is not None and len(formula) > formula_chars:
        cut = [(f" … ({len(formula):,} characters; tiny export RUN --format formula "
                "prints it whole)", "")]  # fmt: skip
        formula = formula[:formula_chars]
    lines: list[Line] = [
        [("formula: ", ""), (formula, "bold"), *cut],
        [
            ("  ", ""), label,
            (f" on the domain: max error {_fmt(readout.get('max_error'), 3)}"
             f" (tolerance {_fmt(readout.get('tolerance'), 3)},"
             f" {readout.get('digits', '-')} significant digits)", ""),
        ],
    ]  # fmt: skip
    approx = readout.get("approximation")
    if approx:
        lines.append(
            [
                (
                    f"  ~ {approx.get('formula')} with {approx.get('digits')} digits "
                    f"(max error {_fmt(approx.get('max_error'), 3)})",
                    "",
                )
            ]
        )
    if readout.get("threshold") is not None:
        lo, hi = readout.get("threshold_between") or ("?", "?")
        line = (
            f"threshold neuron: Sigmoid(M (t - x)), t = {_fmt(readout['threshold'])}, "
            f"M = {_fmt(readout.get('steepness'))}; t lies between {lo} and {hi}"
        )
        if readout.get("margin_midpoint") is not None:
            line += f" (max-margin midpoint {_fmt(readout['margin_midpoint'])})"
        lines.append([(line, "")])
    if "alpha" in readout:
        family = "alpha (a - ReLU(a - b)) + (1 - alpha) (b - ReLU(b - a))"
        residual = f"(residual {_fmt(readout.get('family_residual'), 2)} of std)"
        if readout.get("in_family"):
            text = f"family {family}: alpha = {_fmt(readout['alpha'], 3)} {residual}"
        else:
            text = f"not in the family {family} {residual}"
        lines.append([(text, "")])
    if readout.get("correct_interval"):
        lo, hi = readout["correct_interval"]
        wrong = readout.get("wrong_at")
        wrong = wrong if isinstance(wrong, list) else []  # (from disk: anything)
        where = " and ".join(str(w) for w in wrong if w is not None)
        text = f"right on every integer in [{lo}, {hi}]" + (f", wrong at {where}" if where else "")
        lines.append([(text, "")])
    outcome = str(readout.get("outcome", "?"))
    diag: Line = [("diagnosis: ", ""), (outcome, OUTCOME_STYLES.get(outcome, ""))]
    dead = readout.get("dead_units") or []
    dead_text = ", ".join(f"layer {i + 1}: {len(d)}" for i, d in enumerate(dead) if d)
    diag.append((f"; dead units at the end: {dead_text or 'none'}", ""))
    at_init = readout.get("dead_units_at_init")
    if at_init is not None:
        init_text = ", ".join(f"layer {i + 1}: {len(d)}" for i, d in enumerate(at_init) if d)
        diag.append((f"; at init: {init_text or 'none'}", ""))
    if readout.get("not_converged"):
        diag.append(
            ("; not converged (the loss still falls over the last tenth of the epochs)", "")
        )
    lines.append(diag)
    dist = readout.get("distance_to_construction")
    if dist:
        same = "the same function" if dist.get("same_function") else "a different function"
        lines.append(
            [
                (
                    f"construction: canonical distance {_fmt(dist.get('parameters'), 3)}, "
                    f"{same} on the domain (max difference "
                    f"{_fmt(dist.get('max_abs_difference'), 3)})",
                    "",
                )
            ]
        )
    return lines


FORMULA_CHARS = 400  # of a formula in the terminal: five lines at 80 columns


def readout_view(readout: Mapping[str, Any]) -> Group:
    """The `Read-out` section of `tiny inspect` (`readout_lines`)."""
    lines = [Text.assemble(*line) for line in readout_lines(readout, FORMULA_CHARS)]
    return Group(Text("Read-out", style="bold"), *lines)


# --- a sweep's solutions (tiny inspect SWEEP --solutions) --------------------------------


def seed_ranges(seeds: Sequence[int], width: int | None = None) -> str:
    """`3-5, 9, 12`: ascending seeds with runs of consecutive ones as ranges; with `width`,
    at most that many characters, the rest said as `… N more` (N seeds)."""
    items: list[tuple[str, int]] = []  # (text, seeds it stands for)
    ordered = sorted(seeds)
    start = 0
    for k in range(1, len(ordered) + 1):
        if k == len(ordered) or ordered[k] != ordered[k - 1] + 1:
            a, b = ordered[start], ordered[k - 1]
            items.append((f"{a}-{b}" if b > a else str(a), k - start))
            start = k
    if width is None:
        return ", ".join(text for text, _ in items)
    shown, left = "", len(ordered)
    for k, (text, count) in enumerate(items):
        candidate = f"{shown}, {text}" if shown else text
        rest = left - count
        tail = f", … {rest} more" if rest and k + 1 < len(items) else ""
        if len(candidate) + len(tail) > width:
            break
        shown, left = candidate, rest
    if left:
        shown = f"{shown}, … {left} more" if shown else f"… {left} more"
    return shown


def _forms(count: int) -> str:
    return f"{count} form" + ("" if count == 1 else "s")


def _point_head(p: SolutionPoint) -> str:
    if not p.solved_seeds:
        return f"{p.label}: no solved seeds (of {p.seeds})"
    return f"{p.label}: {len(p.solved_seeds)} of {p.seeds} seeds solved, {_forms(len(p.groups))}"


def _unread(p: SolutionPoint) -> str:
    """The groups without a formula (beyond the largest), in one line."""
    rest = [g for g in p.groups if g.formula is None]
    if not rest:
        return ""
    sizes = sorted({g.count for g in rest})
    each = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"
    seeds = sum(g.count for g in rest)
    forms = f"{len(rest)} more form" + ("" if len(rest) == 1 else "s")
    return f"… {forms}, of {each} seeds each ({seeds} seeds; --json lists them)"


def _alpha_bins(values: Sequence[float], bins: int = 10) -> list[tuple[float, float, int]]:
    """Equal-width bins over the values' range (one bin when they are all equal)."""
    lo, hi = min(values), max(values)
    if hi == lo:
        return [(lo, hi, len(values))]
    step = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / step))] += 1
    return [(lo + k * step, lo + (k + 1) * step, c) for k, c in enumerate(counts)]


def alpha_histogram(p: SolutionPoint, width: int) -> list[Text]:
    """A text histogram of the solved seeds' alpha (min/max); none for other tasks."""
    if p.alpha is None or not p.solved_seeds:
        return []
    values = [a for a in p.alpha if a is not None]
    outside = len(p.alpha) - len(values)
    lines = [Text(f"alpha of the {len(values)} solved seeds in the family:")]
    rows = _alpha_bins(values) if values else []
    labels = [f"{_number(lo, 2):>5} to {_number(hi, 2):>5}" for lo, hi, _ in rows]
    biggest = max((c for _, _, c in rows), default=0)
    room = max(1, width - 2 - max(map(len, labels), default=0) - 2 - len(str(biggest)) - 1)
    for label, (_, _, count) in zip(labels, rows, strict=True):
        bar = "█" * (round(count / biggest * room) if biggest else 0)
        lines.append(Text(f"  {label}  {bar}{' ' if bar else ''}{count}"))
    if outside:
        lines.append(Text(f"  not in the family: {outside}"))
    return lines


def solutions_view(solutions: Solutions) -> Fitted:
    """Per grid point: its solved seeds' forms, largest first, each with the formula of the
    seed that shows it and its seeds, as ranges cut to the width; the forms beyond those
    with a formula in one line; the alpha histogram for min/max."""

    def build(width: int) -> Group:
        parts: list[RenderableType] = [
            Text(
                f"Solutions: solved seeds grouped by canonical form (units carving the same "
                f"regions, tolerance {solutions.tolerance:g}); each form's formula is its "
                f"simplest seed's",
                style="bold",
            )
        ]
        for p in solutions.points:
            parts.append(Text(_point_head(p)))
            shown = [g for g in p.groups if g.formula is not None]
            if shown:
                counts = Column("seeds", [Text(str(g.count)) for g in shown], justify="right")
                room = max(20, width - _floor(counts) - GAP)
                cells = []
                for g in shown:
                    cell = Text(str(g.formula))
                    if not g.exact:
                        error = _fmt(g.max_error, 3)
                        cell.append(f"  (approximate: max error {error})", style="yellow")
                    first = f"seed {g.representative}"
                    if g.alpha is not None:
                        first += f", alpha {_number(g.alpha, 2)}"
                    head = f"{first}; seeds "
                    cell.append(f"\n{head}{seed_ranges(g.seeds, room - len(head))}", style="dim")
                    cells.append(cell)
                forms = Column(
                    "formula; the seed it is read from; the form's seeds", cells, wrap=True
                )
                parts.append(fit([counts, forms], width))
            if more := _unread(p):
                parts.append(Text(more))
            parts.extend(alpha_histogram(p, width))
        return Group(*parts)

    return Fitted(build)


def solutions_markdown(p: SolutionPoint) -> str:
    """One grid point's solutions as markdown, for TensorBoard's TEXT tab."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [cell(_point_head(p))]
    shown = [g for g in p.groups if g.formula is not None]
    if shown:
        lines += ["", "| seeds | formula | read from seed | exact | its seeds |"]
        lines.append("|---:|---|---:|---|---|")
        for g in shown:
            exact = "yes" if g.exact else f"max error {_fmt(g.max_error, 3)}"
            ranges = cell(seed_ranges(g.seeds, 500))
            lines.append(f"| {g.count} | `{g.formula}` | {g.representative} | {exact} | {ranges} |")
    if more := _unread(p):
        lines += ["", more]
    values = [a for a in p.alpha or [] if a is not None]
    if values:
        lines += ["", f"alpha of {len(values)} seeds: {min(values):.3g} to {max(values):.3g}"]
    return "\n".join(lines)
