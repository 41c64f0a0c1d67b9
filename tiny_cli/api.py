"""tiny from Python: the same runs as the CLI, as objects a notebook shows.

    import tiny_cli as tiny

    run = tiny.train("lt10", epochs=500)          # tiny train lt10 --epochs 500
    run.metrics["threshold"], run.readout["formula"]
    net = run.model()                             # an nn.Module, loaded like model.pt
    loss = run.history()["loss"]                  # per epoch, from the run's event file
    hard = tiny.hardwire("is_even", bits=4)
    sweep = tiny.sweep("is_even", seeds=100)      # tiny sweep is_even --seeds 100
    sweep.outcomes[0]["counts"]
    tiny.compare(hard, run)                       # tiny compare
    tiny.runs(), tiny.load("latest")

Every function goes through `app.launch`, the path `tiny train`, `hardwire` and `sweep` take,
so a run made here is an ordinary run directory (`tiny runs` lists it, `tiny inspect` reads
it) and a run made by the CLI loads here. Keyword arguments are config overrides: `epochs`,
`seed` and `lr` as the CLI's flags, any other dotted key with `__` for its dots
(`train__batch_size=None` is `--set train.batch_size=null`). A mistake in a config, an
argument or a run id raises `TinyError`, whose message is the line the CLI prints.

In a notebook a run, a sweep, a read-out, a list of runs and a comparison show themselves as
HTML built from `tiny report`'s own pieces; in a terminal REPL as the CLI's rich tables. A
notebook's interrupt (or Ctrl-C) stops a run as in the CLI: it is stored as interrupted and
`tiny.train(resume=run.id)` continues it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType

from tiny_cli.errors import TinyError
from tiny_cli.show import progress

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from tiny_cli.config import Override
    from tiny_cli.read.stored import Comparison as StoredComparison
    from tiny_cli.store.runs import RunRecord
    from tiny_cli.tasks import Task

__all__ = [
    "Comparison",
    "Readout",
    "Run",
    "RunList",
    "Sweep",
    "TinyError",
    "compare",
    "hardwire",
    "load",
    "runs",
    "sweep",
    "train",
]


class _Bar(progress.ProgressBar):
    """Progress on the default console (a terminal, or a widget in a notebook); quiet where
    neither can draw it (a notebook without ipywidgets, a pipe)."""

    def __init__(self, label: str, total: int | None, unit: str) -> None:
        from rich import get_console

        super().__init__(label, total, unit)
        console = get_console()
        if console.is_jupyter:
            try:
                import ipywidgets  # noqa: F401  (rich draws its bar in one)
            except ImportError:
                self.progress.disable = True
        elif not console.is_terminal:
            self.progress.disable = True


def _overrides(named: Mapping[str, Any]) -> list[Override]:
    """Keyword arguments as config overrides: `train__batch_size=None` is train.batch_size."""
    return [(key.replace("__", "."), value, f"{key}={value!r}") for key, value in named.items()]


def _path(runs_dir: str | Path | None) -> Path | None:
    return None if runs_dir is None else Path(runs_dir)


def train(
    config: str | Path | None = None,
    runs_dir: str | Path | None = None,
    *,
    epochs: int | None = None,
    seed: int | None = None,
    lr: float | None = None,
    from_run: str | None = None,
    resume: str | None = None,
    device: str = "auto",
    **overrides: Any,
) -> Run:
    """`tiny train CONFIG`: train a net from a config name or path; return its run."""
    from tiny_cli.app import launch

    out = launch.train(
        None if config is None else str(config), from_run=from_run, resume=resume,
        epochs=epochs, seed=seed, lr=lr, sets=None, runs_dir=_path(runs_dir), device=device,
        display=_Bar, extra=_overrides(overrides),
    )  # fmt: skip
    return Run(out.run.id, _path(runs_dir))


def hardwire(
    config: str | Path,
    runs_dir: str | Path | None = None,
    *,
    bits: int | None = None,
    scale: float | None = None,
    device: str = "auto",
    **overrides: Any,
) -> Run:
    """`tiny hardwire CONFIG`: the article's weights, evaluated and stored as a run."""
    from tiny_cli.app import launch

    out = launch.hardwire(
        str(config), bits=bits, scale=scale, sets=None, runs_dir=_path(runs_dir),
        device=device, display=_Bar, extra=_overrides(overrides),
    )  # fmt: skip
    return Run(out.run.id, _path(runs_dir))


