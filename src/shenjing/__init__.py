"""shenjing (神经): a deep-learning framework built from first principles on NumPy, with the Keras API.

    from shenjing.models import Sequential
    from shenjing.layers import Dense, Activation
    from shenjing.optimizers import SGD
"""

__version__ = "0.1.0"

from . import backend
from .autodiff import Tensor, Variable, no_grad
from . import activations, constraints, initializers, losses, metrics, optimizers, regularizers  # noqa: E402
from . import callbacks, datasets, layers, models, preprocessing, saving, utils  # noqa: E402

__all__ = [
    "backend", "Tensor", "Variable", "no_grad", "activations", "constraints", "initializers", "losses", "metrics",
    "optimizers", "regularizers", "callbacks", "datasets", "layers", "models", "preprocessing", "saving", "utils", "__version__",
]
