"""A real browser: `tiny board` and a `tiny report` file opened in headless Chromium.

Skipped where /usr/bin/chromium is absent (`.ci/run` installs it where it can). Chromium is
driven through its DevTools protocol (tests/chromium.py); TensorBoard's dashboards are web
components, so the checks look through their shadow roots for the charts and count the
points of each drawn line.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.chromium import CHROMIUM, DEEP, Chromium, not_blank
from tests.conftest import REPO, make_run
from tiny_cli.show import report
from tiny_cli.store import runs

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
]

EPOCHS = 30


@pytest.fixture(scope="module")
def lt10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lt10 trained for EPOCHS epochs, stored as `tiny train` stores it (made in-process):
    its run directory."""
    return make_run(tmp_path_factory.mktemp("browser") / "runs", "train", "lt10", EPOCHS)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path_factory.mktemp("profile"))
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def board(lt10: Path, tmp_path: Path) -> Iterator[str]:
    """`tiny board --port 0` on the run's runs directory: its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tiny_cli", "board", "--runs-dir", str(lt10.parent), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once TensorBoard answers
        assert "http://127.0.0.1:" in line, line
        yield line[line.index("http://") :].split()[0]
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # tiny and its TensorBoard, as Ctrl-C would
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# Per chart card: its name and the number of points of each line drawn in it (a Plottable
# SVG path: one `L` per point after the first).
CARDS = (
    DEEP
    + """
deep(document, "%s").map(card => ({
  name: card.%s,
  lines: deep(card, "path.line").map(p => (p.getAttribute("d") || "").split("L").length),
  images: deep(card, "img").map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
}))
"""
)


def test_tensorboard_dashboards_render_the_run_s_charts(
    board: str, browser: Chromium, lt10: Path
) -> None:
    """SCALARS, CUSTOM SCALARS and IMAGES: each shows the run's charts, drawn with every
    logged epoch (or the picture at its size), and the console has no error."""
    with urllib.request.urlopen(board + "data/plugin/custom_scalars/layout", timeout=10) as r:
        layout = json.load(r)
    charts = {chart["title"] for c in layout["category"] for chart in c["chart"]}
    with Image.open(lt10 / "prediction.png") as picture:
        size = list(picture.size)
    points = EPOCHS + 1  # epochs 0..EPOCHS

    def drawn(cards: list[dict[str, Any]], names: set[str], at_least: int) -> bool:
        lines = {c["name"]: c["lines"] for c in cards}
        return names <= set(lines) and all(max(lines[n] or [0]) >= at_least for n in names)

    dashboards = {
        # the run's parameters, each line with every epoch
        "scalars": (
            CARDS % ("tf-scalar-card", "tag"),
            lambda cards: drawn(cards, {"0/weight[0,0]", "0/bias[0]"}, points),
        ),
        # every chart of the run's layout; gradient norms start at epoch 1
        "custom_scalars": (
            CARDS % ("tf-custom-scalar-multi-line-chart-card", "title"),
            lambda cards: drawn(cards, charts, EPOCHS),
        ),
        "images": (
            CARDS % ("tf-image-loader", "tag"),
            lambda cards: any(
                c["name"] == "prediction" and [True, *size] in c["images"] for c in cards
            ),
        ),
    }
    failures = []
    for name, (expression, ready) in dashboards.items():
        page = browser.page()
        page.open(f"{board}#{name}")
        cards = page.wait_for(expression, ready)
        if not ready(cards):
            failures.append(f"{name}: not rendered: {cards}")
        if errors := page.errors():
            failures.append(f"{name}: console errors: {errors}")
        if not not_blank(page.screenshot()):
            failures.append(f"{name}: the screenshot is blank")
    assert not failures, "\n".join(failures)


def test_a_report_renders_offline_from_a_file(lt10: Path, browser: Chromium) -> None:
    """The report opens from file:// with the network off, asks for nothing but itself, shows
    the run's metrics and every picture, with no error (a CSP violation would be one)."""
    path, problems = report.write(runs.read(runs.Run(lt10)), lt10.parent.parent / "report.html")
    assert problems == []
    page = browser.page(offline=True)
    page.open(path.as_uri())
    ready = "document.readyState === 'complete' && [...document.images].every(i => i.complete)"
    assert page.wait_for(ready, bool) is True
    text = page.evaluate("document.body.innerText")
    metrics = json.loads((lt10 / "metrics.json").read_text())
    assert f"{metrics['threshold']:.6g}" in text and "0.weight" in text
    images = page.evaluate("[...document.images].map(i => [i.naturalWidth, i.naturalHeight])")
    assert len(images) >= 3 and all(w > 0 and h > 0 for w, h in images), images
    assert page.errors() == []
    assert all(url.startswith(("file:", "data:")) for url in page.requests()), page.requests()
    shot = page.screenshot()
    assert not_blank(shot)
    with Image.open(io.BytesIO(shot)) as image:
        assert image.size[0] > 0


