"""Tables that fit a terminal, and the values in them: the pieces every view is made of.

Inputs are plain nested lists and typed views (store.runs), so listing runs needs no torch.
Every string that comes from disk, a config or an argument becomes a `Text`, never markup: a
task named `[bold]` prints as `[bold]`.

Tables that list runs fit the console (`fit`): each column has a priority, and columns are
dropped, lowest first, until every remaining cell fits whole (long cells wrap at spaces,
never inside a word); nothing is cut with an ellipsis. `Fitted` builds one for the width
it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from tiny_cli.errors import printable
from tiny_cli.store.runs import MetricValue, Nested

GAP = 2  # columns between two table columns (padding 1 + an invisible rule)


def safe_text(value: object, style: str = "") -> Text:
    """Text from disk, a config, an argument or a plugin as a view shows it: never markup,
    its control characters (escape sequences, BEL) visible as `\\x1b` (`errors.printable`)."""
    return Text(printable(str(value)), style=style)


def _safe_cell(cell: Text) -> Text:
    shown = printable(cell.plain)
    return cell if shown == cell.plain else Text(shown, style=cell.style, justify=cell.justify)


def decimals(value: float, precision: int) -> str:
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
    width = max((len(decimals(v, precision)) for v in flat), default=0)

    def fmt(v: Any, depth: int) -> str:
        if isinstance(v, str):
            return v.rjust(width)
        if not isinstance(v, Sequence):
            return decimals(float(v), precision).rjust(width)
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


def shape_text(values: Nested) -> str:
    """A parameter's shape as the tables show it: `1x2`, or `scalar`."""
    return "x".join(map(str, _shape(values))) or "scalar"


def parameters_table(
    params: Mapping[str, Nested], precision: int = 2, title: str = "Parameters"
) -> Table:
    table = Table(title=safe_text(title), title_justify="left")
    table.add_column("parameter", style="bold", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    table.add_column(f"value (rounded to {precision} decimals)", overflow="fold")
    for name, values in params.items():
        table.add_row(safe_text(name), shape_text(values), Text(format_values(values, precision)))
    return table


def metric_text(value: Any, precision: int = 4) -> str:
    """A metric value: `precision` decimals, tiny values in scientific notation, null as -."""
    if isinstance(value, float):
        if abs(value) < 1e-3 and value:
            return f"{value:.{max(precision, 1)}g}"
        return decimals(value, precision)
    if isinstance(value, list):
        return "[" + ", ".join(metric_text(v, precision) for v in value) + "]"
    if value is None:
        return "-"
    return str(value)


def metrics_table(
    metrics: Mapping[str, MetricValue], precision: int = 4, title: str = "Metrics"
) -> Table:
    table = Table(title=safe_text(title), title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(safe_text(name), safe_text(metric_text(value, precision)))
    return table


def config_view(config: Mapping[str, Any]) -> Syntax:
    return Syntax(yaml.safe_dump(dict(config), sort_keys=False).rstrip(), "yaml", theme="ansi_dark")


OUTCOME_STYLES = {
    "solved": "green",
    "stuck at mean": "yellow",
    "dead": "red",
    "partial": "cyan",
    "diverged": "magenta",
}


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

    def __post_init__(self) -> None:
        """Names from disk are data: escaped before the widths are measured."""
        self.header = printable(self.header)
        self.cells = [_safe_cell(c) for c in self.cells]


def _lines(text: Text | str) -> list[str]:
    return (text.plain if isinstance(text, Text) else text).split("\n")


def _natural(col: Column) -> int:
    texts: list[Text | str] = [col.header, *col.cells]
    return max(len(line) for t in texts for line in _lines(t))


def _longest_word(texts: Iterable[Text | str]) -> int:
    return max((len(w) for t in texts for line in _lines(t) for w in line.split()), default=0)


def floor_width(col: Column) -> int:
    """The narrowest the column can be with every word whole (headers wrap at spaces)."""
    cells = (
        _longest_word(col.cells)
        if col.wrap
        else max((len(line) for t in col.cells for line in _lines(t)), default=0)
    )
    return max(cells, _longest_word([col.header]))


def need_width(cols: Sequence[Column], gap: int) -> int:
    return sum(floor_width(c) for c in cols) + gap * (len(cols) - 1)


def _keep(columns: Sequence[Column], width: int, gap: int) -> list[Column]:
    cols = list(columns)
    while need_width(cols, gap) > width and any(c.keep for c in cols):
        cols.remove(max((c for c in cols if c.keep), key=lambda c: c.keep))
    return cols


def fit(columns: Sequence[Column], width: int, title: Text | None = None) -> Table:
    """A table of `columns` at most `width` wide: drop columns (highest `keep` first) until
    the rest fit whole (two spaces between columns, one if that keeps a column more), then
    give wrapping columns what is left, up to their natural width."""
    gap = GAP
    cols = _keep(columns, width, gap)
    tight = _keep(columns, width, 1)
    if len(tight) > len(cols) or need_width(cols, gap) > width:
        gap, cols = 1, tight
    widths = [floor_width(c) for c in cols]
    spare = width - need_width(cols, gap)
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
