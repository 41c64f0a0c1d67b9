"""What a fresh clone and a fresh install rely on."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```bash\n(python3 -m venv .+)\n```", text)


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    main_job, tests = readme_commands()[:2]
    assert "pip install torch==2.13.0" in main_job and main_job.endswith("tiny train lt10")
    assert tests.endswith("pytest -n auto")
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines


def test_the_wheel_carries_the_shipped_configs(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for config in (REPO / "configs").glob("*.yaml"):
        assert f"tiny_cli/configs/{config.name}" in names
