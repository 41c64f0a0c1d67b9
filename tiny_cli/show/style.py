"""What every picture shares: a size and fonts for a projector, and text drawn as written.

Sizes: a picture is at least `WIDTH` pixels wide (the report shows it at up to 980 CSS
pixels, a projector at about 1024), its text `FONT` points at `DPI`: about 20 pixels, still
14 or more once the picture is shrunk to fit a page.

Text: a title, label or legend can hold what a user wrote (an expression, a grid value) or
what a file holds (a TensorBoard tag), and must never be parsed as mathtext, so a `$` stays
a `$`. Tick labels are ours (numbers), and a log axis's `10^k` labels are mathtext: they are
left to render. `literal(figure)` marks every other text of a figure, once it is laid out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
WIDTH = 1000  # pixels, at least
FONT = 14.0  # points: the base size; titles a little larger, ticks a little smaller

RC: dict[str, Any] = {
    "font.size": FONT,
    "axes.titlesize": FONT + 1,
    "axes.labelsize": FONT,
    "xtick.labelsize": FONT - 1,
    "ytick.labelsize": FONT - 1,
    "legend.fontsize": FONT - 2,
    "figure.titlesize": FONT + 2,
    "lines.linewidth": 2.0,
    "lines.markersize": 7.0,
    "axes.linewidth": 1.0,
}


def rc() -> Any:
    """`with style.rc():` the sizes above, for the artists made inside it."""
    import matplotlib

    return matplotlib.rc_context(RC)  # type: ignore[arg-type]


def literal(figure: Figure) -> None:
    """Every text of `figure` drawn as written (no mathtext), except its tick labels."""
    from matplotlib.text import Text

    ticks: set[int] = set()
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                ticks.update((id(tick.label1), id(tick.label2)))
            ticks.add(id(axis.get_offset_text()))
    for text in figure.findobj(Text):
        if id(text) not in ticks:
            text.set_parse_math(False)


def inches(width_px: int, height_px: int) -> tuple[float, float]:
    return (width_px / DPI, height_px / DPI)


def png(figure: Figure) -> bytes:
    """A drawn figure (its Agg canvas) as PNG bytes, compressed lightly (fast to write)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = figure.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw")
    buf = io.BytesIO()
    image.save(buf, format="png", compress_level=1)
    return buf.getvalue()
