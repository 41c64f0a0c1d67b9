"""Resolution: a validated config's task-dependent defaults filled in, its combinations checked.

Each value of a config may be within its own bounds while the combination cannot run: an
architecture the task's inputs do not fit, a loss the read-out cannot give, a construction
for another net, weights or activations beyond float32 or memory. Each such rule raises
`KeyProblem` naming the key to change; `load.validate` turns it into one line.
"""

from __future__ import annotations

import math
from typing import Any

from tiny_cli.config.schema import ExperimentConfig
from tiny_cli.errors import echo, echo_key
from tiny_cli.spec import activations, models
from tiny_cli.spec.models import Arch
from tiny_cli.spec.schema import FLOAT32_MAX
from tiny_cli.spec.sections import HARDWIRED, DataConfig, ModelConfig, architecture
from tiny_cli.tasks import Task
from tiny_cli.tasks.base import MAX_ONE_HOT_UNITS

INT64_MAX = 2**63 - 1
# Activations of one forward pass over a batch (samples x units), twice (a lone seed's wide
# products run on two copies of it, `backprop.per_seed`):
# 2^31 floats are 8 GiB.
MAX_ACTIVATIONS = 1 << 31


class KeyProblem(Exception):
    """A rule of resolution broken: the dotted key to change, and why."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


def _check_encoding(task: Task) -> None:
    if task.encoding != "one_hot":
        return
    if task.integer_ranges() is None:
        raise KeyProblem(
            "task.encoding",
            f"one_hot: task {task.name}'s inputs are not integers in a range (use number)",
        )
    if task.net_inputs() > MAX_ONE_HOT_UNITS:
        raise KeyProblem(
            "task.encoding",
            f"one_hot: task {task.name} would feed {task.net_inputs():,} input units, more "
            f"than {MAX_ONE_HOT_UNITS:,}",
        )


def _check_model(model: ModelConfig, task: Task) -> Arch:
    _check_encoding(task)
    inputs = task.net_inputs()
    outputs = task.outputs()
    if model.layers is not None:
        if model.arch is not None:
            raise KeyProblem("model.layers", "give model.arch or model.layers, not both")
        if model.widths is not None:
            raise KeyProblem("model.widths", "only used by arch relu_chain, not with layers")
        width = model.layers[-1].width
        if outputs > 1 and width < outputs:
            raise KeyProblem(
                "model.layers",
                f"more classes than the net's outputs: task {task.name} has {outputs} classes, "
                f"the read-out (the last layer) {width} unit{'s' if width > 1 else ''}",
            )
        if width != outputs:
            raise KeyProblem(
                "model.layers",
                f"the last layer is the read-out: its width must be {outputs}"
                + (f" (the classes of {task.name})" if outputs > 1 else ""),
            )
        if model.skip_input and len(model.layers) < 2:
            raise KeyProblem("model.skip_input", "needs a hidden layer before the read-out")
    else:
        if model.skip_input:
            raise KeyProblem("model.skip_input", "only used with model.layers")
        if model.widths is not None and model.arch != "relu_chain":
            raise KeyProblem("model.widths", f"only used by arch relu_chain, not {model.arch}")
        if model.arch == "relu_chain":
            assert model.widths is not None
            if model.widths[0] != inputs or model.widths[-1] != outputs:
                raise KeyProblem(
                    "model.widths",
                    f"must start with {inputs} (inputs of {task.name}) and end with {outputs}",
                )
        elif outputs > 1:
            raise KeyProblem(
                "model.arch",
                f"more classes than the net's outputs: task {task.name} has {outputs} classes, "
                f"{model.arch} has 1 output (give model.layers)",
            )
        elif model.arch == "min_model" and inputs != 2:
            raise KeyProblem(
                "model.arch", f"min_model takes 2 inputs; task {task.name} has {inputs}"
            )
        elif model.arch == "sigmoid_neuron" and inputs != 1:
            raise KeyProblem(
                "model.arch", f"sigmoid_neuron takes 1 input; task {task.name} has {inputs}"
            )
    arch = architecture(model, inputs)
    if arch.n_parameters > models.MAX_PARAMETERS:
        key = "model.layers" if model.layers is not None else "model.widths"
        raise KeyProblem(
            key, f"{arch.n_parameters:,} parameters; at most {models.MAX_PARAMETERS:,} per net"
        )
    return arch


def _with_model_defaults(model: ModelConfig, task: Task) -> ModelConfig:
    """The task's default architecture where the config names none (or no widths)."""
    default = ModelConfig.model_validate(task.default_model())
    if model.arch is None and model.layers is None:
        if model.widths is not None and default.arch != "relu_chain":
            raise KeyProblem("model.widths", "only used by arch relu_chain; set model.arch")
        return default.model_copy(update={"widths": model.widths or default.widths})
    if model.arch == "relu_chain" and model.widths is None:
        if default.arch != "relu_chain" or default.widths is None:
            raise KeyProblem("model.widths", f"required for relu_chain on task {task.name}")
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
        raise KeyProblem(echo_key(key), f"{echo(data, 30)} does not fit in 64 bits")
    elif isinstance(data, float) and not (math.isfinite(data) and abs(data) <= FLOAT32_MAX):
        raise KeyProblem(echo_key(key), f"{data:g} does not fit in float32 (at most 3.4e38)")


