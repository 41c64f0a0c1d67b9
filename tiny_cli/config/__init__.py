"""Experiment configs: YAML in, a typed and validated `ExperimentConfig` out.

Every mistake a user can make in a config or an override becomes one `TinyError` line naming
the file (and line, where YAML knows it) or the `--set` argument, and the dotted key.

One job per module (each imports the ones it needs directly, never this package):

    schema.py    ExperimentConfig: the spec's sections with the task's (TaskConfig)
    parse.py     YAML text -> plain data, within bounds (files, --set and --grid values)
    messages.py  a pydantic error or a wrong key -> one line naming where it was given
    resolve.py   the task-dependent defaults filled in, the combinations checked
    load.py      locate a config, read it, apply overrides, validate: `load`
    flat.py      a resolved config as a dict, dotted keys, YAML text
    grid.py      --seeds, --grid, --threads; the grid's points as configs

Callers use the names below as `config.NAME`.
"""

from __future__ import annotations

from tiny_cli.config.flat import dump_yaml, fingerprint, flat_keys, flatten, to_dict
from tiny_cli.config.grid import (
    MAX_GRID_POINTS,
    MAX_GRID_VALUES,
    MAX_SEED_RUNS,
    MAX_SEEDS,
    MAX_THREADS_PER_CPU,
    GridAxis,
    GridPoint,
    GridValues,
    check_sweep_size,
    check_threads,
    grid_points,
    parse_grid,
    parse_seeds,
)
from tiny_cli.config.load import (
    MAX_FILE_BYTES,
    apply_overrides,
    load,
    locate,
    parse_override,
    read,
    shipped_dir,
    shipped_names,
    validate,
)
from tiny_cli.config.parse import MAX_DEPTH, MAX_NODES, Override, parse_yaml
from tiny_cli.config.resolve import INT64_MAX, MAX_ACTIVATIONS, resolve
from tiny_cli.config.schema import ExperimentConfig, TaskConfig
from tiny_cli.spec.sections import (  # the sections of a config
    INIT_MODES,
    MAX_EPOCHS,
    InitConfig,
    LayerConfig,
    LogConfig,
    ModelConfig,
    TrainConfig,
    architecture,
)

__all__ = [
    "INIT_MODES",
    "INT64_MAX",
    "MAX_ACTIVATIONS",
    "MAX_DEPTH",
    "MAX_EPOCHS",
    "MAX_FILE_BYTES",
    "MAX_GRID_POINTS",
    "MAX_GRID_VALUES",
    "MAX_NODES",
    "MAX_SEEDS",
    "MAX_SEED_RUNS",
    "MAX_THREADS_PER_CPU",
    "ExperimentConfig",
    "GridAxis",
    "GridPoint",
    "GridValues",
    "InitConfig",
    "LayerConfig",
    "LogConfig",
    "ModelConfig",
    "Override",
    "TaskConfig",
    "TrainConfig",
    "apply_overrides",
    "architecture",
    "check_sweep_size",
    "check_threads",
    "dump_yaml",
    "fingerprint",
    "flat_keys",
    "flatten",
    "grid_points",
    "load",
    "locate",
    "parse_grid",
    "parse_override",
    "parse_seeds",
    "parse_yaml",
    "read",
    "resolve",
    "shipped_dir",
    "shipped_names",
    "to_dict",
    "validate",
]
