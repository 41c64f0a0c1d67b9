"""Kept for task plugins written before the package had layers: `tiny_cli.schema` is now
`tiny_cli.spec.schema` (import `Bound` and `Section` from `tiny_cli.tasks`, the plugin API)."""

from tiny_cli.spec.schema import *  # noqa: F403
from tiny_cli.spec.schema import Bound, Float, Section

__all__ = ["Bound", "Float", "Section"]
