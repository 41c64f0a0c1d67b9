"""Sweeps: `--seeds`, `--grid` and `--threads` parsed and bounded; the grid's points as configs.

Bounds are checked before anything is built: seeds, values per key, points, and points x
seeds. Errors name the argument as typed (`--grid train.lr=...`).
"""

from __future__ import annotations

import copy
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from tiny_cli.config.load import read, validated
from tiny_cli.config.messages import echo_label
from tiny_cli.config.parse import Override, is_key_path, yaml_value
from tiny_cli.config.schema import ExperimentConfig
from tiny_cli.errors import TinyError, echo

MAX_SEEDS = 1_000_000


def parse_seeds(spec: str) -> range:
    """`N` -> seeds 0..N-1; `A-B` -> seeds A..B inclusive. At most MAX_SEEDS of them."""
    text = spec.strip()
    first, sep, last = text.partition("-")
    try:
        if sep:
            lo, hi = int(first), int(last)
        else:
            lo, hi = 0, int(text) - 1
    except ValueError:
        raise TinyError(
            f"--seeds {spec}: expected a count N (seeds 0..N-1) or a range A-B, e.g. 0-999"
        ) from None
    if not sep and hi < 0:
        raise TinyError(f"--seeds {spec}: the count must be at least 1")
    if sep and lo > hi:
        raise TinyError(f"--seeds {spec}: the range is empty ({lo} > {hi})")
    if hi - lo + 1 > MAX_SEEDS:
        raise TinyError(f"--seeds {spec}: {hi - lo + 1} seeds; at most {MAX_SEEDS:,} per sweep")
    if hi > 2**63 - 1:
        raise TinyError(f"--seeds {spec}: seeds must be below 2^63")
    return range(lo, hi + 1)


MAX_GRID_VALUES = 1_000  # values of one --grid key
MAX_GRID_POINTS = 10_000  # combinations of all --grid keys
MAX_SEED_RUNS = 10_000_000  # grid points x seeds in one sweep
MAX_THREADS_PER_CPU = 4

GridAxis = tuple[str, list[Any]]


class GridValues(list[Any]):
    """An axis's values, parsed, with the text of each as typed (for messages and labels)."""

    typed: list[str]


def _split_grid(raw: str) -> list[str]:
    """`0.01,0.1` -> two values; with a `[` or `{` in it, values are YAML flow lists or
    mappings separated by `;` outside brackets and quotes: `[1,2,1];[1,4,1]`."""
    if "[" not in raw and "{" not in raw:
        return raw.split(",")
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(raw):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth = max(0, depth - 1)
        elif ch == ";" and depth == 0:
            parts.append(raw[start:i])
            start = i + 1
    parts.append(raw[start:])
    return parts


def parse_grid(items: Sequence[str]) -> list[GridAxis]:
    """`train.lr=0.01,0.03` -> ("train.lr", [0.01, 0.03]); each value is YAML, values are
    separated by `,`, or by `;` when a value is a list or mapping (`model.widths=[1,2,1];[1,4,1]`).
    Errors name `--grid` and the argument as typed."""
    axes: list[GridAxis] = []
    points = 1
    for item in items:
        label = f"--grid {echo(item)[1:-1]}"
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise TinyError(f"{label}: expected key.path=v1,v2,..., e.g. train.lr=0.01,0.1")
        if not is_key_path(key, label):
            raise TinyError(f"{label}: {echo(key)} is not a key.path such as train.lr")
        if key == "seed":
            raise TinyError(f"{label}: seed: sweep seeds with --seeds, not --grid")
        if any(key == k for k, _ in axes):
            raise TinyError(f"{label}: {key}: given twice; list all its values in one --grid")
        if raw.count(",") + raw.count(";") >= MAX_GRID_VALUES:
            raise TinyError(f"{label}: more than {MAX_GRID_VALUES:,} values for {key}")
        typed = [t.strip() for t in _split_grid(raw)]
        if len(typed) > MAX_GRID_VALUES:
            raise TinyError(f"{label}: more than {MAX_GRID_VALUES:,} values for {key}")
        if any(not t for t in typed):
            raise TinyError(f"{label}: {key}: an empty value (values are separated by , or ;)")
        values = GridValues(yaml_value(t, echo_label(f"--grid {key}={t}")) for t in typed)
        values.typed = typed
        for i, v in enumerate(values):
            for j in range(i):
                if type(values[j]) is type(v) and values[j] == v:
                    raise TinyError(
                        f"{label}: {key}: a value is repeated "
                        f"({echo(typed[j], 30)[1:-1]} and {echo(typed[i], 30)[1:-1]})"
                    )
        points *= len(values)
        if points > MAX_GRID_POINTS:
            raise TinyError(
                f"{label}: the grid has more than {MAX_GRID_POINTS:,} points; sweep fewer values"
            )
        axes.append((key, values))
    return axes


