"""Bad input, table-driven, through the CLI's entry point: each case is one line on stderr
naming the file (and line, where YAML gives one) or the argument, and the key; exit code 2;
no traceback; no run directory created and nothing stored before is touched. The tables run
in this process (`cli_here`: the same dispatch, 30x faster than a process each); a sample of
them runs through the installed command too."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, REPO, Make, assert_one_line_error

BASE = "task:\n  name: lt10\ntrain:\n  epochs: 10\n"
EVEN = "task:\n  name: is_even\n  bits: 3\ntrain:\n  epochs: 1\n"
MOD3 = "task:\n  name: mod3\n  bits: 3\ntrain:\n  epochs: 1\n"
MODULAR = "task:\n  name: modular\n  p: 7\ntrain:\n  epochs: 1\n"

BILLION_LAUGHS = (
    'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
)
LAYERS_2500x2 = (
    "task:\n  name: min\n  n_samples: 1000000\nmodel:\n  layers: [{width: 1000, activation: relu}, "
    "{width: 1000, activation: relu}, {width: 1, activation: identity}]\ntrain:\n  epochs: 1\n"
)

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
    (BASE + "init:\n  mode: xavier\n", [], ["init.mode", "did you mean 'xavier_normal'"]),
    (BASE + "init:\n  mode: normal\n  std: 0\n", [], ["init.std", "greater than 0"]),
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
    (BASE, ["--set", ".".join(["a"] * 3000) + "=1"], ["--set", "a key path of 3000 parts"]),
    (BASE, ["--set", "train.lr={a: 1}"], ["--set", "valid number"]),
    (None, ["--epochs", "-3"], ["--epochs -3", "train.epochs"]),
    (None, ["--epochs", "abc"], ["--epochs", "integer"]),
    (None, ["--lr", "0"], ["--lr 0", "train.lr"]),
    (None, ["--lr", "nan"], ["--lr nan", "train.lr"]),
    (None, ["--seed", "-2"], ["--seed -2", "seed"]),
    # the data section: held-out share and label noise
    (BASE + "data:\n  train_fraction: 0\n", [], ["exp.yaml:6", "data.train_fraction"]),
    (None, ["--set", "data.train_fraction=1.5"], ["data.train_fraction", "1"]),
    (None, ["--set", "data.noise=-1"], ["data.noise"]),
    (None, ["--set", "data.noise=2"], ["data.noise", "fraction of labels flipped"]),
    (BASE + "data:\n  fraction: 0.5\n", [], ["exp.yaml:6", "data.fraction", "train_fraction"]),
    (None, ["--epoch", "3"], ["--epoch"]),
    (None, ["--device", "cuda:7"], ["--device cuda:7"]),
    (None, ["--device", "toaster"], ["--device toaster"]),
    (None, ["--precision", "99"], ["--precision"]),
    # bounded work: size, aliases, depth, model size, memory
    (BILLION_LAUGHS, [], ["exp.yaml", "more than 100,000 values once aliases are expanded"]),
    ("a: &a [1, *a]\n", [], ["exp.yaml:1", "alias refers to a collection that contains it"]),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", [], ["exp.yaml:1", "nested deeper than 32"]),
    ("a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 60)), [], ["nested deeper"]),
    (BASE + "#" * (1 << 20) + "\n", [], ["exp.yaml", "a config is at most 1,048,576 bytes"]),
    (
        BASE + "model:\n  layers: [" + "{width: 1, activation: relu}, " * 65 + "]\n",
        [],
        ["model.layers", "at most 64"],
    ),
    (EVEN + "model:\n  widths: [1, 4096, 4096, 1]\n", [], ["model.widths", "parameters"]),
    (LAYERS_2500x2 + "  batch_size: 1000000\n", [], ["exp.yaml", "train.batch_size", "GiB"]),
    (
        BASE.replace("lt10", "lt10\n  bits: 3"),
        [],
        ["exp.yaml:3", "task.bits", "not a key of task lt10"],
    ),
    (EVEN + "model:\n  widths: [1, x, 1]\n", [], ["exp.yaml:7", "model.widths[1]", "integer"]),
    # duplicate keys, anywhere
    (BASE + "  epochs: 20\n", [], ["exp.yaml:5", "duplicate key train.epochs", "lines 4 and 5"]),
    (BASE + "train:\n  epochs: 2\n", [], ["exp.yaml:5", "duplicate key train", "lines 3 and 5"]),
    ("task: {name: lt10, name: min}\ntrain:\n  epochs: 1\n", [], ["duplicate key task.name"]),
    # values YAML cannot build, numbers beyond int64 or float32
    (BASE + "seed: 2001-13-45\n", [], ["exp.yaml:5", "cannot read '2001-13-45'"]),
    (BASE + "seed: 1" + "0" * 5000 + "\n", [], ["exp.yaml:5", "cannot read"]),
    (
        "task:\n  name: min\n  data_seed: " + "9" * 30 + "\ntrain:\n  epochs: 1\n",
        [],
        ["task.data_seed", "64 bits"],
    ),
    (
        BASE.replace("lt10", "lt10\n  threshold: 1e39"),
        [],
        ["exp.yaml:3", "task.threshold", "float32"],
    ),
    # values within their bounds whose combination cannot train
    (
        BASE.replace("lt10", "lt10\n  threshold: 1e34")
        + "init:\n  mode: hardwired\n  scale: 1e6\n",
        [],
        ["init.scale", "overflows float32"],
    ),
    (
        BASE + "  optimizer: adamw\n  lr: 1\n  weight_decay: 3\n",
        [],
        ["train.weight_decay", "lr x weight_decay"],
    ),
    (
        BASE + "  optimizer: sgd\n  lr: 10\n  weight_decay: 1\n",
        [],
        ["train.weight_decay", "above 2"],
    ),
    # many classes and one-hot inputs
    (
        MOD3
        + "model:\n  layers: [{width: 4, activation: relu}, {width: 2, activation: identity}]\n",
        [],
        ["exp.yaml:7", "model.layers", "more classes than the net's outputs", "3 classes"],
    ),
    (
        MOD3 + "model:\n  arch: min_model\n",
        [],
        ["model.arch", "more classes than the net's outputs", "min_model has 1 output"],
    ),
    (
        MOD3.replace("bits: 3", "bits: 1") + "model:\n  arch: relu_chain\n  widths: [2, 2, 1]\n",
        [],
        ["model.widths", "end with 3"],
    ),
    (BASE + "  loss: ce\n", [], ["train.loss", "ce", "3 or more classes"]),
    (MOD3 + "  loss: bce\n", [], ["train.loss", "bce", "use ce or mse"]),
    (MOD3.replace("bits: 3", "bits: 3\n  encoding: onehot"), [], ["task.encoding", "one_hot"]),
    (
        EVEN.replace("bits: 3", "bits: 13\n  encoding: one_hot"),
        [],
        ["task.encoding", "8,192 input units", "more than 4,096"],
    ),
    (MODULAR.replace("p: 7", "p: 33\n  op: mul"), [], ["exp.yaml:3", "task.p", "not prime"]),
    (MODULAR.replace("p: 7", "p: 211"), [], ["exp.yaml:3", "task.p", "too large", "at most 200"]),
    (
        "task:\n  name: circle\n  encoding: one_hot\ntrain:\n  epochs: 1\n",
        [],
        ["exp.yaml:3", "task.encoding", "circle's inputs are not integers in a range"],
    ),
    # text from the file never breaks the line, never becomes markup
    (
        BASE + '"tr\\nain\\r\\x1b[31m": 1\n',
        [],
        ["exp.yaml:5", "'tr\\nain\\r\\x1b[31m'", "unknown key"],
    ),
    (BASE + "? " + "k" * 5000 + "\n: 1\n", [], ["exp.yaml:5", "unknown key", "..."]),
    (BASE + "  lr: " + "x" * 5000 + "\n", [], ["train.lr", "expected a number", "..."]),
    (
        'task:\n  name: "[bold red]lt[/]\\u202e\\0"\ntrain:\n  epochs: 1\n',
        [],
        ["'[bold red]lt[/]\\u202e\\x00'"],
    ),
    # the task changed by an override
    (
        None,
        ["--set", "task.name=min"],
        [
            "--set task.name=min",
            "task changed from lt10 to min",
            "task.threshold does not apply to min",
        ],
    ),
    (
        None,
        ["--set", "task.name=is_even"],
        ["task changed from lt10 to is_even", "task.threshold, task.low, task.high do not apply"],
    ),
    (None, ["--set", "train.lr=" + "[" * 100], ["--set train.lr=[[[", "nested deeper"]),
    (None, ["--set", "train.lr=1\n\x1b[2J"], ["--set train.lr=1\\n\\x1b[2J"]),
    (None, ["--set", "train.lr=" + "9" * 10000], ["--set train.lr=999", "..."]),
    (None, ["--runs-dir", ""], ["--runs-dir ''", "empty path"]),
]


@pytest.mark.parametrize(("yaml_text", "args", "needles"), CASES)
def test_bad_config_or_argument(
    cli_here: CLI,
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
    proc = cli_here("train", source, *args)
    assert_one_line_error(proc, *needles)
    assert_plain(proc.stderr)
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []


def assert_plain(stderr: str) -> None:
    """One short line of plain text: no control character but its final newline."""
    line = stderr.removesuffix("\n")
    assert len(line) <= 320, len(line)
    bad = [
        ch for ch in line if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or 0x2028 <= ord(ch) <= 0x202E
    ]
    assert not bad, (bad, line)


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
    # sweeps: --grid errors name --grid and the value as typed; work is bounded
    (
        ["sweep", "lt10", "--seeds", "2", "--grid", "train.lr=0.1,abc"],
        ["--grid train.lr=abc", "number"],
    ),
    (
        ["sweep", "lt10", "--seeds", "2", "--grid", "train.lr=0.1,0.10"],
        ["--grid train.lr=0.1,0.10", "repeated"],
    ),
    (
        ["sweep", "lt10", "--seeds", "2", "--grid", "train.lr=0.1,1e-1"],
        ["--grid train.lr=", "0.1 and 1e-1", "same config"],
    ),
    (
        ["sweep", "is_even", "--seeds", "2", "--grid", "model.widths=[1,2,1];[1, 2, 1]"],
        ["--grid model.widths=[1,2,1];[1, 2, 1]", "repeated"],
    ),
    (
        ["sweep", "is_even", "--seeds", "2", "--grid", "model.widths=[1,2,1];[2,2,1]"],
        ["--grid model.widths=[2,2,1]", "start with 1"],
    ),
    (
        ["sweep", "lt10", "--seeds", "2", "--grid", "train.lr"],
        ["--grid train.lr", "key.path=v1,v2"],
    ),
    (
        ["sweep", "lt10", "--seeds", "2", "--grid", "train.lr=0.1,,0.2"],
        ["--grid train.lr=0.1,,0.2", "empty value"],
    ),
    (
        ["sweep", "lt10", "--seeds", "2", "--grid", "tr ain=1,2"],
        ["--grid tr ain=1,2", "not a key.path"],
    ),
    (["runs", "--runs-dir", "/dev/null"], ["runs directory /dev/null", "not a directory"]),
    (
        ["inspect", "latest", "--runs-dir", "/dev/null"],
        ["runs directory /dev/null", "not a directory"],
    ),
    (
        ["sweep", "lt10", "--seeds", "2", "--grid", ".".join(["a"] * 3000) + "=1,2"],
        ["--grid a.a.a", "a key path of 3000 parts"],
    ),
    (
        [
            "sweep",
            "lt10",
            "--seeds",
            "2",
            "--grid",
            "train.lr=" + ",".join(str(i) for i in range(1, 2000)),
        ],
        ["--grid train.lr=1,2,3", "more than 1,000 values"],
    ),
    (
        [
            "sweep",
            "lt10",
            "--seeds",
            "2",
            *[
                a
                for k in ("lr", "momentum", "weight_decay")
                for a in ("--grid", f"train.{k}=" + ",".join(f"0.{i:03d}" for i in range(1, 30)))
            ],
        ],
        ["--grid train.weight_decay", "more than 10,000 points"],
    ),
    (
        [
            "sweep",
            "lt10",
            "--seeds",
            "1000000",
            "--grid",
            "train.lr=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1,2",
        ],
        ["--grid train.lr=0.1", "--seeds 1,000,000", "11,000,000 seed-runs"],
    ),
    (["sweep", "lt10", "--seeds", "2", "--threads", "100000"], ["--threads 100000", "give 1 to"]),
    (["sweep", "lt10", "--seeds", "2", "--threads", "0"], ["--threads"]),
    (["sweep", "lt10", "--seeds", "2\n\x1b[31m"], ["--seeds 2\\n\\x1b[31m"]),
    (
        ["train", "nope\x1b]0;pwned\x07.yaml"],
        ["nope\\x1b]0;pwned\\x07.yaml", "no such config file"],
    ),
    (["train", "x" * 5000 + ".yaml"], ["xxx", "name too long"]),
    (["train", "/dev/null"], ["/dev/null", "not a regular file"]),
]


@pytest.mark.parametrize(("args", "needles"), COMMAND_CASES)
def test_bad_command_line(
    cli_here: CLI, runs_dir: Path, args: list[str], needles: list[str]
) -> None:
    proc = cli_here(*args)
    assert_one_line_error(proc, *needles)
    assert_plain(proc.stderr)
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []


# every 16th case of each table: the installed command, in its own process
SAMPLED = [
    (text, ["train", "lt10" if text is None else "exp.yaml", *args], needles)
    for text, args, needles in CASES[::16]
] + [(None, args, needles) for args, needles in COMMAND_CASES[::16]]


@pytest.mark.parametrize(("yaml_text", "args", "needles"), SAMPLED)
def test_bad_input_is_one_line_from_the_installed_command(
    cli: CLI,
    runs_dir: Path,
    tmp_path: Path,
    yaml_text: str | None,
    args: list[str],
    needles: list[str],
) -> None:
    if yaml_text is not None:
        (tmp_path / "work" / "exp.yaml").write_text(yaml_text)
    proc = cli(*args)
    assert_one_line_error(proc, *needles)
    assert_plain(proc.stderr)
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []


def test_ambiguous_run_prefix_and_existing_runs_untouched(
    cli: CLI, runs_dir: Path, make: Make
) -> None:
    make("hardwire", "lt10")
    make("hardwire", "min")
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


def test_a_file_name_with_control_characters_stays_one_line(cli: CLI, tmp_path: Path) -> None:
    name = "bad\nname\x1b[31m.yaml"
    (tmp_path / "work" / name).write_text(BASE + "  lr: 0\n")
    proc = cli("train", name)
    assert_one_line_error(proc, "bad\\nname\\x1b[31m.yaml:5", "train.lr")
    assert_plain(proc.stderr)


def test_tilde_expands_in_config_paths_and_runs_dir(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "exp.yaml").write_text(BASE.replace("epochs: 10", "epochs: 0"))
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("TINY_RUNS_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "tiny_cli", "train", "~/exp.yaml", "--runs-dir", "~/my runs"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(list((home / "my runs").iterdir())) == 1
    assert not (tmp_path / "~").exists()


def test_an_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    """Ten levels of ten aliases (10^10 values expanded) are refused in a few milliseconds:
    aliases share one node, and the count stops at the budget."""
    from tiny_cli import config
    from tiny_cli.errors import TinyError

    levels = "".join(f"l{i + 1}: &l{i + 1} [{', '.join([f'*l{i}'] * 10)}]\n" for i in range(10))
    path = tmp_path / "bomb.yaml"
    path.write_text("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + levels)
    start = time.perf_counter()
    with pytest.raises(TinyError, match="once aliases are expanded"):
        config.load(str(path))
    assert time.perf_counter() - start < 0.5
