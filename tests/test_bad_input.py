"""Bad input, table-driven, through the real CLI: each case is one line on stderr naming the
file (and line, where YAML gives one) or the argument, and the key; exit code 2; no
traceback; no run directory created and nothing stored before is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CLI, assert_one_line_error

BASE = "task:\n  name: lt10\ntrain:\n  epochs: 10\n"
EVEN = "task:\n  name: is_even\n  bits: 3\ntrain:\n  epochs: 1\n"

# (contents of ./exp.yaml or None, CLI arguments, substrings the error line must contain)
CASES: list[tuple[str | None, list[str], list[str]]] = [
    # YAML syntax and shape
    ("task:\n  name: lt10\n  - x\ntrain: 1\n", [], ["exp.yaml:3", "invalid YAML"]),
    ("task:\n  name: lt10\n\tepochs: 3\n", [], ["exp.yaml:3", "invalid YAML"]),
    ("task: {name: lt10\n", [], ["exp.yaml:2", "invalid YAML"]),
    ("", [], ["exp.yaml", "empty"]),
    ("- 1\n- 2\n", [], ["exp.yaml", "mapping"]),
    ("just a string\n", [], ["exp.yaml", "mapping"]),
    (
        BASE + "seed: !!python/object/apply:os.system ['echo pwned']\n",
        [],
        ["exp.yaml:5", "invalid YAML"],
    ),
    # unknown keys, with "did you mean"
    (
        BASE + "trian:\n  lr: 1\n",
        [],
        ["exp.yaml:5", "trian", "unknown key", "did you mean 'train'"],
    ),
    (
        BASE + "  optimiser: sgd\n",
        [],
        ["exp.yaml:5", "train.optimiser", "did you mean 'optimizer'"],
    ),
    (
        "task:\n  name: is_even\n  bitz: 4\ntrain:\n  epochs: 1\n",
        [],
        ["exp.yaml:3", "task.bitz", "did you mean 'bits'"],
    ),
    (
        BASE + "model:\n  arch: relu_chain\n  width: [1, 1]\n",
        [],
        ["model.width", "did you mean 'widths'"],
    ),
    (BASE + "log:\n  evry: 5\n", [], ["exp.yaml:6", "log.evry", "did you mean 'every'"]),
    # missing required values
    ("task:\n  name: lt10\n", [], ["exp.yaml", "train", "missing"]),
    ("train:\n  epochs: 1\n", [], ["exp.yaml", "task", "missing"]),
    ("task:\n  bits: 4\ntrain:\n  epochs: 1\n", [], ["task.name", "missing"]),
    ("task:\n  name: lt10\ntrain:\n  lr: 0.1\n", [], ["exp.yaml:3", "train.epochs", "missing"]),
    # wrong types
    (BASE.replace("epochs: 10", "epochs: ten"), [], ["exp.yaml:4", "train.epochs", "integer"]),
    (BASE.replace("epochs: 10", "epochs: 1.5"), [], ["exp.yaml:4", "train.epochs", "integer"]),
    (BASE + "  lr: fast\n", [], ["exp.yaml:5", "train.lr", "number"]),
    (BASE + "  lr: true\n", [], ["train.lr", "expected a number, got true"]),
    (BASE + "seed: [1, 2]\n", [], ["exp.yaml:5", "seed", "integer"]),
    (BASE + "model: relu_chain\n", [], ["exp.yaml:5", "model"]),
    # impossible values
    (BASE.replace("epochs: 10", "epochs: -5"), [], ["exp.yaml:4", "train.epochs", "greater"]),
    (BASE.replace("epochs: 10", "epochs: 100000000000"), [], ["train.epochs", "less than"]),
    ("task:\n  name: is_even\n  bits: 0\ntrain:\n  epochs: 1\n", [], ["exp.yaml:3", "task.bits"]),
    ("task:\n  name: is_even\n  bits: 25\ntrain:\n  epochs: 1\n", [], ["task.bits", "24"]),
    (BASE + "  lr: 0\n", [], ["train.lr", "greater than 0"]),
    (BASE + "  lr: -0.1\n", [], ["train.lr", "greater than 0"]),
    (BASE + "  lr: .nan\n", [], ["train.lr", "finite"]),
    (BASE + "  lr: .inf\n", [], ["train.lr", "finite"]),
    (BASE + "seed: -1\n", [], ["exp.yaml:5", "seed", "greater than or equal to 0"]),
    (BASE + "  batch_size: 0\n", [], ["train.batch_size", "greater"]),
    (
        "task:\n  name: lt10\n  low: 5\n  high: 5\ntrain:\n  epochs: 1\n",
        [],
        ["task", "empty domain"],
    ),
    ("task:\n  name: min\n  n_samples: 0\ntrain:\n  epochs: 1\n", [], ["task.n_samples"]),
    (
        "task:\n  name: min\ntrain:\n  epochs: 1\n  batch_size: 5000\n",
        [],
        ["train.batch_size", "larger"],
    ),
    # unknown names
    (
        "task:\n  name: lt11\ntrain:\n  epochs: 1\n",
        [],
        ["task.name", "unknown task 'lt11'", "lt10"],
    ),
    (BASE + "  optimizer: adamm\n", [], ["train.optimizer", "'adamm'", "did you mean 'adam'"]),
    (BASE + "init:\n  mode: hardwire\n", [], ["init.mode", "did you mean 'hardwired'"]),
    (BASE + "  loss: cross_entropy\n", [], ["train.loss", "'cross_entropy'"]),
    (BASE + "model:\n  arch: transformer\n", [], ["model.arch", "'transformer'"]),
    # combinations that cannot work
    (
        "task:\n  name: min\nmodel:\n  arch: sigmoid_neuron\ntrain:\n  epochs: 1\n",
        [],
        ["model.arch", "task min has 2"],
    ),
    ("task:\n  name: min\ntrain:\n  epochs: 1\n  loss: bce\n", [], ["train.loss", "bce"]),
    (
        EVEN + "model:\n  widths: [1, 8, 1]\ninit:\n  mode: hardwired\n",
        [],
        ["init.mode", "hardwired"],
    ),
    (EVEN + "model:\n  widths: [2, 8, 1]\n", [], ["model.widths", "start with 1"]),
    (BASE + "model:\n  widths: [1, 2, 1]\n", [], ["model.widths", "relu_chain"]),
    # overrides
    (BASE, ["--set", "train.epochs=-1"], ["--set train.epochs=-1", "train.epochs"]),
    (BASE, ["--set", "train.epoch=5"], ["--set train.epoch=5", "did you mean 'epochs'"]),
    (BASE, ["--set", "seed.x=1"], ["--set seed.x=1", "seed"]),
    (BASE, ["--set", "no_equals_sign"], ["--set", "key.path=value"]),
    (BASE, ["--set", "=3"], ["--set", "key.path=value"]),
    (BASE, ["--set", "train..lr=3"], ["--set", "key.path=value"]),
    (BASE, ["--set", "train.lr={a: 1}"], ["--set", "valid number"]),
    (None, ["--epochs", "-3"], ["--epochs -3", "train.epochs"]),
    (None, ["--epochs", "abc"], ["--epochs", "integer"]),
    (None, ["--lr", "0"], ["--lr 0", "train.lr"]),
    (None, ["--lr", "nan"], ["--lr nan", "train.lr"]),
    (None, ["--seed", "-2"], ["--seed -2", "seed"]),
    (None, ["--epoch", "3"], ["--epoch"]),
    (None, ["--device", "cuda:7"], ["--device cuda:7"]),
    (None, ["--device", "toaster"], ["--device toaster"]),
    (None, ["--precision", "99"], ["--precision"]),
]


@pytest.mark.parametrize(("yaml_text", "args", "needles"), CASES)
def test_bad_config_or_argument(
    cli: CLI,
    runs_dir: Path,
    tmp_path: Path,
    yaml_text: str | None,
    args: list[str],
    needles: list[str],
) -> None:
    source = "lt10"
    if yaml_text is not None:
        (tmp_path / "work" / "exp.yaml").write_text(yaml_text)
        source = "exp.yaml"
    assert_one_line_error(cli("train", source, *args), *needles)
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []


# Commands and arguments other than a config: (CLI arguments, substrings of the error line)
COMMAND_CASES: list[tuple[list[str], list[str]]] = [
    (["train", "lt11"], ["unknown config 'lt11'", "did you mean 'lt10'"]),
    (["train", "nope.yaml"], ["nope.yaml", "no such config file"]),
    (["train", "."], ["directory"]),
    (["train"], ["config", "--from"]),
    (["train", "lt10", "--from", "latest"], ["not both"]),
    (["train", "--from", "nosuchrun"], ["nosuchrun"]),
    (["hardwire", "is_even", "--bits", "0"], ["--bits 0", "task.bits"]),
    (["hardwire", "is_even", "--bits", "25"], ["--bits 25", "task.bits"]),
    (["hardwire", "is_even", "--bits", "four"], ["--bits"]),
    (["hardwire", "lt10", "--bits", "4"], ["--bits", "lt10 has no task.bits"]),
    (["hardwire", "min", "--scale", "3"], ["--scale", "has no scale"]),
    (["hardwire", "mod"], ["mod has no construction", "tasks with one: lt, min"]),
    (["tasks", "extra"], ["unexpected extra argument"]),
    (["hardwire", "lt10", "--scale", "-1"], ["--scale -1", "init.scale"]),
    (["hardwire", "lt10", "--scale", "0"], ["--scale 0", "init.scale"]),
    (["hardwire", "nope"], ["unknown config 'nope'"]),
    (["inspect", "nosuchrun"], ["nosuchrun"]),
    (["inspect", "../../etc"], ["../../etc", "not a run id"]),
    (["inspect", "/etc/passwd"], ["/etc/passwd", "not a run id"]),
    (["inspect"], ["Missing argument"]),
    (["frobnicate"], ["frobnicate"]),
]


@pytest.mark.parametrize(("args", "needles"), COMMAND_CASES)
def test_bad_command_line(cli: CLI, runs_dir: Path, args: list[str], needles: list[str]) -> None:
    assert_one_line_error(cli(*args), *needles)
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []


def test_ambiguous_run_prefix_and_existing_runs_untouched(cli: CLI, runs_dir: Path) -> None:
    assert cli("hardwire", "lt10").returncode == 0
    assert cli("hardwire", "min").returncode == 0
    before = {p: p.read_bytes() for p in runs_dir.rglob("*") if p.is_file()}
    assert_one_line_error(cli("inspect", "2"), "ambiguous")
    assert_one_line_error(cli("train", "lt10", "--set", "task.nme=x"), "task.nme")
    assert_one_line_error(cli("hardwire", "is_even", "--bits", "0"), "task.bits")
    after = {p: p.read_bytes() for p in runs_dir.rglob("*") if p.is_file()}
    assert before == after


def test_an_unusable_runs_directory_is_one_line(cli: CLI, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = cli("hardwire", "lt10", "--runs-dir", str(blocker))
    assert_one_line_error(proc, str(blocker), "cannot create a run")


def test_the_suite_is_at_least_forty_cases() -> None:
    assert len(CASES) + len(COMMAND_CASES) >= 40
