"""Every command through the real CLI in a subprocess, from a directory outside the repo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import CLI, REPO, assert_one_line_error
from tiny_cli import config, runs


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
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr


def test_version(cli: CLI) -> None:
    from tiny_cli import __version__

    proc = cli("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout


@pytest.mark.parametrize("name", config.shipped_names())
def test_every_shipped_config_trains_from_any_directory(
    cli: CLI, runs_dir: Path, name: str
) -> None:
    proc = cli("train", name, "--epochs", "3")
    assert proc.returncode == 0, proc.stderr
    (run_id,) = run_ids(runs_dir)
    assert run_id in proc.stdout
    run = runs_dir / run_id
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "completed" and meta["epochs_done"] == 3
    assert meta["versions"]["torch"] == torch.__version__
    assert "train" in meta["command"]
    stored = config.load(str(run / "config.yaml"))[0]
    assert stored.train.epochs == 3 and stored.task.name == name
    state = torch.load(run / "model.pt", weights_only=True)
    for key in state:  # the rounded table shows every parameter
        assert key in proc.stdout
    assert list(run.glob("events.out.tfevents.*"))
    picture = run / "prediction.png"
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert f"prediction picture: {picture}\n" in proc.stdout


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


def test_hardwire_is_even_24_bits_is_exact(cli: CLI, runs_dir: Path) -> None:
    proc = cli("hardwire", "is_even", "--bits", "24")
    assert proc.returncode == 0, proc.stderr
    (run_id,) = run_ids(runs_dir)
    metrics = json.loads((runs_dir / run_id / "metrics.json").read_text())
    assert metrics["accuracy"] == 1.0 and metrics["loss"] == 0.0
    lo, hi = metrics["correct_interval"]
    assert lo <= 0 and hi >= 2**24 - 1


@pytest.mark.parametrize(("scale", "expected"), [("1", 0.62), ("100", 1.0)])
def test_hardwire_lt10_scale(cli: CLI, runs_dir: Path, scale: str, expected: float) -> None:
    proc = cli("hardwire", "lt10", "--scale", scale)
    assert proc.returncode == 0, proc.stderr
    (run_id,) = run_ids(runs_dir)
    metrics = json.loads((runs_dir / run_id / "metrics.json").read_text())
    assert metrics["F(9.5)"] == pytest.approx(expected, abs=0.005)
    assert metrics["threshold"] == pytest.approx(10.0)


def test_hardwire_min_is_exact(cli: CLI, runs_dir: Path) -> None:
    proc = cli("hardwire", "min")
    assert proc.returncode == 0, proc.stderr
    (run_id,) = run_ids(runs_dir)
    metrics = json.loads((runs_dir / run_id / "metrics.json").read_text())
    assert metrics["max_abs_error"] == 0.0 and metrics["max_abs_error_beyond"] == 0.0


def test_inspect_by_id_prefix_latest_and_json(cli: CLI, runs_dir: Path) -> None:
    assert cli("hardwire", "min").returncode == 0
    assert cli("train", "lt10", "--epochs", "2").returncode == 0
    first, second = run_ids(runs_dir)
    for ref in (second, second[:-3], "latest"):
        proc = cli("inspect", ref, "--json")
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["id"] == second and doc["status"] == "completed"
        state = torch.load(runs_dir / second / "model.pt", weights_only=True)
        assert doc["parameters"] == {k: v.tolist() for k, v in state.items()}
        assert doc["config"]["train"]["epochs"] == 2
    text = cli("inspect", first, "--precision", "3")
    assert text.returncode == 0
    assert "output_layer.weight" in text.stdout and "-0.500" in text.stdout


def test_runs_lists_every_run(cli: CLI, runs_dir: Path) -> None:
    assert cli("hardwire", "lt10").returncode == 0
    assert cli("train", "min", "--epochs", "1").returncode == 0
    proc = cli("runs", "--json")
    rows = json.loads(proc.stdout)
    assert [r["id"] for r in rows] == run_ids(runs_dir)
    assert [r["meta"]["task"] for r in rows] == ["lt10", "min"]
    table = cli("runs")
    assert table.returncode == 0 and "2 runs" in table.stdout


def test_compare_shows_hardwired_and_trained_side_by_side(cli: CLI, runs_dir: Path) -> None:
    assert cli("hardwire", "min").returncode == 0
    assert cli("train", "min", "--epochs", "2").returncode == 0
    hard, trained = run_ids(runs_dir)
    proc = cli("compare", hard, "latest")
    assert proc.returncode == 0, proc.stderr
    shorts = runs.short_ids([hard, trained])
    assert shorts[hard] in proc.stdout and shorts[trained] in proc.stdout
    assert "hardwire" in proc.stdout and "init hardwired" in proc.stdout
    assert "[[ 0.50  0.50 -0.50 -0.50]]" in proc.stdout  # Equation 1's read-out weights
    assert_one_line_error(cli("compare", hard), "at least two")
    assert_one_line_error(cli("compare", hard, "nosuchrun"), "nosuchrun")
