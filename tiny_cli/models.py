"""Kept for task plugins written before the package had layers: `tiny_cli.models` is now
`tiny_cli.spec.models` (import `Arch` and `Layer` from `tiny_cli.tasks`, the plugin API)."""

from tiny_cli.spec.models import *  # noqa: F403
from tiny_cli.spec.models import Arch, Layer

__all__ = ["Arch", "Layer"]
