"""The runs directory: ids, lookup, listing, and the files a run keeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import REPO, Make, make_sweep
from tiny_cli.errors import TinyError
from tiny_cli.store import runs


def test_ids_sort_by_time() -> None:
    early, late = (
        runs.new_id("min", now=1_700_000_000.001),
        runs.new_id("lt10", now=1_700_000_000.5),
    )
    assert early < late


def test_find_by_id_prefix_and_latest(tmp_path: Path) -> None:
    ids = ["20250101-000000-000-lt10", "20250101-000000-000-lt10-002", "20250102-101010-500-min"]
    for run_id in ids:
        runs.Run(tmp_path / run_id).path.mkdir()
        runs.Run(tmp_path / run_id).write_json(runs.META, {"status": "completed"})
    assert runs.find(tmp_path, "latest").id == ids[-1]
    assert runs.find(tmp_path, ids[0]).id == ids[0]  # exact, though also a prefix of ids[1]
    assert runs.find(tmp_path, "20250102").id == ids[-1]
    with pytest.raises(TinyError, match="ambiguous"):
        runs.find(tmp_path, "20250101")
    with pytest.raises(TinyError, match="no such run"):
        runs.find(tmp_path, "2024")


def test_runs_created_in_the_same_millisecond_are_distinct(tmp_path: Path) -> None:
    made = [runs.create(tmp_path, "lt10") for _ in range(20)]
    assert len({r.id for r in made}) == 20
    assert sorted(r.id for r in made) == [r.id for r in made]  # creation order is sort order


@pytest.mark.parametrize("ref", ["../x", "..", ".", "/etc", "a/b", ".hidden", ""])
def test_find_never_leaves_the_runs_directory(tmp_path: Path, ref: str) -> None:
    (tmp_path / "runs").mkdir()
    with pytest.raises(TinyError):
        runs.find(tmp_path / "runs", ref)


def test_a_broken_run_is_listed_with_its_problem(tmp_path: Path) -> None:
    good, bad, empty = (runs.create(tmp_path, "lt10") for _ in range(3))
    good.write_json(runs.META, {"status": "completed"})
    good.write_json(runs.METRICS, {"loss": 0.1})
    bad.write_json(runs.META, {"status": "completed"})
    (bad.path / runs.METRICS).write_text('{"loss": 0.')  # truncated by hand
    os.utime(empty.path, (time.time() - 60,) * 2)  # old enough not to be still starting
    records = {r.run.id: r for r in runs.list_records(tmp_path)}
    assert records[good.id].problem == ""
    assert "metrics.json" in records[bad.id].problem
    assert "run.json is missing" in records[empty.id].problem


def test_parallel_processes_get_distinct_complete_runs(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from tiny_cli.store import runs\n"
        "for _ in range(50):\n"
        "    r = runs.create(Path(sys.argv[1]), 'min'); r.write_json(runs.META, {'id': r.id})\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO) for _ in range(4)
    ]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    records = runs.list_records(tmp_path)
    assert len(records) == 200 and all(r.meta.id == r.run.id for r in records)


# --- untrusted run directories ----------------------------------------------------------


def good_run(root: Path, name: str = "20250101-000000-000-lt10", **meta: object) -> runs.Run:
    run = runs.Run(root / name)
    run.path.mkdir(parents=True)
    run.write_json(runs.META, {"id": name, "kind": "train", "status": "completed", **meta})
    run.write_json(runs.METRICS, {"loss": 0.1, "accuracy": 1.0})
    return run


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: p.symlink_to("/etc/hostname"), "symbolic link"),
        (lambda p: p.mkdir(), "not a regular file"),
        (lambda p: p.write_bytes(b" " * (runs.TEXT_CAP + 1)), "too large"),
        (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "nested too deeply"),
        (lambda p: p.write_text("[" * 40 + "]" * 40), "nested too deeply"),
        (lambda p: p.write_text("[1, 2]"), "not a JSON object"),
        (lambda p: p.write_bytes(b'{"loss": "\xff"}'), "unreadable"),
        (lambda p: p.write_text('{"loss": {"a": 1}}'), "'loss' is not a number"),
    ],
)
def test_an_untrusted_metrics_file_is_a_problem_not_a_crash(
    tmp_path: Path, damage: Callable[[Path], object], needle: str
) -> None:
    run = good_run(tmp_path)
    (run.path / runs.METRICS).unlink()
    damage(run.path / runs.METRICS)
    (record,) = runs.list_records(tmp_path)
    assert record.status == "broken"
    assert needle in record.problem and "metrics.json" in record.problem


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ({"status": "completed", "epochs_done": "3"}, "epochs_done"),
        ({"status": "completed", "started": True}, "started"),
        ({"status": "completed", "seeds": [3]}, "seeds"),
        ({"status": ["completed"]}, "status"),
    ],
)
def test_run_json_of_the_wrong_shape_names_the_key(
    tmp_path: Path, meta: dict[str, object], needle: str
) -> None:
    run = good_run(tmp_path)
    run.write_json(runs.META, meta)
    (record,) = runs.list_records(tmp_path)
    assert "run.json is invalid" in record.problem and needle in record.problem


def test_a_yaml_alias_bomb_or_a_list_config_is_a_problem(tmp_path: Path) -> None:
    run = good_run(tmp_path)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    run.write_text(runs.CONFIG, bomb)
    with pytest.raises(runs.RunProblem, match="too many values"):
        runs.read_config(run)
    run.write_text(runs.CONFIG, "- 1\n- 2\n")
    with pytest.raises(runs.RunProblem, match="not a mapping"):
        runs.read_config(run)


def test_a_symlinked_run_directory_is_not_listed_nor_resolved(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    good_run(root)
    target = good_run(elsewhere, "20260101-000000-000-min")
    (root / target.id).symlink_to(target.path)
    assert runs.all_ids(root) == ["20250101-000000-000-lt10"]
    with pytest.raises(TinyError, match="symbolic link"):
        runs.find(root, target.id)
    assert runs.find(root, "latest").id == "20250101-000000-000-lt10"


def test_meta_extra_keys_ignored_and_times_in_iso_with_offset(tmp_path: Path) -> None:
    run = good_run(tmp_path, started=1_700_000_000.25, finished="2023-11-14T22:13:30Z", x=1)
    doc = runs.read(run).meta.to_json()
    assert "x" not in doc
    started = datetime.fromisoformat(doc["started"])
    assert started.utcoffset() is not None and started.timestamp() == 1_700_000_000.25
    assert datetime.fromisoformat(doc["finished"]).timestamp() == 1_700_000_010


def test_a_young_directory_without_run_json_is_starting_an_old_one_broken(tmp_path: Path) -> None:
    young = runs.create(tmp_path, "lt10")
    assert runs.read(young).status == "starting" and runs.read(young).problem == ""
    old = runs.read(young, now=time.time() + 60)
    assert old.status == "broken" and "run.json is missing" in old.problem


def test_a_running_run_nobody_writes_to_is_stale(tmp_path: Path) -> None:
    run = good_run(tmp_path, status="running")
    (run.path / runs.METRICS).unlink()
    assert runs.read(run).status == "running"
    assert runs.read(run, now=time.time() + runs.STALE + 1).status == "stale"


def test_latest_is_the_newest_start_not_the_largest_id(tmp_path: Path) -> None:
    good_run(tmp_path, "20250101-000000-000-lt10", started=2_000_000_000.0)
    good_run(tmp_path, "20250102-000000-000-lt10", started=1_000_000_000.0)
    no_start = good_run(tmp_path, "20240101-000000-000-min")  # falls back to its mtime
    os.utime(no_start.path, (1_500_000_000,) * 2)
    assert runs.find(tmp_path, "latest").id == "20250101-000000-000-lt10"


def test_short_ids_are_unique_and_resolve(tmp_path: Path) -> None:
    ids = [
        "20261121-203015-123-lt10",
        "20261121-203015-123-lt10-002",
        "20261121-203016-500-is_even-sweep",
        "20261121-203017-000-min",
        "20251121-203017-999-min",
        "my-own-run",
    ]
    shorts = runs.short_ids(ids)
    assert shorts == {
        ids[0]: "1121-203015-123",
        ids[1]: "1121-203015-123-002",
        ids[2]: "1121-203016",
        ids[3]: "1121-203017-000",
        ids[4]: "1121-203017-999",
        ids[5]: "my-own-run",
    }
    for run_id in ids:
        good_run(tmp_path, run_id)
    for run_id, short in shorts.items():
        assert runs.find(tmp_path, short).id == run_id


def test_sweep_arrays_are_checked_against_the_seeds_count(tmp_path: Path) -> None:
    import torch

    run = good_run(tmp_path, kind="sweep", n_seeds=3)
    point = {
        "grid": {"train.batch_size": None},
        "params": {"0.weight": torch.zeros(3, 1, 1)},
        "loss": torch.zeros(3),
        "epochs": torch.ones(3, dtype=torch.long),
        "outcome": torch.zeros(3, dtype=torch.long),
    }
    data = {"seeds": torch.tensor([4, 5, 6]), "outcomes": ["solved"], "points": [point]}
    run.save_tensors(runs.SWEEP, data)
    (result,) = runs.read_sweep_arrays(run, 3).at(5)
    assert result.label == "train.batch_size=null" and result.parameters == {"0.weight": [[0.0]]}
    with pytest.raises(runs.RunProblem, match="2 seeds"):
        run.save_tensors(runs.SWEEP, {**data, "seeds": torch.tensor([4, 5])})
        runs.read_sweep_arrays(run, 3)
    point["params"] = {"0.weight": torch.zeros(2, 1, 1)}
    run.save_tensors(runs.SWEEP, data)
    with pytest.raises(runs.RunProblem, match="parameters"):
        runs.read_sweep_arrays(run, 3)


def test_sweep_arrays_take_grid_values_that_are_lists(tmp_path: Path) -> None:
    """`--grid 'model.widths=[1,2,1];[1,4,1]'` stores lists as grid values: they read back
    (inspect --seed, report and --solutions read them); values YAML cannot give do not."""
    import torch

    run = good_run(tmp_path, kind="sweep", n_seeds=1)
    point = {
        "grid": {"model.widths": [1, 4, 1], "task": {"bits": 3}},
        "params": {"0.weight": torch.zeros(1, 4, 1)},
        "loss": torch.zeros(1),
        "epochs": torch.ones(1, dtype=torch.long),
        "outcome": torch.zeros(1, dtype=torch.long),
    }
    data = {"seeds": torch.tensor([7]), "outcomes": ["solved"], "points": [point]}
    run.save_tensors(runs.SWEEP, data)
    (result,) = runs.read_sweep_arrays(run, 1).at(7)
    assert "model.widths=[1, 4, 1]" in result.label
    nested: list[object] = []
    for _ in range(20):
        nested = [nested]
    for hostile in (torch.zeros(2), nested, {1: 2}):
        point["grid"] = {"model.widths": hostile}
        run.save_tensors(runs.SWEEP, data)
        with pytest.raises(runs.RunProblem, match="grid"):
            runs.read_sweep_arrays(run, 1)


# --- the --json documents on the typed views --------------------------------------------


def tiny(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[object, str]:
    """The real entry point, in this process: (exit code, stdout)."""
    from tiny_cli import cli

    monkeypatch.setattr(sys, "argv", ["tiny", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    return exit_.value.code, capsys.readouterr().out


def printed(doc: object) -> str:
    """A document as `--json` prints it: same keys, same order, same values."""
    return json.dumps(doc, indent=2) + "\n"


@pytest.fixture
def stored(make: Make, runs_dir: Path) -> list[runs.Run]:
    """Real runs, as the commands store them: a trained net, a hardwired one, a sweep over a
    grid, and a run whose metrics.json is broken."""
    trained, hardwired = make("train", "min", epochs=2), make("hardwire", "lt10")
    sweep = make_sweep(runs_dir, "min", 3, epochs=2, grid=["train.lr=0.01,0.1"])
    broken = make("hardwire", "min")
    (broken / runs.METRICS).write_text('{"loss": 0.')
    return [runs.Run(p) for p in (trained, hardwired, sweep, broken)]


def test_runs_json_is_each_records_to_json(
    stored: list[runs.Run],
    runs_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out = tiny(capsys, monkeypatch, "runs", "--json", "--runs-dir", str(runs_dir))
    records = runs.list_records(runs_dir)
    assert code == 0 and len(records) == len(stored)
    assert any(r.problem for r in records) and any(r.meta.is_sweep for r in records)
    assert out == printed([r.to_json() for r in records])


def test_inspect_json_of_a_run_is_its_details_to_json(
    stored: list[runs.Run],
    runs_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tiny_cli.read import stored as reading

    for run in (stored[0], stored[1], stored[3]):
        code, out = tiny(
            capsys, monkeypatch, "inspect", run.id, "--json", "--runs-dir", str(runs_dir)
        )
        record = runs.read(run)
        info = runs.details(record)
        has_net = info.params is not None and info.config is not None
        read = reading.stored_readout(run, record) if has_net else None
        assert read is not None and code == (1 if run is stored[3] else 0)  # 3: broken metrics
        assert out == printed(info.to_json(record, read[0].as_dict() if read else None))


def test_inspect_json_of_a_sweep_is_its_details_to_json(
    stored: list[runs.Run],
    runs_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sweep = stored[2]
    code, out = tiny(
        capsys, monkeypatch, "inspect", sweep.id, "--json", "--runs-dir", str(runs_dir)
    )
    record = runs.read(sweep)
    info = runs.details(record)
    assert code == 0 and info.grid is not None and info.summary
    assert out == printed(info.to_json(record))
    keys = list(json.loads(out))
    assert {"grid", "summary", "curves", "first_solved"} <= set(keys)
    assert keys[-3:] == ["partial", "remaining", "problem"]

    code, out = tiny(
        capsys,
        monkeypatch,
        "inspect",
        sweep.id,
        "--seed",
        "1",
        "--json",
        "--runs-dir",
        str(runs_dir),
    )
    arrays = runs.read_sweep_arrays(sweep, record.meta.n_seeds)
    assert code == 0 and out == printed(arrays.seed_json(sweep.id, 1))