def check_sweep_size(axes: list[GridAxis], seeds: range, grid_text: Sequence[str]) -> None:
    """Grid points x seeds within MAX_SEED_RUNS, before anything is built."""
    points = math.prod(len(values) for _, values in axes)
    if points * len(seeds) > MAX_SEED_RUNS:
        grid = " ".join(f"--grid {echo(g, 40)[1:-1]}" for g in grid_text[:3])
        raise TinyError(
            f"{grid} --seeds {len(seeds):,}: {points:,} grid points x {len(seeds):,} seeds "
            f"= {points * len(seeds):,} seed-runs; at most {MAX_SEED_RUNS:,} per sweep"
        )


def check_threads(threads: int) -> int:
    """`--threads`: 1 up to MAX_THREADS_PER_CPU per CPU of this machine."""
    most = MAX_THREADS_PER_CPU * (os.cpu_count() or 1)
    if not 1 <= threads <= most:
        raise TinyError(f"--threads {threads}: give 1 to {most} ({os.cpu_count()} CPUs here)")
    return threads


def words(value: Any) -> str:
    """A grid value as a person reads it (a label, a legend): a list of layers as
    `8 relu -> 1 identity`, other lists and mappings in YAML's flow style (`[1, 2, 1]`,
    `{width: 2}`), null, true and false as YAML writes them; never a Python repr."""
    if isinstance(value, list) and value and all(_is_layer(v) for v in value):
        return " -> ".join(f"{v['width']} {v['activation']}" for v in value)
    if value is None or isinstance(value, bool | list | dict):
        text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False)
        return text.strip().removesuffix("...").strip()
    return str(value)


def grid_words(grid: Mapping[str, Any]) -> str:
    """A grid point in words (`model.layers=8 relu -> 1 identity train.lr=0.01`); "" for
    a sweep without a grid."""
    return " ".join(f"{k}={words(v)}" for k, v in grid.items())


def axis_words(values: Sequence[Any]) -> str:
    """A grid key's values in words, separated as `--grid` takes them: `0.01,0.1`, and
    `;` between lists or mappings (`2 relu -> 1 identity; 8 relu -> 1 identity`)."""
    nested = any(isinstance(v, list | dict) for v in values)
    return ("; " if nested else ",").join(words(v) for v in values)


def _is_layer(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"width", "activation"}


@dataclass(frozen=True)
class GridPoint:
    values: dict[str, Any]  # grid key -> value at this point ({} without --grid)
    cfg: ExperimentConfig

    @property
    def label(self) -> str:
        return grid_words(self.values) or "base config"


def grid_points(source: str, overrides: list[Override], axes: list[GridAxis]) -> list[GridPoint]:
    """Every combination of the grid's values, each validated as `load` would (the file is
    read once). Two values of a key that validate to the same config are refused."""
    path, data, text = read(source)
    points: list[GridPoint] = []
    seen: dict[str, tuple[int, ...]] = {}
    for combo in itertools.product(*(range(len(values)) for _, values in axes)):
        values = {key: vals[i] for (key, vals), i in zip(axes, combo, strict=True)}
        extra = [
            (key, vals[i], f"--grid {key}={_typed(vals, i)}")
            for (key, vals), i in zip(axes, combo, strict=True)
        ]
        cfg = validated(path, copy.deepcopy(data), text, overrides + extra)
        twin = seen.setdefault(cfg.model_dump_json(), combo)
        if twin != combo:
            (key, vals), i, j = next(
                (axis, i, j) for axis, i, j in zip(axes, twin, combo, strict=True) if i != j
            )
            first, second = (echo(_typed(vals, k), 30)[1:-1] for k in (i, j))
            raise TinyError(f"--grid {key}=...: {first} and {second} give the same config")
        points.append(GridPoint(values, cfg))
    return points


def _typed(values: list[Any], i: int) -> str:
    typed = getattr(values, "typed", None)
    return typed[i] if typed is not None else str(values[i])
