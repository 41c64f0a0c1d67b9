"""The `tiny` command line. Each command parses, calls one function, renders.

torch is imported inside the commands, so `tiny --help` and `tiny --version` stay fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tiny_cli import __version__
from tiny_cli.errors import TinyError

if TYPE_CHECKING:
    from tiny_cli.config import ExperimentConfig, Override
    from tiny_cli.experiment import Outcome
    from tiny_cli.train import EpochStats

app = typer.Typer(
    name="tiny",
    help="A lab for tiny neural networks that represent basic functions: "
    "train or hardwire the article's nets, log them to TensorBoard, inspect what they learned.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (files, CI logs) is not squeezed into 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False)

RunsDir = Annotated[
    Path | None,
    typer.Option(
        "--runs-dir",
        envvar="TINY_RUNS_DIR",
        help="Where runs are stored (default: ./runs).",
        show_default=False,
    ),
]
Precision = Annotated[
    int,
    typer.Option("--precision", min=0, max=17, help="Decimals shown for parameters (8 = full)."),
]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", metavar="KEY.PATH=VALUE", help="Override any config key (repeatable)."
    ),
]
Device = Annotated[
    str, typer.Option("--device", help="auto (a GPU if present, else CPU), cpu, cuda, cuda:N.")
]
ConfigArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME|PATH",
        help="A shipped config (lt10, min, is_even, ...: see tiny tasks) or a YAML file.",
    ),
]


def _version(value: bool) -> None:
    if value:
        console.print(f"tiny {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Run `tiny COMMAND --help` for a command's options."""


def _overrides(sets: list[str] | None, **flags: tuple[str, Any]) -> list[Override]:
    from tiny_cli.config import parse_override

    named = [
        (key, value, f"--{flag.replace('_', '-')} {value}")
        for flag, (key, value) in flags.items()
        if value is not None
    ]
    return named + [parse_override(item) for item in sets or []]


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = name.partition(":")
    if kind == "cpu" and not index:
        return name
    if kind == "cuda" and (not index or index.isdigit()):
        if not torch.cuda.is_available():
            raise TinyError(f"--device {name}: no CUDA device is available here (use cpu or auto)")
        if index and int(index) >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise TinyError(f"--device {name}: only {count} CUDA device(s) here")
        return name
    if kind == "mps" and not index:
        if not torch.backends.mps.is_available():
            raise TinyError(f"--device {name}: MPS is not available here (use cpu or auto)")
        return name
    raise TinyError(f"--device {name}: not a device (use auto, cpu, cuda, cuda:N or mps)")


