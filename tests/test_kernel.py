"""The compiled kernel (tiny_cli/train/kernel.py) against its oracle, the torch engine: the
same parameters to float rounding after some steps, for every activation, loss, optimizer,
the input skip and mini-batches; bit for bit a seed alone and among 700 others, on 1 and 2
threads; and what it does not cover trains on torch, saying so.

Small nets and few epochs: the kernel compiles once per machine (numba's cache; the first
call of a test run loads it), every case below runs in milliseconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import REPO
from tiny_cli import config
from tiny_cli.train import engine, kernel

TWO_LAYERS = "[{{width: 2, activation: {0}}}, {{width: 1, activation: identity}}]"
# (config, overrides, epochs): every activation, loss and optimizer, the skip, mini-batches
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    **{
        f"is_even-{act}": ("is_even", {"model.layers": TWO_LAYERS.format(act), "model.arch": None})
        for act in ("identity", "relu", "sigmoid", "tanh", "leaky_relu", "quadratic")
    },
    "is_even-shipped": ("is_even", {}),
    "is_even-l1-sgd-momentum-wd": (
        "is_even",
        {
            "train.loss": "l1",
            "train.optimizer": "sgd",
            "train.momentum": 0.9,
            "train.weight_decay": 0.01,
            "train.lr": 0.05,
        },
    ),
    "is_even-sgd": ("is_even", {"train.optimizer": "sgd", "train.lr": 0.1}),
    "is_even-adam-wd": ("is_even", {"train.weight_decay": 0.01}),
    "is_even-adamw": ("is_even", {"train.optimizer": "adamw", "train.weight_decay": 0.1}),
    "lt10-bce": ("lt10", {}),
    "mod3-ce": ("mod3", {}),
    "min-skip-minibatch": ("min", {"task.n_samples": 100}),
    "is_even-skip-tanh": (
        "is_even",
        {
            "model.arch": None,
            "model.skip_input": True,
            "model.layers": "[{width: 3, activation: tanh}, {width: 1, activation: sigmoid}]",
            "train.loss": "bce",
            "train.batch_size": 5,
        },
    ),
}
EPOCHS = 12


def load(name: str, sets: dict[str, Any], epochs: int = EPOCHS) -> config.ExperimentConfig:
    import yaml

    overrides = [(k, yaml.safe_load(v) if isinstance(v, str) else v, "t") for k, v in sets.items()]
    cfg, _ = config.load(name, [*overrides, ("train.epochs", epochs, "t")])
    return cfg


def train(cfg: config.ExperimentConfig, seeds: list[int], **kw: Any) -> engine.Result:
    task = cfg.task
    x, y = task.data()
    correct = task.correct if task.kind == "classification" else None
    return engine.fit(cfg, seeds, x, y, correct=correct, **kw)


@pytest.mark.parametrize("case", list(CASES))
def test_the_kernel_agrees_with_the_torch_engine(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, sets = CASES[case]
    cfg = load(name, sets)
    assert kernel.problem(cfg, "cpu") is None, "a case the kernel covers"
    seeds = [0, 1, 5]
    fast = train(cfg, seeds)
    monkeypatch.setenv(kernel.SWITCH, "torch")
    oracle = train(cfg, seeds)
    assert (fast.engine, oracle.engine) == ("kernel", "torch")
    assert torch.equal(fast.epochs, oracle.epochs)
    for key, value in oracle.params.items():
        scale = max(1.0, float(value.abs().max()))
        assert torch.allclose(fast.params[key], value, rtol=0, atol=1e-4 * scale), key


@pytest.mark.parametrize("case", ["is_even-shipped", "is_even-sigmoid", "lt10-bce", "mod3-ce",
                                  "min-skip-minibatch", "is_even-l1-sgd-momentum-wd"])  # fmt: skip
def test_a_seed_alone_and_among_700_on_1_and_2_threads_gets_the_same_bits(case: str) -> None:
    name, sets = CASES[case]
    cfg = load(name, {**sets, "task.n_samples": 40} if name == "min" else sets, epochs=6)
    seed = 417  # in the fourth block of 128 lanes, not its first lane
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = train(cfg.model_copy(update={"seed": seed}), [seed])
        torch.set_num_threads(2)
        among = train(cfg, list(range(700)))
    finally:
        torch.set_num_threads(previous)
    assert alone.engine == among.engine == "kernel"
    for key, value in alone.params.items():
        assert torch.equal(value[0], among.params[key][seed]), key
    assert int(alone.epochs[0]) == int(among.epochs[seed])


class Accuracies:
    """Every epoch's accuracy [S], whether the engine reports it in spans or one at a time."""

    def __init__(self) -> None:
        self.rows: list[torch.Tensor] = []

    def __call__(self, info: engine.Epoch) -> None:
        assert info.accuracy is not None
        self.rows.append(info.accuracy)

    def span(self, span: engine.Span) -> None:
        assert span.accuracy is not None
        self.rows.extend(span.accuracy)


