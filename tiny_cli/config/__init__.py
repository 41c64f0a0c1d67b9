"""Experiment configs: YAML in, a typed and validated `ExperimentConfig` out.

Every mistake a user can make in a config or an override becomes one `TinyError` line naming
the file (and line, where YAML knows it) or the `--set` argument, and the dotted key.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, StrictInt, ValidationError

from tiny_cli import tasks
from tiny_cli.errors import TinyError, did_you_mean, echo, echo_key, echo_path
from tiny_cli.spec import activations, models
from tiny_cli.spec.models import Arch
from tiny_cli.spec.schema import FLOAT32_MAX, Section
from tiny_cli.spec.sections import (  # re-exported: the sections of a config
    INIT_MODES as INIT_MODES,
)
from tiny_cli.spec.sections import (
    MAX_EPOCHS as MAX_EPOCHS,
)
from tiny_cli.spec.sections import (
    InitConfig as InitConfig,
)
from tiny_cli.spec.sections import (
    LayerConfig as LayerConfig,
)
from tiny_cli.spec.sections import (
    LogConfig as LogConfig,
)
from tiny_cli.spec.sections import (
    ModelConfig as ModelConfig,
)
from tiny_cli.spec.sections import (
    TrainConfig as TrainConfig,
)
from tiny_cli.spec.sections import (
    architecture as architecture,
)
from tiny_cli.tasks import Task

# Bounds on reading a config, so that any file is refused or read in bounded time and memory.
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32  # nesting of YAML collections
MAX_NODES = 100_000  # YAML values, counted with every alias expanded (a "billion laughs")
INT64_MAX = 2**63 - 1
# Activations of one forward pass over a batch (samples x units), the training twin included:
# 2^31 floats are 8 GiB.
MAX_ACTIVATIONS = 1 << 31

if TYPE_CHECKING:
    TaskConfig = Task
else:  # one section per registered task (plugins included), told apart by `name`
    TaskConfig = Annotated[Union[tasks.classes()], Field(discriminator="name")]  # noqa: UP007


class ExperimentConfig(Section):
    task: TaskConfig
    model: ModelConfig = ModelConfig()
    init: InitConfig = InitConfig()
    train: TrainConfig
    seed: StrictInt = Field(0, ge=0, le=2**63 - 1)
    log: LogConfig = LogConfig()

    @property
    def arch(self) -> Arch:
        """The architecture of a resolved config."""
        return architecture(self.model, len(self.task.input_names()))

    @property
    def loss(self) -> str:
        return self.train.loss or self.task.default_loss


# --- locating and reading configs -------------------------------------------------------


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


class _Refused(yaml.MarkedYAMLError):
    """A YAML document beyond what a config may be: too deep, too big, a key given twice."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _Loader(yaml.SafeLoader):
    """PyYAML's SafeLoader with bounds, checked while composing (before anything is built):
    collections nest at most MAX_DEPTH deep; the document has at most MAX_NODES values with
    every alias expanded (aliases share one node, so a "billion laughs" file composes fast
    and is refused by the count); a mapping gives each key once."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._path: list[str] = []
        self._sizes: dict[int, int] = {}  # id(node) -> values under it, aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:  # its anchor is still open: `&a [*a]`
                raise _Refused("an alias refers to a collection that contains it", mark)
            return node
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", mark)
            composed: Any = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        node = composed
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        size = 1 + sum(self._sizes[id(c)] for c in children)
        if size > MAX_NODES:
            raise _Refused(
                f"more than {MAX_NODES:,} values once aliases are expanded", node.start_mark
            )
        self._sizes[id(node)] = size
        return node

    def compose_mapping_node(self, anchor: Any) -> Any:
        # PyYAML's, with duplicate keys refused and the dotted path kept for the message.
        start = self.get_event()
        tag = start.tag
        if tag is None or tag == "!":
            tag = self.resolve(yaml.MappingNode, None, start.implicit)
        node = yaml.MappingNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        seen: dict[tuple[str, str], int] = {}
        while not self.check_event(yaml.MappingEndEvent):
            key = self.compose_node(node, None)
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                ident = (key.tag, key.value)
                if ident in seen:
                    dotted = ".".join([*self._path, name])
                    raise _Refused(
                        f"duplicate key {echo_key(dotted)} (lines {seen[ident]} and {line})",
                        key.start_mark,
                    )
                seen[ident] = line
            self._path.append(name)
            try:
                value = self.compose_node(node, key)
            finally:
                self._path.pop()
            node.value.append((key, value))
        node.end_mark = self.get_event().end_mark
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # 2001-13-45, a 5,000-digit integer, ...
            value = echo(node.value) if isinstance(node, yaml.ScalarNode) else "value"
            raise _Refused(
                f"cannot read {value}: {echo(str(exc), 60)[1:-1]}", node.start_mark
            ) from None


def parse_yaml(text: str) -> Any:
    """YAML text -> plain data through `_Loader`; every failure is a `yaml.YAMLError`."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except RecursionError:  # not reached within MAX_DEPTH; kept as a guarantee
        raise _Refused("nested too deeply", None) from None
    finally:
        loader.dispose()


