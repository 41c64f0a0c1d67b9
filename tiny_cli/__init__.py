"""tiny: a command-line lab for tiny neural networks that represent basic functions.

`import tiny_cli as tiny` gives the Python API (`tiny.train`, `tiny.hardwire`, `tiny.sweep`,
`tiny.load`, `tiny.runs`, `tiny.compare`; tiny_cli/api.py), imported on first use so that
the CLI's start-up (`tiny --help`) never pays for it."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = ("train", "hardwire", "sweep", "load", "runs", "compare", "TinyError", "Run", "Sweep",
        "Readout", "RunList", "Comparison")  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _API:
        # By name, not `from tiny_cli import api`: every layer imports this package (for
        # __version__), and a static import here would make the API a dependency of all.
        api = importlib.import_module("tiny_cli.api")
        return getattr(api, name)
    raise AttributeError(f"module 'tiny_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
