"""Rich output, rendered on a fixed-width console with colour off."""

from __future__ import annotations

from rich.console import Console

from tiny_cli import render


def text_of(renderable: object) -> str:
    console = Console(width=100, color_system=None, record=True)
    console.print(renderable)
    return console.export_text()


def test_values_print_like_the_article() -> None:
    # The article prints numpy-rounded arrays: `fc2.weight : [[ 0.71 -0.71]]`.
    assert render.format_values([[0.7071, -0.7071]]) == "[[ 0.71 -0.71]]"
    assert render.format_values([1.0, 0.0, 0.0, -1.41]) == "[ 1.00  0.00  0.00 -1.41]"
    assert render.format_values([-0.001]) == "[0.00]"  # no "-0.00"
    assert render.format_values([[-1.0], [1.0]]) == "[[-1.00]\n [ 1.00]]"


def test_precision_shows_more_decimals() -> None:
    assert render.format_values([0.123456789], precision=6) == "[0.123457]"


def test_parameter_table_has_every_parameter_and_shape() -> None:
    out = text_of(render.parameters_table({"0.weight": [[-1.0]], "0.bias": [10.0]}))
    assert "0.weight" in out and "1x1" in out and "[[-1.00]]" in out and "[10.00]" in out
