"""Sweeps on a Dask cluster, through the real CLI: one real `dask scheduler` and two real
`dask worker` processes on 127.0.0.1 for the test that uses them (stopped by their own pids
when it ends), and every result compared bit for bit with the same sweep trained in this
process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import CLI, REPO, assert_one_line_error
from tiny_cli import config
from tiny_cli.app import sweep

distributed = pytest.importorskip(
    "distributed", reason="Dask is an extra: pip install -e '.[dask]'"
)

DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
STARTUP = 60.0  # seconds for the scheduler and workers to come up on a busy machine


class Processes:
    """Processes this module started, stopped by their own pids."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(args, env=ENV, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def worker(self, address: str, name: str) -> subprocess.Popen[bytes]:
        # --no-nanny: the pid is the process that trains, so killing it kills a chunk.
        return self.start(name, [*WORKER, address, "--nthreads", "1", "--no-nanny",
                                 "--no-dashboard", "--name", name])  # fmt: skip

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3  # then SIGKILL: a worker has nothing to save
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


class Cluster:
    def __init__(
        self, address: str, processes: Processes, scheduler: Any, doomed: subprocess.Popen[bytes]
    ) -> None:
        self.address, self.processes, self.scheduler = address, processes, scheduler
        self.doomed = doomed  # the third worker, named "doomed": the test kills it

    def client(self) -> Any:
        return distributed.Client(self.address, timeout=STARTUP, set_as_default=False)


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("dask")
    processes = Processes(logs)
    try:
        info = logs / "scheduler.json"
        args = ["--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file"]
        scheduler = processes.start("scheduler", [*DASK, *args, str(info)])
        deadline = time.monotonic() + STARTUP
        address = None
        while address is None and time.monotonic() < deadline and scheduler.poll() is None:
            time.sleep(0.1)
            with contextlib.suppress(OSError, ValueError):  # not there or half written yet
                address = json.loads(info.read_text())["address"]
        assert address is not None, "the scheduler did not start"
        for i in range(2):
            processes.worker(address, f"w{i}")
        c = Cluster(address, processes, scheduler, processes.worker(address, "doomed"))
        with c.client() as client:
            client.wait_for_workers(3, timeout=STARTUP)
        yield c
    finally:
        processes.stop()


SETS = ["--set", "train.batch_size=4"]  # mini-batches: each seed's own shuffling travels too


def local(
    epochs: int, seeds: range, lrs: str | None = None, batch: int | None = 4
) -> list[sweep.PointResult]:
    """The same sweep in this process, in other chunks than the cluster's."""
    overrides = [("train.epochs", epochs, "t"), ("train.batch_size", batch, "t")]
    axes = config.parse_grid([f"train.lr={lrs}"]) if lrs else []
    points = config.grid_points("is_even", overrides, axes)
    return [sweep.run_point(p, seeds, chunk=7) for p in points]


def assert_identical(path: Path, expected: list[sweep.PointResult]) -> None:
    assert json.loads((path / "run.json").read_text())["status"] == "completed"
    data = torch.load(path / "sweep.pt", weights_only=True)
    for stored, fresh in zip(data["points"], expected, strict=True):
        for key, value in fresh.params.items():
            assert torch.equal(stored["params"][key], value), key
        for key in ("loss", "epochs", "outcome"):
            assert torch.equal(stored[key], getattr(fresh, key)), key


