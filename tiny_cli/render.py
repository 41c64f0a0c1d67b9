"""Rich renderables for parameters, metrics, configs and runs. They return, never print.

Inputs are plain Python data (nested lists, dicts), so listing runs needs no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from rich import box
from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

Nested = float | Sequence["Nested"]


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
    table = Table(title=title, title_justify="left")
    table.add_column("parameter", style="bold", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    table.add_column(f"value (rounded to {precision} decimals)", overflow="fold")
    for name, values in params.items():
        shape = "x".join(map(str, _shape(values))) or "scalar"
        table.add_row(name, shape, format_values(values, precision))
    return table


def _metric(value: Any, precision: int) -> str:
    if isinstance(value, float):
        return (
            f"{value:.{max(precision, 4)}g}"
            if abs(value) < 1e-3 and value
            else (_number(value, max(precision, 4)))
        )
    if isinstance(value, list):
        return "[" + ", ".join(_metric(v, precision) for v in value) + "]"
    if value is None:
        return "-"
    return str(value)


def metrics_table(metrics: Mapping[str, Any], precision: int = 4, title: str = "Metrics") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, _metric(value, precision))
    return table


def config_view(config: Mapping[str, Any]) -> Syntax:
    return Syntax(yaml.safe_dump(dict(config), sort_keys=False).rstrip(), "yaml", theme="ansi_dark")


def runs_table(records: Sequence[Any]) -> Table:
    """`records` are runs.RunRecord: one row each, a problem shown in place of the status."""
    table = Table(title=f"{len(records)} runs", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("run id", no_wrap=True, style="cyan")
    table.add_column("task")
    table.add_column("init")
    table.add_column("epochs", justify="right")
    table.add_column("loss", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("status")
    table.add_column("time", justify="right")
    for r in records:
        meta, metrics = r.meta, r.metrics
        status = Text(f"{meta.get('status', '?')}", style=_status_style(meta.get("status")))
        if r.problem:
            status = Text(f"broken: {r.problem}", style="red")
        table.add_row(
            r.run.id,
            str(meta.get("task", "-")),
            str(meta.get("init", "-")),
            str(meta.get("epochs_done", "-")),
            _metric(metrics.get("loss"), 4),
            f"{metrics['solved']:.1%} solved"
            if meta.get("kind") == "sweep" and isinstance(metrics.get("solved"), float)
            else _metric(metrics.get("accuracy"), 4),
            status,
            _duration(meta.get("started"), meta.get("finished")),
        )
    return table


def _duration(started: Any, finished: Any) -> str:
    """Wall time of a run ('-' while it runs or if unknown)."""
    if not isinstance(started, int | float) or not isinstance(finished, int | float):
        return "-"
    seconds = max(0.0, finished - started)
    return f"{seconds:.1f}s" if seconds < 60 else f"{seconds / 60:.1f}m"


def _status_style(status: Any) -> str:
    return {"completed": "green", "running": "yellow", "interrupted": "yellow"}.get(
        str(status), "red"
    )


def _header(
    what: str,
    run_id: str,
    meta: Mapping[str, Any],
    detail: str,
    config: Mapping[str, Any] | None,
    problem: str,
) -> list[Any]:
    """The top of `tiny inspect`: id, status, why it stopped, what is broken, the config."""
    status = str(meta.get("status", "?"))
    parts: list[Any] = [
        Text.assemble(
            (f"{what} ", "bold"),
            (run_id, "bold cyan"),
            "  ",
            (status, _status_style(status)),
            f"  ({detail})",
        )
    ]
    if meta.get("reason"):
        parts.append(Text(f"reason: {meta['reason']}", style="yellow"))
    if problem:
        parts.append(Text(f"problem: {problem}", style="red"))
    if config is not None:
        parts.append(config_view(config))
    return parts


def run_view(
    run_id: str,
    meta: Mapping[str, Any],
    config: Mapping[str, Any] | None,
    metrics: Mapping[str, Any],
    params: Mapping[str, Nested] | None,
    precision: int = 2,
    problem: str = "",
) -> Group:
    detail = f"{meta.get('kind', '?')}, {meta.get('epochs_done', '-')} epochs"
    parts = _header("run", run_id, meta, detail, config, problem)
    if metrics:
        parts.append(metrics_table(metrics))
    if params is not None:
        parts.append(parameters_table(params, precision))
    return Group(*parts)


def compare_view(
    ids: Sequence[str],
    metrics: Sequence[Mapping[str, Any]],
    params: Sequence[Mapping[str, Nested] | None],
    precision: int = 2,
) -> Group:
    """Runs side by side: one column per run, one row per metric and per parameter."""
    table = Table(title="Metrics", title_justify="left")
    table.add_column("metric", style="bold")
    for run_id in ids:
        table.add_column(run_id, justify="right")
    names = list(dict.fromkeys(k for m in metrics for k in m))
    for name in names:
        table.add_row(name, *(_metric(m.get(name), 4) for m in metrics))
    parts: list[Any] = [table]
    keys = list(dict.fromkeys(k for p in params if p for k in p))
    if keys:
        ptable = Table(title="Parameters", title_justify="left")
        ptable.add_column("parameter", style="bold")
        for run_id in ids:
            ptable.add_column(run_id, no_wrap=True)
        for key in keys:
            ptable.add_row(
                key,
                *(format_values(p[key], precision) if p and key in p else "-" for p in params),
            )
        parts.append(ptable)
    return Group(*parts)


# --- sweeps -----------------------------------------------------------------------------

OUTCOME_STYLES = {
    "solved": "green",
    "stuck at mean": "yellow",
    "dead": "red",
    "partial": "cyan",
    "diverged": "magenta",
}


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.1f} s" if value < 600 else f"{value / 60:.1f} min"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) else "-"


def sweep_table(summary: Sequence[Mapping[str, Any]], title: str = "Outcomes") -> Table:
    """One row per grid point: count and fraction per outcome, final-loss quantiles; time taken
    and seed-epochs per second under the grid point."""
    outcomes = list(summary[0]["counts"]) if summary else list(OUTCOME_STYLES)
    seeds = summary[0]["seeds"] if summary else 0
    table = Table(
        title=f"{title} of {seeds} seeds per grid point",
        title_justify="left",
        box=box.SIMPLE_HEAD,  # no vertical rules: fits 80 columns
    )
    table.add_column("grid point, time, speed", min_width=20, overflow="fold")
    for name in outcomes:
        header = name.replace(" at mean", "\nat mean").replace("diverged", "diver-\nged")
        table.add_column(header, justify="right", style=OUTCOME_STYLES.get(name, ""), no_wrap=True)
    table.add_column("loss\nq10,50,90", justify="right", no_wrap=True)
    for point in summary:
        counts, fractions = point["counts"], point["fractions"]
        loss = point.get("loss") or {}
        speed = point.get("seed_epochs_per_second")
        label = "\n".join(f"{k}={v}" for k, v in (point.get("grid") or {}).items())
        rate = f", {speed:,.0f} seed-epochs/s" if isinstance(speed, int | float) else ""
        timing = Text(f"{_seconds(point.get('seconds'))}{rate}", style="dim")
        table.add_row(
            Text.assemble(label or "base config", "\n", timing),
            *[f"{counts[n]}\n{fractions[n]:.1%}" for n in outcomes],
            "\n".join(_short(loss.get(q)) for q in ("q10", "q50", "q90")),
        )
    return table


def sweep_view(
    run_id: str,
    meta: Mapping[str, Any],
    config: Mapping[str, Any] | None,
    summary: Sequence[Mapping[str, Any]] | None,
    problem: str = "",
) -> Group:
    lo, hi = (meta.get("seeds") or ["?", "?"])[:2]
    detail = f"seeds {lo}-{hi}, {meta.get('epochs_done', '-')} epochs"
    parts = _header("sweep", run_id, meta, detail, config, problem)
    if meta.get("grid"):
        grid = "  ".join(f"{k}={','.join(map(str, v))}" for k, v in meta["grid"].items())
        parts.append(Text(f"grid: {grid}"))
    if summary:
        parts.append(sweep_table(summary))
    for kept in meta.get("kept") or []:
        parts.append(
            Text(
                f"kept seed {kept['seed']} ({kept['why']}, grid point {kept['point']}): "
                f"run {kept['run']}"
            )
        )
    return Group(*parts)


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


def readout_view(readout: Mapping[str, Any]) -> Group:
    """The `Read-out` section of `tiny inspect`: formula, exactness, meaning, diagnosis.
    `readout` is `readout.Readout.as_dict()` (plain data)."""
    exact = readout.get("exact")
    label = Text("exact", style="green") if exact else Text("approximate", style="yellow")
    parts: list[Any] = [
        Text("Read-out", style="bold"),
        Text.assemble("formula: ", (str(readout.get("formula")), "bold")),
        Text.assemble(
            "  ", label,
            f" on the domain: max error {_fmt(readout.get('max_error'), 3)}"
            f" (tolerance {_fmt(readout.get('tolerance'), 3)},"
            f" {readout.get('digits', '-')} significant digits)",
        ),
    ]  # fmt: skip
    approx = readout.get("approximation")
    if approx:
        parts.append(
            Text(
                f"  ~ {approx.get('formula')} with {approx.get('digits')} digits "
                f"(max error {_fmt(approx.get('max_error'), 3)})"
            )
        )
    if readout.get("threshold") is not None:
        lo, hi = readout.get("threshold_between") or ("?", "?")
        line = (
            f"threshold neuron: Sigmoid(M (t - x)), t = {_fmt(readout['threshold'])}, "
            f"M = {_fmt(readout.get('steepness'))}; t lies between {lo} and {hi}"
        )
        if readout.get("margin_midpoint") is not None:
            line += f" (max-margin midpoint {_fmt(readout['margin_midpoint'])})"
        parts.append(Text(line))
    if "alpha" in readout:
        if readout.get("in_family"):
            parts.append(
                Text(
                    f"family alpha (a - ReLU(a - b)) + (1 - alpha) (b - ReLU(b - a)): "
                    f"alpha = {_fmt(readout['alpha'], 3)} "
                    f"(residual {_fmt(readout.get('family_residual'), 2)} of std)"
                )
            )
        else:
            parts.append(
                Text(
                    f"not in the family alpha (a - ReLU(a - b)) + (1 - alpha) (b - ReLU(b - a)) "
                    f"(residual {_fmt(readout.get('family_residual'), 2)} of std)"
                )
            )
    if readout.get("correct_interval"):
        lo, hi = readout["correct_interval"]
        parts.append(Text(f"right on every integer in [{lo}, {hi}]"))
    outcome = str(readout.get("outcome", "?"))
    diag = Text.assemble("diagnosis: ", (outcome, OUTCOME_STYLES.get(outcome, "")))
    dead = readout.get("dead_units") or []
    dead_text = ", ".join(f"layer {i + 1}: {len(d)}" for i, d in enumerate(dead) if d)
    diag.append(f"; dead units at the end: {dead_text or 'none'}")
    at_init = readout.get("dead_units_at_init")
    if at_init is not None:
        init_text = ", ".join(f"layer {i + 1}: {len(d)}" for i, d in enumerate(at_init) if d)
        diag.append(f"; at init: {init_text or 'none'}")
    if readout.get("not_converged"):
        diag.append("; not converged (the loss still falls over the last tenth of the epochs)")
    parts.append(diag)
    dist = readout.get("distance_to_construction")
    if dist:
        same = "the same function" if dist.get("same_function") else "a different function"
        parts.append(
            Text(
                f"construction: canonical distance {_fmt(dist.get('parameters'), 3)}, {same} "
                f"on the domain (max difference {_fmt(dist.get('max_abs_difference'), 3)})"
            )
        )
    return Group(*parts)
