"""`tiny report`: one self-contained HTML file of a run or a sweep, made by the real CLI."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import Make, assert_one_line_error, make_run, make_sweep, run_cli
from tiny_cli.show import report
from tiny_cli.store import runs

HOSTILE = '<script>alert("x")</script><img src=http://evil.example/x onerror=alert(1)>'


class Page(HTMLParser):
    """Every tag and attribute of a page, and its text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def images(self) -> list[bytes]:
        return [
            base64.b64decode(a["src"].removeprefix("data:image/png;base64,"), validate=True)
            for t, a in self.tags
            if t == "img"
        ]


def assert_self_contained(text: str) -> Page:
    """No script, no stylesheet or font to fetch, no URL but data: URIs of real PNGs (a URL in
    the text is only text)."""
    page = Page(text)
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed"), tag
        for name, value in attrs.items():
            if name in ("src", "href", "srcset", "action", "data", "poster"):
                assert value.startswith("data:image/png;base64,"), (tag, name, value[:80])
    assert "url(" not in text and "@import" not in text
    for png in page.images():
        assert png.startswith(report.PNG_SIGNATURE)
        with Image.open(io.BytesIO(png)) as image:
            image.verify()
            assert image.format == "PNG"
    return page


@pytest.fixture(scope="module")
def lt10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lt10 trained for 30 epochs, stored as `tiny train` stores it (made in-process)."""
    root = tmp_path_factory.mktemp("report")
    (root / "work").mkdir()
    return make_run(root / "runs", "train", "lt10", 30)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny sweep lt10 --seeds 20 --epochs 5 --grid train.lr=0.01,0.3`, made in-process."""
    runs_dir = tmp_path_factory.mktemp("report") / "runs"
    return make_sweep(runs_dir, "lt10", 20, 5, grid=["train.lr=0.01,0.3"])


def test_a_run_report_is_one_self_contained_file_with_everything(lt10: Path) -> None:
    run = lt10
    proc = run_cli("report", run.name, runs_dir=run.parent, cwd=run.parent.parent / "work")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{run / 'report.html'}\n"
    text = (run / "report.html").read_text()
    page = assert_self_contained(text)
    words = " ".join(page.text)
    metrics = json.loads((run / "metrics.json").read_text())
    for name in ("Metrics", "Parameters", "Prediction", "Trajectories", "Config", "0.weight"):
        assert name in words
    assert f"{metrics['threshold']:.6g}" in words
    images = page.images()
    assert (run / "prediction.png").read_bytes() in images
    # loss and accuracy, layer 0's weight and bias, the mechanism, the gradient norm
    alts = [a["alt"] for t, a in page.tags if t == "img"]
    assert {"loss and accuracy", "layer 0: weights (solid) and biases (dashed)"} <= set(alts)
    assert len(images) == 5, alts


def test_trajectories_are_the_event_file_s_scalars(lt10: Path) -> None:
    import torch

    run = runs.Run(lt10)
    scalars = report.read_scalars(run)
    state = torch.load(run.path / "model.pt", weights_only=True)
    assert scalars["0/weight[0,0]"].steps == list(range(31))
    assert scalars["0/weight[0,0]"].values[-1] == pytest.approx(float(state["0.weight"][0, 0]))
    assert scalars["final/loss"].values[-1] == pytest.approx(
        json.loads((run.path / "metrics.json").read_text())["loss"], rel=1e-6
    )