def sweep(
    config: str | Path | None = None,
    runs_dir: str | Path | None = None,
    *,
    seeds: int | str | None = None,
    grid: Mapping[str, Iterable[Any]] | Sequence[str] | None = None,
    keep: int = 0,
    epochs: int | None = None,
    lr: float | None = None,
    threads: int | None = None,
    resume: str | None = None,
    **overrides: Any,
) -> Sweep:
    """`tiny sweep CONFIG --seeds N`: many seeds at once; `seeds` 100 or "100-199", `grid`
    {"init.noise": [0.1, 0.5]} or the CLI's ["init.noise=0.1,0.5"]."""
    from tiny_cli.app import launch

    out = launch.sweep(
        None if config is None else str(config), seeds=None if seeds is None else str(seeds),
        resume=resume, grid=_grid(grid), keep=keep, epochs=epochs, lr=lr, sets=None,
        runs_dir=_path(runs_dir), threads=threads, chunk=None, cluster=None, workers=None,
        device="cpu", display=_Bar, announce=lambda where, link: None,
        extra=_overrides(overrides),
    )  # fmt: skip
    return Sweep(out.run.id, _path(runs_dir))


def _grid(grid: Mapping[str, Iterable[Any]] | Sequence[str] | None) -> list[str]:
    if grid is None:
        return []
    if isinstance(grid, Mapping):
        import yaml

        def value(v: Any) -> str:
            text: str = yaml.safe_dump(v, default_flow_style=True, width=10**6)
            return text.removesuffix("\n...\n").strip()

        return [f"{key}={','.join(value(v) for v in values)}" for key, values in grid.items()]
    return [str(item) for item in grid]


def load(run_id: str = "latest", runs_dir: str | Path | None = None) -> Run:
    """A stored run or sweep: its id, a short id, a unique prefix or `latest`."""
    from tiny_cli.store import runs as store

    run = store.find(store.root(_path(runs_dir)), run_id)
    kind = Sweep if store.read(run).meta.is_sweep else Run
    return kind(run.id, _path(runs_dir))


def runs(runs_dir: str | Path | None = None) -> RunList:
    """Every stored run and sweep, oldest first (`tiny runs`)."""
    from tiny_cli.store import runs as store

    records = store.list_records(store.root(_path(runs_dir)))
    return RunList((Sweep if r.meta.is_sweep else Run)(r.run.id, _path(runs_dir)) for r in records)


def compare(*those: Run | str, runs_dir: str | Path | None = None) -> Comparison:
    """`tiny compare`: two or more runs (objects or ids), each against the first."""
    from tiny_cli.app import inspection

    refs = [r.id if isinstance(r, Run) else r for r in those]
    return Comparison(inspection.compare(_path(runs_dir), refs))


def _html(body: str) -> str:
    """A notebook cell's HTML: the report's colours, scoped to the cell."""
    return f'<div class="tiny">\n<style>{_CELL_STYLE}</style>\n{body}\n</div>'


_CELL_STYLE = """
.tiny .green { color: #070; } .tiny .yellow { color: #a60; } .tiny .red { color: #a00; }
.tiny .cyan { color: #077; } .tiny .magenta { color: #909; } .tiny .problem { color: #a00; }
.tiny .status-completed { color: #070; } .tiny td.num { text-align: right; }
.tiny figure img { max-width: 100%; } .tiny .readout code { font-weight: bold; }
"""


