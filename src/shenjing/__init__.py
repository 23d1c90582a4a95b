"""shenjing (神经): a deep-learning framework built from first principles on NumPy, with the Keras API.

    from shenjing.models import Sequential
    from shenjing.layers import Dense, Activation
    from shenjing.optimizers import SGD
"""

__version__ = "0.1.0"

from . import (  # noqa: E402  # noqa: E402
    activations,
    backend,
    callbacks,
    constraints,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    preprocessing,
    regularizers,
    saving,
    utils,
)
from .autodiff import Tensor, Variable, no_grad

__all__ = [
    "backend", "Tensor", "Variable", "no_grad", "activations", "constraints", "initializers", "losses", "metrics",
    "optimizers", "regularizers", "callbacks", "datasets", "layers", "models", "preprocessing", "saving", "utils",
    "__version__",
]
