"""Jupyter support: knowing that code runs in a notebook kernel, and showing shenjing's figures there.

``shenjing.plotting`` builds figures without ``pyplot`` (no global state, no window). A notebook shows a
cell's value as an image only if a PNG formatter is registered for ``matplotlib.figure.Figure``, which
matplotlib's inline backend does only once ``pyplot`` has been imported; :func:`enable_figure_display`
registers one (the same ``print_figure`` the inline backend uses), so ``plot_history(history)`` as the last
line of a cell draws the plot, once.
"""

from __future__ import annotations

import sys

__all__ = ["in_notebook", "enable_figure_display"]


def _shell():
    ipython = sys.modules.get("IPython")  # never imported here: only a running IPython has loaded it
    if ipython is None:
        return None
    try:
        return ipython.get_ipython()
    except Exception:  # noqa: BLE001 - an unusual embedding; behave as outside IPython
        return None


def in_notebook() -> bool:
    """Whether this runs inside a Jupyter kernel (an IPython shell with a kernel, not a terminal IPython)."""
    shell = _shell()
    return shell is not None and getattr(shell, "kernel", None) is not None


def enable_figure_display() -> bool:
    """In a Jupyter kernel, make a returned ``matplotlib.figure.Figure`` display as a PNG (a no-op when a
    formatter is already registered, e.g. by ``%matplotlib inline`` after importing pyplot). Returns whether
    figures will be displayed."""
    if not in_notebook():
        return False
    shell = _shell()
    try:
        from IPython.core.pylabtools import print_figure
        from matplotlib.figure import Figure

        formatter = shell.display_formatter.formatters["image/png"]
    except (ImportError, AttributeError, KeyError):
        return False
    try:
        formatter.lookup_by_type(Figure)
        return True
    except KeyError:
        pass
    formatter.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))
    return True