# (dotted key, value, how the user wrote it: "--set train.lr=0.1" or "--epochs 5")
Override = tuple[str, Any, str]


def parse_override(item: str) -> Override:
    """`train.lr=0.1` -> ("train.lr", 0.1, "--set train.lr=0.1"); values are YAML (scalars,
    or flow lists and mappings such as `[1, 2, 1]`), read with the config's bounds."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not key or not all(p.isidentifier() for p in parts):
        raise TinyError(f"--set {echo(item)}: expected key.path=value, e.g. --set train.lr=0.1")
    label = f"--set {item}"
    return key, _yaml_value(raw, _label(label)), label


def _yaml_value(raw: str, label: str) -> Any:
    """One value typed on the command line: YAML, or the text itself where it is not YAML."""
    if not raw.strip():
        return None
    try:
        return parse_yaml(raw)
    except _Refused as exc:
        raise TinyError(f"{label}: {exc.problem}") from None
    except yaml.YAMLError:
        return raw


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

    loader = _Loader(text)
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
        "log": LogConfig,
    }
    if prefix == "task":
        return sorted({k for m in tasks.classes() for k in m.model_fields})
    return list(section[prefix].model_fields) if prefix in section else []


def _describe(err: Any) -> tuple[str, str]:
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
        key, message = _describe(errors[0])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise TinyError(f"{_where(key, origin, overrides, text)}: {key}: {message}{more}") from None
    try:
        return resolve(cfg)
    except _KeyError as exc:
        raise TinyError(
            f"{_where(exc.key, origin, overrides, text)}: {exc.key}: {exc.message}"
        ) from None


def _where(key: str, origin: str, overrides: list[Override], text: str) -> str:
    for over_key, _, label in reversed(overrides):
        if key == over_key or key.startswith(over_key + ".") or over_key.startswith(key + "."):
            return _label(label)
    key = re.sub(r"\[\d+\]", "", key)  # `model.widths[0]`: the line of model.widths
    line = _key_lines(text).get(key) or _key_lines(text).get(key.rpartition(".")[0])
    return f"{echo_path(origin)}:{line}" if line else echo_path(origin)


def _label(label: str) -> str:
    """`--set key=value` as typed, its value cut short and escaped."""
    flag, _, rest = label.partition(" ")
    key, sep, value = rest.partition("=")
    if not sep:
        return f"{flag} {echo(rest)[1:-1]}" if rest else flag
    shown = echo(value, 60)[1:-1]
    return f"{flag} {echo_key(key)}={shown}"


def read(source: str) -> tuple[Path, Any, str]:
    """A config name or path -> (its path, the parsed YAML, the text), within the bounds:
    MAX_FILE_BYTES (checked before reading), then `_Loader`'s depth, size and keys."""
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
        prefix = "" if isinstance(exc, _Refused) else "invalid YAML: "
        raise TinyError(f"{where}: {prefix}{problem}") from None
    if data is None:
        raise TinyError(f"{shown}: the file is empty")
    return path, data, text


def load(source: str, overrides: list[Override] | None = None) -> tuple[ExperimentConfig, Path]:
    """Read a shipped config name or a YAML path, apply overrides, validate."""
    path, data, text = read(source)
    return _validated(path, data, text, overrides or []), path


def _validated(path: Path, data: Any, text: str, overrides: list[Override]) -> ExperimentConfig:
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
    label = _label(label)
    fields = registry[new].model_fields
    stale = [f"task.{k}" for k in section if k not in fields]
    if stale:
        keys = ", ".join(echo_key(k) for k in stale[:6]) + (", ..." if len(stale) > 6 else "")
        verb = "does" if len(stale) == 1 else "do"
        raise TinyError(
            f"{label}: task changed from {old} to {new}; {keys} {verb} not apply to {new}"
        )
    return label, old, new