def _check_training(cfg: ExperimentConfig, arch: Arch) -> None:
    """Values each within bounds whose combination cannot train at all."""
    t = cfg.train
    # Decoupled (adamw) or L2 (sgd) decay multiplies the weights by (1 - lr * wd) each step,
    # on top of the gradient step: beyond 2 (2 (1 + momentum) with sgd's momentum) that
    # factor's size exceeds 1 and the weights grow without bound, whatever the data.
    limit = {"adamw": 2.0, "sgd": 2.0 * (1 + t.momentum)}.get(t.optimizer)
    if limit is not None and t.weight_decay and t.lr * t.weight_decay > limit:
        raise KeyProblem(
            "train.weight_decay",
            f"lr x weight_decay = {t.lr * t.weight_decay:g} is above {limit:g}: with "
            f"{t.optimizer} every step multiplies the weights by {1 - t.lr * t.weight_decay:g}",
        )
    batch = min(t.batch_size or cfg.task.size(), cfg.task.size())
    units = arch.inputs + sum(layer.width for layer in arch.layers)
    if 2 * batch * units > MAX_ACTIVATIONS:
        fits = max(1, MAX_ACTIVATIONS // (2 * units))
        raise KeyProblem(
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
            raise KeyProblem(
                key,
                f"{cfg.init.mode}: weight {name} of task {cfg.task.name}'s construction "
                f"overflows float32 with{given} this task section",
            )


def _check_data(data: DataConfig, task: Task) -> None:
    if task.kind == "classification" and data.noise > 1:
        raise KeyProblem(
            "data.noise",
            f"{data.noise:g}: for a classification task it is the fraction of labels flipped, "
            "in [0, 1]",
        )


def resolve(cfg: ExperimentConfig) -> ExperimentConfig:
    """Fill the task-dependent defaults (architecture, loss) and check the combinations."""
    _check_numbers(cfg.model_dump(mode="python"))
    task = cfg.task
    model = _with_model_defaults(cfg.model, task)
    arch = _check_model(model, task)

    loss = cfg.train.loss or task.default_loss
    if loss == "bce" and task.many_classes:
        raise KeyProblem("train.loss", "bce is for one 0/1 output: use ce or mse for many classes")
    if loss == "bce" and not activations.get(arch.layers[-1].activation).probability:
        raise KeyProblem("train.loss", "bce needs outputs in (0, 1): a sigmoid read-out")
    if loss == "ce" and not task.many_classes:
        raise KeyProblem(
            "train.loss",
            f"ce (softmax cross-entropy) needs a task of 3 or more classes, not {task.name}",
        )

    if cfg.init.mode in HARDWIRED:
        built = task.constructions(cfg.init)
        if not built:
            from tiny_cli.tasks import catalog

            having = ", ".join(catalog.with_construction())
            raise KeyProblem(
                "init.mode",
                f"{cfg.init.mode}: task {task.name} has no construction (tasks with one: {having})",
            )
        matching = task.construction_for(cfg.init, arch)
        if matching is None:
            raise KeyProblem(
                "init.mode",
                f"{cfg.init.mode} needs the architecture of {task.name}'s construction "
                f"({built[0].arch.describe()}); this config has {arch.describe()}",
            )
        _check_weights(cfg, matching)
    size = task.size()
    if cfg.data is not None:
        _check_data(cfg.data, task)
        size = cfg.data.train_count(size)
    if cfg.train.batch_size is not None and cfg.train.batch_size > size:
        raise KeyProblem(
            "train.batch_size",
            f"{cfg.train.batch_size} is larger than the training set ({size} samples)",
        )
    _check_training(cfg, arch)
    return cfg.model_copy(
        update={"model": model, "train": cfg.train.model_copy(update={"loss": loss})}
    )
