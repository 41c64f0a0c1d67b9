"""The config sections other than the task's: `model`, `init`, `train`, `log`.

Plain pydantic sections (validation only); `tiny_cli.config` assembles them with the task's
section into an `ExperimentConfig` and resolves it. Here, below the tasks, so a task's
constructions can take an `InitConfig` without importing the config loader.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt

from tiny_cli.spec import activations, models
from tiny_cli.spec.schema import Float, Section

MAX_EPOCHS = 10_000_000
# random: PyTorch's default for each Linear; the schemes: torch.nn.init's initialisers of
# that name for each Linear's weight (biases zero; kaiming for ReLU), or normal: every
# weight and bias drawn from N(0, init.std); hardwired: the task's construction (+ noise).
SCHEMES = ("xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform", "normal")
INIT_MODES = ("random", *SCHEMES, "hardwired", "hardwired+noise")
HARDWIRED = ("hardwired", "hardwired+noise")
InitMode = Literal[
    "random",
    "xavier_normal",
    "xavier_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "normal",
    "hardwired",
    "hardwired+noise",
]


class LayerConfig(Section):
    width: StrictInt = Field(ge=1, le=models.MAX_WIDTH)
    activation: activations.Name


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
    mode: InitMode = "random"
    noise: Float = Field(0.1, ge=0, le=1e6, description="std of Gaussian noise for hardwired+noise")
    std: Float = Field(0.1, gt=0, le=1e6, description="std of every parameter for normal")
    scale: Float = Field(1.0, gt=0, le=1e6, description="lt: Sigmoid(scale * (t - x))")


class TrainConfig(Section):
    epochs: StrictInt = Field(ge=0, le=MAX_EPOCHS)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: Float = Field(0.01, gt=0, le=100)
    momentum: Float = Field(0.0, ge=0, lt=1)
    weight_decay: Float = Field(0.0, ge=0, le=1e6)
    loss: Literal["mse", "bce", "l1", "ce"] | None = None  # None: the task's default
    batch_size: StrictInt | None = Field(None, ge=1)  # None: full batch


class DataConfig(Section):
    """Which of a task's inputs train and which are held out, and the noise on the labels
    trained on (a config's `data:` section). Absent from a config: every input trains, no noise."""

    # (0, 1]: the share of the task's inputs that train; the rest is the test set
    train_fraction: Float = Field(1.0, gt=0, le=1)
    split_seed: StrictInt = Field(0, ge=0, le=2**63 - 1)  # which inputs are held out
    # regression: the std of Gaussian noise added to the training targets; classification:
    # the fraction of training labels flipped (another class). Test targets stay clean.
    noise: Float = Field(0.0, ge=0, le=1e6)
    noise_seed: StrictInt = Field(0, ge=0, le=2**63 - 1)  # which noise is drawn

    def train_count(self, n: int) -> int:
        """How many of n inputs train: round(train_fraction x n), at least one."""
        return min(n, max(1, round(self.train_fraction * n)))


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


def architecture(model: ModelConfig, inputs: int) -> models.Arch:
    """The architecture a resolved `model:` section describes, for `inputs` inputs."""
    if model.layers is not None:
        spec = tuple(models.Layer(la.width, la.activation) for la in model.layers)
        return models.Arch(inputs, spec, skip_input=model.skip_input)
    assert model.arch is not None, "resolve() fills model.arch or model.layers"
    return models.preset(model.arch, model.widths)