class _Progress:
    """A rich progress bar with the loss, updated at most 20 times a second."""

    def __init__(self, epochs: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("epochs  loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        )
        self.task = self.progress.add_task("train", total=epochs, loss="-")
        self._next = 0.0

    def on_epoch_end(self, stats: EpochStats, model: Any) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 0.05
            self.progress.update(self.task, completed=stats.epoch, loss=f"{stats.loss:.4g}")

    def __enter__(self) -> _Progress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _run(
    cfg: ExperimentConfig,
    kind: str,
    source: Path,
    runs_dir: Path | None,
    device: str,
    origin: str | None = None,
) -> Outcome:
    from tiny_cli import experiment, runs

    dev = _device(device)
    root = runs.root(runs_dir)
    with _Progress(cfg.train.epochs) as progress:
        return experiment.run_experiment(
            cfg,
            kind=kind,
            runs_root=root,
            source=str(source),
            device=dev,
            progress=progress,
            origin=origin,
        )


def _report(outcome: Outcome, precision: int) -> None:
    """Print what the run learned; exit 1 if it diverged, 130 if it was interrupted."""
    from tiny_cli import render

    console.print(render.parameters_table(outcome.params, precision))
    console.print(render.metrics_table(outcome.metrics))
    wrong = outcome.metrics.get("wrong_at")
    interval = outcome.metrics.get("correct_interval")
    if interval:
        below, above = wrong or (None, None)
        where = " and ".join(str(w) for w in (below, above) if w is not None)
        console.print(
            f"right on every integer in [{interval[0]}, {interval[1]}]"
            + (f", wrong at {where}" if where else "")
        )
    if outcome.picture:
        console.print(f"prediction picture: {outcome.picture}", soft_wrap=True)  # unbroken path
    console.print(f"run [bold cyan]{outcome.run.id}[/] saved in {outcome.run.path}")
    status = outcome.result.status
    if status != "completed":
        shown = "failed" if status == "diverged" else status
        sys.stderr.write(f"run {outcome.run.id} {shown}: {outcome.result.reason}\n")
        raise typer.Exit(1 if status == "diverged" else 130)


@app.command()
def train(
    config_ref: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME|PATH",
            help="A shipped config (lt10, min, is_even, ...: see tiny tasks) or a YAML file.",
            show_default=False,
        ),
    ] = None,
    from_run: Annotated[
        str | None,
        typer.Option("--from", metavar="RUN", help="Repeat a stored run from its resolved config."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override train.epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override seed.")] = None,
    lr: Annotated[float | None, typer.Option(help="Override train.lr.")] = None,
    sets: Sets = None,
    runs_dir: RunsDir = None,
    device: Device = "auto",
    precision: Precision = 2,
) -> None:
    """Train a net from a YAML config; log to TensorBoard; print what it learned.

    Example: tiny train lt10 --epochs 500 --set init.mode=hardwired+noise
    """
    from tiny_cli import config, runs

    origin = None
    if (config_ref is None) == (from_run is None):
        raise TinyError("train: give either a config (NAME|PATH) or --from RUN, not both")
    if from_run is not None:
        run = runs.resolve(runs.root(runs_dir), from_run)
        config_ref, origin = str(run.path / runs.CONFIG), run.id
    assert config_ref is not None
    overrides = _overrides(
        sets, epochs=("train.epochs", epochs), seed=("seed", seed), lr=("train.lr", lr)
    )
    cfg, path = config.load(config_ref, overrides)
    _report(_run(cfg, "train", path, runs_dir, device, origin), precision)


@app.command()
def hardwire(
    config_ref: ConfigArg,
    bits: Annotated[
        int | None, typer.Option(help="task.bits: is_even on [0, 2^bits) (1 to 24), mod, parity.")
    ] = None,
    scale: Annotated[
        float | None, typer.Option(help="lt: Sigmoid(scale * (t - x)); 1 or 100 in the article.")
    ] = None,
    sets: Sets = None,
    runs_dir: RunsDir = None,
    device: Device = "auto",
    precision: Precision = 2,
) -> None:
    """Build the article's hand-made weights, evaluate them on and beyond the domain, store them.

    Example: tiny hardwire is_even --bits 4
    """
    from tiny_cli import catalog, config

    base, _ = config.load(config_ref, _overrides(sets))
    task = base.task
    if bits is not None and "bits" not in type(task).model_fields:
        raise TinyError(f"--bits {bits}: task {task.name} has no task.bits")
    if scale is not None and "scale" not in task.construction_options:
        raise TinyError(f"--scale {scale}: task {task.name}'s construction has no scale")
    if not task.constructions(base.init):
        having = catalog.with_construction()
        raise TinyError(
            f"hardwire {config_ref}: task {task.name} has no construction; "
            f"tasks with one: {', '.join(having)}"
        )
    forced = [("init.mode", "hardwired", "hardwire"), ("train.epochs", 0, "hardwire")]
    overrides = _overrides(sets, bits=("task.bits", bits), scale=("init.scale", scale))
    cfg, path = config.load(config_ref, overrides + forced)
    _report(_run(cfg, "hardwire", path, runs_dir, device), precision)


class _SweepProgress:
    """A progress bar over seed-epochs (all grid points), updated at most 20 times a second."""

    def __init__(self, total: int) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]sweep"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} seed-epochs"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        )
        self.task = self.progress.add_task("sweep", total=max(total, 1))
        self.done = 0
        self._next = 0.0

    def __call__(self, seed_epochs: int) -> None:
        self.done += seed_epochs
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 0.05
            self.progress.update(self.task, completed=self.done)

    def __enter__(self) -> _SweepProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


