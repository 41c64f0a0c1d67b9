"""Configs: every shipped YAML validates; every mistake is one precise line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tiny_cli import config
from tiny_cli.errors import TinyError

SHIPPED = config.shipped_names()


def test_the_three_article_configs_are_shipped() -> None:
    assert {"lt10", "min", "is_even"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_validates_and_round_trips(name: str, tmp_path: Path) -> None:
    cfg, path = config.load(name)
    assert cfg.task.name == yaml.safe_load(path.read_text())["task"]["name"]
    # The resolved config stored in a run reproduces itself exactly.
    stored = tmp_path / "resolved.yaml"
    stored.write_text(config.dump_yaml(cfg))
    again, _ = config.load(str(stored))
    assert again == cfg


def test_is_even_widths_follow_bits() -> None:
    cfg, _ = config.load("is_even", [("task.bits", 6, "--bits 6")])
    assert cfg.model.widths == [1, 2, 2, 2, 2, 2, 2, 2, 1]


def test_overrides_reach_nested_keys() -> None:
    over = [config.parse_override("train.lr=1e-3"), config.parse_override("init.mode=hardwired")]
    cfg, _ = config.load("min", over)
    assert cfg.train.lr == 0.001 and cfg.init.mode == "hardwired"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return str(path)


BASE = "task:\n  name: lt10\ntrain:\n  epochs: 10\n"

# (yaml text, overrides as --set items, substrings the one-line error must contain)
BAD_CONFIGS = [
    ("task:\n  name: lt10\n  - x\ntrain: 1\n", [], ["exp.yaml:3", "invalid YAML"]),
    ("task:\n  name: lt10\n\tepochs: 3\n", [], ["exp.yaml:3", "invalid YAML"]),
    ("", [], ["exp.yaml", "empty"]),
    ("- 1\n- 2\n", [], ["exp.yaml", "mapping"]),
    (
        BASE + "trian:\n  lr: 1\n",
        [],
        ["exp.yaml:5", "trian", "unknown key", "did you mean 'train'"],
    ),
    (BASE + "seed: -1\n", [], ["exp.yaml:5", "seed", "greater than or equal to 0"]),
    ("task:\n  name: lt10\n", [], ["exp.yaml", "train", "missing"]),
    (
        "task:\n  name: lt11\ntrain:\n  epochs: 1\n",
        [],
        ["task.name", "unknown task 'lt11'", "lt10"],
    ),
    ("task:\n  bits: 4\ntrain:\n  epochs: 1\n", [], ["task.name", "missing"]),
    (BASE.replace("epochs: 10", "epochs: -5"), [], ["train.epochs", "greater"]),
    (BASE.replace("epochs: 10", "epochs: ten"), [], ["exp.yaml:4", "train.epochs", "integer"]),
    (BASE.replace("epochs: 10", "epochs: 1.5"), [], ["train.epochs", "integer"]),
    (BASE.replace("epochs: 10", "epochs: 100000000000"), [], ["train.epochs", "less than"]),
    ("task:\n  name: is_even\n  bits: 0\ntrain:\n  epochs: 1\n", [], ["exp.yaml:3", "task.bits"]),
    ("task:\n  name: is_even\n  bits: 25\ntrain:\n  epochs: 1\n", [], ["task.bits", "24"]),
    (
        "task:\n  name: is_even\n  bitz: 4\ntrain:\n  epochs: 1\n",
        [],
        ["task.bitz", "did you mean 'bits'"],
    ),
    (
        BASE + "  optimizer: adamm\n",
        [],
        ["train.optimizer", "unknown value 'adamm'", "did you mean 'adam'"],
    ),
    (BASE + "  lr: 0\n", [], ["train.lr", "greater than 0"]),
    (BASE + "  lr: .nan\n", [], ["train.lr", "finite"]),
    (BASE + "  lr: true\n", [], ["train.lr", "expected a number, got true"]),
    (BASE + "init:\n  mode: hardwire\n", [], ["init.mode", "did you mean 'hardwired'"]),
    (
        "task:\n  name: lt10\n  low: 5\n  high: 5\ntrain:\n  epochs: 1\n",
        [],
        ["task", "empty domain"],
    ),
    (
        "task:\n  name: min\nmodel:\n  arch: sigmoid_neuron\ntrain:\n  epochs: 1\n",
        [],
        ["model.arch"],
    ),
    ("task:\n  name: min\ntrain:\n  epochs: 1\n  loss: bce\n", [], ["train.loss", "bce"]),
    ("task:\n  name: min\ntrain:\n  epochs: 1\n  batch_size: 5000\n", [], ["train.batch_size"]),
    (
        "task:\n  name: is_even\nmodel:\n  widths: [1, 8, 1]\n"
        "init:\n  mode: hardwired\ntrain:\n  epochs: 1\n",
        [],
        ["init.mode"],
    ),
    (
        "task:\n  name: is_even\nmodel:\n  widths: [2, 8, 1]\ntrain:\n  epochs: 1\n",
        [],
        ["model.widths", "start with 1"],
    ),
    (BASE, ["train.epochs=-1"], ["--set train.epochs=-1", "train.epochs"]),
    (BASE, ["train.epoch=5"], ["--set train.epoch=5", "unknown key", "did you mean 'epochs'"]),
    (BASE, ["seed.x=1"], ["--set seed.x=1", "seed"]),
    (BASE, ["no_equals_sign"], ["--set", "key.path=value"]),
    (BASE, ["=3"], ["--set", "key.path=value"]),
]


@pytest.mark.parametrize(("text", "sets", "needles"), BAD_CONFIGS)
def test_bad_configs_are_one_precise_line(
    tmp_path: Path, text: str, sets: list[str], needles: list[str]
) -> None:
    source = write(tmp_path, text)
    with pytest.raises(TinyError) as info:
        config.load(source, [config.parse_override(s) for s in sets])
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_yaml_tags_never_construct_objects(tmp_path: Path) -> None:
    source = write(tmp_path, BASE + "seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(TinyError, match="invalid YAML"):
        config.load(source)


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("lt100", "did you mean 'lt10'"),
        ("does/not/exist.yaml", "no such config file"),
        (".", "directory"),
    ],
)
def test_bad_sources(source: str, needle: str) -> None:
    with pytest.raises(TinyError, match=needle):
        config.locate(source)
