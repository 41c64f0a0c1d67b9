"""The read-out as lines: formula, exactness, the task's meaning, diagnosis, construction.

`readout_lines` turns a read-out (`read.readout.Readout.as_dict()`, plain data, maybe from
disk) into lines of styled plain text; `tiny inspect` and `tiny train` print them
(`readout_view`), `tiny report` writes them as HTML. The meaning's lines are the task's
(`Task.meaning_lines`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text

from tiny_cli import tasks
from tiny_cli.show.tables import OUTCOME_STYLES
from tiny_cli.tasks.base import brief
from tiny_cli.train import held_out
from tiny_cli.train.held_out import GROK_EPOCHS

if TYPE_CHECKING:
    from tiny_cli.tasks import Task

Line = list[tuple[str, str]]  # (text, rich style) segments; "" is no style
FORMULA_CHARS = 400  # of a formula in the terminal: five lines at 80 columns


def readout_lines(
    readout: Mapping[str, Any], formula_chars: int | None = None, task: Task | None = None
) -> list[Line]:
    """The read-out as lines of styled plain text: formula, exactness, meaning, diagnosis.
    `readout` is `readout.Readout.as_dict()` (plain data). A formula longer than
    `formula_chars` is cut, and says where it is whole. The meaning is shown by `task`;
    without it (a read-out as plain data, its task not at hand) by every registered task,
    each of which shows only its own keys (`tasks.meaning_lines`)."""
    shown = task.meaning_lines(readout) if task is not None else tasks.meaning_lines(readout)
    return [
        *_formula_lines(readout, formula_chars),
        *([(text, "")] for text in shown),
        _diagnosis_line(readout),
        *_split_lines(readout),
        *_construction_lines(readout),
    ]


def _cut(formula: str, chars: int | None) -> Line:
    """A formula, bold, cut at `chars` with a note saying where it is whole."""
    if chars is None or len(formula) <= chars:
        return [(formula, "bold")]
    note = f" … ({len(formula):,} characters; tiny export RUN --format formula prints it whole)"
    return [(formula[:chars], "bold"), (note, "")]


def _formula_lines(readout: Mapping[str, Any], formula_chars: int | None) -> list[Line]:
    if readout.get("formula_skipped"):
        return [[("formula: ", ""), (f"skipped, {readout.get('formula_skipped')}", "yellow")]]
    exact = readout.get("exact")
    label = ("exact", "green") if exact else ("approximate", "yellow")
    lines: list[Line] = [[("formula: ", ""), *_cut(str(readout.get("formula")), formula_chars)]]
    mechanism = readout.get("mechanism")
    if isinstance(mechanism, str):
        lines.append([("  as the net computes it: ", ""), *_cut(mechanism, formula_chars)])
    lines.append(
        [
            ("  ", ""), label,
            (f" on {domain_of(readout)}: max error {brief(readout.get('max_error'), 3)}"
             f" (tolerance {brief(readout.get('tolerance'), 3)},"
             f" {readout.get('digits', '-')} significant digits)", ""),
        ]
    )  # fmt: skip
    approx = readout.get("approximation")
    if isinstance(approx, Mapping):
        lines.append(
            [
                ("  ~ ", ""),
                *_cut(str(approx.get("formula")), formula_chars),
                (
                    f" with {approx.get('digits')} digits "
                    f"(max error {brief(approx.get('max_error'), 3)})",
                    "",
                ),
            ]
        )
    return lines


def domain_of(readout: Mapping[str, Any]) -> str:
    """Which inputs the read-out's claims hold on (`Task.domain_text`; a read-out stored
    before it said so: "the domain")."""
    domain = readout.get("domain")
    return domain if isinstance(domain, str) else "the domain"


def _diagnosis_line(readout: Mapping[str, Any]) -> Line:
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
    return diag


def _split_lines(readout: Mapping[str, Any]) -> list[Line]:
    """With a test set: how right the net is on the training and on the test inputs."""
    split = readout.get("split")
    if not isinstance(split, Mapping):
        return []
    parts: Line = [("generalisation: ", "")]
    for side, words in (("train", "training"), ("test", "test")):
        got = split.get(side)
        if not isinstance(got, Mapping):
            continue
        n = got.get("inputs")
        if parts[1:]:
            parts.append(("; ", ""))
        if "right" in got:
            right = got.get("right")
            exact = right == n
            parts.append((f"on the {n} {words} input{'s' if n != 1 else ''} ", ""))
            parts.append(
                ("exact" if exact else f"{right}/{n} right", "green" if exact else "yellow")
            )
        else:
            err = f"max error {brief(got.get('max_abs_error'), 3)}, mean {brief(got.get('mae'), 3)}"
            parts.append((f"on the {n} {words} input{'s' if n != 1 else ''} {err}", ""))
    return [parts, *_held_out_lines(split.get("held_out"))]


HELD_OUT_STYLES = {"generalised": "green", "grokked": "cyan", "memorised": "yellow",
                   "not learned": "red"}  # fmt: skip


def _held_out_lines(held: Any) -> list[Line]:
    """The held-out outcome: "held out: grokked after 1,500 epochs; training solved at
    epoch 100, test at epoch 1,600 (G = 100 epochs)"."""
    if not isinstance(held, Mapping) or not isinstance(held.get("outcome"), str):
        return []
    outcome, delay = held["outcome"], held.get("delay")
    g = held.get("grok_epochs")
    g = g if isinstance(g, int) else GROK_EPOCHS
    said = held_out.words(outcome, delay if isinstance(delay, int) else None, g)
    when = [
        f"{words} at epoch {held[key]:,}" if isinstance(held.get(key), int) else f"{words} never"
        for key, words in (("train_solved", "training solved"), ("test_solved", "test"))
    ]
    if held.get("train_solved") is None:
        when = ["training never solved"]
    note = f"; {', '.join(when)} (G = {g:,} epochs)"
    return [[("held out: ", ""), (said, HELD_OUT_STYLES.get(outcome, "")), (note, "")]]


def _construction_lines(readout: Mapping[str, Any]) -> list[Line]:
    """The net against the task's construction: the same function; another mechanism when
    the net is right on the domain too (the construction always is); else it differs."""
    dist = readout.get("distance_to_construction")
    if not isinstance(dist, Mapping):
        return []
    if dist.get("same_function"):
        verdict = "the same function"
    elif readout.get("outcome") == "solved":
        verdict = "solves the task by another mechanism"
    else:
        verdict = "differs"
    return [
        [
            (
                f"construction: {verdict} on {domain_of(readout)}: max difference "
                f"{brief(dist.get('max_abs_difference'), 3)}, canonical distance "
                f"{brief(dist.get('parameters'), 3)}",
                "",
            )
        ]
    ]


def readout_view(readout: Mapping[str, Any], task: Task | None = None) -> Group:
    """The `Read-out` section of `tiny inspect` (`readout_lines`, the formula cut at
    FORMULA_CHARS)."""
    lines = [Text.assemble(*line) for line in readout_lines(readout, FORMULA_CHARS, task)]
    return Group(Text("Read-out", style="bold"), *lines)