@app.command()
def sweep(
    config_ref: ConfigArg,
    seeds: Annotated[
        str,
        typer.Option(
            "--seeds", metavar="N|A-B", help="N: seeds 0..N-1; A-B: seeds A..B inclusive."
        ),
    ],
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            metavar="KEY.PATH=V1,V2,...",
            help="Cross the seeds with these config values (repeatable).",
        ),
    ] = None,
    keep: Annotated[
        int,
        typer.Option("--keep", min=0, help="Also store K seeds per grid point as ordinary runs."),
    ] = 0,
    epochs: Annotated[int | None, typer.Option(help="Override train.epochs.")] = None,
    lr: Annotated[float | None, typer.Option(help="Override train.lr.")] = None,
    sets: Sets = None,
    runs_dir: RunsDir = None,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="torch threads for the batched training.")
    ] = 1,
) -> None:
    """Train many seeds at once as one batched model; count how each seed ends up.

    Outcomes: solved, stuck at mean, dead, partial, diverged (see the README).
    Example: tiny sweep is_even --seeds 1000 --grid train.lr=0.01,0.1
    """
    from tiny_cli import config, render, runs
    from tiny_cli import sweep as sweeping

    seed_range = sweeping.parse_seeds(seeds)
    axes = sweeping.parse_grid(grid or [])
    overrides = _overrides(sets, epochs=("train.epochs", epochs), lr=("train.lr", lr))
    base, path = config.load(config_ref, overrides)
    points = sweeping.grid_points(config_ref, overrides, axes)
    total = sum(p.cfg.train.epochs for p in points) * len(seed_range)
    with _SweepProgress(total) as progress:
        outcome = sweeping.run_sweep(
            base, points, axes, seed_range, runs_root=runs.root(runs_dir),
            source=str(path), keep=keep, on_epoch=progress, threads=threads,
        )  # fmt: skip
    console.print(render.sweep_table(outcome.summary))
    for kept in outcome.kept:
        label = outcome.results[kept["point"]].point.label
        console.print(f"kept seed {kept['seed']} ({kept['why']}, {label}) as run {kept['run']}")
    console.print(f"sweep [bold cyan]{outcome.run.id}[/] saved in {outcome.run.path}")


def _inspect_sweep(run: Any, record: Any, seed: int | None, as_json: bool, precision: int) -> None:
    from tiny_cli import render, runs

    problem = record.problem
    try:
        import yaml

        cfg = yaml.safe_load(run.read_text(runs.CONFIG))
        summary = run.read_json(runs.SUMMARY)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        cfg, summary = None, None
        problem = problem or f"config or summary is unreadable ({type(exc).__name__})"
    if seed is None:
        if as_json:
            doc = {
                "id": run.id,
                "path": str(run.path),
                "meta": record.meta,
                "config": cfg,
                "metrics": record.metrics,
                "summary": summary,
                "problem": problem or None,
            }
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
            return
        console.print(render.sweep_view(run.id, record.meta, cfg, summary, problem))
        return
    try:
        data = run.load_tensors(runs.SWEEP)
    except Exception as exc:  # a missing or corrupt file is reported as a user-level error
        raise TinyError(
            f"sweep {run.id}: {runs.SWEEP} is unreadable ({type(exc).__name__})"
        ) from None
    seeds = data["seeds"].tolist()
    if seed not in seeds:
        raise TinyError(f"--seed {seed}: not in sweep {run.id} (seeds {seeds[0]}-{seeds[-1]})")
    index = seeds.index(seed)
    outcomes = data["outcomes"]
    views = []
    for point in data["points"]:
        label = " ".join(f"{k}={v}" for k, v in point["grid"].items()) or "base config"
        views.append(
            {
                "grid": point["grid"],
                "label": label,
                "outcome": outcomes[int(point["outcome"][index])],
                "loss": float(point["loss"][index]),
                "accuracy": float(point["accuracy"][index]) if "accuracy" in point else None,
                "epochs_done": int(point["epochs"][index]),
                "parameters": {k: v[index].tolist() for k, v in point["params"].items()},
            }
        )
    if as_json:
        doc = {"id": run.id, "seed": seed, "points": views}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    for view in views:
        accuracy = f", accuracy {view['accuracy']:.4f}" if view["accuracy"] is not None else ""
        title = (
            f"seed {seed}, {view['label']}: {view['outcome']} "
            f"(loss {view['loss']:.4g}{accuracy}, {view['epochs_done']} epochs)"
        )
        console.print(render.parameters_table(view["parameters"], precision, title=title))