class Run:
    """A stored run, read when asked (so it shows what is on disk now)."""

    def __init__(self, run_id: str, runs_dir: Path | None = None) -> None:
        self.id = run_id
        self.runs_dir = runs_dir

    # --- what is stored ----------------------------------------------------------------

    @property
    def record(self) -> RunRecord:
        from tiny_cli.store import runs as store

        return store.read(store.find(store.root(self.runs_dir), self.id))

    @property
    def path(self) -> Path:
        return self.record.run.path

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config (config.yaml)."""
        from tiny_cli.store import views

        return views.read_config(self.record.run)

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json: the final metrics (README's glossary)."""
        return dict(self.record.metrics)

    @property
    def readout(self) -> Readout | None:
        """What the final net computes (formula, meaning, diagnosis): `tiny inspect`'s."""
        from tiny_cli.read import stored

        record = self.record
        read = stored.stored_readout(record.run, record)
        return None if read is None else Readout(read[0].as_dict(), read[0].task)

    def model(self) -> nn.Module:
        """The final net as an `nn.Module`, model.pt loaded strictly into its config's net."""
        from tiny_cli.read import stored
        from tiny_cli.train import inits

        net = stored.stored_net(self.record.run)
        if net is None:
            raise TinyError(f"run {self.id}: its config no longer loads")
        cfg, state = net
        module = inits.build(cfg)
        module.load_state_dict(state)
        return module.eval()

    def history(self) -> dict[str, np.ndarray]:
        """Each logged scalar (loss, accuracy, parameters, mechanism), per logged epoch, read
        from the run's event file as TensorBoard reads it; `history_steps()` has the epochs."""
        import numpy as np

        return {tag: np.asarray(s.values) for tag, s in self._scalars().items()}

    def history_steps(self) -> dict[str, np.ndarray]:
        import numpy as np

        return {tag: np.asarray(s.steps) for tag, s in self._scalars().items()}

    def _scalars(self) -> dict[str, Any]:
        from tiny_cli.show import report

        return report.read_scalars(self.record.run)

    def report(self, output: str | Path | None = None) -> Path:
        """`tiny report`: one self-contained HTML file; its path."""
        from tiny_cli.show import report

        path, _ = report.write(self.record, None if output is None else Path(output))
        return path

    # --- display -------------------------------------------------------------------------

    def __repr__(self) -> str:
        record = self.record
        meta = record.meta
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in list(record.metrics.items())[:4]
        )
        what = type(self).__name__
        return f"<{what} {self.id}: {meta.kind} {meta.task}, {record.status}; {shown}>"

    def __rich__(self) -> RenderableType:
        from tiny_cli.app import inspection
        from tiny_cli.show import render

        info, read = inspection.run_details(self.record)
        parts: list[RenderableType] = [render.run_view(self.record, info)]
        if read:
            parts.append(render.readout_view(read[0].as_dict(), read[0].task))
        return Group(*parts)

    def _repr_html_(self) -> str:
        from tiny_cli.show import report

        return _html(report.body_html(report.gather(self.record, charts=False), whole=False))


class Sweep(Run):
    """A stored sweep: its outcomes per grid point and, on request, its solutions."""

    @property
    def outcomes(self) -> list[dict[str, Any]]:
        """summary.json: per grid point, the counts and fractions of each outcome."""
        from tiny_cli.store import views

        return [p.to_json() for p in views.read_summary(self.record.run)]

    def solutions(self) -> dict[str, Any]:
        """The solved seeds grouped by mechanism (`tiny inspect SWEEP --solutions`)."""
        from tiny_cli.app import inspection

        found, _, _ = inspection.solutions(self.record)
        return found.to_json()

    @property
    def kept(self) -> list[Run]:
        return [Run(k.run, self.runs_dir) for k in self.record.meta.kept or []]

    def model(self) -> nn.Module:
        raise TinyError(f"sweep {self.id}: a sweep has no one net; keep seeds (keep=K)")

    def __repr__(self) -> str:
        record = self.record
        points = "; ".join(
            f"{p['label'] or 'base config'}: "
            + ", ".join(f"{k} {v}" for k, v in p["counts"].items() if v)
            for p in self.outcomes
        )
        return f"<Sweep {self.id}: {record.meta.task}, {record.status}; {points}>"

    def __rich__(self) -> RenderableType:
        from tiny_cli.show import render
        from tiny_cli.store import runs as store

        record = self.record
        return render.sweep_view(record, store.details(record))


