"""The `tiny` command line. Each command parses, calls one function, renders.

torch is imported inside the commands, so `tiny --help` and `tiny --version` stay fast.
"""

from __future__ import annotations

import json
import sys
import time
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
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

RunsDir = Annotated[
    Path | None,
    typer.Option(
        "--runs-dir",
        envvar="TINY_RUNS_DIR",
        help="Where runs are stored [default: ./runs].",
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
        metavar="NAME|PATH", help="A shipped config (lt10, min, is_even) or a path to a YAML file."
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
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TinyError(f"--device {name}: no CUDA device is available here (use cpu or auto)")
    try:
        torch.device(name)
    except RuntimeError:
        raise TinyError(f"--device {name}: not a device (use auto, cpu, cuda or cuda:N)") from None
    return name


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
    cfg: ExperimentConfig, kind: str, source: Path, runs_dir: Path | None, device: str
) -> Outcome:
    from tiny_cli import experiment, runs

    dev = _device(device)
    root = runs.root(runs_dir)
    with _Progress(cfg.train.epochs) as progress:
        return experiment.run_experiment(
            cfg, kind=kind, runs_root=root, source=str(source), device=dev, progress=progress
        )


def _report(outcome: Outcome, precision: int) -> None:
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
    status = outcome.result.status
    if status != "completed":
        err_console.print(f"[yellow]{status}[/]: {outcome.result.reason}")
    if outcome.picture:
        console.print(f"prediction picture: {outcome.picture}", soft_wrap=True)  # unbroken path
    console.print(f"run [bold cyan]{outcome.run.id}[/] saved in {outcome.run.path}")


@app.command()
def train(
    config_ref: ConfigArg,
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
    from tiny_cli import config

    overrides = _overrides(
        sets, epochs=("train.epochs", epochs), seed=("seed", seed), lr=("train.lr", lr)
    )
    cfg, path = config.load(config_ref, overrides)
    _report(_run(cfg, "train", path, runs_dir, device), precision)


@app.command()
def hardwire(
    config_ref: ConfigArg,
    bits: Annotated[int | None, typer.Option(help="is_even: domain [0, 2^bits), 1 to 24.")] = None,
    scale: Annotated[
        float | None, typer.Option(help="lt10: Sigmoid(scale * (10 - x)); 1 or 100 in the article.")
    ] = None,
    sets: Sets = None,
    runs_dir: RunsDir = None,
    device: Device = "auto",
    precision: Precision = 2,
) -> None:
    """Build the article's hand-made weights, evaluate them on and beyond the domain, store them.

    Example: tiny hardwire is_even --bits 4
    """
    from tiny_cli import config

    base, _ = config.load(config_ref, _overrides(sets))
    if bits is not None and base.task.name != "is_even":
        raise TinyError(f"--bits {bits}: only is_even has bits (this config is {base.task.name})")
    if scale is not None and base.task.name != "lt10":
        raise TinyError(f"--scale {scale}: only lt10 has a scale (this config is {base.task.name})")
    forced = [("init.mode", "hardwired", "hardwire"), ("train.epochs", 0, "hardwire")]
    overrides = _overrides(sets, bits=("task.bits", bits), scale=("init.scale", scale))
    cfg, path = config.load(config_ref, overrides + forced)
    _report(_run(cfg, "hardwire", path, runs_dir, device), precision)


@app.command()
def inspect(
    run_ref: Annotated[
        str, typer.Argument(metavar="RUN", help="A run id, a unique prefix of one, or latest.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    runs_dir: RunsDir = None,
    precision: Precision = 2,
) -> None:
    """Show a run: config, status, metrics and learned parameters."""
    from tiny_cli import render, runs

    run = runs.resolve(runs.root(runs_dir), run_ref)
    record = runs.read(run)
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
    if as_json:
        doc = {
            "id": run.id,
            "path": str(run.path),
            "status": record.meta.get("status"),
            "meta": record.meta,
            "config": cfg,
            "metrics": record.metrics,
            "parameters": params,
            "problem": problem or None,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    console.print(
        render.run_view(run.id, record.meta, cfg, record.metrics, params, precision, problem)
    )


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
    sys.exit(code if isinstance(code, int) else 0)