# --- cross-field rules ------------------------------------------------------------------


class _KeyError(Exception):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


def _check_model(model: ModelConfig, task: Task) -> Arch:
    inputs = len(task.input_names())
    if model.layers is not None:
        if model.arch is not None:
            raise _KeyError("model.layers", "give model.arch or model.layers, not both")
        if model.widths is not None:
            raise _KeyError("model.widths", "only used by arch relu_chain, not with layers")
        if model.layers[-1].width != 1:
            raise _KeyError("model.layers", "the last layer is the read-out: its width must be 1")
        if model.skip_input and len(model.layers) < 2:
            raise _KeyError("model.skip_input", "needs a hidden layer before the read-out")
    else:
        if model.skip_input:
            raise _KeyError("model.skip_input", "only used with model.layers")
        if model.widths is not None and model.arch != "relu_chain":
            raise _KeyError("model.widths", f"only used by arch relu_chain, not {model.arch}")
        if model.arch == "relu_chain":
            assert model.widths is not None
            if model.widths[0] != inputs or model.widths[-1] != 1:
                raise _KeyError(
                    "model.widths",
                    f"must start with {inputs} (inputs of {task.name}) and end with 1",
                )
        elif model.arch == "min_model" and inputs != 2:
            raise _KeyError(
                "model.arch", f"min_model takes 2 inputs; task {task.name} has {inputs}"
            )
        elif model.arch == "sigmoid_neuron" and inputs != 1:
            raise _KeyError(
                "model.arch", f"sigmoid_neuron takes 1 input; task {task.name} has {inputs}"
            )
    arch = architecture(model, inputs)
    if arch.n_parameters > models.MAX_PARAMETERS:
        key = "model.layers" if model.layers is not None else "model.widths"
        raise _KeyError(
            key, f"{arch.n_parameters:,} parameters; at most {models.MAX_PARAMETERS:,} per net"
        )
    return arch


def _with_model_defaults(model: ModelConfig, task: Task) -> ModelConfig:
    """The task's default architecture where the config names none (or no widths)."""
    default = ModelConfig.model_validate(task.default_model())
    if model.arch is None and model.layers is None:
        if model.widths is not None and default.arch != "relu_chain":
            raise _KeyError("model.widths", "only used by arch relu_chain; set model.arch")
        return default.model_copy(update={"widths": model.widths or default.widths})
    if model.arch == "relu_chain" and model.widths is None:
        if default.arch != "relu_chain" or default.widths is None:
            raise _KeyError("model.widths", f"required for relu_chain on task {task.name}")
        return model.model_copy(update={"widths": default.widths})
    return model


def _check_numbers(data: Any, key: str = "") -> None:
    """Every number of a config fits where it goes: integers in int64 (seeds, counts), floats
    in float32 (weights, data), whatever the key's own bounds say."""
    if isinstance(data, dict):
        for k, v in data.items():
            _check_numbers(v, f"{key}.{k}" if key else str(k))
    elif isinstance(data, list | tuple):
        for v in data:
            _check_numbers(v, key)
    elif isinstance(data, bool):
        return
    elif isinstance(data, int) and abs(data) > INT64_MAX:
        raise _KeyError(echo_key(key), f"{echo(data, 30)} does not fit in 64 bits")
    elif isinstance(data, float) and not (math.isfinite(data) and abs(data) <= FLOAT32_MAX):
        raise _KeyError(echo_key(key), f"{data:g} does not fit in float32 (at most 3.4e38)")