def _dark_bands(grey: Any, axis: int, below: int = 80) -> list[tuple[int, int]]:
    """Runs of rows (axis=1) or columns (axis=0) of a greyscale image holding dark pixels:
    [start, stop) pairs; columns count only where a third of the height is dark (a spine)."""
    import numpy as np

    dark = np.asarray(grey) < below
    hits = dark.any(axis=1) if axis == 1 else dark.mean(axis=0) > 0.33
    bands, start = [], None
    for i, hit in enumerate([*hits, False]):
        if hit and start is None:
            start = i
        elif not hit and start is not None:
            bands.append((start, i))
            start = None
    return bands


def test_a_report_s_pictures_are_legible_at_1024_px_and_log_ticks_are_not_raw_tex(
    browser: Chromium, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """In a 1024 px wide window: every picture is at least 1,000 px wide and shown at 900 or
    more, its title's letters at least 12 screen pixels tall (measured in the PNG's pixels,
    scaled as shown); the two-panel mechanism chart, whose steepness has a log axis, leaves
    its log panel a narrow margin for tick labels, as `10^-1` needs, not raw TeX's 20
    characters (`$\\mathdefault{10^{-1}}$`)."""
    run = make_run(tmp_path_factory.mktemp("legible") / "runs", "train", "lt10", 300)
    path, problems = report.write(runs.read(runs.Run(run)), run.parent.parent / "report.html")
    assert problems == []
    page = browser.page(offline=True)
    browser.send("Emulation.setDeviceMetricsOverride", page.session, width=1024, height=800,
                 deviceScaleFactor=1, mobile=False)  # fmt: skip
    page.open(path.as_uri())
    ready = "document.readyState === 'complete' && [...document.images].every(i => i.complete)"
    assert page.wait_for(ready, bool) is True
    shown = page.evaluate(
        "[...document.images].map(i => [i.alt, i.naturalWidth, i.getBoundingClientRect().width,"
        " i.src])"
    )
    assert len(shown) >= 5 and page.errors() == []
    mechanism = None
    for alt, natural, width, src in shown:
        assert natural >= 1000 and width >= 900, (alt, natural, width)
        png = base64.b64decode(src.partition(",")[2])
        with Image.open(io.BytesIO(png)) as image:
            grey = image.convert("L")
        top, bottom = _dark_bands(grey, axis=1)[0]  # the title's first line
        assert (bottom - top) * width / natural >= 12, (alt, bottom - top)
        if alt == "mechanism":
            mechanism = grey
    assert mechanism is not None
    spines = _dark_bands(mechanism, axis=0)  # left and right frame of each panel
    assert len(spines) == 4, spines
    margin = spines[2][0] - spines[1][1]  # the log panel's tick labels live here
    assert margin < 0.15 * mechanism.width, (margin, mechanism.width)
