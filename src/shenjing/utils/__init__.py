"""Utilities: ``to_categorical``, ``normalize``, ``Progbar``, ``set_random_seed``, ``gradient_check``."""

from .data_utils import Sequence, get_file
from .gradient_check import gradient_check
from .numerical import normalize, to_categorical
from .progbar import Progbar
from .random import set_random_seed

from . import numerical as np_utils  # noqa: E402  (Keras 1: keras.utils.np_utils)

__all__ = ["to_categorical", "normalize", "Progbar", "set_random_seed", "gradient_check", "np_utils", "Sequence", "get_file"]
