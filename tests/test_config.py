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
