"""`tiny report RUN|SWEEP`: one self-contained HTML file of a run or a sweep, to share.

Everything is inside the file: the pictures are PNGs in `data:` URIs, the style is inline, and
there is no script, font or link to fetch; a Content-Security-Policy allows nothing else, so
the file opens the same from a mail attachment, with no server and no network.

A run's report: its facts (status, kind, seed, epochs, command, versions), config, metrics,
the read-out of its net (formula, meaning, diagnosis: what `tiny inspect` shows), parameters,
`prediction.png` and `units.png`, and its trajectories as static plots, read from the run's own
event file with TensorBoard's `EventAccumulator` (what TensorBoard itself would show: loss and
accuracy, every parameter element per layer, the mechanism, the gradient norms). A sweep's
report: its facts, config, metrics, grid, outcome table (summary.json) and a histogram of the
seeds' final losses (sweep.pt).

What is read from the run directory is untrusted, as everywhere in tiny: the files come
through runs.py's checked readers and typed views, every string is HTML-escaped, and
matplotlib is told not to parse `$...$` in tags and labels as mathtext.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tiny_cli.errors import TinyError
from tiny_cli.show.readout_view import Line, readout_lines
from tiny_cli.show.run_views import init_label, seed_label
from tiny_cli.show.sweep_views import partial_line
from tiny_cli.show.tables import format_values, shape_text
from tiny_cli.store import runs
from tiny_cli.store.runs import (
    GridValue,
    MetricValue,
    Nested,
    Run,
    RunProblem,
    RunRecord,
    SweepPoint,
)

if TYPE_CHECKING:
    from tiny_cli.tasks import Task

FILENAME = "report.html"
EVENTS_PREFIX = "events.out.tfevents."
PICTURE_CAP = 16 << 20  # prediction.png: tiny's are ~30 KB
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 80
MAX_CHARTS = 40  # a hostile or huge event file must not make thousands of figures
MAX_LINES = 64  # lines on one chart; the rest are counted in its title
LEGEND_LINES = 12  # a legend of more lines hides the chart
SKIPPED_GROUPS = ("final",)  # `final/*` is one point: the metrics table shows it
PANEL_GROUPS = ("metrics", "mechanism")  # tags of different scales: one panel each


# --- reading ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One scalar tag over the run: TensorBoard's steps (epochs) and values."""

    steps: list[int]
    values: list[float]


def event_files(run: Run) -> list[Path]:
    """The run's event files: regular files directly in its directory (no symlinks)."""
    found = []
    try:
        with os.scandir(run.path) as entries:
            for entry in entries:
                if entry.name.startswith(EVENTS_PREFIX) and entry.is_file(follow_symlinks=False):
                    found.append(Path(entry.path))
    except OSError as exc:
        raise RunProblem(f"the run directory cannot be listed ({exc.strerror})") from None
    return sorted(found)