def test_a_sweep_report_has_its_outcome_table_and_loss_histogram(
    sweep: Path, tmp_path: Path
) -> None:
    out = tmp_path.resolve() / "sweep\x1b[2J.html"  # written through a link; named as data
    link = tmp_path / "link.html"
    link.symlink_to(out)
    proc = run_cli("report", sweep.name, "-o", str(link), runs_dir=sweep.parent, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{out.parent}/sweep\\x1b[2J.html\n"
    assert link.is_symlink() and link.resolve() == out
    page = assert_self_contained(out.read_text())
    table = Page(out.read_text().split("<h2>Outcomes</h2>")[1].split("</table>")[0])
    text = "|".join(s.strip() for s in table.text if s.strip())
    assert text.startswith("grid point|seeds|solved|stuck at mean|dead|partial|diverged|loss q10")
    summary = json.loads((sweep / "summary.json").read_text())
    for point in summary:
        assert f"{point['label']}|20|{point['counts']['solved']} (" in text
    alts = [a["alt"] for t, a in page.tags if t == "img"]
    histograms = [a for a in alts if a.startswith("final loss of 20 seeds per grid point")]
    assert len(histograms) == 1, alts
    epochs = out.read_text().split("<h2>Over the epochs</h2>")[1].split("</section>")[0]
    assert epochs.count("<img") >= 2  # loss and accuracy over the epochs, over the seeds
    assert not (sweep / "report.html").exists()


def test_strings_from_disk_are_escaped_and_problems_reported(lt10: Path, tmp_path: Path) -> None:
    """A run whose files carry markup: it shows as text; a broken picture is a problem."""
    copy = tmp_path / "runs" / "20261122-000000-000-hostile"
    shutil.copytree(lt10, copy)
    meta = json.loads((copy / "run.json").read_text())
    meta.update(task=HOSTILE, reason=HOSTILE)
    (copy / "run.json").write_text(json.dumps(meta))
    metrics = json.loads((copy / "metrics.json").read_text())
    (copy / "metrics.json").write_text(json.dumps({**metrics, HOSTILE: HOSTILE}))
    (copy / "config.yaml").write_text((copy / "config.yaml").read_text() + f"note: '{HOSTILE}'\n")
    (copy / "prediction.png").write_text(HOSTILE)
    path, problems = report.write(runs.read(runs.Run(copy)))
    text = path.read_text()
    assert HOSTILE not in text
    # task, reason, the metric's name and value, the config's note
    assert text.count(report.esc(HOSTILE)) == 5
    assert problems == ["prediction.png is not a PNG picture"]
    assert "prediction.png is not a PNG picture" in text
    assert_self_contained(text)


def test_a_missing_run_is_one_line(lt10: Path, tmp_path: Path) -> None:
    proc = run_cli("report", "nosuchrun", runs_dir=lt10.parent, cwd=tmp_path)
    assert_one_line_error(proc, "nosuchrun", "no such run")


def test_a_run_report_has_the_read_out_of_tiny_inspect_and_both_pictures(
    make: Make,  # conftest's: a run made in-process, as `tiny hardwire min` makes it
) -> None:
    from rich.console import Console

    from tiny_cli.read import stored as reading
    from tiny_cli.show.readout_view import readout_view

    run = runs.Run(make("hardwire", "min"))
    # a hostile value from disk that the read-out shows: the interval an integer task is right on
    metrics = json.loads((run.path / "metrics.json").read_text())
    metrics["correct_interval"] = [HOSTILE, 3]
    (run.path / "metrics.json").write_text(json.dumps(metrics))
    path, problems = report.write(runs.read(run))
    text = path.read_text()
    assert problems == [] and HOSTILE not in text
    page = assert_self_contained(text)
    images = page.images()
    assert (run.path / "prediction.png").read_bytes() in images
    assert (run.path / "units.png").read_bytes() in images
    section = text.split("<h2>Read-out</h2>")[1].split("</section>")[0]
    shown = ["".join(Page(line).text).strip() for line in re.findall("<div>(.*?)</div>", section)]
    assert shown[0] == "formula: Min(a, b)"
    assert f"right on every integer in [{HOSTILE}, 3]" in shown  # as text
    # the same lines as tiny inspect's Read-out section
    record = runs.read(run)
    read = reading.stored_readout(run, record)
    assert read is not None
    console = Console(width=1000, color_system=None, record=True, file=io.StringIO())
    console.print(readout_view(read[0].as_dict()))
    assert shown == [line.strip() for line in console.export_text().splitlines()[1:]]


def test_charts_render_log_ticks_clip_a_first_epoch_spike_and_draw_tags_as_written() -> None:
    """A log axis's tick labels are drawn as 10^k (mathtext), not as raw TeX, while a tag
    with `$` in it is drawn as written; lt10's threshold, about 72 at its first epoch and
    settling near 9.5, is drawn on the range of its later epochs, and the title says so."""
    from tiny_cli.show import charts, style

    steps = list(range(200))
    threshold = charts.Series(steps, [72.0, 3.0] + [9.47 - 2.0 * 0.97**k for k in range(198)])
    decades = charts.Series(steps, [10.0 ** (-k / 40) for k in steps])
    scalars = {"grad_norm/$x$": decades, "grad_norm/fc1": decades, "mechanism/threshold": threshold}
    clip = charts.settled_range([threshold])
    assert clip is not None and clip[2:] == (20, 72.0) and 7.0 < clip[0] < clip[1] < 9.8
    with style.rc():
        _, grad = charts.chart_figure(scalars, "grad_norm", ["grad_norm/$x$", "grad_norm/fc1"])
        _, mechanism = charts.chart_figure(scalars, "mechanism", ["mechanism/threshold"])
        png = charts.png(grad)
        charts.png(mechanism)
    with Image.open(io.BytesIO(png)) as image:
        assert image.size[0] >= 1000
    (ax,) = grad.axes
    assert ax.get_yscale() == "log"
    ticks = [t for t in ax.yaxis.get_ticklabels() if t.get_visible() and t.get_text()]
    renderer = grad.canvas.get_renderer()
    assert ticks and all("10^" in t.get_text() and t.get_parse_math() for t in ticks)
    # as drawn: `10^-2` is a few characters wide; raw `$\mathdefault{10^{-2}}$` is ~20
    assert max(t.get_window_extent(renderer).width for t in ticks) < 80
    legend = [t.get_text() for t in ax.get_legend().get_texts() if not t.get_parse_math()]
    assert legend == ["$x$", "fc1"]  # the tag as written
    (ax,) = mechanism.axes
    assert ax.get_yscale() == "linear" and ax.get_ylim()[1] < 10
    assert "y range of epochs 20 on (earlier ones reach 72)" in ax.get_title()


def test_a_sweep_over_nets_reports_each_point_s_net_and_outcomes_in_words_and_solutions(
    tmp_path: Path,
) -> None:
    """`--grid model.layers=...` over 2 and 8 units: each grid point's own architecture and
    solved count, its label in words (not a Python repr), and the solutions section once
    `tiny inspect --solutions` has stored them."""
    from tiny_cli.app.solutions import solutions

    layers = "[{width: %d, activation: relu}, {width: 1, activation: identity}]"
    grid = [f"model.layers={layers % 2};{layers % 8}"]
    sweep = runs.Run(make_sweep(tmp_path / "runs", "xor", 6, 150, grid=grid))
    found, problem = solutions(sweep)
    assert problem is None
    path, problems = report.write(runs.read(sweep))
    assert problems == []
    text = path.read_text()
    assert "{&#x27;width&#x27;" not in text and "{'width'" not in text  # no dict repr
    table = Page(text.split("<h2>Outcomes</h2>")[1].split("</table>")[0])
    cells = "|".join(s.strip() for s in table.text if s.strip())
    assert cells.startswith("grid point|architecture|seeds|solved|")
    summary = json.loads((sweep.path / "summary.json").read_text())
    for width, point in zip((2, 8), summary, strict=True):
        solved = point["counts"]["solved"]
        row = (
            f"model.layers={width} relu -> 1 identity|2 -> {width} relu -> 1 identity|6|{solved} ("
        )
        assert row in cells
    assert report.esc("2 -> 2 relu -> 1 identity; 2 -> 8 relu -> 1 identity") in text  # facts
    # tiny inspect SWEEP says the same in the terminal
    from rich.console import Console

    from tiny_cli.show.sweep_views import sweep_view

    record = runs.read(sweep)
    console = Console(width=120, color_system=None, record=True, file=io.StringIO())
    console.print(sweep_view(record, runs.details(record)))
    shown = console.export_text()
    assert "arch one per grid point" in shown and "{'width'" not in shown
    assert "model.layers=8 relu -> 1 identity" in shown
    section = text.split("<h2>Solutions</h2>")[1].split("</section>")[0]
    for point in found.points:
        assert f"{len(point.solved_seeds)} of 6 seeds solved" in section
        for group in point.groups:
            if group.formula is not None:
                assert report.esc(group.formula) in section
