"""Utilities: ``to_categorical``, ``normalize``, ``Progbar``, ``set_random_seed``, ``gradient_check``."""

from . import numerical as np_utils  # noqa: E402  (Keras 1: keras.utils.np_utils)
from .data_utils import Sequence, get_file
from .gradient_check import gradient_check
from .numerical import normalize, to_categorical
from .progbar import Progbar
from .random import set_random_seed


def plot_model(model, to_file="model.png", show_shapes=False, show_layer_names=True, dpi=96, **ignored):
    """Keras's plot_model, drawn with matplotlib (no graphviz); returns the Figure. Needs shenjing[plot]."""
    from ..plotting import plot_model as draw

    return draw(model, to_file, show_shapes=show_shapes, show_layer_names=show_layer_names, dpi=dpi)


__all__ = ["to_categorical", "normalize", "Progbar", "set_random_seed", "gradient_check", "np_utils", "Sequence",
           "get_file", "plot_model"]
