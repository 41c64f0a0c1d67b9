"""Loading: a config name or YAML path, plus overrides, -> a validated, resolved config.

`load` locates the file (a shipped name or a path), reads it within MAX_FILE_BYTES and the
YAML bounds of `parse.py`, applies the overrides (`--set key=value` and flags such as
`--epochs`), validates against `ExperimentConfig` and resolves (`resolve.py`). Every failure
is one `TinyError` line (`messages.py`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tiny_cli import tasks
from tiny_cli.config.messages import describe, echo_label, prefix_for
from tiny_cli.config.parse import Override, Refused, is_key_path, parse_yaml, yaml_value
from tiny_cli.config.resolve import KeyProblem, resolve
from tiny_cli.config.schema import ExperimentConfig
from tiny_cli.errors import TinyError, did_you_mean, echo, echo_key, echo_path

# Bounds on reading a config, so that any file is refused or read in bounded time and memory
# (the YAML inside is bounded by parse.py).
MAX_FILE_BYTES = 1 << 20


def shipped_dir() -> Path:
    """The shipped configs: inside the installed package, or the repo's configs/ (editable)."""
    package = Path(__file__).resolve().parent.parent  # tiny_cli/
    installed = package / "configs"
    return installed if installed.is_dir() else package.parent / "configs"


def shipped_names() -> list[str]:
    return sorted(p.stem for p in shipped_dir().glob("*.yaml"))


def locate(source: str) -> Path:
    """A config name (`lt10`) or a path to a YAML file (`~` expands) -> the file's path."""
    try:
        return _locate(source)
    except OSError as exc:  # a name too long, a loop of symlinks, ...
        reason = exc.strerror or type(exc).__name__
        raise TinyError(f"{echo_path(source)}: cannot read: {reason}") from None


def _locate(source: str) -> Path:
    path = Path(source).expanduser() if source.startswith("~") else Path(source)
    looks_like_path = path.suffix in (".yaml", ".yml") or "/" in source or path.exists()
    shown = echo_path(source)
    if not looks_like_path:
        names = shipped_names()
        if source not in names:
            raise TinyError(
                f"unknown config {echo(source)}{did_you_mean(source, names)}: "
                f"shipped configs are {', '.join(names)}, or give a path to a .yaml file"
            )
        return shipped_dir() / f"{source}.yaml"
    if path.is_dir():
        raise TinyError(f"{shown}: is a directory, not a config file")
    if path.exists() and not path.is_file():
        raise TinyError(f"{shown}: not a regular file (a config is a .yaml file)")
    if not path.is_file():
        raise TinyError(f"{shown}: no such config file")
    return path


def parse_override(item: str) -> Override:
    """`train.lr=0.1` -> ("train.lr", 0.1, "--set train.lr=0.1"); values are YAML (scalars,
    or flow lists and mappings such as `[1, 2, 1]`), read with the config's bounds."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not is_key_path(key, f"--set {echo(item)}"):
        raise TinyError(f"--set {echo(item)}: expected key.path=value, e.g. --set train.lr=0.1")
    label = f"--set {item}"
    return key, yaml_value(raw, echo_label(label)), label


def apply_overrides(data: dict[str, Any], overrides: list[Override]) -> dict[str, Any]:
    for key, value, label in overrides:
        node = data
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise TinyError(f"{label}: '{'.'.join(parts[: i + 1])}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return data


def validate(
    data: Any, origin: str, overrides: list[Override] | None = None, text: str = ""
) -> ExperimentConfig:
    """Validate a raw mapping; errors name `origin` (file) or the override that caused them."""
    overrides = overrides or []
    if not isinstance(data, dict):
        raise TinyError(
            f"{echo_path(origin)}: expected a mapping of sections (task, model, init, train, ...)"
        )
    try:
        cfg = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        key, message = describe(errors[0])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise TinyError(
            f"{prefix_for(key, origin, overrides, text)}: {key}: {message}{more}"
        ) from None
    try:
        return resolve(cfg)
    except KeyProblem as exc:
        raise TinyError(
            f"{prefix_for(exc.key, origin, overrides, text)}: {exc.key}: {exc.message}"
        ) from None


def read(source: str) -> tuple[Path, Any, str]:
    """A config name or path -> (its path, the parsed YAML, the text), within the bounds:
    MAX_FILE_BYTES (checked before reading), then `parse.Loader`'s depth, size and keys."""
    path = locate(source)
    shown = echo_path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise TinyError(
                    f"{shown}: {size:,} bytes; a config is at most {MAX_FILE_BYTES:,} bytes"
                )
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:  # it grew while we looked
            raise TinyError(f"{shown}: more than {MAX_FILE_BYTES:,} bytes")
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TinyError(f"{shown}: cannot read: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise TinyError(f"{shown}: cannot read: {exc.strerror or type(exc).__name__}") from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}" if mark is not None else shown
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["?"])[0]
        prefix = "" if isinstance(exc, Refused) else "invalid YAML: "
        raise TinyError(f"{where}: {prefix}{problem}") from None
    if data is None:
        raise TinyError(f"{shown}: the file is empty")
    return path, data, text


def load(source: str, overrides: list[Override] | None = None) -> tuple[ExperimentConfig, Path]:
    """Read a shipped config name or a YAML path, apply overrides, validate."""
    path, data, text = read(source)
    return validated(path, data, text, overrides or []), path


def validated(path: Path, data: Any, text: str, overrides: list[Override]) -> ExperimentConfig:
    """A file's data (from `read`) with the overrides applied, validated and resolved."""
    if not isinstance(data, dict):
        return validate(data, str(path), overrides, text)
    changed = _task_change(data, overrides)
    data = apply_overrides(data, overrides)
    try:
        return validate(data, str(path), overrides, text)
    except TinyError as exc:
        if changed is None:
            raise
        label, old, new = changed
        raise TinyError(f"{label}: task changed from {old} to {new}; {exc}") from None


def _task_change(data: dict[str, Any], overrides: list[Override]) -> tuple[str, str, str] | None:
    """An override that changes `task.name` to another task: refused when the file's task
    keys do not apply to the new task; else (label, old, new) for later messages."""
    section = data.get("task")
    old = section.get("name") if isinstance(section, dict) else None
    new_name = [(v, label) for k, v, label in overrides if k == "task.name"]
    registry = tasks.registry()
    if not new_name or not isinstance(old, str) or old not in registry:
        return None
    new, label = new_name[-1]
    if not isinstance(new, str) or new not in registry or registry[new] is registry[old]:
        return None
    assert isinstance(section, dict)
    label = echo_label(label)
    fields = registry[new].model_fields
    stale = [f"task.{k}" for k in section if k not in fields]
    if stale:
        keys = ", ".join(echo_key(k) for k in stale[:6]) + (", ..." if len(stale) > 6 else "")
        verb = "does" if len(stale) == 1 else "do"
        raise TinyError(
            f"{label}: task changed from {old} to {new}; {keys} {verb} not apply to {new}"
        )
    return label, old, new
