"""Experiment configs: YAML in, a typed and validated `ExperimentConfig` out.

Every mistake a user can make in a config or an override becomes one `TinyError` line naming
the file (and line, where YAML knows it) or the `--set` argument, and the dotted key.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    model_validator,
)

from tiny_cli.errors import TinyError, did_you_mean

MAX_EPOCHS = 10_000_000
MAX_BITS = 24  # float32 holds every integer up to 2^24 exactly
ARCHS = ("sigmoid_neuron", "min_model", "relu_chain")
INIT_MODES = ("random", "hardwired", "hardwired+noise")
TASK_NAMES = ("lt10", "min", "is_even")


def _number(value: Any) -> Any:
    # YAML 1.1 reads `1e-2` as a string; accept it, but never a boolean as a number.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return value


Float = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Bound = Annotated[StrictInt, Field(ge=-(10**6), le=10**6)]


class _IntegerRange(Section):
    """A task on the integers [low, high); subclasses set the name and the defaults."""

    name: str  # first, so stored configs read name first
    low: Bound
    high: Bound  # exclusive, as in range(low, high)

    @model_validator(mode="after")
    def _nonempty(self) -> _IntegerRange:
        if self.high <= self.low:
            raise ValueError(f"empty domain: high ({self.high}) must be above low ({self.low})")
        return self


class Lt10Task(_IntegerRange):
    name: Literal["lt10"]
    threshold: Float = 10.0
    low: Bound = -20
    high: Bound = 40


class MinTask(_IntegerRange):
    name: Literal["min"]
    low: Bound = -50
    high: Bound = 50
    n_samples: StrictInt = Field(1000, ge=1, le=10**7)
    data_seed: StrictInt = Field(0, ge=0)


class IsEvenTask(Section):
    name: Literal["is_even"]
    bits: StrictInt = Field(4, ge=1, le=MAX_BITS)


TaskConfig = Annotated[Lt10Task | MinTask | IsEvenTask, Field(discriminator="name")]


class ModelConfig(Section):
    arch: Literal["sigmoid_neuron", "min_model", "relu_chain"] | None = None
    # relu_chain only: layer widths, input first. Default for is_even: the article's
    # [1, 2, ..., 2, 1] with bits + 1 two-neuron layers.
    widths: list[Annotated[StrictInt, Field(ge=1, le=4096)]] | None = Field(None, min_length=2)


class InitConfig(Section):
    mode: Literal["random", "hardwired", "hardwired+noise"] = "random"
    noise: Float = Field(0.1, ge=0, description="std of Gaussian noise for hardwired+noise")
    scale: Float = Field(1.0, gt=0, le=1e6, description="lt10: Sigmoid(scale * (t - x))")


class TrainConfig(Section):
    epochs: StrictInt = Field(ge=0, le=MAX_EPOCHS)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: Float = Field(0.01, gt=0, le=100)
    momentum: Float = Field(0.0, ge=0, lt=1)
    weight_decay: Float = Field(0.0, ge=0)
    loss: Literal["mse", "bce", "l1"] | None = None  # None: the task's default
    batch_size: StrictInt | None = Field(None, ge=1)  # None: full batch


class LogConfig(Section):
    every: StrictInt = Field(1, ge=1, description="epochs between TensorBoard points")
    # Prediction pictures: at the start, every `images_every` epochs and at the end; 0 = start
    # and end only; null = eight steps over the run (a picture costs tens of milliseconds, an
    # epoch well under one, so they are kept few).
    images_every: StrictInt | None = Field(None, ge=0, le=MAX_EPOCHS)

    def image_interval(self, epochs: int) -> int:
        """Epochs between pictures (0 = none between the first and the last)."""
        if self.images_every is None:
            return -(-epochs // 8) if epochs >= 8 else 0
        return self.images_every


class ExperimentConfig(Section):
    task: TaskConfig
    model: ModelConfig = ModelConfig()
    init: InitConfig = InitConfig()
    train: TrainConfig
    seed: StrictInt = Field(0, ge=0, le=2**63 - 1)
    log: LogConfig = LogConfig()


# --- locating and reading configs -------------------------------------------------------


def shipped_dir() -> Path:
    """The shipped configs: inside the installed package, or the repo's configs/ (editable)."""
    here = Path(__file__).resolve().parent
    installed = here / "configs"
    return installed if installed.is_dir() else here.parent / "configs"


def shipped_names() -> list[str]:
    return sorted(p.stem for p in shipped_dir().glob("*.yaml"))


def locate(source: str) -> Path:
    """A config name (`lt10`) or a path to a YAML file -> the file's path."""
    path = Path(source)
    looks_like_path = path.suffix in (".yaml", ".yml") or "/" in source or path.exists()
    if not looks_like_path:
        names = shipped_names()
        if source not in names:
            raise TinyError(
                f"unknown config '{source}'{did_you_mean(source, names)}: "
                f"shipped configs are {', '.join(names)}, or give a path to a .yaml file"
            )
        return shipped_dir() / f"{source}.yaml"
    if path.is_dir():
        raise TinyError(f"{source}: is a directory, not a config file")
    if not path.is_file():
        raise TinyError(f"{source}: no such config file")
    return path


# (dotted key, value, how the user wrote it: "--set train.lr=0.1" or "--epochs 5")
Override = tuple[str, Any, str]


def parse_override(item: str) -> Override:
    """`train.lr=0.1` -> ("train.lr", 0.1, "--set train.lr=0.1"); values are YAML scalars."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not key or not all(p.isidentifier() for p in parts):
        raise TinyError(f"--set {item!r}: expected key.path=value, e.g. --set train.lr=0.1")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, dict | list) and parts != ["model", "widths"]:
        raise TinyError(f"--set {item!r}: value must be a single value, not a mapping or list")
    return key, value, f"--set {item}"


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


def _key_lines(text: str) -> dict[str, int]:
    """Dotted key -> 1-based line number in the YAML text, for error messages."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = f"{prefix}{key_node.value}"
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key + ".")

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
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
        return sorted({k for m in (Lt10Task, MinTask, IsEvenTask) for k in m.model_fields})
    return list(section[prefix].model_fields) if prefix in section else []