class Readout(dict[str, Any]):
    """A net's read-out (`Readout.as_dict()`): its keys, and the CLI's lines when shown."""

    def __init__(self, values: Mapping[str, Any], task: Task | None = None) -> None:
        super().__init__(values)
        self.task = task

    def __rich__(self) -> RenderableType:
        from tiny_cli.show import render

        return render.readout_view(self, self.task)

    def _repr_html_(self) -> str:
        from tiny_cli.show import report

        return _html(report._readout_html(self, self.task))


class RunList(list[Run]):
    """Runs and sweeps, shown as `tiny runs`' table."""

    def __rich__(self) -> RenderableType:
        from tiny_cli.show import render

        return render.runs_table([r.record for r in self])

    def _repr_html_(self) -> str:
        from tiny_cli.show.htmlparts import esc, metric_text, table

        rows = []
        for run in self:
            record = run.record
            shown = ", ".join(f"{k} {metric_text(v)}" for k, v in record.metrics.items())
            meta = record.meta
            rows.append(
                [esc(x) for x in (run.id, meta.kind, meta.task, record.status)] + [esc(shown)]
            )
        heads = ["run", "kind", "task", "status", "metrics"]
        return _html(table(heads, rows, numeric=9))


class Comparison:
    """`tiny compare`: runs side by side, each one's net against the first run's."""

    def __init__(self, found: StoredComparison) -> None:
        self.found = found

    def to_json(self) -> dict[str, Any]:
        return self.found.to_json()

    def __repr__(self) -> str:
        ids = ", ".join(r.run.id for r in self.found.records)
        return f"<Comparison of {ids}>"

    def __rich__(self) -> RenderableType:
        from tiny_cli.show import render

        f = self.found
        return render.compare_view(
            f.records, [i.config for i in f.infos], [i.params for i in f.infos],
            canonical=[c.as_dict() for c in f.compared],
        )  # fmt: skip

    def _repr_html_(self) -> str:
        from tiny_cli.show.htmlparts import esc, metric_text, table

        doc = self.to_json()
        names = list(dict.fromkeys(k for r in doc["runs"] for k in r["metrics"]))
        rows = []
        for r in doc["runs"]:
            first = r["against_first"]
            rows.append(
                [esc(r["id"]), esc(r["status"])]
                + [esc(metric_text(r["metrics"].get(k))) for k in names]
                + [
                    esc(first.get("same_function")),
                    esc(metric_text(first.get("max_abs_difference"))),
                ]
            )
        heads = ["run", "status", *names, "same function", "max difference"]
        problem = doc["problem"]
        note = f'<p class="problem">{esc(problem)}</p>' if problem else ""
        return _html(table(heads, rows, numeric=2) + note)


def _claim_the_name() -> None:
    """`tiny.train` is this module's `train`, though `tiny_cli.train` is also a subpackage:
    importing a subpackage sets it as its parent's attribute, so the subpackage is imported
    first (it is light: no torch) and the attribute then rebound. `import tiny_cli.train`
    and `from tiny_cli.train import engine` still find the subpackage (sys.modules)."""
    import tiny_cli
    import tiny_cli.train as _package  # noqa: F401

    tiny_cli.train = train  # type: ignore[assignment]


_claim_the_name()
