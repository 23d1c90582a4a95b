"""Models: ``Sequential``, the functional ``Model`` and subclassed models, with the training API;
saving and loading them."""

from ..saving import load_model, model_from_config, model_from_json, save_model
from .model import Model
from .sequential import Sequential

__all__ = ["Model", "Sequential", "load_model", "save_model", "model_from_json", "model_from_config"]
