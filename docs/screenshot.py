"""Remake docs/tensorboard.png: `tiny board` on a freshly trained lt10, in headless Chromium.

    python docs/screenshot.py          # needs /usr/bin/chromium; about 20 s

The same browser driver as the browser test (tests/chromium.py); the picture is the CUSTOM
SCALARS dashboard, downscaled and quantised to keep the README's PNG small.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.chromium import DEEP, Chromium  # noqa: E402

OUT = REPO / "docs" / "tensorboard.png"


def main() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    with tempfile.TemporaryDirectory() as tmp:
        tiny = [sys.executable, "-m", "tiny_cli"]
        subprocess.run([*tiny, "train", "lt10", "--runs-dir", "runs"], env=env, check=True,
                       stdout=subprocess.DEVNULL, cwd=tmp)  # fmt: skip
        board = subprocess.Popen(
            [*tiny, "board", "--runs-dir", "runs", "--port", "0"],
            stdout=subprocess.PIPE, text=True, env=env, cwd=tmp, start_new_session=True,
        )  # fmt: skip
        browser = Chromium(Path(tmp) / "profile", width=1200, height=1060)
        try:
            assert board.stdout is not None
            line = board.stdout.readline()
            url = line[line.index("http://") :].split()[0]
            page = browser.page()
            page.open(url + "#custom_scalars")
            count = DEEP + 'deep(document, "path.line").length'
            page.wait_for(count, lambda n: n >= 10)
            shot = page.screenshot()
        finally:
            browser.close()
            os.killpg(board.pid, signal.SIGINT)
            board.wait(timeout=20)
    with Image.open(io.BytesIO(shot)) as image:
        small = image.convert("RGB").resize((900, 795), Image.Resampling.LANCZOS)
        small.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(OUT, optimize=True)
    print(f"{OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