@pytest.mark.parametrize(
    ("case", "rule"),
    [("is_even-shipped", "rounds"), ("is_even-skip-tanh", "rounds"), ("mod3-ce", "argmax"),
     ("mod3-ce-minibatch", "argmax")],
)  # fmt: skip
def test_the_kernel_counts_the_built_in_rules_as_torch_judges_its_predictions(
    case: str, rule: str
) -> None:
    """The accuracy counted in the kernel (rounds_right, argmax_right) is, to the bit, what
    the task's rule makes of the same predictions in torch (a rule the kernel does not know:
    a wrapper), over 130 seeds (two blocks), full batch and mini-batches."""
    from tiny_cli.tasks.base import builtin_rule

    name, sets = CASES.get(case, ("mod3", {"train.batch_size": 5}))
    cfg = load(name, sets, epochs=30)
    task = cfg.task
    assert builtin_rule(task.correct) == rule
    x, y = task.data()
    seeds = list(range(130))
    counted, judged = Accuracies(), Accuracies()
    fit = engine.fit(cfg, seeds, x, y, correct=task.correct, callbacks=[counted])
    own = engine.fit(cfg, seeds, x, y, correct=lambda p, t: task.correct(p, t), callbacks=[judged])
    assert fit.engine == own.engine == "kernel"
    assert len(counted.rows) == len(judged.rows) == 31
    assert torch.equal(torch.stack(counted.rows), torch.stack(judged.rows))
    assert len(torch.stack(counted.rows).unique()) > 2  # (accuracies that move)


def test_what_the_kernel_does_not_cover_trains_on_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    layers = "[{width: 200, activation: relu}, {width: 1, activation: identity}]"
    wide = load("is_even", {"model.arch": None, "model.layers": layers}, epochs=2)
    assert kernel.problem(wide, "cpu") == "a layer wider than the kernel covers"
    assert train(wide, [0, 1]).engine == "torch"
    shipped = load("is_even", {}, epochs=2)
    assert kernel.problem(shipped, "cuda") == "--device cuda"
    assert train(shipped, [0]).engine == "kernel"
    monkeypatch.setenv(kernel.SWITCH, "torch")
    assert train(shipped, [0]).engine == "torch"


def test_a_state_stepped_by_the_other_engine_does_not_resume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = load("is_even", {}, epochs=3)
    states: list[engine.State] = []
    train(cfg, [0], checkpoint=lambda epoch, snap, force: states.append(snap()))
    state = states[-1]
    assert state["trainer"] == "kernel" and engine.state_problem(cfg, [0], state) is None
    monkeypatch.setenv(kernel.SWITCH, "torch")
    problem = engine.state_problem(cfg, [0], state)
    assert problem is not None and "trained on the kernel engine" in problem


@pytest.mark.parametrize("n", [1, 2, 1000])
def test_the_compiled_batch_orders_are_torch_randperm_bit_for_bit(n: int) -> None:
    import numpy as np

    ours = [torch.Generator().manual_seed(k) for k in (0, 7, 2**40)]
    theirs = [torch.Generator().manual_seed(k) for k in (0, 7, 2**40)]
    for g in ours + theirs:  # not from a fresh state
        torch.randperm(5, generator=g)
    out = np.empty((3, 3, n), np.int64)
    kernel.shuffle(ours, out)
    for e in range(3):
        for j, g in enumerate(theirs):
            assert torch.equal(torch.from_numpy(out[e, j]), torch.randperm(n, generator=g))
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a.get_state(), b.get_state())


def test_an_unwritable_cache_directory_moves_the_cache_not_the_engine(tmp_path: Path) -> None:
    """NUMBA_CACHE_DIR under a file (or a read-only home): the run still trains on the kernel,
    its cache in the temporary directory, said in one line on stderr."""
    assert train(load("lt10", {}, epochs=2), [0]).engine == "kernel"  # the cache is warm
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    fallback = tmp_path / f"tiny-numba-{uid}"
    shutil.copytree(Path(os.environ.get("NUMBA_CACHE_DIR") or kernel.cache_dir()), fallback)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(blocked / "numba"), "TMPDIR": str(tmp_path),
           "TINY_RUNS_DIR": str(tmp_path / "runs"), "PYTHONPATH": str(REPO)}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "tiny_cli", "train", "lt10", "--epochs", "5"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "trained on the kernel engine" in proc.stdout
    (line,) = [s for s in proc.stderr.splitlines() if "cache" in s and "cannot" in s]
    assert str(blocked / "numba") in line and str(fallback) in line
    assert (fallback / "tiny-compile.lock").exists()


@pytest.mark.parametrize("command", [["train", "lt10"], ["sweep", "lt10", "--seeds", "2"]])
def test_an_unknown_engine_switch_is_one_line_before_any_run(
    command: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.conftest import tiny_here

    monkeypatch.setenv("TINY_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv(kernel.SWITCH, "numba[bold]")
    code, out, err = tiny_here(capsys, monkeypatch, *command, "--epochs", "1")
    assert code == 2 and out == ""
    assert err == "error: TINY_ENGINE='numba[bold]': expected auto, kernel or torch\n"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
