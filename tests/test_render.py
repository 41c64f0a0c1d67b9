"""Rich output, rendered on a fixed-width console with colour off."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text

from tiny_cli.show.compare_view import compare_view
from tiny_cli.show.readout_view import FORMULA_CHARS, readout_lines
from tiny_cli.show.run_views import run_view, runs_table
from tiny_cli.show.sweep_views import sweep_table, sweep_view
from tiny_cli.show.tables import format_values, parameters_table
from tiny_cli.store.runs import Details, Run, RunMeta, RunRecord, SweepPoint


def text_of(renderable: object, width: int = 100, crop: bool = True) -> str:
    console = Console(width=width, color_system=None, record=True, file=io.StringIO())
    console.print(renderable, crop=crop)
    return console.export_text()


def test_values_print_like_the_article() -> None:
    # The article prints numpy-rounded arrays: `fc2.weight : [[ 0.71 -0.71]]`.
    assert format_values([[0.7071, -0.7071]]) == "[[ 0.71 -0.71]]"
    assert format_values([1.0, 0.0, 0.0, -1.41]) == "[ 1.00  0.00  0.00 -1.41]"
    assert format_values([-0.001]) == "[0.00]"  # no "-0.00"
    assert format_values([[-1.0], [1.0]]) == "[[-1.00]\n [ 1.00]]"


def test_precision_shows_more_decimals() -> None:
    assert format_values([0.123456789], precision=6) == "[0.123457]"


def test_parameter_table_has_every_parameter_and_shape() -> None:
    out = text_of(parameters_table({"0.weight": [[-1.0]], "0.bias": [10.0]}))
    assert "0.weight" in out and "1x1" in out and "[[-1.00]]" in out and "[10.00]" in out


def record(
    run_id: str, metrics: dict[str, Any] | None = None, problem: str = "", **meta: Any
) -> RunRecord:
    m = RunMeta.model_validate({"id": run_id, "status": "completed", **meta})
    status = "broken" if problem else m.status or "?"
    return RunRecord(Run(Path("/runs") / run_id), m, metrics or {}, problem, status)


TIMES = {"started": 1_795_322_743.8, "finished": 1_795_322_746.5}
RECORDS = [
    record("20261122-044543-803-is_even", {"loss": 0.25, "accuracy": 0.5}, kind="train",
           task="is_even", init="hardwired+noise", seed=17, epochs=5000, epochs_done=5000, **TIMES),
    record("20261122-044549-640-expr", {"loss": 1.5e-07, "accuracy": 1.0}, kind="hardwire",
           task="expr", init="hardwired", seed=0, epochs=0, epochs_done=0, **TIMES),
    record("20261122-044553-864-is_even-sweep", {"loss": 0.5, "solved": 0.125}, kind="sweep",
           task="is_even", init="hardwired+noise,random", seeds=[0, 999], n_seeds=1000,
           grid={"init.mode": ["random", "hardwired+noise"], "train.batch_size": [32, None]},
           epochs=5000, epochs_done=5000, **TIMES),
    record("20261122-044555-441-is_even", {"loss": 0.01, "accuracy": 1.0}, kind="train",
           task="is_even", init="random", seed=3, epochs=5000, epochs_done=5000,
           sweep="20261122-044553-864-is_even-sweep", **TIMES),
    record("20261122-044556-000-min", {}, kind="train", task="min", init="random", seed=1,
           epochs=300, epochs_done=120, status="interrupted", **TIMES),
    record("20261122-044557-000-min", problem="metrics.json is unreadable (JSONDecodeError)",
           kind="train", task="min"),
]  # fmt: skip


def assert_whole(out: str, width: int) -> None:
    assert "…" not in out and "..." not in out, out
    assert max(len(line.rstrip()) for line in out.splitlines()) <= width, out


@pytest.mark.parametrize("width", [60, 80, 120])
def test_runs_table_fits_and_keeps_every_cell_whole(width: int) -> None:
    out = text_of(runs_table(RECORDS), width)
    assert_whole(out, width)
    assert out.startswith("6 runs")
    for needle in ["run id", "task", "status", "1122-044543", "is_even", "expr", "completed",
                   "interrupted", "12.5%", "(JSONDecodeError)"]:  # fmt: skip
        assert needle in out, (needle, out)
    if width >= 80:
        for needle in ["init", "seed", "0-999", "17", "hardwired+noise", "loss", "solved"]:
            assert needle in out, (needle, out)
        assert "random," in out  # the sweep's init modes, from its grid
    if width >= 120:
        for needle in ["kind", "epochs", "120/300", "time", "from"]:
            assert needle in out, (needle, out)
    assert "20261122" not in out  # short ids


def test_runs_table_wide_has_full_ids_and_every_column() -> None:
    out = text_of(runs_table(RECORDS, wide=True), 60, crop=False)
    assert "20261122-044553-864-is_even-sweep" in out and "started" in out and "from" in out
    assert "…" not in out


def test_one_run_is_singular() -> None:
    assert text_of(runs_table(RECORDS[:1])).splitlines()[0].strip() == "1 run"


SUMMARY = [
    SweepPoint(
        grid={"init.mode": mode, "train.batch_size": batch}, seeds=1000,
        counts={"solved": 125, "stuck at mean": 500, "dead": 300, "partial": 75, "diverged": 0},
        fractions={"solved": 0.125, "stuck at mean": 0.5, "dead": 0.3, "partial": 0.075,
                   "diverged": 0.0},
        loss={"q10": 0.001, "q50": 0.25, "q90": 0.5}, seconds=20.5, seed_epochs_per_second=243902.4,
    )
    for mode in ("random", "hardwired+noise") for batch in (32, None)
]  # fmt: skip


@pytest.mark.parametrize("width", [60, 80, 120])
def test_sweep_table_fits_and_shows_null(width: int) -> None:
    out = text_of(sweep_table(SUMMARY), width)
    assert_whole(out, width)
    assert "null" in out and "None" not in out and "hardwired+noise" in out
    assert "12.5%" in out and "stuck" in out and "diver-" in out


def test_sweep_view_shows_grid_values_and_kept_runs() -> None:
    kept = [{"point": 1, "seed": 3, "why": "best", "run": RECORDS[3].run.id}]
    sweep = RunMeta.model_validate({**RECORDS[2].meta.model_dump(), "kept": kept})
    rec = RunRecord(RECORDS[2].run, sweep, {}, "", "completed")
    out = text_of(sweep_view(rec, Details(summary=SUMMARY)), 80)
    assert "init random,hardwired+noise" in out
    assert "grid: init.mode=random,hardwired+noise  train.batch_size=32,null" in out
    assert "kept seed 3 (best, grid point 1)" in out


@pytest.mark.parametrize("width", [60, 80, 120])
def test_compare_three_runs_says_which_is_which(width: int) -> None:
    chosen = [RECORDS[1], RECORDS[0], RECORDS[3]]
    configs = [{"train": {"lr": 0.01}}, {"train": {"lr": 0.1}}, None]
    params = [
        {"output_layer.weight": [[0.5, 0.5, -0.5, -0.5]], "fc1.bias": [0.0, 0.0]},
        {"output_layer.weight": [[0.25, 0.5, -0.75, -0.5]]},
        None,
    ]
    out = text_of(compare_view(chosen, configs, params), width)
    assert_whole(out, width)
    for needle in ["1122-044549", "1122-044543", "1122-044555", "hardwire", "train",
                   "init hardwired", "seed 17", "lr 0.01", "lr 0.1", "output_layer.weight",
                   "[[ 0.50  0.50 -0.50 -0.50]]", "parameter", "metric"]:  # fmt: skip
        assert needle in out, (needle, out)
    assert "kept from" in out and "1122-044553" in out  # the third run's origin (wrapped)


@pytest.mark.parametrize("width", [60, 80, 120])
def test_compare_in_canonical_form_fits_with_a_dash_where_nothing_compares(width: int) -> None:
    from tiny_cli import config
    from tiny_cli.read import match

    cfg = config.load("min", [])[0]
    state = cfg.task.constructions(cfg.init)[0].weights()
    swapped = {**state, "fc1.weight": state["fc2.weight"] * 2, "fc2.weight": state["fc1.weight"]}
    swapped |= {"fc1.bias": state["fc2.bias"], "fc2.bias": state["fc1.bias"]}  # not min any more
    nets = [(cfg.arch, state, cfg.task), (cfg.arch, swapped, cfg.task), None]
    forms = [c.as_dict() for c in match.compare(nets)]
    chosen = [RECORDS[1], RECORDS[0], RECORDS[3]]
    out = text_of(compare_view(chosen, [None] * 3, [None] * 3, canonical=forms), width)
    assert_whole(out, width)
    for needle in ["Canonical form", "1 relu weight", "[[-1.00  1.00]", "Against 1122-044549",
                   "max |difference|", "same function", "no", "canonical distance"]:  # fmt: skip
        assert needle in out, (needle, out)
    # the swapped net is not min: not the same function, and wrong, so it "differs"; the
    # first (Equation 1) solves the task
    assert "no: differs" in out and "another mechanism" not in out and "Parameters" not in out
    assert [line.split()[-3:] for line in out.splitlines() if "solves the task" in line] in (
        [["yes", "no", "-"]],
        [["solves", "the", "task"]],  # stacked: one run under the other, below
    )


def test_text_from_disk_is_never_markup() -> None:
    evil = record("20261122-044543-803-x", {"[bold]loss[/]": 1.0, "[/]": 2.0}, task="[red]t[/]",
                  init="[/]", kind="train", reason="[link=http://x]y[/link]")  # fmt: skip
    out = text_of(runs_table([evil]), 120)
    assert "[red]t[/]" in out and "[/]" in out
    info = Details(config={"task": {"name": "[bold]"}}, params={"[b]": [1.0]})
    view = run_view(evil, info)
    out = text_of(view, 120)
    for needle in ["[bold]loss[/]", "[/]", "[link=http://x]y[/link]", "[bold]", "[b]"]:
        assert needle in out, (needle, out)
    out = text_of(sweep_table([SUMMARY[0].model_copy(update={"grid": {"[i]k": "[/]"}})]))
    assert "[i]k=[/]" in out


ESC = "\x1b]0;title\x07\x1b[2J\n\x9b\u202e"  # set the title, clear, break the line, C1, bidi


def test_text_from_disk_is_never_a_terminal_escape() -> None:
    """Run ids (directory names), run.json fields, metric and parameter names, grid values:
    shown with their control characters escaped, each id on one line, widths still right."""
    evil = record(f"20261122-044543-803-x{ESC}", {f"loss{ESC}": 1.0}, task=f"t{ESC}",
                  init=f"i{ESC}", kind="train", reason=f"r{ESC}")  # fmt: skip
    info = Details(config={"task": {"name": ESC}}, params={f"w{ESC}": [1.0]})
    grid = SUMMARY[0].model_copy(update={"grid": {f"k{ESC}": ESC}})
    views = [runs_table([evil, RECORDS[0]]), runs_table([evil], wide=True), run_view(evil, info),
             compare_view([evil, RECORDS[0]], [None] * 2, [info.params, None]),
             sweep_table([grid])]  # fmt: skip
    for view in views:
        out = text_of(view, 80, crop=False)
        assert not [c for c in out if c in "\x1b\x07\x9b\u202e"], out
        assert "\\x1b]0;title" in out, out  # shown, as text
    table = text_of(runs_table([evil, RECORDS[0]]), 80, crop=False)
    assert "20261122-044543-803-x\\x1b]0;title\\x07\\x1b[2J\\n\\x9b\\u202e" in table  # whole
    assert len(table.splitlines()) == 5  # title, header, rule, one line per run


def test_the_console_escapes_what_a_view_did_not() -> None:
    from tiny_cli.cli.output import SafeConsole

    console = SafeConsole(width=40, color_system=None, file=io.StringIO(), record=True)
    console.print(Text.assemble("raw \x1b[2J here", ("\x9b", "bold")))
    assert console.export_text() == "raw \\x1b[2J here\\x9b\n"


def test_precision_applies_to_metrics() -> None:
    view = run_view(RECORDS[0], Details(), metrics_precision=7)
    assert "0.2500000" in text_of(view)


def test_a_long_formula_is_cut_in_the_terminal_and_says_where_it_is_whole() -> None:
    """A 32-unit net reads as a formula of thousands of characters: the terminal shows the
    start and the length, the report (no limit) all of it."""
    formula = " + ".join(f"{k}*Max(0, x - {k})" for k in range(2000))
    readout = {"formula": formula, "exact": True, "max_error": 0.0, "tolerance": 1e-3}
    shown = readout_lines(readout, FORMULA_CHARS)[0]
    text = "".join(part for part, _ in shown)
    assert len(text) < FORMULA_CHARS + 120
    assert f"{len(formula):,} characters" in text and "tiny export" in text
    whole = "".join(part for part, _ in readout_lines(readout)[0])
    assert formula in whole
