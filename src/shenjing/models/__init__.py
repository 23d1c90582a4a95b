"""Models: ``Sequential``, the functional ``Model`` and subclassed models, with the training API."""

from .model import Model
from .sequential import Sequential

__all__ = ["Model", "Sequential"]
