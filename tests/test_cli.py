"""Every command through the real CLI in a subprocess, from a directory outside the repo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.checkpoints import assert_article_class_reproduces
from tests.conftest import CLI, REPO, Make, assert_one_line_error
from tiny_cli import config
from tiny_cli.errors import one_line
from tiny_cli.store import runs, tracking


def run_ids(runs_dir: Path) -> list[str]:
    return sorted(p.name for p in runs_dir.iterdir()) if runs_dir.exists() else []


def test_help_and_version_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from tiny_cli.cli import main\n"
        "for args in (['--help'], ['--version'], ['train', '--help'], ['sweep', '--help']):\n"
        "    sys.argv = ['tiny', *args]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (args, e.code)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'numba' not in sys.modules, 'numba was imported'\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr


def test_a_run_imports_no_sympy_matplotlib_or_dynamo_in_its_own_process(tmp_path: Path) -> None:
    """The start-up bar (issue 9): pictures and the read-out are the sidecar's, so the run's
    own process never imports sympy or matplotlib (0.6 s and 0.9 s), nor torch._dynamo
    (1.5 s, what any torch.optim optimizer or torch.broadcast_shapes pulls in)."""
    code = (
        "import sys\n"
        "from tiny_cli.cli import main\n"
        "for args in (['hardwire', 'lt10'], ['runs'], ['train', 'is_even', '--epochs', '3']):\n"
        "    sys.argv = ['tiny', *args]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, (args, e.code)\n"
        "    if args[0] != 'train':  # the compiled kernel's library: only to train\n"
        "        assert 'numba' not in sys.modules, args\n"
        "heavy = ('sympy', 'mpmath', 'matplotlib', 'torch._dynamo')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    env = {**os.environ, "TINY_RUNS_DIR": str(tmp_path / "runs"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout[-500:]


# Runs the CLI with `import torch` (and matplotlib, TensorBoard) refused by a meta path finder.
WITHOUT_TORCH = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "matplotlib", "tensorboard", "numba"):
            raise ImportError(f"{name} imported before the arguments were checked")
sys.meta_path.insert(0, Refuse())
sys.argv = ["tiny", *sys.argv[1:]]
from tiny_cli.cli import main
main()
"""

