"""Figure helpers shared by both studies: figures a reader can interpret without the code, written safely.

Figures are `matplotlib.figure.Figure` objects on an Agg canvas rather than pyplot: nothing is registered in pyplot's
global figure list (so nothing leaks in long-running workflows) and the caller's interactive backend is left alone.
Matplotlib is imported inside the functions, so importing this module stays cheap. Files are written atomically and
honour the umask, so a killed job never leaves a truncated PNG that looks finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfexplain.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 150


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | Path) -> None:
    """Write the figure as PNG through a temporary file renamed into place; the figure is cleared afterwards."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            fig.savefig(handle, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    finally:
        fig.clear()


def place_legend_and_caption(fig: Figure, handles: list[Any], caption: str, ncol: int) -> None:
    """Legend just below the laid-out axes, caption below the legend (savefig's tight bbox takes both in)."""
    legend = fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        bbox_transform=fig.transFigure,
        ncol=ncol,
        fontsize=8.5,
        frameon=False,
        handlelength=2.2,
    )
    renderer = fig.canvas.get_renderer()
    box = legend.get_window_extent(renderer).transformed(fig.transFigure.inverted())
    fig.text(0.5, box.y0 - 0.01, caption, ha="center", va="top", fontsize=8.5, color="#333333", wrap=False)
