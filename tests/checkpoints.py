"""The check that a stored checkpoint loads into the article's own classes and predicts what
we stored. tests/test_cli.py makes it on the CLI's own runs: every hardwired net of the article
(`tiny hardwire lt10/min/is_even`) and every trained shipped config of the article.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.article import ArticleMinModel, create_sequential_model, lt10_model
from tiny_cli import config


def article_model(cfg: config.ExperimentConfig) -> torch.nn.Module:
    if cfg.task.name == "lt10":
        return lt10_model()
    if cfg.task.name == "min":
        return ArticleMinModel()
    assert cfg.model.widths is not None
    return create_sequential_model(cfg.model.widths)


def assert_article_class_reproduces(run: Path) -> None:
    """The run's model.pt loads strictly into the article's own class, whose loss on the
    task's data is the stored metric."""
    cfg, _ = config.load(str(run / "config.yaml"))
    model = article_model(cfg)
    state = torch.load(run / "model.pt", weights_only=True)
    model.load_state_dict(state)  # strict: same names, same shapes
    x, y = cfg.task.data()
    with torch.no_grad():
        pred = model(x)
    loss = {"bce": F.binary_cross_entropy, "mse": F.mse_loss}[cfg.train.loss or ""](pred, y)
    stored = json.loads((run / "metrics.json").read_text())
    assert loss.item() == pytest.approx(stored["loss"], rel=1e-6, abs=1e-9)
