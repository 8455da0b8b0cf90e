"""What a panel leaves in a saved notebook where widgets cannot render (GitHub, nbviewer, nbconvert).

A displayed panel's output carries its live widget view and, next to it, a static copy (HTML or a
PNG). JupyterLab prefers the widget view; a static renderer shows the copy. A panel refreshes its
copy by displaying itself through ``show()`` and calling ``refresh_static()`` when it has changed.
"""

from __future__ import annotations

import base64
import html
import io

from IPython import get_ipython
from IPython.display import display


class StaticCopy:
    """Mixin for an ipywidgets container: ``static_bundle()`` gives the extra mimetypes."""

    _handle = None

    def static_bundle(self) -> dict:
        return {}

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        bundle.update(self.static_bundle())
        return bundle

    def show(self):
        """Display the panel in the current cell, keeping a handle to refresh its static copy.
        Outside IPython (a plain script) there is nothing to show it in, and this does nothing."""
        if get_ipython() is not None:
            self._handle = display(self, display_id=True)
        return self

    def refresh_static(self) -> None:
        if self._handle is not None:
            self._handle.update(self)


def escape(text) -> str:
    return html.escape(str(text))


def png_chart(series: dict[str, tuple[list, list]], title: str, width: float = 8.0, height: float = 3.2) -> str:
    """A base64 PNG of named (x, y) series, one subplot per group of ``{group: {name: (x, y)}}``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    groups = {g: lines for g, lines in series.items() if any(len(x) for x, _ in lines.values())}
    if not groups:
        return ""
    fig, axes = plt.subplots(1, len(groups), figsize=(width, height), squeeze=False)
    for ax, (group, lines) in zip(axes[0], groups.items()):
        for name, (x, y) in lines.items():
            if len(x):
                ax.plot(x, y, marker="o", markersize=2, label=name)
        ax.set_title(group)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
