"""A sweep over time (train/curves.py): the solved-by-epoch curve against the seeds' own runs,
the sketches merged across chunks, `tiny inspect SWEEP` and `--json`, and the margin charts
a real TensorBoard server returns through its custom-scalars plugin."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from rich.console import Console

from tests.conftest import make_run, make_sweep, tiny_here
from tests.test_board import free_port, get
from tiny_cli.app import board
from tiny_cli.show.curves_view import first_solved_views
from tiny_cli.store import tracking
from tiny_cli.train import curves

SEEDS, EPOCHS = 40, 100
# is_even from a noisy copy of the article's construction: most seeds solve within 100
# epochs, at different epochs, some never (from a random init almost none do)
SETS = ["init.mode=hardwired+noise"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs_dir = tmp_path_factory.mktemp("curves") / "runs"
    make_sweep(runs_dir, "is_even", SEEDS, EPOCHS, sets=SETS)
    return runs_dir


def the_sweep(runs: Path) -> Path:
    (path,) = [p for p in runs.iterdir() if p.name.endswith("-sweep")]
    return path


def stored(sweep: Path) -> tuple[dict[str, object], list[int]]:
    (point,) = json.loads((sweep / "curves.json").read_text())
    arrays = torch.load(sweep / "sweep.pt", weights_only=True)
    return point, arrays["points"][0]["first_solved"].tolist()


def test_first_solved_epochs_agree_with_the_seeds_own_runs(runs: Path, tmp_path: Path) -> None:
    point, first = stored(the_sweep(runs))
    solved = [k for k, e in enumerate(first) if e >= 0]
    never = [k for k, e in enumerate(first) if e < 0]
    assert 5 <= len(solved) < SEEDS and never  # the scene: seeds solve at different epochs
    assert len({first[k] for k in solved}) > 3
    for k in [*solved[:3], never[0]]:  # `tiny train --seed k`, its own TensorBoard curve
        run = make_run(tmp_path / "runs", "train", "is_even", EPOCHS, sets=[*SETS, f"seed={k}"])
        accuracy = tracking.scalar_history(run, "metrics/accuracy")
        assert len(accuracy) == EPOCHS + 1
        own = next((epoch for epoch, a in enumerate(accuracy) if a >= 1.0), -1)
        assert first[k] == own, k
    # the solved fraction so far is the first solved epochs' running count
    epochs = point["epochs"]
    assert epochs == list(range(EPOCHS + 1))
    expected = [sum(0 <= f <= e for f in first) / SEEDS for e in epochs]
    assert point["solved"] == pytest.approx(expected)
    assert point["never_solved"] == len(never)


def test_sketches_merge_across_chunks_to_the_same_curves(runs: Path, tmp_path: Path) -> None:
    whole, first = stored(the_sweep(runs))
    chunked = make_sweep(tmp_path / "runs", "is_even", SEEDS, EPOCHS, sets=SETS, chunk=7)
    parts, first_chunked = stored(chunked)
    assert first_chunked == first
    assert (parts["epochs"], parts["solved"]) == (whole["epochs"], whole["solved"])
    metrics = whole["metrics"]
    assert isinstance(metrics, dict) and set(metrics) == {"loss", "accuracy"}
    for name, series in metrics.items():
        for q, values in series.items():
            assert parts["metrics"][name][q] == pytest.approx(values, rel=1e-5), (name, q)  # type: ignore[index]


def test_sketch_quantiles_within_a_bin_and_exact_where_seeds_agree() -> None:
    gen = torch.Generator().manual_seed(0)
    values = 10 ** (torch.rand(5000, generator=gen, dtype=torch.float64) * 6 - 5)
    one, two = curves.Sketch.empty("log", 1), curves.Sketch.empty("log", 1)
    whole = curves.Sketch.empty("log", 1)
    one.add(0, values[:1234])
    two.add(0, values[1234:])
    whole.add(0, values)
    one.merge(two)
    assert torch.equal(one.counts, whole.counts)
    bin_decades = (curves.LOG_RANGE[1] - curves.LOG_RANGE[0]) / curves.BINS["log"]
    for q in curves.QUANTILES.values():
        got, true = float(one.quantile(q)[0]), float(torch.quantile(values, q))
        assert abs(torch.tensor(got / true).log10()) <= bin_decades
    same = curves.Sketch.empty("fraction", 2)
    same.add(0, torch.ones(30))
    same.add(0, torch.tensor([float("nan")]))  # a diverged seed is left out
    assert same.quantile(0.5).tolist()[0] == 1.0
    assert torch.isnan(same.quantile(0.5)[1])  # no seed recorded there


def test_curve_epochs_are_capped_by_striding_and_keep_the_last() -> None:
    assert curves.curve_epochs(10, 3) == [0, 3, 6, 9, 10]
    many = curves.curve_epochs(100_000, 1)
    assert len(many) <= curves.MAX_POINTS and many[0] == 0 and many[-1] == 100_000
    assert len({b - a for a, b in itertools.pairwise(many[:-1])}) == 1


def test_inspect_shows_the_first_solved_distribution_and_json_has_the_curves(
    runs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = the_sweep(runs)
    point, first = stored(sweep)
    code, out, _ = tiny_here(capsys, monkeypatch, "inspect", sweep.name, "--runs-dir", str(runs))
    assert code in (0, None)
    console = Console(file=io.StringIO(), width=80, color_system=None, record=True)
    views = first_solved_views([{"grid": {}, "first_solved": torch.tensor(first)}], repr)
    console.print(*views)
    assert max(len(line) for line in console.export_text().splitlines()) <= 80
    solved = sum(e >= 0 for e in first)
    assert f"First solved epoch (base config): {solved} of {SEEDS} seeds solved" in out
    never = [line for line in out.splitlines() if line.split()[:1] == ["never"]]
    assert never and never[0].split()[1] == str(SEEDS - solved)
    code, out, _ = tiny_here(
        capsys, monkeypatch, "inspect", sweep.name, "--json", "--runs-dir", str(runs)
    )
    doc = json.loads(out)
    assert doc["curves"][0]["metrics"]["loss"]["q50"] == point["metrics"]["loss"]["q50"]  # type: ignore[index]
    assert doc["first_solved"][0]["epochs"] == first
    assert doc["first_solved"][0]["seeds"] == list(range(SEEDS))


@pytest.fixture(scope="module")
def server(runs: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        board.command(runs, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}/data/"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if get(url + "plugin/custom_scalars/layout"):
                    break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, "TensorBoard did not serve the sweep in 90 s"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_tensorboard_serves_margin_charts_and_their_scalars(runs: Path, server: str) -> None:
    sweep = the_sweep(runs)
    point, _ = stored(sweep)
    layout = get(server + "plugin/custom_scalars/layout")
    (category,) = [c for c in layout["category"] if c["title"] == "sweep curves: base config"]
    charts = {chart["title"]: chart for chart in category["chart"]}
    loss = charts["loss: median, 10th to 90th percentile over the seeds"]["margin"]["series"]
    assert loss == [
        {
            "value": "curves/p0/loss/median",
            "lower": "curves/p0/loss/p10",
            "upper": "curves/p0/loss/p90",
        }
    ]
    assert "accuracy: median, 10th to 90th percentile over the seeds" in charts
    assert charts["fraction of seeds solved so far"]["multiline"]["tag"] == ["^curves/p0/solved$"]
    served = get(f"{server}plugin/custom_scalars/scalars?run={sweep.name}&tag=%5Ecurves/p0/loss/")
    assert served["regex_valid"]
    payload = served["tag_to_events"]
    assert set(payload) == {f"curves/p0/loss/{s}" for s in ("median", "p10", "p90")}
    median = payload["curves/p0/loss/median"]
    assert [e[1] for e in median] == point["epochs"]
    assert [e[2] for e in median] == pytest.approx(point["metrics"]["loss"]["q50"], rel=1e-6)  # type: ignore[index]
    solved = get(f"{server}plugin/custom_scalars/scalars?run={sweep.name}&tag=%5Ecurves/p0/solved")
    assert [e[2] for e in solved["tag_to_events"]["curves/p0/solved"]] == pytest.approx(
        point["solved"]
    )


def test_sweep_report_draws_the_curves_and_the_solutions_alpha(runs: Path, tmp_path: Path) -> None:
    from tiny_cli.app import solutions
    from tiny_cli.show import report
    from tiny_cli.store import runs as store

    contents = report.gather(store.read(store.Run(the_sweep(runs))))
    assert [c.title for c in contents.curves] == ["over the seeds: base config"]
    assert contents.curves[0].png.startswith(b"\x89PNG") and contents.alphas is None
    assert "<h2>Over the epochs</h2>" in report.to_html(contents)
    mins = store.Run(make_sweep(tmp_path / "runs", "min", 20, 40))
    solutions.solutions(mins)
    contents = report.gather(store.read(mins))
    assert contents.solutions is not None and contents.alphas is not None
    html = report.to_html(contents)
    assert html.index("<h2>Solutions</h2>") < html.index(contents.alphas.title)
