"""shenjing's reverse-mode autodiff engine: :class:`Tensor`, the primitive ops and ``no_grad``."""

from . import conv, nn, norm, ops, rnn
from .gradcheck import check_gradients, numerical_gradient, relative_error
from .tensor import Tensor, as_tensor, enable_grad, is_grad_enabled, make, no_grad
from .variable import Variable

__all__ = [
    "Tensor", "Variable", "as_tensor", "make", "no_grad", "enable_grad", "is_grad_enabled",
    "ops", "nn", "conv", "norm", "rnn", "check_gradients", "numerical_gradient", "relative_error",
]