def read_scalars(run: Run) -> dict[str, Series]:
    """Every scalar of the run's event files, as TensorBoard reads them (all points kept)."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    files = event_files(run)
    if not files:
        raise RunProblem(f"no event file ({EVENTS_PREFIX}*): no trajectories")
    scalars: dict[str, Series] = {}
    for path in files:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > runs.TENSOR_CAP:
            raise RunProblem(f"{path.name} is not a regular file of at most 256 MiB")
        keep_none = {ea.IMAGES: 1, ea.AUDIO: 1, ea.HISTOGRAMS: 1, ea.TENSORS: 1}
        accumulator = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0, **keep_none})
        try:
            accumulator.Reload()
            tags = accumulator.Tags()[ea.SCALARS]
            events = {tag: accumulator.Scalars(tag) for tag in tags}
        except Exception as exc:  # a corrupt file: TensorBoard raises many kinds
            raise RunProblem(f"{path.name} is unreadable ({type(exc).__name__})") from None
        for tag, points in events.items():
            old = scalars.get(tag, Series([], []))
            pairs = sorted(
                [*zip(old.steps, old.values, strict=True), *((p.step, p.value) for p in points)]
            )
            scalars[tag] = Series([s for s, _ in pairs], [v for _, v in pairs])
    return scalars


def read_picture(run: Run, name: str = runs.PREDICTION) -> bytes:
    data = runs.read_file(run.path, name, PICTURE_CAP)
    if not data.startswith(PNG_SIGNATURE):
        raise RunProblem(f"{name} is not a PNG picture")
    return data


# --- pictures ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Chart:
    title: str
    png: bytes


def _figure(panels: int, height: float = 3.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2 * panels if panels > 1 else 7.2, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _finite(values: Iterable[float]) -> list[float]:
    return [v if math.isfinite(v) else math.nan for v in values]


def _wide_positive(values: Sequence[float]) -> bool:
    """Log scale for a positive series spanning more than two decades (losses, gradients)."""
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 100


def _plot(ax: Any, scalars: Mapping[str, Series], tags: Sequence[str], label: Any) -> None:
    shown = list(tags[:MAX_LINES])
    for tag in shown:
        series = scalars[tag]
        ax.plot(
            series.steps,
            _finite(series.values),
            label=label(tag),
            linewidth=1.2,
            linestyle="--" if "/bias" in tag else "-",
            marker="." if len(series.steps) < 30 else None,
        )
    values = [v for tag in shown for v in scalars[tag].values]
    if _wide_positive(values):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    if 1 < len(shown) <= LEGEND_LINES:
        ax.legend(fontsize=7, loc="best")


def _groups(tags: Iterable[str]) -> dict[str, list[str]]:
    """Tags by their first path part, in the order the run logged them: `metrics`, each layer
    (`0`, `fc1`, ...), `mechanism`, `grad_norm`."""
    groups: dict[str, list[str]] = {}
    for tag in tags:
        group = tag.partition("/")[0]
        if group not in SKIPPED_GROUPS:
            groups.setdefault(group, []).append(tag)
    return groups


def _title(group: str, tags: Sequence[str]) -> str:
    cut = f" (first {MAX_LINES} of {len(tags)})" if len(tags) > MAX_LINES else ""
    if group == "metrics":
        return "loss and accuracy"
    if group == "grad_norm":
        return f"gradient norm per layer{cut}"
    if any("[" in t for t in tags):
        return f"layer {group}: weights (solid) and biases (dashed){cut}"
    return f"{group}{cut}"


def trajectory_charts(scalars: Mapping[str, Series]) -> list[Chart]:
    """One chart per group of tags: loss and accuracy side by side, one per layer with all its
    weights and biases (as TensorBoard's CUSTOM SCALARS shows them), the mechanism, the
    gradient norms."""
    import matplotlib

    charts = []
    with matplotlib.rc_context({"text.parse_math": False}):
        for group, tags in list(_groups(scalars).items())[:MAX_CHARTS]:
            panels = group in PANEL_GROUPS and len(tags) <= 4
            figure = _figure(len(tags) if panels else 1)
            if panels:
                for i, tag in enumerate(tags):
                    ax = figure.add_subplot(1, len(tags), i + 1)
                    _plot(ax, scalars, [tag], str)
                    ax.set_title(tag, fontsize=9)
            else:
                ax = figure.add_subplot()
                _plot(ax, scalars, tags, lambda t: t.partition("/")[2] or t)
            title = _title(group, tags)
            figure.suptitle(title, fontsize=10)
            figure.tight_layout()
            charts.append(Chart(title, _png(figure)))
    return charts


def loss_histogram(arrays: runs.SweepArrays) -> Chart:
    """The seeds' final losses per grid point, on a log scale (losses span decades); seeds
    whose loss is not finite or not positive cannot be drawn there and are counted."""
    import matplotlib
    import numpy as np

    figure = _figure(1, height=3.4)
    ax = figure.add_subplot()
    left_out = 0
    logs = []
    for point in arrays.points:
        loss = point["loss"].double().numpy()
        ok = np.isfinite(loss) & (loss > 0)
        left_out += int((~ok).sum())
        logs.append(np.log10(loss[ok]))
    every = np.concatenate(logs) if logs else np.array([])
    bins = np.histogram_bin_edges(every, bins=30) if every.size else 30
    with matplotlib.rc_context({"text.parse_math": False}):
        for point, values in zip(arrays.points, logs, strict=True):
            label = " ".join(f"{k}={runs.show_value(v)}" for k, v in point["grid"].items())
            ax.hist(values, bins=bins, histtype="step", linewidth=1.5, label=label or "all seeds")
        ax.set_xlabel("log10(final loss)")
        ax.set_ylabel("seeds")
        ax.grid(alpha=0.3)
        if 1 < len(logs) <= LEGEND_LINES:
            ax.legend(fontsize=7)
        title = f"final loss of {len(arrays.seeds)} seeds per grid point"
        if left_out:
            title += f" ({left_out} not finite or zero, not drawn)"
        figure.suptitle(title, fontsize=10)
        figure.tight_layout()
    return Chart(title, _png(figure))


# --- HTML -------------------------------------------------------------------------------


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _metric(value: MetricValue) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(_metric(v) for v in value) + "]"
    return "-" if value is None else str(value)


def _table(headers: Sequence[str] | None, rows: Iterable[Sequence[str]], numeric: int = 1) -> str:
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


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _facts(record: RunRecord) -> str:
    meta = record.meta
    versions = meta.versions or {}
    facts = [
        ("status", record.status),
        ("kind", meta.kind),
        ("task", meta.task),
        ("architecture", meta.arch),
        ("init", init_label(meta, ", ") if meta.init or meta.grid else None),
        ("seeds" if meta.seeds else "seed", seed_label(meta)),
        ("epochs", f"{meta.epochs_done} of {meta.epochs}" if meta.epochs is not None else None),
        ("reason", meta.reason),
        ("started", _when(meta.started)),
        ("finished", _when(meta.finished)),
        ("device", meta.device),
        ("kept by sweep", meta.sweep),
        ("repeats run", meta.from_run),
        ("command", " ".join(["tiny", *(meta.command or [])[1:]]) if meta.command else None),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or None),
    ]
    rows = [(esc(k), esc(v)) for k, v in facts if v not in (None, "", "-")]
    return _table(None, rows, numeric=2)


def _section(title: str, body: str) -> str:
    return f"<section><h2>{esc(title)}</h2>\n{body}\n</section>\n"


def _image(alt: str, png: bytes, caption: str = "") -> str:
    below = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{esc(alt)}" src="{data_uri(png)}">{below}</figure>'


def _segment(text: str, style: str) -> str:
    """One styled piece of a read-out line: rich's bold as code, its colours as classes."""
    if style == "bold":
        return f"<code>{esc(text)}</code>"
    if style:
        return f'<span class="{esc(style)}">{esc(text)}</span>'
    return esc(text)


def _readout_html(readout: Mapping[str, Any], task: Task | None) -> str:
    lines: list[Line] = readout_lines(readout, task=task)
    body = "".join(
        "<div>" + "".join(_segment(text, style) for text, style in line) + "</div>\n"
        for line in lines
    )
    return f'<div class="readout">\n{body}</div>'


def _outcome_table(summary: Sequence[SweepPoint]) -> str:
    outcomes = list(dict.fromkeys(name for p in summary for name in p.counts))
    headers = ["grid point", "seeds", *outcomes, "loss q10", "loss q50", "loss q90", "time"]
    rows = []
    for p in summary:
        label = p.label or " ".join(f"{k}={runs.show_value(v)}" for k, v in p.grid.items())
        cells = [esc(label or "base config"), esc(p.seeds)]
        for name in outcomes:
            count, fraction = p.counts.get(name), p.fractions.get(name)
            cells.append("-" if count is None else esc(f"{count} ({fraction or 0:.1%})"))
        cells += [esc(_metric(p.loss.get(q))) for q in ("q10", "q50", "q90")]
        cells.append("-" if p.seconds is None else esc(f"{p.seconds:.1f} s"))
        rows.append(cells)
    return _table(headers, rows)


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 980px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; word-break: break-all; } h2 { font-size: 1.15em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border-bottom: 1px solid #ddd; padding: .25em .7em; text-align: left;
         vertical-align: top; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: .6em .8em; overflow-x: auto; margin: 0; }
