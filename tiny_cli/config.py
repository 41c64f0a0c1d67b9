"""Experiment configs: YAML in, a typed and validated `ExperimentConfig` out.

Every mistake a user can make in a config or an override becomes one `TinyError` line naming
the file (and line, where YAML knows it) or the `--set` argument, and the dotted key.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, StrictBool, StrictInt, ValidationError

from tiny_cli import models, tasks
from tiny_cli.errors import TinyError, did_you_mean
from tiny_cli.models import Arch
from tiny_cli.schema import Float, Section
from tiny_cli.tasks import Task

MAX_EPOCHS = 10_000_000
INIT_MODES = ("random", "hardwired", "hardwired+noise")

if TYPE_CHECKING:
    TaskConfig = Task
else:  # one section per registered task (plugins included), told apart by `name`
    TaskConfig = Annotated[Union[tasks.classes()], Field(discriminator="name")]  # noqa: UP007


class LayerConfig(Section):
    width: StrictInt = Field(ge=1, le=models.MAX_WIDTH)
    activation: models.Activation


class ModelConfig(Section):
    # A preset (the article's nets) or a list of layers; neither: the task's default.
    arch: Literal["sigmoid_neuron", "min_model", "relu_chain"] | None = None
    # relu_chain only: layer widths, input first. Default for is_even: the article's
    # [1, 2, ..., 2, 1] with bits + 1 two-neuron layers.
    widths: list[Annotated[StrictInt, Field(ge=1, le=models.MAX_WIDTH)]] | None = Field(
        None, min_length=2, max_length=models.MAX_LAYERS + 1
    )
    layers: list[LayerConfig] | None = Field(None, min_length=1, max_length=models.MAX_LAYERS)
    skip_input: StrictBool = False  # layers only: the last layer also reads the inputs


class InitConfig(Section):
    mode: Literal["random", "hardwired", "hardwired+noise"] = "random"
    noise: Float = Field(0.1, ge=0, le=1e6, description="std of Gaussian noise for hardwired+noise")
    scale: Float = Field(1.0, gt=0, le=1e6, description="lt: Sigmoid(scale * (t - x))")


class TrainConfig(Section):
    epochs: StrictInt = Field(ge=0, le=MAX_EPOCHS)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: Float = Field(0.01, gt=0, le=100)
    momentum: Float = Field(0.0, ge=0, lt=1)
    weight_decay: Float = Field(0.0, ge=0, le=1e6)
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
        return sorted({k for m in tasks.classes() for k in m.model_fields})
    return list(section[prefix].model_fields) if prefix in section else []


def _describe(err: Any) -> tuple[str, str]:
    """A pydantic error -> (dotted key, message in plain words)."""
    loc = [str(p) for p in err["loc"]]
    if len(loc) > 1 and loc[0] == "task" and loc[1] in tasks.registry():
        del loc[1]  # the discriminated union's tag, not a key the user wrote
    key = ".".join(loc) or "(top level)"
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        parent = ".".join(loc[:-1])
        return key, f"unknown key{did_you_mean(loc[-1], _section_keys(parent))}"
    if kind == "union_tag_invalid":
        tag = str(err["ctx"]["tag"])
        hint = did_you_mean(tag, tasks.registry())
        names = ", ".join(tasks.names())
        return f"{key}.name", f"unknown task '{tag}'{hint}; tasks are {names} (see tiny tasks)"
    if kind == "union_tag_not_found":
        return f"{key}.name", f"missing; tasks are {', '.join(tasks.names())}"
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


def architecture(model: ModelConfig, inputs: int) -> Arch:
    """The architecture a resolved `model:` section describes, for `inputs` inputs."""
    if model.layers is not None:
        spec = tuple(models.Layer(la.width, la.activation) for la in model.layers)
        return Arch(inputs, spec, skip_input=model.skip_input)
    assert model.arch is not None, "resolve() fills model.arch or model.layers"
    return models.preset(model.arch, model.widths)


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


def resolve(cfg: ExperimentConfig) -> ExperimentConfig:
    """Fill the task-dependent defaults (architecture, loss) and check the combinations."""
    task = cfg.task
    model = _with_model_defaults(cfg.model, task)
    arch = _check_model(model, task)

    loss = cfg.train.loss or task.default_loss
    if loss == "bce" and arch.layers[-1].activation != "sigmoid":
        raise _KeyError("train.loss", "bce needs outputs in (0, 1): a sigmoid read-out")

    if cfg.init.mode != "random":
        built = task.constructions(cfg.init)
        if not built:
            from tiny_cli import catalog

            having = ", ".join(catalog.with_construction())
            raise _KeyError(
                "init.mode",
                f"{cfg.init.mode}: task {task.name} has no construction (tasks with one: {having})",
            )
        if not any(c.arch == arch for c in built):
            raise _KeyError(
                "init.mode",
                f"{cfg.init.mode} needs the architecture of {task.name}'s construction "
                f"({built[0].arch.describe()}); this config has {arch.describe()}",
            )
    size = task.size()
    if cfg.train.batch_size is not None and cfg.train.batch_size > size:
        raise _KeyError(
            "train.batch_size",
            f"{cfg.train.batch_size} is larger than the data set ({size} samples)",
        )
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


GridAxis = tuple[str, list[Any]]


def parse_grid(items: Sequence[str]) -> list[GridAxis]:
    """`train.lr=0.01,0.03` -> ("train.lr", [0.01, 0.03]); each value a YAML scalar."""
    axes: list[GridAxis] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise TinyError(f"--grid {item!r}: expected key.path=v1,v2,..., e.g. train.lr=0.01,0.1")
        if key == "seed":
            raise TinyError(f"--grid {item}: seed: sweep seeds with --seeds, not --grid")
        if any(key == k for k, _ in axes):
            raise TinyError(f"--grid {item}: {key}: given twice; list all its values in one --grid")
        values = [parse_override(f"{key}={v}")[1] for v in raw.split(",")]
        if len(set(map(repr, values))) != len(values):
            raise TinyError(f"--grid {item}: {key}: a value is repeated")
        axes.append((key, values))
    return axes


@dataclass(frozen=True)
class GridPoint:
    values: dict[str, Any]  # grid key -> value at this point ({} without --grid)
    cfg: ExperimentConfig

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items()) or "base config"


def grid_points(source: str, overrides: list[Override], axes: list[GridAxis]) -> list[GridPoint]:
    """Every combination of the grid's values, each validated through config.load."""
    points = []
    for combo in itertools.product(*(values for _, values in axes)):
        values = {key: v for (key, _), v in zip(axes, combo, strict=True)}
        extra = [(k, v, f"--grid {k}={v}") for k, v in values.items()]
        cfg, _ = load(source, overrides + extra)
        points.append(GridPoint(values, cfg))
    return points
