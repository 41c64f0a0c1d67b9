"""`tiny compare`: runs side by side, one column per run (metrics, canonical forms, each
run against the first); a table too wide for the console lists its runs one under the
other. Then what each run's net means for its task (`Task.meaning_lines`, as `tiny inspect`
shows them: modular's key frequencies and distance to the construction, lt's threshold),
run under run: those lines are too long for a column."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from tiny_cli import tasks
from tiny_cli.errors import one_line
from tiny_cli.show.run_views import init_label, seed_label
from tiny_cli.show.tables import Column, Fitted, fit, format_values, metric_text, need_width
from tiny_cli.store.runs import Nested, RunMeta, RunRecord, short_ids, show_value

if TYPE_CHECKING:
    from tiny_cli.tasks import Task


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
    return "\n".join(map(one_line, lines))


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


def _same(c: Mapping[str, Any], first: Mapping[str, Any]) -> str:
    """The same function as the first run's net; if not, another mechanism when both solve
    the task, else "differs" (one of them is wrong somewhere)."""
    same = c.get("same_function")
    if same is None or same:
        return _yes_no(same)
    both = c.get("solves_task") and first.get("solves_task")
    return "no: another mechanism" if both else "no: differs"


Cell = Callable[[int, str], str]  # (run index, row name) -> the cell's text
SOLVES = "solves the task"  # the one row of "against the first" that the first has too


def _table(
    width: int,
    title: str,
    first: str,
    rows: list[str],
    cell: Cell,
    labels: Sequence[str],
    stacked: Sequence[str],
    justify: str = "left",  # arrays: a matrix's rows, one a line, stay aligned
) -> Table:
    """Rows of values, one column per run (headed by `labels`); when that does not fit
    `width`, one run under the other under each row's name (each run named by `stacked`)."""
    cols = [Column(first, [Text(n) for n in rows], style="bold")]
    for i, label in enumerate(labels):
        cols.append(Column(label, [Text(cell(i, n)) for n in rows], justify=justify))
    if need_width(cols, 1) <= width:
        return fit(cols, width, Text(title))
    names_runs, values = [], []
    for row in rows:
        names_runs.append(Text(row, style="bold"))
        values.append(Text(""))
        for i, name in enumerate(stacked):
            names_runs.append(Text(f"  {name}"))
            values.append(Text(cell(i, row)))
    columns = [Column(f"{first}, run", names_runs, wrap=True), Column("value", values)]
    return fit(columns, width, Text(title))


def _against(
    forms: Sequence[Mapping[str, Any]], metrics_precision: int
) -> dict[str, Callable[[Mapping[str, Any]], str]]:
    """The rows of "against the first run": row name -> its cell of a run's comparison."""
    tol = next((c["tolerance"] for c in forms if c.get("tolerance")), None)
    first = forms[0] if forms else {}
    return {
        "max |difference|": lambda c: metric_text(c["max_abs_difference"], metrics_precision),
        "same function" + (f" (within {tol:.3g})" if tol else ""): lambda c: _same(c, first),
        SOLVES: lambda c: _yes_no(c.get("solves_task")),
        "canonical distance": lambda c: metric_text(c["parameters"], metrics_precision),
    }


def _meaning_lines(
    stacked: Sequence[str],
    meanings: Sequence[Mapping[str, Any] | None],
    run_tasks: Sequence[Task | None],
) -> list[RenderableType]:
    """Each run's meaning as `tiny inspect` shows it, under the run's name, its lines
    indented (a wrapped line too); a run whose net was not read, or means nothing more for
    its task, is left out. Plain text, never markup: the lines may hold what a file held."""
    out: list[RenderableType] = []
    for i, name in enumerate(stacked):
        meaning = meanings[i] if i < len(meanings) else None
        task = run_tasks[i] if i < len(run_tasks) else None
        if not meaning:
            continue
        lines = task.meaning_lines(meaning) if task else tasks.meaning_lines(meaning)
        if lines:
            out.append(Text(name, style="bold"))
            for line in lines:  # a line's own indent kept for its wrapped part too
                indent = 2 + len(line) - len(line.lstrip(" "))
                out.append(
                    Padding(Text(one_line(line.lstrip(" "))), (0, 0, 0, indent), expand=False)
                )
    return out


def compare_view(
    records: Sequence[RunRecord],
    configs: Sequence[Mapping[str, Any] | None],
    params: Sequence[Mapping[str, Nested] | None],
    precision: int = 2,
    metrics_precision: int = 4,
    canonical: Sequence[Mapping[str, Any]] | None = None,
    meanings: Sequence[Mapping[str, Any] | None] = (),
    run_tasks: Sequence[Task | None] = (),
) -> Fitted:
    """Runs side by side, one column per run: metrics; with `canonical`
    (`match.Compared.as_dict()` per run) the canonical forms layer by layer and each run
    against the first; the parameters as stored when some run has them but no canonical
    form (or without `canonical`). A table of values that does not fit side by side lists
    its runs one under the other. With `meanings` (`Task.meaning` per run, None where no
    net was read) and their `run_tasks`: each run's meaning lines, run under run."""
    shorts = short_ids([r.run.id for r in records])
    labels = [_run_label(r, shorts[r.run.id], c) for r, c in zip(records, configs, strict=True)]
    stacked = [one_line(f"{shorts[r.run.id]} {_kind(r.meta, full=False)}") for r in records]
    names = list(dict.fromkeys(k for r in records for k in r.metrics))
    keys = list(dict.fromkeys(k for p in params if p for k in p))
    forms = list(canonical or [])
    form_rows = _canonical_rows(forms)
    raw = bool(keys) and (
        not forms or any(p and not c.get("layers") for p, c in zip(params, forms, strict=True))
    )
    against = _against(forms, metrics_precision)

    def metric(i: int, name: str) -> str:
        return metric_text(records[i].metrics.get(name), metrics_precision)

    def form(i: int, row: str) -> str:
        return _canonical_value(forms[i], row, precision)

    def versus(i: int, row: str) -> str:
        return against[row](forms[i]) if i or row == SOLVES else "-"

    def value(i: int, key: str) -> str:
        p = params[i]
        return format_values(p[key], precision) if p and key in p else "-"

    def build(width: int) -> Group:
        parts: list[RenderableType] = [
            _table(width, "Metrics", "metric", names, metric, labels, stacked, "right")
        ]
        if form_rows:
            title = "Canonical form (units matched to the first run)"
            parts.append(_table(width, title, "layer", form_rows, form, labels, stacked))
        if any(c.get("max_abs_difference") is not None for c in forms):
            domain = forms[0].get("domain") if forms else None
            where = domain if isinstance(domain, str) else "its task's domain"
            title = f"Against {shorts[records[0].run.id]}, on {where}"
            parts.append(_table(width, title, "", list(against), versus, labels, stacked, "right"))
        if raw:
            title = "Parameters (as stored)"
            parts.append(_table(width, title, "parameter", keys, value, labels, stacked))
        meant = _meaning_lines(stacked, meanings, run_tasks)
        if meant:
            parts += [Text(""), Text("What each net means for its task", style="italic"), *meant]
        return Group(*parts)

    return Fitted(build)