BAD_ARGUMENTS: list[tuple[list[str], str]] = [
    (["sweep", "is_even", "--seeds", "abc"], "--seeds abc"),
    (["sweep", "is_even", "--seeds", "3", "--grid", "train.lr"], "--grid train.lr:"),
    (["sweep", "is_even", "--seeds", "3", "--grid", "train.lr=abc"], "train.lr"),
    (["sweep", "is_even", "--seeds", "3", "--grid", "trian.lr=1,2"], "did you mean 'train'"),
    (["hardwire", "lt10", "--bits", "4"], "lt10 has no task.bits"),
    (["hardwire", "mod"], "mod has no construction"),
    (["hardwire", "lt10", "--device", "cuda:x"], "--device cuda:x"),
    (["train", "lt10", "--device", "toaster"], "--device toaster"),
    (["train", "lt11"], "unknown config 'lt11'"),
    (["train", "exp.yaml"], "did you mean 'train'"),
    (["sweep", "exp.yaml", "--seeds", "3"], "did you mean 'train'"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_ARGUMENTS)
def test_bad_arguments_are_refused_before_torch_is_imported(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    (tmp_path / "exp.yaml").write_text(
        "task:\n  name: lt10\ntrain:\n  epochs: 3\ntrian:\n  lr: 1\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "TINY_RUNS_DIR": str(tmp_path / "runs")}
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, *args],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "runs").exists()


def test_version(cli: CLI) -> None:
    from tiny_cli import __version__

    proc = cli("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout


@pytest.mark.parametrize("name", config.shipped_names())
def test_every_shipped_config_trains_from_any_directory(
    cli: CLI, runs_dir: Path, name: str
) -> None:
    """One end-to-end run per shipped config, checked whole: what is printed, stored, and
    logged to TensorBoard (every parameter element at every logged epoch, read back with
    TensorBoard's own EventAccumulator and matching the checkpoint). The article's three
    configs run as the installed command from an empty directory; the others in-process
    (`make_run`, the same path without interpreter and torch start-up), their output
    unchecked."""
    from tests.conftest import make_run
    from tests.test_tracking import accumulate, param_tag

    if name in ("lt10", "min", "is_even"):
        proc = cli("train", name, "--epochs", "20", "--set", "log.every=7")
        assert proc.returncode == 0, proc.stderr
        shown = proc.stdout
        (run_id,) = run_ids(runs_dir)
        assert run_id in shown
    else:
        shipped = config.load(name)[0].task.name
        small = ["task.p=7"] if shipped == "modular" else []  # modadd's 961 pairs: 49
        run_id, shown = make_run(runs_dir, "train", name, 20, ["log.every=7", *small]).name, None
    run = runs_dir / run_id
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "completed" and meta["epochs_done"] == 20
    assert meta["versions"]["torch"] == torch.__version__
    assert shown is None or "train" in meta["command"]
    stored = config.load(str(run / "config.yaml"))[0]
    assert stored.train.epochs == 20
    assert stored.task.name == config.load(name)[0].task.name
    acc = accumulate(run)
    steps = [0, 7, 14, 20]  # the init, every 7th epoch, and always the last one
    state = torch.load(run / "model.pt", weights_only=True)
    if sum(t.numel() for t in state.values()) > tracking.MAX_PARAM_SCALARS:  # none logged
        state = {}
    for key, tensor in state.items():
        for index in (
            torch.cartesian_prod(*[torch.arange(n) for n in tensor.shape])
            .reshape(tensor.numel(), -1)
            .tolist()
        ):
            events = acc.Scalars(param_tag(key, tuple(index)))
            assert [e.step for e in events] == steps
            assert events[-1].value == pytest.approx(tensor[tuple(index)].item(), rel=1e-6)
    assert [e.step for e in acc.Scalars("metrics/loss")] == steps
    if stored.task.kind == "classification":
        assert [e.step for e in acc.Scalars("metrics/accuracy")] == steps
    if name in ("lt10", "min", "is_even"):  # the article's own classes load the checkpoint
        assert_article_class_reproduces(run)
    state = torch.load(run / "model.pt", weights_only=True)
    picture, units = run / "prediction.png", run / "units.png"
    assert list(run.glob("events.out.tfevents.*"))
    assert picture.read_bytes().startswith(b"\x89PNG")
    hidden = len(stored.arch.layers) > 1  # hidden units: all but lt10's one neuron
    assert units.read_bytes().startswith(b"\x89PNG") if hidden else not units.exists()
    if shown is not None:
        assert all(key in shown for key in state)  # the rounded table shows every parameter
        assert f"prediction picture: {picture}\n" in shown
        assert (f"units picture: {units}\n" in shown) == hidden


def test_train_a_users_own_yaml_by_path(cli: CLI, runs_dir: Path, tmp_path: Path) -> None:
    mine = tmp_path / "work" / "my.yaml"
    mine.write_text("task:\n  name: is_even\n  bits: 3\ntrain:\n  epochs: 5\n  lr: 0.05\n")
    proc = cli(
        "train", "./my.yaml", "--seed", "7", "--lr", "0.02", "--set", "init.mode=hardwired+noise"
    )
    assert proc.returncode == 0, proc.stderr
    (run_id,) = run_ids(runs_dir)
    stored = config.load(str(runs_dir / run_id / "config.yaml"))[0]
    assert (stored.seed, stored.train.lr, stored.init.mode) == (7, 0.02, "hardwired+noise")
    assert stored.model.widths == [1, 2, 2, 2, 2, 1]


def test_hardwire_is_even_4_bits_reports_where_it_is_right(cli: CLI, runs_dir: Path) -> None:
    proc = cli("hardwire", "is_even", "--bits", "4")
    assert proc.returncode == 0, proc.stderr
    assert "right on every integer in [-1, 17], wrong at -2 and 18" in proc.stdout
    (run_id,) = run_ids(runs_dir)
    metrics = json.loads((runs_dir / run_id / "metrics.json").read_text())
    assert metrics["accuracy"] == 1.0 and metrics["correct_interval"] == [-1, 17]
    assert_article_class_reproduces(runs_dir / run_id)  # the article's create_sequential_model


def test_hardwire_is_even_20_bits_is_exact(cli: CLI, runs_dir: Path) -> None:
    """(24 bits: tests/test_tasks.py, one batched forward over the 2^24 integers.)"""
    proc = cli("hardwire", "is_even", "--bits", "20")
    assert proc.returncode == 0, proc.stderr
    (run_id,) = run_ids(runs_dir)
    metrics = json.loads((runs_dir / run_id / "metrics.json").read_text())
    assert metrics["accuracy"] == 1.0 and metrics["loss"] == 0.0
    lo, hi = metrics["correct_interval"]
    assert lo <= 0 and hi >= 2**20 - 1
    # the read-out, printed at the end: a nest of |x - c|, exact on all 2^20 inputs
    assert "formula: Max(0, 1 - Abs(Abs(" in proc.stdout and "diagnosis: solved" in proc.stdout
    assert "exact on the whole input box (the 1,048,576 integers in [0, 2^20))" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("scale", "expected"), [(None, 0.62), ("100", 1.0)])
def test_hardwire_lt10_scale(cli: CLI, runs_dir: Path, scale: str | None, expected: float) -> None:
    """No --scale: the shipped config's scale 1 (the plain `tiny hardwire lt10`)."""
    proc = cli("hardwire", "lt10", *(["--scale", scale] if scale else []))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # piped: no progress bar
    (run_id,) = run_ids(runs_dir)
    metrics = json.loads((runs_dir / run_id / "metrics.json").read_text())
    assert metrics["F(9.5)"] == pytest.approx(expected, abs=0.005)
    assert metrics["threshold"] == pytest.approx(10.0)
    assert_article_class_reproduces(runs_dir / run_id)


def test_hardwire_min_is_exact(cli: CLI, runs_dir: Path) -> None:
    proc = cli("hardwire", "min")
    assert proc.returncode == 0, proc.stderr
    assert "formula: Min(a, b)" in proc.stdout
    assert "exact on the 1,000 training samples" in proc.stdout
    (run_id,) = run_ids(runs_dir)
    metrics = json.loads((runs_dir / run_id / "metrics.json").read_text())
    assert metrics["max_abs_error"] == 0.0 and metrics["max_abs_error_beyond"] == 0.0
    assert_article_class_reproduces(runs_dir / run_id)  # the article's MinModel


def test_inspect_by_id_prefix_latest_and_json(cli: CLI, runs_dir: Path, make: Make) -> None:
    make("hardwire", "min")
    make("train", "lt10", epochs=2)
    first, second = run_ids(runs_dir)
    from tiny_cli.store import runs

    for ref in (second, second[:-3], "latest"):  # the id, a unique prefix, the newest
        assert runs.find(runs_dir, ref).id == second
    proc = cli("inspect", second[:-3], "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["id"] == second and doc["status"] == "completed"
    for key in ("started", "finished"):  # ISO 8601 with the offset
        assert datetime.fromisoformat(doc["meta"][key]).utcoffset() is not None, doc["meta"]
    state = torch.load(runs_dir / second / "model.pt", weights_only=True)
    assert doc["parameters"] == {k: v.tolist() for k, v in state.items()}
    assert doc["config"]["train"]["epochs"] == 2
    text = cli("inspect", first, "--precision", "3")
    assert text.returncode == 0
    assert "output_layer.weight" in text.stdout and "-0.500" in text.stdout


def test_runs_lists_every_run(cli: CLI, runs_dir: Path, make: Make) -> None:
    make("hardwire", "lt10")
    make("train", "min", epochs=1)
    proc = cli("runs", "--json")
    rows = json.loads(proc.stdout)
    assert [r["id"] for r in rows] == run_ids(runs_dir)
    assert [r["meta"]["task"] for r in rows] == ["lt10", "min"]
    table = cli("runs")
    assert table.returncode == 0 and "2 runs" in table.stdout


def test_compare_shows_hardwired_and_trained_side_by_side(
    cli: CLI, runs_dir: Path, make: Make
) -> None:
    make("hardwire", "min")
    make("train", "min", epochs=2)
    hard, trained = run_ids(runs_dir)
    proc = cli("compare", hard, "latest")
    assert proc.returncode == 0, proc.stderr
    shorts = runs.short_ids([hard, trained])
    assert shorts[hard] in proc.stdout and shorts[trained] in proc.stdout
    assert "hardwire" in proc.stdout and "init hardwired" in proc.stdout
    assert "[[ 0.50  0.50 -0.50 -0.50]]" in proc.stdout  # Equation 1's read-out weights
    assert_one_line_error(cli("compare", hard), "at least two")
    assert_one_line_error(cli("compare", hard, "nosuchrun"), "nosuchrun")


@pytest.mark.parametrize("command", ["inspect", "compare", "sweep", "train", "runs"])
def test_help_has_no_type_tags(cli: CLI, command: str) -> None:
    proc = cli(command, "--help")
    assert proc.returncode == 0, proc.stderr
    for artefact in ("<bool>", "<str>", "<list[str]>", "{", "...}"):
        assert artefact not in proc.stdout, (artefact, proc.stdout)


def _flat(text: str) -> str:
    """Help text with rich's box borders and line breaks gone: words and brackets only."""
    return " ".join(text.replace("│", " ").split())


def test_every_help_keeps_the_brackets_its_texts_are_written_with() -> None:
    """`[dask]` in `pip install -e '.[dask]'` (and any `[...]` in a command's or an option's
    help) is text, not rich markup: every command's --help shows it as written."""
    import typer
    from typer.testing import CliRunner

    from tiny_cli.cli import app

    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    commands: list[tuple[list[str], Any]] = [([], group)]
    commands += [([name], command) for name, command in group.commands.items()]
    checked = 0
    for args, command in commands:
        texts = [command.help, *(getattr(p, "help", None) for p in command.params)]
        if not args:
            texts += [c.help for c in group.commands.values()]
        brackets = {_flat(b) for t in texts if t for b in re.findall(r"\[[^\]]*\]", t)}
        shown = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "400"})
        assert shown.exit_code == 0, shown.output
        for bracket in brackets:
            assert bracket in _flat(shown.output), (args, bracket)
        checked += len(brackets)
    assert checked, "no help text has a bracket: the test checks nothing"