def _describe(err: Any) -> tuple[str, str]:
    """A pydantic error -> (dotted key, message in plain words)."""
    loc = [str(p) for p in err["loc"]]
    if len(loc) > 1 and loc[0] == "task" and loc[1] in TASK_NAMES:
        del loc[1]  # the discriminated union's tag, not a key the user wrote
    key = ".".join(loc) or "(top level)"
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        parent = ".".join(loc[:-1])
        return key, f"unknown key{did_you_mean(loc[-1], _section_keys(parent))}"
    if kind == "union_tag_invalid":
        tag = str(err["ctx"]["tag"])
        hint = did_you_mean(tag, TASK_NAMES)
        return f"{key}.name", f"unknown task '{tag}'{hint}; tasks are {', '.join(TASK_NAMES)}"
    if kind == "union_tag_not_found":
        return f"{key}.name", f"missing; tasks are {', '.join(TASK_NAMES)}"
    if kind == "missing":
        return key, "required key is missing"
    if kind == "literal_error" and isinstance(err.get("input"), str):
        choices = err["ctx"]["expected"].replace("'", "").replace(" or ", ", ").split(", ")
        given = err["input"]
        return (
            key,
            f"unknown value '{given}'{did_you_mean(given, choices)}; {msg[0].lower()}{msg[1:]}",
        )
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    return key, f"{msg[0].lower()}{msg[1:]}" + (
        f" (got {err['input']!r})" if kind not in ("model_type", "value_error") else ""
    )


def validate(
    data: Any, origin: str, overrides: list[Override] | None = None, text: str = ""
) -> ExperimentConfig:
    """Validate a raw mapping; errors name `origin` (file) or the override that caused them."""
    overrides = overrides or []
    if not isinstance(data, dict):
        raise TinyError(f"{origin}: expected a mapping of sections (task, model, init, train, ...)")
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
            return label
    line = _key_lines(text).get(key) or _key_lines(text).get(key.rpartition(".")[0])
    return f"{origin}:{line}" if line else origin


def load(source: str, overrides: list[Override] | None = None) -> tuple[ExperimentConfig, Path]:
    """Read a shipped config name or a YAML path, apply overrides, validate."""
    path = locate(source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TinyError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TinyError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        raise TinyError(f"{path}: the file is empty")
    overrides = overrides or []
    if isinstance(data, dict):
        data = apply_overrides(data, overrides)
    return validate(data, str(path), overrides, text), path


# --- cross-field rules ------------------------------------------------------------------


class _KeyError(Exception):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


def is_even_widths(bits: int) -> list[int]:
    """The article's chain for 2^bits integers: bits + 1 two-neuron |x - c| layers, then 1."""
    return [1] + [2] * (bits + 1) + [1]


def resolve(cfg: ExperimentConfig) -> ExperimentConfig:
    """Fill the task-dependent defaults (arch, widths, loss) and check the combinations."""
    from tiny_cli.tasks import TASKS

    task = TASKS[cfg.task.name]
    arch = cfg.model.arch or task.default_arch
    widths = cfg.model.widths
    if widths is not None and arch != "relu_chain":
        raise _KeyError("model.widths", f"only used by arch relu_chain, not {arch}")
    if arch == "relu_chain":
        if widths is None:
            if not isinstance(cfg.task, IsEvenTask):
                raise _KeyError("model.widths", f"required for relu_chain on task {task.name}")
            widths = is_even_widths(cfg.task.bits)
        if widths[0] != task.in_features or widths[-1] != 1:
            raise _KeyError(
                "model.widths",
                f"must start with {task.in_features} (inputs of {task.name}) and end with 1",
            )
    elif arch == "min_model" and task.in_features != 2:
        raise _KeyError("model.arch", f"min_model takes 2 inputs; task {task.name} has 1")
    elif arch == "sigmoid_neuron" and task.in_features != 1:
        raise _KeyError("model.arch", f"sigmoid_neuron takes 1 input; task {task.name} has 2")

    loss = cfg.train.loss or task.default_loss
    if loss == "bce" and arch != "sigmoid_neuron":
        raise _KeyError("train.loss", f"bce needs outputs in (0, 1); {arch} is not a sigmoid")

    if cfg.init.mode != "random":
        canonical = arch == task.default_arch and (
            not isinstance(cfg.task, IsEvenTask) or widths == is_even_widths(cfg.task.bits)
        )
        if not canonical:
            raise _KeyError(
                "init.mode",
                f"{cfg.init.mode} needs the article's architecture for {task.name} "
                f"({task.default_arch} with default widths)",
            )
    if cfg.train.batch_size is not None and cfg.train.batch_size > _n_samples(cfg):
        raise _KeyError(
            "train.batch_size",
            f"{cfg.train.batch_size} is larger than the data set ({_n_samples(cfg)} samples)",
        )
    return cfg.model_copy(
        update={
            "model": cfg.model.model_copy(update={"arch": arch, "widths": widths}),
            "train": cfg.train.model_copy(update={"loss": loss}),
        }
    )


def _n_samples(cfg: ExperimentConfig) -> int:
    t = cfg.task
    if isinstance(t, IsEvenTask):
        return int(2**t.bits)
    if isinstance(t, MinTask):
        return t.n_samples
    return t.high - t.low


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
            for task_cls in (Lt10Task, MinTask, IsEvenTask):
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