@app.command()
def inspect(
    run_ref: Annotated[
        str,
        typer.Argument(metavar="RUN", help="A run or sweep id, a unique prefix of one, or latest."),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    runs_dir: RunsDir = None,
    precision: Precision = 2,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Sweeps: show this seed's parameters.")
    ] = None,
) -> None:
    """Show a run: config, status, metrics and learned parameters; or a sweep's outcomes."""
    from tiny_cli import render, runs

    run = runs.resolve(runs.root(runs_dir), run_ref)
    record = runs.read(run)
    if record.meta.get("kind") == "sweep":
        _inspect_sweep(run, record, seed, as_json, precision)
        return
    if seed is not None:
        raise TinyError(f"--seed {seed}: run {run.id} is not a sweep")
    problem = record.problem
    try:
        import yaml

        cfg = yaml.safe_load(run.read_text(runs.CONFIG))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        cfg, problem = None, problem or f"{runs.CONFIG} is unreadable ({type(exc).__name__})"
    params: dict[str, Any] | None = None
    if (run.path / runs.CHECKPOINT).exists():
        try:
            params = {k: v.tolist() for k, v in run.load_state().items()}
        except Exception as exc:  # a corrupt checkpoint is reported, not raised
            problem = problem or f"{runs.CHECKPOINT} is unreadable ({type(exc).__name__})"
    elif record.meta.get("status") == "completed":
        problem = problem or f"{runs.CHECKPOINT} is missing"
    read = _readout(run, record) if params is not None and cfg is not None else None
    if as_json:
        doc = {
            "id": run.id,
            "path": str(run.path),
            "status": record.meta.get("status"),
            "meta": record.meta,
            "config": cfg,
            "metrics": record.metrics,
            "parameters": params,
            "readout": read[0].as_dict() if read else None,
            "problem": problem or None,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        raise typer.Exit(1 if problem else 0)
    console.print(
        render.run_view(run.id, record.meta, cfg, record.metrics, params, precision, problem)
    )
    if read:
        console.print(render.readout_view(read[0].as_dict()))
    if problem:
        raise typer.Exit(1)


# --- read-out (tiny inspect's Read-out section, tiny export) -----------------------------


def _readout(run: Any, record: Any) -> tuple[Any, tuple[str, ...]] | None:
    """A stored run's read-out and its input names; None when its config no longer loads
    (e.g. a plugin task that is gone). The initial weights are rebuilt from the config
    (seeded, so they are the run's own); the loss history is read from its event file."""
    from tiny_cli import config, models, readout, runs, tracking

    try:
        cfg, _ = config.load(str(run.path / runs.CONFIG), [])
    except TinyError:
        return None
    arch, task = cfg.arch, cfg.task
    hand = [c for c in task.constructions(cfg.init) if c.arch == arch][:1]
    result = readout.read(
        arch,
        run.load_state(),
        task,
        metrics=record.metrics,
        init_state=models.build(cfg).state_dict(),
        losses=tracking.scalar_history(run.path),
        diverged=record.meta.get("status") == "failed",
        construction=(arch, hand[0].weights()) if hand else None,
    )
    return result, task.input_names()


class ExportFormat(str, Enum):
    json = "json"
    formula = "formula"


@app.command()
def export(
    run_ref: Annotated[
        str, typer.Argument(metavar="RUN", help="A run id, a unique prefix of one, or latest.")
    ],
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", help="json: the canonical net; formula: text, then LaTeX."),
    ] = ExportFormat.json,
    runs_dir: RunsDir = None,
) -> None:
    """Export what a run's net computes: its canonical form as JSON, or its formula.

    Example: tiny export latest --format formula
    """
    from tiny_cli import readout, runs

    run = runs.resolve(runs.root(runs_dir), run_ref)
    record = runs.read(run)
    if record.meta.get("kind") == "sweep":
        raise TinyError(f"export {run.id}: a sweep; export one of its kept runs")
    if not (run.path / runs.CHECKPOINT).exists():
        raise TinyError(f"export {run.id}: no {runs.CHECKPOINT} (see tiny inspect {run.id})")
    read = _readout(run, record)
    if read is None:
        raise TinyError(f"export {run.id}: its {runs.CONFIG} no longer loads")
    result, names = read
    if fmt == ExportFormat.formula:
        sys.stdout.write(f"{result.formula}\n{result.latex}\n")
        return
    sys.stdout.write(json.dumps(readout.export(result, names), indent=2) + "\n")