def test_runs_empty_then_one_with_iso_times(
    cli: CLI, runs_dir: Path, tmp_path: Path, make: Make
) -> None:
    """(A command's quiet stderr when piped: test_hardwire_lt10_scale; inspect's times:
    test_inspect_by_id_prefix_latest_and_json.)"""
    empty = cli("runs")
    assert empty.returncode == 0 and empty.stdout == f"no runs in {runs_dir}\n"
    odd = tmp_path / "[bold]x[/]"
    assert cli("runs", "--runs-dir", str(odd)).stdout == f"no runs in {odd}\n"  # not markup
    make("hardwire", "lt10")
    listed = cli("runs")
    assert listed.stdout.splitlines()[0].strip() == "1 run"
    (run_id,) = run_ids(runs_dir)
    assert runs.short_ids([run_id])[run_id] in listed.stdout
    (row,) = json.loads(cli("runs", "--json").stdout)
    for key in ("started", "finished"):
        assert datetime.fromisoformat(row["meta"][key]).utcoffset() is not None, row["meta"]


def test_a_broken_run_is_one_line_and_exit_1_for_inspect_and_compare(
    cli: CLI, runs_dir: Path, make: Make
) -> None:
    make("hardwire", "min")
    (good,) = runs_dir.iterdir()
    bad = good.with_name(good.name + "-002")
    shutil.copytree(good, bad)
    (bad / "metrics.json").write_text("[" * 50 + "]" * 50)
    listed = cli("runs")
    assert listed.returncode == 0 and "broken" in listed.stdout and "completed" in listed.stdout
    for args in (["inspect", bad.name], ["compare", good.name, bad.name]):
        proc = cli(*args)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        (line,) = proc.stderr.splitlines()
        assert bad.name in line and "metrics.json is nested too deeply" in line


def test_the_error_line_escapes_control_characters_and_is_bounded(cli: CLI) -> None:
    proc = cli("inspect", "a\nb\x1b[31mc\r" + "x" * 5000)
    assert_one_line_error(proc, "a\\nb\\x1b[31mc\\r", "more characters")
    assert "\x1b" not in proc.stderr and len(proc.stderr) < 700


def test_one_line_helper() -> None:
    assert one_line("a\nb\r\tc\x1b[0m\x7f\u2028") == "a\\nb\\r\\tc\\x1b[0m\\x7f\\u2028"
    long = one_line("y" * 10_000, limit=100)
    assert len(long) < 130 and long.endswith("more characters)")
