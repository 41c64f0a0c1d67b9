"""The task registry: name -> task class, built in and from plugins.

A plugin is any installed package that declares an entry point in the group `tiny.tasks`
pointing at a `Task` subclass (see examples/tiny-task-example). A plugin that fails to
load is named in a one-line warning on stderr; the rest of `tiny` keeps working.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from tiny_cli.errors import one_line
from tiny_cli.spec.models import Arch, Layer
from tiny_cli.spec.schema import Bound, Section
from tiny_cli.spec.sections import InitConfig
from tiny_cli.tasks.base import (
    Construction,
    HeatPanel,
    Kind,
    Meaning,
    Metrics,
    NetArrays,
    Predict,
    Task,
    TaskPicture,
    predict_fn,
)
from tiny_cli.tasks.bits import Parity, Xor
from tiny_cli.tasks.expr import Expr
from tiny_cli.tasks.integers import Abs, IsEven, Mod, Mod3
from tiny_cli.tasks.modular import Modular
from tiny_cli.tasks.pairs import Max, Min
from tiny_cli.tasks.playground import Circle, Gauss, Spiral, Xor2d
from tiny_cli.tasks.threshold import Lt

# The plugin API: what a task class needs, from one place.
__all__ = [
    "Arch", "Bound", "Construction", "HeatPanel", "InitConfig", "Kind", "Layer", "Meaning",
    "Metrics", "NetArrays", "Predict", "Section", "Task", "TaskPicture", "meaning_lines",
    "predict_fn", "registry",
]  # fmt: skip

BUILTIN: tuple[type[Task], ...] = (
    Lt, Min, Max, Abs, Xor, IsEven, Mod, Mod3, Parity, Expr, Circle, Gauss, Spiral, Xor2d,
    Modular,
)  # fmt: skip
ENTRY_POINT_GROUP = "tiny.tasks"


def _plugins(taken: set[str]) -> list[type[Task]]:
    found: list[type[Task]] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Task)):
                raise TypeError(f"{ep.value} is not a tiny_cli.tasks.Task subclass")
            clash = set(cls.names()) & taken
            if clash:
                raise ValueError(f"task name {sorted(clash)[0]!r} is already taken")
        except (Exception, SystemExit) as exc:  # any plugin bug: name it, keep the rest working
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            line = f"warning: task plugin {ep.name!r} ({ep.value}) not loaded: {reason}"
            sys.stderr.write(f"{one_line(line)}\n")
            continue
        taken.update(cls.names())
        found.append(cls)
    return found


@functools.cache
def classes() -> tuple[type[Task], ...]:
    """Every task class: the built-in ones, then the plugins' (loaded once per process)."""
    taken = {n for cls in BUILTIN for n in cls.names()}
    return BUILTIN + tuple(_plugins(taken))


def registry() -> dict[str, type[Task]]:
    """Every accepted task name (aliases included) -> its class."""
    return {n: cls for cls in classes() for n in cls.names()}


def names() -> list[str]:
    """The tasks' own names (no aliases), in registry order."""
    return [cls.names()[0] for cls in classes()]


def meaning_lines(meaning: Mapping[str, Any]) -> list[str]:
    """How a meaning is shown when its task is not at hand (a read-out as plain data): the
    lines of every task class's `Task.meaning_lines`, in registry order, each line once and
    the lines every task shows (`Task.meaning_lines` itself: the correct interval) last, as
    each task puts them. Each task shows only its own keys, so a meaning gets its task's
    lines."""
    common = Task.meaning_lines(meaning)
    lines: list[str] = []
    for cls in classes():
        lines += [line for line in cls.meaning_lines(meaning) if line not in common + lines]
    return lines + common
