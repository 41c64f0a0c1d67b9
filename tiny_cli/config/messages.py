"""Messages: a pydantic error, or a key a config got wrong, as one line in plain words.

The line names where the key was given: the `--set` (or `--grid`, `--epochs`, ...) argument
that set it, else the file and the key's line in it; then the dotted key (`model.widths[0]`)
and what is wrong with it, with a "did you mean" where a name is close to a known one.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml
from pydantic import BaseModel

from tiny_cli import tasks
from tiny_cli.config.parse import Loader, Override
from tiny_cli.config.schema import ExperimentConfig
from tiny_cli.errors import did_you_mean, echo, echo_key, echo_path
from tiny_cli.spec.sections import DataConfig, InitConfig, LogConfig, ModelConfig, TrainConfig


@functools.lru_cache(maxsize=4)
def _key_lines(text: str) -> dict[str, int]:
    """Dotted key -> 1-based line number in the YAML text, for error messages."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = f"{prefix}{key_node.value}"
                lines.setdefault(key, key_node.start_mark.line + 1)
                lines.setdefault(echo_key(key), key_node.start_mark.line + 1)  # as messages show it
                walk(value_node, key + ".")

    loader = Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError:
        return lines
    finally:
        loader.dispose()
    if root is not None:
        walk(root, "")
    return lines


def _section_keys(prefix: str) -> list[str]:
    """The keys a section accepts, for 'did you mean'."""
    section: dict[str, type[BaseModel]] = {
        "": ExperimentConfig,
        "model": ModelConfig,
        "init": InitConfig,
        "train": TrainConfig,
        "data": DataConfig,
        "log": LogConfig,
    }
    if prefix == "task":
        return sorted({k for m in tasks.classes() for k in m.model_fields})
    return list(section[prefix].model_fields) if prefix in section else []


def describe(err: Any) -> tuple[str, str]:
    """A pydantic error -> (dotted key, message in plain words); echoed input is escaped and
    cut short (`errors.echo`)."""
    raw = list(err["loc"])
    task_name = None
    if len(raw) > 1 and raw[0] == "task" and str(raw[1]) in tasks.registry():
        task_name = str(raw.pop(1))  # the discriminated union's tag, not a key the user wrote
    loc = [str(p) for p in raw]
    parts: list[str] = []  # list positions as `model.widths[0]`
    for p in raw:
        if isinstance(p, int) and parts:
            parts[-1] += f"[{p}]"
        else:
            parts.append(str(p))
    key = echo_key(".".join(parts)) if parts else "(top level)"
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        parent = ".".join(loc[:-1])
        if parent == "task" and task_name is not None:
            own = [k for k in tasks.registry()[task_name].model_fields if k != "name"]
            if loc[-1] in _section_keys("task"):  # a key of another task
                return key, f"not a key of task {task_name} (its keys: {', '.join(own)})"
        return key, f"unknown key{did_you_mean(loc[-1][:100], _section_keys(parent))}"
    if kind == "union_tag_invalid":
        tag = str(err["ctx"]["tag"])
        hint = did_you_mean(tag[:100], tasks.registry())
        names = ", ".join(tasks.names())
        return f"{key}.name", f"unknown task {echo(tag)}{hint}; tasks are {names} (see tiny tasks)"
    if kind == "union_tag_not_found":
        return f"{key}.name", f"missing; tasks are {', '.join(tasks.names())}"
    if kind == "missing":
        return key, "required key is missing"
    if kind == "literal_error" and isinstance(err.get("input"), str):
        choices = err["ctx"]["expected"].replace("'", "").replace(" or ", ", ").split(", ")
        given = err["input"]
        return (
            key,
            f"unknown value {echo(given)}{did_you_mean(given[:100], choices)}; "
            f"{msg[0].lower()}{msg[1:]}",
        )
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    msg = msg or kind
    return key, f"{msg[0].lower()}{msg[1:]}" + (
        f" (got {echo(err['input'])})" if kind not in ("model_type", "value_error") else ""
    )


def prefix_for(key: str, origin: str, overrides: list[Override], text: str) -> str:
    for over_key, _, label in reversed(overrides):
        if key == over_key or key.startswith(over_key + ".") or over_key.startswith(key + "."):
            return echo_label(label)
    key = re.sub(r"\[\d+\]", "", key)  # `model.widths[0]`: the line of model.widths
    line = _key_lines(text).get(key) or _key_lines(text).get(key.rpartition(".")[0])
    return f"{echo_path(origin)}:{line}" if line else echo_path(origin)


def echo_label(label: str) -> str:
    """`--set key=value` as typed, its value cut short and escaped."""
    flag, _, rest = label.partition(" ")
    key, sep, value = rest.partition("=")
    if not sep:
        return f"{flag} {echo(rest)[1:-1]}" if rest else flag
    shown = echo(value, 60)[1:-1]
    return f"{flag} {echo_key(key)}={shown}"
