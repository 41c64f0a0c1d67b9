"""A task's own pictures (`Task.pictures`, such as modular's `spectrum.png`), drawn.

The task computes what is shown, as a `TaskPicture` of heat maps (numpy only); this module
draws it, and nothing else: the panels side by side on one colour scale and one colour bar,
at the sizes every picture shares (show/style.py), its text as written. The sidecar's
"task_picture" job is `draw`; matplotlib's Agg backend and object API, imported there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tiny_cli.show import style

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tiny_cli.tasks import TaskPicture

PANEL_INCHES = 5.2  # each panel's width
HEIGHT_INCHES = 6.0
COLOURBAR_INCHES = 1.4


def figure(picture: TaskPicture) -> Figure:
    """The picture's figure, drawn on an Agg canvas (`draw` encodes it): one axes per
    panel, left to right, then the colour bar."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = picture.panels
    width = max(style.WIDTH / style.DPI, PANEL_INCHES * len(panels) + COLOURBAR_INCHES)
    inches = (width, HEIGHT_INCHES)
    with style.rc():
        fig = Figure(figsize=inches, dpi=style.DPI)
        canvas = FigureCanvasAgg(fig)
        fig.subplots_adjust(
            left=1.0 / width,
            right=1 - COLOURBAR_INCHES / width,
            bottom=0.8 / HEIGHT_INCHES,
            top=1 - 0.95 / HEIGHT_INCHES,
            wspace=0.15,
        )
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        image = None
        for ax, panel in zip(axes, panels, strict=True):
            rows, cols = panel.values.shape
            image = ax.imshow(
                panel.values, cmap="viridis", vmin=picture.vmin, vmax=picture.vmax,
                aspect="auto", interpolation="nearest", origin="upper",
                extent=(-0.5, cols - 0.5, rows - 0.5, -0.5),
            )  # fmt: skip
            ax.set_title(panel.title, fontsize=style.FONT, loc="left")
            ax.locator_params(axis="x", integer=True)
        axes[0].set_ylabel(picture.ylabel)
        for ax in axes[1:]:
            ax.tick_params(labelleft=False)
        if image is not None:
            bar = fig.add_axes((1 - (COLOURBAR_INCHES - 0.3) / width, 0.8 / HEIGHT_INCHES,
                                0.25 / width, 1 - 1.75 / HEIGHT_INCHES))  # fmt: skip
            fig.colorbar(image, cax=bar, label=picture.scale)
        fig.supxlabel(picture.xlabel, y=0.01, fontsize=style.FONT)  # once, under every panel
        fig.suptitle(picture.title, x=0.01, ha="left")
        style.literal(fig)  # titles and labels as written (a task's words); ticks render
        canvas.draw()
    return fig


def draw(picture: TaskPicture) -> bytes:
    """The picture as PNG bytes (the sidecar's "task_picture" job)."""
    return style.png(figure(picture))
