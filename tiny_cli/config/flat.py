"""A resolved config as plain data: a dict, dotted keys (TensorBoard's hparams), YAML text,
a fingerprint."""

from __future__ import annotations

import hashlib
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from tiny_cli import tasks
from tiny_cli.config.schema import ExperimentConfig


def to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config as plain data; a config without a `data:` section dumps as before there
    was one (so its fingerprint, what a resume checks, stays the same)."""
    data = cfg.model_dump(mode="json")
    if data.get("data") is None:
        data.pop("data", None)
    return data


def _kind(annotation: Any) -> str:
    """A config field's kind for TensorBoard's HPARAMS table: number, bool or string."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if args and get_origin(annotation) in (Union, UnionType):
        annotation = args[0] if len(args) == 1 else str
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if annotation is bool:
        return "bool"
    return "number" if annotation in (int, float) else "string"


def _section(annotation: Any) -> type[BaseModel] | None:
    """The section class of a field (`DataConfig | None` included), or None."""
    for a in (annotation, *get_args(annotation)):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def flat_keys() -> dict[str, str]:
    """Every dotted key any config can have (all tasks' keys under `task.`) -> its kind."""
    keys: dict[str, str] = {}
    for name, field in ExperimentConfig.model_fields.items():
        if name == "task":
            for task_cls in tasks.classes():
                for k, f in task_cls.model_fields.items():
                    keys.setdefault(f"task.{k}", _kind(f.annotation))
        elif (section := _section(field.annotation)) is not None:
            for k, f in section.model_fields.items():
                keys[f"{name}.{k}"] = _kind(f.annotation)
        else:
            keys[name] = _kind(field.annotation)
    return keys


def flatten(cfg: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as dotted keys -> plain values: `{"train.lr": 0.01, ...}`."""
    flat: dict[str, Any] = {}
    for section, value in to_dict(cfg).items():
        if isinstance(value, dict):
            flat.update({f"{section}.{k}": v for k, v in value.items()})
        else:
            flat[section] = value
    return flat


def dump_yaml(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def fingerprint(cfg: ExperimentConfig) -> str:
    """A hash of the resolved config (its YAML text): what a checkpoint or a sweep's chunk
    records of the config it was trained with, so a resume can tell that it changed."""
    return hashlib.sha256(dump_yaml(cfg).encode()).hexdigest()[:16]
