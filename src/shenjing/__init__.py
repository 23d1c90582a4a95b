"""shenjing (神经): a deep-learning framework on NumPy with the Keras API."""

__version__ = "0.1.0"

from . import backend
from .autodiff import Tensor, no_grad

__all__ = ["backend", "Tensor", "no_grad", "__version__"]
