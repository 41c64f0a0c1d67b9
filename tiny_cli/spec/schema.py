"""Building blocks of the typed config: strict sections and number types.

Torch-free and import-light: configs are validated before torch is imported, and task
plugins build their config sections from these.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from tiny_cli.errors import echo

FLOAT32_MAX = 3.4028234663852886e38


def _number(value: Any) -> Any:
    # YAML 1.1 reads `1e-2` as a string; accept it, but never a boolean as a number.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {echo(value)}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    if isinstance(value, int | float) and abs(value) > FLOAT32_MAX:
        # Every float of a config ends up in float32 (weights, data, the optimizer's step).
        raise ValueError(f"{echo(value, 24)} does not fit in float32 (at most 3.4e38)")
    return value


Float = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]
# Integer bounds of a domain: far enough for any experiment, small enough for float32.
Bound = Annotated[StrictInt, Field(ge=-(10**6), le=10**6)]


class Section(BaseModel):
    """A config section: unknown keys are errors, values are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)
