"""The schema of an experiment config: `ExperimentConfig`, the spec's sections with the task's.

The sections themselves (model, init, train, log) are plain data in `tiny_cli.spec.sections`;
the task section is one class per registered task (`tiny_cli.tasks`). Defaults that depend on
the task are filled by `resolve.py`, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Union

from pydantic import Field, StrictInt

from tiny_cli import tasks
from tiny_cli.spec.models import Arch
from tiny_cli.spec.schema import Section
from tiny_cli.spec.sections import (
    DataConfig,
    InitConfig,
    LogConfig,
    ModelConfig,
    TrainConfig,
    architecture,
)
from tiny_cli.tasks import Task

if TYPE_CHECKING:
    TaskConfig = Task
else:  # one section per registered task (plugins included), told apart by `name`
    TaskConfig = Annotated[Union[tasks.classes()], Field(discriminator="name")]  # noqa: UP007


class ExperimentConfig(Section):
    task: TaskConfig
    model: ModelConfig = ModelConfig()
    init: InitConfig = InitConfig()
    train: TrainConfig
    data: DataConfig | None = None  # None: train on every input, no held-out set, no noise
    seed: StrictInt = Field(0, ge=0, le=2**63 - 1)
    log: LogConfig = LogConfig()

    @property
    def arch(self) -> Arch:
        """The architecture of a resolved config."""
        return architecture(self.model, self.task.net_inputs())

    @property
    def loss(self) -> str:
        return self.train.loss or self.task.default_loss
