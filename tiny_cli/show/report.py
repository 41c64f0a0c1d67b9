"""`tiny report RUN|SWEEP`: one self-contained HTML file of a run or a sweep, to share.

Everything is inside the file: the pictures are PNGs in `data:` URIs, the style is inline, and
there is no script, font or link to fetch; a Content-Security-Policy allows nothing else, so
the file opens the same from a mail attachment, with no server and no network.

A run's report: its facts (status, kind, seed, epochs, command, versions), config, metrics,
the read-out of its net (formula, meaning, diagnosis: what `tiny inspect` shows), parameters,
`prediction.png`, `units.png` and the task's own pictures (`Task.pictures`: modular's
`spectrum.png`), and its trajectories as static plots, read from the run's own
event file with TensorBoard's `EventAccumulator` (what TensorBoard itself would show: loss and
accuracy, every parameter element per layer, the mechanism, the gradient norms). A sweep's
report: its facts, config, metrics, grid, outcome table (summary.json), a histogram of the
seeds' final losses (sweep.pt) and its solutions when stored (show/sweep_report.py).

What is read from the run directory is untrusted, as everywhere in tiny: the files come
through runs.py's checked readers and typed views, every string is HTML-escaped, and the
charts (show/charts.py) draw tags and labels as written, never as mathtext.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tiny_cli.config.grid import axis_words, grid_words
from tiny_cli.errors import TinyError
from tiny_cli.show import sweep_charts, sweep_report
from tiny_cli.show.charts import Chart, Series, loss_histogram, trajectory_charts
from tiny_cli.show.htmlparts import data_uri, esc, metric_text, table
from tiny_cli.show.readout_view import Line, readout_lines
from tiny_cli.show.run_views import init_label, seed_label
from tiny_cli.show.sweep_views import partial_line
from tiny_cli.show.tables import format_values, shape_text
from tiny_cli.store import runs
from tiny_cli.store.events import readable
from tiny_cli.store.runs import (
    GridValue,
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


# --- reading ----------------------------------------------------------------------------


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
        try:
            with readable(path) as name:
                accumulator = ea.EventAccumulator(name, size_guidance={ea.SCALARS: 0, **keep_none})
                accumulator.Reload()
            tags = accumulator.Tags()[ea.SCALARS]
            events = {tag: accumulator.Scalars(tag) for tag in tags}
        except RunProblem:
            raise
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


# --- HTML -------------------------------------------------------------------------------


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _facts(record: RunRecord, architecture: str | None = None) -> str:
    meta = record.meta
    versions = meta.versions or {}
    facts = [
        ("status", record.status),
        ("kind", meta.kind),
        ("task", meta.task),
        ("architecture", architecture or meta.arch),
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
    return table(None, rows, numeric=2)


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
    # the task's own pictures (`Task.pictures`: modular's spectrum.png): heading, caption, PNG
    task_pictures: list[tuple[str, str, bytes]] = field(default_factory=list)
    readout: dict[str, Any] | None = None  # readout.Readout.as_dict()
    task: Task | None = None  # the run's task: how the read-out's meaning reads
    charts: list[Chart] = field(default_factory=list)
    summary: list[SweepPoint] | None = None
    architectures: list[str] | None = None  # a sweep's, one per grid point
    solutions: runs.Solutions | None = None  # a sweep's, when tiny inspect --solutions made them
    remaining: list[dict[str, GridValue]] | None = None  # a partial sweep's unfinished points
    histogram: Chart | None = None
    curves: list[Chart] = field(default_factory=list)  # a sweep's, from curves.json
    phase: Chart | None = None  # a sweep's phase diagram, with held-out data and a grid
    alphas: Chart | None = None  # a sweep's solved seeds' alpha, from solutions.json
    problems: list[str] = field(default_factory=list)


def to_html(c: Contents, precision: int = 4) -> str:
    record, meta = c.record, c.record.meta
    what = "sweep" if meta.is_sweep else "run"
    body = body_html(c, precision)
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


def body_html(c: Contents, precision: int = 4, whole: bool = True) -> str:
    """The report's sections; `whole` False (a notebook's display) leaves out the
    trajectories and the config, which the file has."""
    record, meta = c.record, c.record.meta
    what = "sweep" if meta.is_sweep else "run"
    status_class = "status-completed" if record.status == "completed" else "problem"
    parts = [
        f"<h1>tiny {what} {esc(record.run.id)} "
        f'<span class="{status_class}">{esc(record.status)}</span></h1>',
        _facts(record, sweep_report.architecture_fact(c.architectures)),
    ]
    if c.problems:
        items = "".join(f"<li>{esc(p)}</li>" for p in c.problems)
        parts.append(_section("Problems", f'<ul class="problem">{items}</ul>'))
    if record.metrics:
        metrics = sweep_report.metrics_words(record.metrics) if meta.is_sweep else record.metrics
        rows: list[Sequence[str]] = [(esc(k), esc(metric_text(v))) for k, v in metrics.items()]
        parts.append(_section("Metrics", table(["metric", "value"], rows)))
    if c.readout is not None:
        parts.append(_section("Read-out", _readout_html(c.readout, c.task)))
    if meta.grid:
        rows = [(esc(k), esc(axis_words(values))) for k, values in meta.grid.items()]
        parts.append(_section("Grid", table(["key", "values"], rows, numeric=2)))
    if c.summary:
        title = "Outcomes" if c.remaining is None else "Partial outcomes"
        parts.append(_section(title, sweep_report.outcome_table(c.summary, c.architectures)))
    if c.remaining is not None:
        line = partial_line(len(c.summary or []), c.remaining)
        parts.append(f'<p class="problem">{esc(line)}</p>')
    if c.phase:
        parts.append(_section("Phase diagram", _image(c.phase.title, c.phase.png, c.phase.title)))
    if c.histogram:
        parts.append(_section("Final losses", _image(c.histogram.title, c.histogram.png)))
    if c.curves:
        shown = "\n".join(_image(x.title, x.png) for x in c.curves)
        parts.append(_section("Over the epochs", shown))
    if c.solutions is not None:
        alphas = _image(c.alphas.title, c.alphas.png) if c.alphas else ""
        parts.append(_section("Solutions", sweep_report.solutions_html(c.solutions) + alphas))
    if meta.kept:
        rows = [(esc(k.point), esc(k.seed), esc(k.why), esc(k.run)) for k in meta.kept]
        parts.append(_section("Kept runs", table(["point", "seed", "why", "run"], rows, 9)))
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
        parts.append(_section(title, table(["parameter", "shape", "value"], rows, numeric=9)))
    if c.picture:
        caption = "the final model against the truth (prediction.png)"
        parts.append(_section("Prediction", _image(caption, c.picture, caption)))
    if c.units:
        caption = "each hidden unit's activation over the domain (units.png)"
        parts.append(_section("Hidden units", _image(caption, c.units, caption)))
    for heading, caption, png in c.task_pictures:
        parts.append(_section(heading, _image(caption, png, caption)))
    if c.charts and whole:
        parts.append(_section("Trajectories", "\n".join(_image(x.title, x.png) for x in c.charts)))
    if c.config is not None and whole:
        config = yaml.safe_dump(c.config, sort_keys=False).rstrip()
        parts.append(_section("Config", f"<pre>{esc(config)}</pre>"))
    return "\n".join(parts)


def gather(record: RunRecord, charts: bool = True) -> Contents:
    """Read what the report shows, as far as it can be read (`charts` False: no
    trajectories, which take the most time)."""
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
        c.architectures = attempt(lambda: sweep_report.architectures(record))
        if os.path.lexists(run.path / runs.SOLUTIONS):
            c.solutions = attempt(lambda: sweep_report.read_solutions(run))
        arrays = info.arrays
        c.histogram = loss_histogram(arrays) if arrays and arrays.seeds else None
        c.curves = sweep_charts.curve_charts(info.curves or [], grid_words)
        c.phase = sweep_charts.phase_chart(info.summary or [])
        c.alphas = sweep_charts.alpha_histogram(c.solutions, grid_words) if c.solutions else None
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
    for name, (heading, caption) in (c.task.picture_files if c.task else {}).items():
        if os.path.lexists(run.path / name):  # none from a tiny before it drew them
            png = attempt(lambda name=name: read_picture(run, name))
            c.task_pictures += [(heading, caption, png)] if png else []
    if not charts:
        return c
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
        runs.atomic_write(path, to_html(contents, precision).encode("utf-8", "backslashreplace"))
    except OSError as exc:
        raise TinyError(f"report {path}: cannot be written ({exc.strerror})") from None
    return path, contents.problems