def _check_training(cfg: ExperimentConfig, arch: Arch) -> None:
    """Values each within bounds whose combination cannot train at all."""
    t = cfg.train
    # Decoupled (adamw) or L2 (sgd) decay multiplies the weights by (1 - lr * wd) each step,
    # on top of the gradient step: beyond 2 (2 (1 + momentum) with sgd's momentum) that
    # factor's size exceeds 1 and the weights grow without bound, whatever the data.
    limit = {"adamw": 2.0, "sgd": 2.0 * (1 + t.momentum)}.get(t.optimizer)
    if limit is not None and t.weight_decay and t.lr * t.weight_decay > limit:
        raise _KeyError(
            "train.weight_decay",
            f"lr x weight_decay = {t.lr * t.weight_decay:g} is above {limit:g}: with "
            f"{t.optimizer} every step multiplies the weights by {1 - t.lr * t.weight_decay:g}",
        )
    batch = min(t.batch_size or cfg.task.size(), cfg.task.size())
    units = arch.inputs + sum(layer.width for layer in arch.layers)
    if 2 * batch * units > MAX_ACTIVATIONS:  # `tiny train` trains a twin of its seed
        fits = max(1, MAX_ACTIVATIONS // (2 * units))
        raise _KeyError(
            "train.batch_size",
            f"a batch of {batch:,} samples through {units:,} units needs "
            f"{2 * batch * units * 4 / 2**30:,.0f} GiB of activations; "
            f"set train.batch_size to at most {fits:,}",
        )


def _check_weights(cfg: ExperimentConfig, construction: Any) -> None:
    """A construction's weights with this config's values fit in float32 (lt: the bias is
    scale x threshold). Only hardwired configs get here, and their run needs torch next."""
    import torch

    for name, value in construction.weights().items():
        tensor = torch.as_tensor(value, dtype=torch.float32)
        if not bool(tensor.isfinite().all()):
            options = {
                f"init.{o}": getattr(cfg.init, o, "?") for o in cfg.task.construction_options
            }
            key = next(iter(options), "init.mode")
            given = "".join(f" {k} = {v:g} and" for k, v in options.items())
            raise _KeyError(
                key,
                f"{cfg.init.mode}: weight {name} of task {cfg.task.name}'s construction "
                f"overflows float32 with{given} this task section",
            )


def resolve(cfg: ExperimentConfig) -> ExperimentConfig:
    """Fill the task-dependent defaults (architecture, loss) and check the combinations."""
    _check_numbers(cfg.model_dump(mode="python"))
    task = cfg.task
    model = _with_model_defaults(cfg.model, task)
    arch = _check_model(model, task)

    loss = cfg.train.loss or task.default_loss
    if loss == "bce" and not activations.get(arch.layers[-1].activation).probability:
        raise _KeyError("train.loss", "bce needs outputs in (0, 1): a sigmoid read-out")

    if cfg.init.mode != "random":
        built = task.constructions(cfg.init)
        if not built:
            from tiny_cli.tasks import catalog

            having = ", ".join(catalog.with_construction())
            raise _KeyError(
                "init.mode",
                f"{cfg.init.mode}: task {task.name} has no construction (tasks with one: {having})",
            )
        matching = [c for c in built if c.arch == arch]
        if not matching:
            raise _KeyError(
                "init.mode",
                f"{cfg.init.mode} needs the architecture of {task.name}'s construction "
                f"({built[0].arch.describe()}); this config has {arch.describe()}",
            )
        _check_weights(cfg, matching[0])
    size = task.size()
    if cfg.train.batch_size is not None and cfg.train.batch_size > size:
        raise _KeyError(
            "train.batch_size",
            f"{cfg.train.batch_size} is larger than the data set ({size} samples)",
        )
    _check_training(cfg, arch)
    return cfg.model_copy(
        update={"model": model, "train": cfg.train.model_copy(update={"loss": loss})}
    )


def to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    return cfg.model_dump(mode="json")


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


def flat_keys() -> dict[str, str]:
    """Every dotted key any config can have (all tasks' keys under `task.`) -> its kind."""
    keys: dict[str, str] = {}
    for name, field in ExperimentConfig.model_fields.items():
        if name == "task":
            for task_cls in tasks.classes():
                for k, f in task_cls.model_fields.items():
                    keys.setdefault(f"task.{k}", _kind(f.annotation))
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            for k, f in field.annotation.model_fields.items():
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


# --- sweeps: seeds and grids ---------------------------------------------------------

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
        if not all(p.isidentifier() for p in key.split(".")):
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
        values = GridValues(_yaml_value(t, _label(f"--grid {key}={t}")) for t in typed)
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


@dataclass(frozen=True)
class GridPoint:
    values: dict[str, Any]  # grid key -> value at this point ({} without --grid)
    cfg: ExperimentConfig

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items()) or "base config"


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
        cfg = _validated(path, copy.deepcopy(data), text, overrides + extra)
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
