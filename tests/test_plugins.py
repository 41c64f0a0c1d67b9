"""Task plugins: the example package installed by real pip, used by every command; its
construction exact on its whole domain; a broken plugin named in one warning."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

from tests.conftest import CLI, REPO
from tiny_cli import config, tasks
from tiny_cli.tasks import predict_fn

EXAMPLE = REPO / "examples" / "tiny-task-example"
CLAMP = str(EXAMPLE / "clamp.yaml")


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, installed once by pip into a directory of its own (not the venv)."""
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "--target", str(target), str(EXAMPLE)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return target


def only_run(runs_dir: Path) -> dict[str, object]:
    (run,) = runs_dir.iterdir()
    return json.loads((run / "metrics.json").read_text())


def test_tasks_lists_the_plugin_with_its_construction(cli: CLI, site: Path) -> None:
    proc = cli("tasks", "--json", path=[site])
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    entries = {e["name"]: e for e in json.loads(proc.stdout)}
    clamp = entries["clamp"]
    assert clamp["origin"] == "tiny_task_example"
    assert clamp["parameters"] == {"lo": -3, "hi": 4, "low": -8, "high": 8, "encoding": "number"}
    (built,) = clamp["constructions"]
    assert built["summary"] == "ReLU(x + 3) - ReLU(x - 4) - 3"
    assert built["arch"] == "1 -> 2 relu -> 1 identity"
    assert "plugin: tiny_task_example" in cli("tasks", path=[site]).stdout  # the table too


def test_hardwire_is_exact_on_and_beyond_the_domain(cli: CLI, runs_dir: Path, site: Path) -> None:
    proc = cli("hardwire", CLAMP, path=[site])
    assert proc.returncode == 0, proc.stderr
    metrics = only_run(runs_dir)
    assert metrics["max_abs_error"] == 0 and metrics["max_abs_error_beyond"] == 0


def test_the_plugins_meaning_is_in_the_read_out(cli: CLI, runs_dir: Path, site: Path) -> None:
    """Clamp's own meaning (where the net bends) in `tiny hardwire`'s and `tiny inspect`'s
    read-out, and in its JSON: a plugin task's meaning needs nothing outside the plugin."""
    proc = cli("hardwire", CLAMP, path=[site])
    assert proc.returncode == 0, proc.stderr
    line = "kinks at x = -3, 4 (clamp bends at -3, 4)"
    assert line in proc.stdout
    shown = cli("inspect", "latest", path=[site])
    assert shown.returncode == 0, shown.stderr
    assert line in shown.stdout.splitlines()
    readout = json.loads(cli("inspect", "latest", "--json", path=[site]).stdout)["readout"]
    assert readout["kinks"] == [-3.0, 4.0] and readout["clamp_kinks"] == [-3, 4]


def test_the_plugins_meaning_read_from_a_net(example: ModuleType) -> None:
    from tiny_cli.read import readout
    from tiny_cli.show.readout_view import readout_lines

    task = example.Clamp.model_validate({"name": "clamp", "lo": 0, "hi": 6, "low": -4, "high": 12})
    (built,) = task.constructions(config.InitConfig())
    read = readout.read(built.arch, built.weights(), task)
    assert read.meaning == {"kinks": [0.0, 6.0], "clamp_kinks": [0, 6]}
    lines = ["".join(text for text, _ in line) for line in readout_lines(read.as_dict(), task=task)]
    assert "kinks at x = 0, 6 (clamp bends at 0, 6)" in lines


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_train_and_sweep_store_a_run(cli: CLI, runs_dir: Path, site: Path, command: str) -> None:
    seeds = ["--seeds", "3"] if command == "sweep" else []
    proc = cli(command, CLAMP, "--epochs", "5", *seeds, path=[site])
    assert proc.returncode == 0, proc.stderr
    metrics = only_run(runs_dir)
    assert ("seeds" if command == "sweep" else "max_abs_error") in metrics


@pytest.fixture(scope="session")
def example(site: Path) -> ModuleType:
    """The installed module, imported without putting `site` on sys.path (that would add the
    plugin to this process's registry, which other tests expect to hold the built-ins)."""
    spec = importlib.util.spec_from_file_location(
        "tiny_task_example", site / "tiny_task_example" / "__init__.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the class's annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "lo, hi, low, high",
    [
        pytest.param(-3, 4, -8, 8, id="default"),
        pytest.param(0, 6, -4, 12, id="relu6"),
        pytest.param(2, 2, -5, 5, id="lo=hi"),
        pytest.param(-20, 20, -8, 8, id="kinks-beyond-the-domain"),
        pytest.param(999_990, 10**6, 999_000, 10**6, id="large"),
    ],
)
def test_construction_is_clamp_on_the_whole_domain(
    example: ModuleType, lo: int, hi: int, low: int, high: int
) -> None:
    task = example.Clamp.model_validate(
        {"name": "clamp", "lo": lo, "hi": hi, "low": low, "high": high}
    )
    (built,) = task.constructions(config.InitConfig())
    model = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1))
    model.load_state_dict(built.weights())  # strict: the plain net a user writes
    x, y = task.data()
    plain = torch.tensor([float(min(max(v, lo), hi)) for v in range(low, high)])
    assert torch.equal(x.reshape(-1), torch.arange(low, high, dtype=torch.float32))
    assert torch.equal(y.reshape(-1), plain)
    assert torch.equal(predict_fn(model)(x), plain)


@pytest.mark.parametrize(
    "module, reason",
    [
        ("import tiny_missing_dependency\n", "ModuleNotFoundError: No module named"),
        ("class Broken:\n    pass\n", "TypeError: tiny_broken_plugin:Broken is not a"),
        ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
    ],
    ids=["import-error", "not-a-task", "sys-exit"],
)
def test_a_broken_plugin_is_one_warning(cli: CLI, tmp_path: Path, module: str, reason: str) -> None:
    site = tmp_path / "broken-site"
    info = site / "tiny_broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tiny-broken-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text("[tiny.tasks]\nbroken = tiny_broken_plugin:Broken\n")
    (site / "tiny_broken_plugin.py").write_text(module)
    proc = cli("tasks", "--json", path=[site])
    assert proc.returncode == 0, proc.stderr
    assert [e["name"] for e in json.loads(proc.stdout)] == tasks.names()  # the built-ins
    (line,) = proc.stderr.splitlines()
    assert line.startswith("warning: task plugin 'broken' (tiny_broken_plugin:Broken) not loaded: ")
    assert reason in line and "Traceback" not in proc.stderr
