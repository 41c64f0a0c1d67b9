"""The Python API (tiny_cli/api.py) in a real Jupyter kernel, and `tiny reproduce`'s verdicts
read from the runs it made."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import REPO, tiny_here
from tiny_cli.show.progress import ProgressBar


class Quiet(ProgressBar):
    console = Console(quiet=True)


def test_the_article_notebook_runs_in_a_kernel_and_shows_html(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a user types: `jupyter nbconvert --to notebook --execute`, a real kernel."""
    nbformat = pytest.importorskip("nbformat")
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists() or importlib.util.find_spec("nbconvert") is None:
        pytest.skip("jupyter nbconvert is not installed (pip install -e '.[notebook]')")
    runs_dir = tmp_path / "runs"
    monkeypatch.setenv("TINY_RUNS_DIR", str(runs_dir))  # the kernel inherits it
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    shutil.copy(REPO / "examples" / "article.ipynb", tmp_path / "article.ipynb")
    proc = subprocess.run(
        [str(jupyter), "nbconvert", "--to", "notebook", "--execute", "article.ipynb",
         "--output", "executed.ipynb", "--ExecutePreprocessor.timeout=180"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    nb = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "F(9.5) = 0.6225" in text and "F(9.5) = 1.0000" in text
    assert "threshold 9.47" in text and "solved, alpha = " in text
    assert "right on [-1, 17]" in text and "solved 0 of 16" in text
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    run_html = next(h for h in html if "Read-out" in h and "<img" in h)  # a run: its report
    assert "Sigmoid" in run_html or "exp(" in run_html
    assert any("same function" in h for h in html)  # a comparison
    assert any("stuck at mean" in h for h in html)  # a sweep's outcomes
    # ordinary runs: what the CLI lists
    from tiny_cli.store import runs

    records = runs.list_records(runs_dir)
    assert [r.meta.kind for r in records].count("sweep") == 1 and len(records) == 7
    assert all(r.status == "completed" for r in records)


def test_api_errors_are_the_clis_one_line_and_runs_load_both_ways(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tiny_cli as tiny

    with pytest.raises(tiny.TinyError) as caught:
        tiny.train("lt10", tmp_path, train__lr="x")
    assert "train.lr" in str(caught.value) and "\n" not in str(caught.value)
    code, _, _ = tiny_here(capsys, monkeypatch, "hardwire", "lt10", "--runs-dir", str(tmp_path))
    assert code in (0, None)
    run = tiny.load("latest", tmp_path)  # made by the CLI, read here
    assert run.metrics["F(9.5)"] == pytest.approx(0.6225, abs=1e-4)
    import torch

    with torch.no_grad():
        assert float(run.model()(torch.tensor([[9.5]]))) == pytest.approx(0.6225, abs=1e-4)
    assert "hardwire lt10, completed" in repr(run)
    listed = tiny.runs(tmp_path)
    assert [r.id for r in listed] == [run.id] and run.id[-15:] in listed._repr_html_()


def test_help_and_import_tiny_cli_stay_free_of_torch() -> None:
    code = "import sys, tiny_cli; tiny_cli.__version__; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_a_verdict_is_read_from_the_stored_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tiny_cli.app import reproduce

    claims = reproduce.select(reproduce.ARTICLE, ["lt10-soft", "is_even-hardwired"])
    plan = reproduce.Plan(quick=True, runs_dir=tmp_path, device="cpu", display=Quiet)
    made = reproduce.make(claims, plan)
    rows = reproduce.judge(claims, made, tmp_path)
    assert [r.verdict for r in rows] == ["holds", "holds"], rows
    assert rows[0].measured == "F(9.5) = 0.6225" and rows[0].pictures
    for key, change in (
        ("lt10-soft", {"F(9.5)": 0.9}),
        ("is_even-hardwired", {"correct_interval": [2, 17]}),
    ):
        metrics = next(tmp_path.glob(f"{made[key][0]}/metrics.json"))
        metrics.write_text(json.dumps({**json.loads(metrics.read_text()), **change}))
    rows = reproduce.judge(claims, made, tmp_path)
    assert [r.verdict for r in rows] == ["differs", "refuted"], rows
    # the command: an unknown name is one line naming the known ones; --report writes a page
    code, _, err = tiny_here(capsys, monkeypatch, "reproduce", "grokking")
    assert code == 2 and err.strip() == "error: reproduce grokking: unknown; known: article"
    page = tmp_path / "article.html"
    args = ("reproduce", "article", "--only", "lt10-sharp", "--runs-dir", str(tmp_path))
    code, out, _ = tiny_here(capsys, monkeypatch, *args, "--report", str(page))
    assert code in (0, None) and "holds" in out and "F(9.5) = 1.0000" in out
    assert "holds" in page.read_text() and "data:image/png;base64," in page.read_text()