td pre { background: none; padding: 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #666; font-size: .9em; }
.problem { color: #a00; } .status-completed { color: #070; }
.readout div { margin: .2em 0; } .readout code { word-break: break-all; font-weight: bold; }
.green { color: #070; } .yellow { color: #a60; } .red { color: #a00; } .cyan { color: #077; }
.magenta { color: #909; }
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@dataclass
class Contents:
    """What a report shows; `problems` lists what could not be read (shown in the report)."""

    record: RunRecord
    config: dict[str, Any] | None = None
    params: dict[str, Nested] | None = None
    picture: bytes | None = None
    units: bytes | None = None  # units.png
    readout: dict[str, Any] | None = None  # readout.Readout.as_dict()
    task: Task | None = None  # the run's task: how the read-out's meaning reads
    charts: list[Chart] = field(default_factory=list)
    summary: list[SweepPoint] | None = None
    remaining: list[dict[str, GridValue]] | None = None  # a partial sweep's unfinished points
    histogram: Chart | None = None
    problems: list[str] = field(default_factory=list)


def to_html(c: Contents, precision: int = 4) -> str:
    record, meta = c.record, c.record.meta
    what = "sweep" if meta.is_sweep else "run"
    status_class = "status-completed" if record.status == "completed" else "problem"
    parts = [
        f"<h1>tiny {what} {esc(record.run.id)} "
        f'<span class="{status_class}">{esc(record.status)}</span></h1>',
        _facts(record),
    ]
    if c.problems:
        items = "".join(f"<li>{esc(p)}</li>" for p in c.problems)
        parts.append(_section("Problems", f'<ul class="problem">{items}</ul>'))
    if record.metrics:
        rows: list[Sequence[str]] = [(esc(k), esc(_metric(v))) for k, v in record.metrics.items()]
        parts.append(_section("Metrics", _table(["metric", "value"], rows)))
    if c.readout is not None:
        parts.append(_section("Read-out", _readout_html(c.readout, c.task)))
    if meta.grid:
        rows = [
            (esc(k), esc(", ".join(runs.show_value(v) for v in values)))
            for k, values in meta.grid.items()
        ]
        parts.append(_section("Grid", _table(["key", "values"], rows, numeric=2)))
    if c.summary:
        title = "Outcomes" if c.remaining is None else "Partial outcomes"
        parts.append(_section(title, _outcome_table(c.summary)))
    if c.remaining is not None:
        line = partial_line(len(c.summary or []), c.remaining)
        parts.append(f'<p class="problem">{esc(line)}</p>')
    if c.histogram:
        parts.append(_section("Final losses", _image(c.histogram.title, c.histogram.png)))
    if meta.kept:
        rows = [(esc(k.point), esc(k.seed), esc(k.why), esc(k.run)) for k in meta.kept]
        parts.append(_section("Kept runs", _table(["point", "seed", "why", "run"], rows, 9)))
    if c.params is not None:
        rows = [
            (
                esc(name),
                esc(shape_text(values)),
                f"<pre>{esc(format_values(values, precision))}</pre>",
            )
            for name, values in c.params.items()
        ]
        title = f"Parameters (rounded to {precision} decimals)"
        parts.append(_section(title, _table(["parameter", "shape", "value"], rows, numeric=9)))
    if c.picture:
        caption = "the final model against the truth (prediction.png)"
        parts.append(_section("Prediction", _image(caption, c.picture, caption)))
    if c.units:
        caption = "each hidden unit's activation over the domain (units.png)"
        parts.append(_section("Hidden units", _image(caption, c.units, caption)))
    if c.charts:
        parts.append(_section("Trajectories", "\n".join(_image(x.title, x.png) for x in c.charts)))
    if c.config is not None:
        config = yaml.safe_dump(c.config, sort_keys=False).rstrip()
        parts.append(_section("Config", f"<pre>{esc(config)}</pre>"))
    body = "\n".join(parts)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tiny {what} {esc(record.run.id)}</title>
<style>{STYLE}</style>
</head>
<body>
{body}
<footer><p><small>made by tiny report</small></p></footer>
</body>
</html>
"""


def gather(record: RunRecord) -> Contents:
    """Read what the report shows, as far as it can be read."""
    info = runs.details(record)
    c = Contents(record, config=info.config, params=info.params, summary=info.summary)
    c.remaining = info.remaining
    c.problems = list(info.problems)
    run, meta = record.run, record.meta

    def attempt(read_one: Any) -> Any:
        try:
            return read_one()
        except RunProblem as exc:
            c.problems.append(str(exc))
            return None

    if meta.is_sweep:  # sweep.pt is read by `details`
        arrays = info.arrays
        c.histogram = loss_histogram(arrays) if arrays and arrays.seeds else None
        return c
    if os.path.lexists(run.path / runs.PREDICTION) or meta.status == "completed":
        c.picture = attempt(lambda: read_picture(run))
    if os.path.lexists(run.path / runs.UNITS):  # none for a net without hidden units
        c.units = attempt(lambda: read_picture(run, runs.UNITS))
    if c.params is not None and c.config is not None:
        from tiny_cli.read import stored as reading

        read = attempt(lambda: reading.stored_readout(run, record))
        c.readout = read[0].as_dict() if read else None
        c.task = read[0].task if read else None
    scalars = attempt(lambda: read_scalars(run))
    c.charts = trajectory_charts(scalars) if scalars else []
    return c


def write(
    record: RunRecord, output: Path | None = None, precision: int = 4
) -> tuple[Path, list[str]]:
    """Write the report (default: `<run dir>/report.html`); return its path and the problems."""
    contents = gather(record)
    path = output or record.run.path / FILENAME
    try:
        runs.atomic_write(path, to_html(contents, precision).encode("utf-8"))
    except OSError as exc:
        raise TinyError(f"report {path}: cannot be written ({exc.strerror})") from None
    return path, contents.problems
