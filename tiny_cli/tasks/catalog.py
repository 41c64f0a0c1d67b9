"""What `tiny tasks` shows: every registered task, its parameters, default net and
constructions, read off the task classes themselves."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import ValidationError

from tiny_cli import tasks
from tiny_cli.spec import sections
from tiny_cli.tasks import Task


@dataclass(frozen=True)
class ConstructionEntry:
    name: str
    summary: str
    arch: str
    units: int  # neurons, read-out included


@dataclass(frozen=True)
class TaskEntry:
    name: str
    aliases: list[str]
    summary: str
    kind: str
    parameters: dict[str, Any]  # key -> default (None: required)
    default_model: str  # the default architecture, at the default parameters
    constructions: list[ConstructionEntry]
    origin: str  # "built in" or the plugin's module

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _defaults(cls: type[Task]) -> Task:
    """The task at its default parameters; a task with required keys is built without them
    (enough for its default architecture, which must not depend on them)."""
    try:
        return cls.model_validate({"name": cls.names()[0]})
    except ValidationError:
        return cls.model_construct(name=cls.names()[0])


def entry(cls: type[Task]) -> TaskEntry:
    task = _defaults(cls)
    init = sections.InitConfig()
    model = sections.ModelConfig.model_validate(task.default_model())
    try:
        arch = sections.architecture(model, task.net_inputs())
        default = (f"{model.arch}: " if model.arch else "") + arch.describe()
        built = task.constructions(init)
    except (AttributeError, KeyError, TypeError):  # required keys missing: inputs unknown
        default = "inputs -> " + " -> ".join(
            f"{la.width} {la.activation}" for la in model.layers or []
        )
        built = []
    origin = "built in" if cls in tasks.BUILTIN else cls.__module__
    return TaskEntry(
        name=cls.names()[0],
        aliases=list(cls.names()[1:]),
        summary=cls.summary,
        kind=str(task.kind),
        parameters=cls.parameters(),
        default_model=default,
        constructions=[
            ConstructionEntry(c.name, c.summary, c.arch.describe(), c.arch.units) for c in built
        ],
        origin=origin,
    )


def entries() -> list[TaskEntry]:
    return [entry(cls) for cls in tasks.classes()]


def with_construction() -> list[str]:
    """Names of the tasks that have a construction at their default parameters."""
    return [e.name for e in entries() if e.constructions]