def test_a_cluster_sweep_is_the_local_sweep_through_a_killed_worker_and_a_lost_scheduler(
    runs_dir: Path, tmp_path: Path, cluster: Cluster
) -> None:
    """One test, so that one xdist worker alone starts the cluster (pytest 9 ignores
    xdist_group): a sweep through the cluster, one of whose workers is killed mid-chunk, is
    bit-identical to the local sweep; a sweep whose scheduler dies ends interrupted, and
    `--resume --workers 2` (a local cluster) finishes it, bit-identical too."""
    env = {**ENV, "TINY_RUNS_DIR": str(runs_dir / "a")}
    args = ["is_even", "--seeds", "6", "--epochs", "200", *SETS, "--chunk", "2",
            "--grid", "train.lr=0.01,0.05", "--cluster", cluster.address]  # fmt: skip
    with cluster.client() as client:
        (doomed,) = [a for a, w in client.scheduler_info()["workers"].items()
                     if w["name"] == "doomed"]  # fmt: skip
        with sweeping(args, env, tmp_path) as proc:
            deadline = time.monotonic() + 120
            while not client.processing(doomed).get(doomed) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.processing(doomed).get(doomed), "the third worker never got a chunk"
            time.sleep(0.3)  # mid-chunk: its first imports torch, then trains for a second
            os.kill(cluster.doomed.pid, signal.SIGKILL)
            cluster.doomed.wait(timeout=10)
            out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert f"training on {cluster.address}" in out
    (path,) = (runs_dir / "a").iterdir()
    assert_identical(path, local(200, range(6), "0.01,0.05"))
    assert not (path / "chunks").exists()

    env = {**ENV, "TINY_RUNS_DIR": str(runs_dir / "b")}
    args = ["is_even", "--seeds", "8", "--epochs", "600", "--chunk", "2"]
    with sweeping([*args, "--cluster", cluster.address], env, tmp_path) as proc:
        deadline = time.monotonic() + 120
        while not list(runs_dir.glob("b/*/chunks/*.pt")) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(cluster.scheduler.pid, signal.SIGKILL)  # the end of this test's cluster
        cluster.scheduler.wait(timeout=10)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "lost scheduler" in lines[0] and "--resume" in lines[0], err
    (path,) = (runs_dir / "b").iterdir()
    assert json.loads((path / "run.json").read_text())["status"] == "interrupted"
    assert 0 < len(list((path / "chunks").iterdir())) < 4

    resumed = subprocess.run(
        [sys.executable, "-m", "tiny_cli", "sweep", "--resume", path.name, "--workers", "2"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "local cluster of 2 worker(s)" in resumed.stdout
    assert_identical(path, local(600, range(8), batch=None))


@contextlib.contextmanager
def sweeping(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[Any]:
    """`tiny sweep ARGS` running in the background; killed if the block leaves it running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tiny_cli", "sweep", *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_a_sweep_on_cuda_workers_is_the_cpu_sweep(cli: CLI, runs_dir: Path) -> None:
    proc = cli("sweep", "is_even", "--seeds", "8", "--epochs", "100",
               "--workers", "1", "--device", "cuda")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (path,) = runs_dir.iterdir()
    data = torch.load(path / "sweep.pt", weights_only=True)
    (fresh,) = local(100, range(8), batch=None)
    # CUDA rounds differently from the CPU: the same seeds, the same outcomes, close weights
    assert torch.equal(data["points"][0]["epochs"], fresh.epochs)
    for key, value in fresh.params.items():
        torch.testing.assert_close(data["points"][0]["params"][key], value)


def test_cluster_and_workers_together_are_one_line(cli: CLI) -> None:
    proc = cli("sweep", "is_even", "--seeds", "4", "--cluster", "tcp://127.0.0.1:1",
               "--workers", "2")  # fmt: skip
    assert_one_line_error(proc, "--cluster", "--workers")


def test_an_unreachable_scheduler_is_one_line(runs_dir: Path, tmp_path: Path) -> None:
    env = {**ENV, "TINY_RUNS_DIR": str(runs_dir), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}
    args = ["sweep", "is_even", "--seeds", "4", "--cluster", "tcp://127.0.0.1:9"]
    proc = subprocess.run([sys.executable, "-m", "tiny_cli", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert_one_line_error(proc, "--cluster tcp://127.0.0.1:9", "cannot reach")
    assert not runs_dir.exists() or not list(runs_dir.iterdir())


def test_without_dask_the_cluster_options_say_how_to_install_it(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "sys.modules['distributed'] = None  # as if not installed\n"
        "from tiny_cli.cli import main\n"
        "sys.argv = ['tiny', 'sweep', 'is_even', '--seeds', '4', '--workers', '2']\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    assert 'torch' not in sys.modules, 'torch imported before the check'\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=ENV, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert_one_line_error(proc, "pip install -e '.[dask]'")


def test_the_local_sweep_does_not_import_dask(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from tiny_cli.cli import main\n"
        "sys.argv = ['tiny', 'sweep', 'is_even', '--seeds', '2', '--epochs', '3']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules\n"
    )
    env = {**ENV, "TINY_RUNS_DIR": str(tmp_path / "runs")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_a_refused_address_is_refused_at_once(runs_dir: Path, tmp_path: Path) -> None:
    """Nothing listens there: known at once, not after Dask's connect timeout (a minute
    here, longer than this test waits), and the line says it was refused."""
    timeout = {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "60s"}
    env = {**ENV, "TINY_RUNS_DIR": str(runs_dir), **timeout}
    args = ["sweep", "is_even", "--seeds", "4", "--cluster", "tcp://127.0.0.1:1"]
    proc = subprocess.run([sys.executable, "-m", "tiny_cli", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert_one_line_error(proc, "--cluster tcp://127.0.0.1:1", "connection refused")
    assert not runs_dir.exists() or not list(runs_dir.iterdir())
