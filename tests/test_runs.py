"""The runs directory: ids, lookup, listing, and the files a run keeps."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tiny_cli import runs
from tiny_cli.errors import TinyError


def test_ids_sort_by_time() -> None:
    early, late = (
        runs.new_id("min", now=1_700_000_000.001),
        runs.new_id("lt10", now=1_700_000_000.5),
    )
    assert early < late


def test_resolve_by_id_prefix_and_latest(tmp_path: Path) -> None:
    ids = ["20250101-000000-000-lt10", "20250101-000000-000-lt10-002", "20250102-101010-500-min"]
    for run_id in ids:
        runs.Run(tmp_path / run_id).path.mkdir()
        runs.Run(tmp_path / run_id).write_json(runs.META, {"status": "completed"})
    assert runs.resolve(tmp_path, "latest").id == ids[-1]
    assert runs.resolve(tmp_path, ids[0]).id == ids[0]  # exact, though also a prefix of ids[1]
    assert runs.resolve(tmp_path, "20250102").id == ids[-1]
    with pytest.raises(TinyError, match="ambiguous"):
        runs.resolve(tmp_path, "20250101")
    with pytest.raises(TinyError, match="no such run"):
        runs.resolve(tmp_path, "2024")


def test_runs_created_in_the_same_millisecond_are_distinct(tmp_path: Path) -> None:
    made = [runs.create(tmp_path, "lt10") for _ in range(20)]
    assert len({r.id for r in made}) == 20
    assert sorted(r.id for r in made) == [r.id for r in made]  # creation order is sort order


@pytest.mark.parametrize("ref", ["../x", "..", ".", "/etc", "a/b", ".hidden", ""])
def test_resolve_never_leaves_the_runs_directory(tmp_path: Path, ref: str) -> None:
    (tmp_path / "runs").mkdir()
    with pytest.raises(TinyError):
        runs.resolve(tmp_path / "runs", ref)


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
        "import sys; from pathlib import Path; from tiny_cli import runs\n"
        "for _ in range(50):\n"
        "    r = runs.create(Path(sys.argv[1]), 'min'); r.write_json(runs.META, {'id': r.id})\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO) for _ in range(4)
    ]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    records = runs.list_records(tmp_path)
    assert len(records) == 200 and all(r.meta.id == r.run.id for r in records)