@app.command()
def compare(
    run_refs: Annotated[
        list[str], typer.Argument(metavar="RUN...", help="Two or more runs: ids, prefixes, latest.")
    ],
    runs_dir: RunsDir = None,
    precision: Precision = 2,
) -> None:
    """Show runs side by side: metrics and parameters (e.g. hardwired against trained)."""
    from tiny_cli import render, runs

    if len(run_refs) < 2:
        raise TinyError("compare: give at least two runs")
    root = runs.root(runs_dir)
    chosen = [runs.resolve(root, ref) for ref in run_refs]
    params: list[dict[str, Any] | None] = []
    for run in chosen:
        try:
            params.append({k: v.tolist() for k, v in run.load_state().items()})
        except Exception:  # missing or corrupt: shown as "-", `tiny inspect` says why
            params.append(None)
    metrics = [runs.read(run).metrics for run in chosen]
    console.print(render.compare_view([r.id for r in chosen], metrics, params, precision))


@app.command("tasks")
def list_tasks(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every task (built in and from plugins): parameters, default net, constructions."""
    from tiny_cli import catalog, render

    entries = catalog.entries()
    if as_json:
        sys.stdout.write(json.dumps([e.as_dict() for e in entries], indent=2) + "\n")
        return
    console.print(render.tasks_table(entries))


@app.command("runs")
def list_runs(
    runs_dir: RunsDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List the runs: id, task, init, epochs, final loss and accuracy, status, time."""
    from tiny_cli import render, runs

    records = runs.list_records(runs.root(runs_dir))
    if as_json:
        rows = [
            {"id": r.run.id, "meta": r.meta, "metrics": r.metrics, "problem": r.problem or None}
            for r in records
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    console.print(render.runs_table(records))


@app.command()
def board(
    runs_dir: RunsDir = None,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1; 0 picks a free one.")
    ] = 6006,
) -> None:
    """Start TensorBoard on the runs directory, on this machine only; Ctrl-C stops it."""
    from tiny_cli import runs
    from tiny_cli.board import serve

    root = runs.root(runs_dir)

    def announce(url: str) -> None:
        console.print(f"TensorBoard for {root} at [bold]{url}[/] (Ctrl-C to stop)")

    code = serve(root, port, announce)
    if code == 0:
        console.print("TensorBoard stopped")
    raise typer.Exit(code)


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="tiny", standalone_mode=False)
    except TinyError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors from the parser
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        sys.stderr.write(f"error: {' '.join(message.split())}\n")
        sys.exit(getattr(exc, "exit_code", 2))
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("aborted\n")
        sys.exit(130)
    except Exception as exc:  # a bug of ours: one line, the traceback only on request
        if os.environ.get("TINY_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        sys.stderr.write(
            f"internal error: {type(exc).__name__}: {first} (TINY_DEBUG=1 shows the traceback)\n"
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
