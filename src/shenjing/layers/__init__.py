"""Keras layers on shenjing's autodiff."""

from .activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .base import KerasTensor, Layer
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Lambda, Permute, Reshape
from .noise import (ActivityRegularization, AlphaDropout, GaussianDropout, GaussianNoise, SpatialDropout1D,
                    SpatialDropout2D, SpatialDropout3D)
from .normalization import BatchNormalization, LayerNormalization
from .merge import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, average, concatenate,
                    maximum, minimum, multiply, subtract)

__all__ = [
    "Layer", "KerasTensor", "Input", "InputLayer", "Dense", "Activation", "Dropout", "Flatten", "Reshape", "Permute",
    "Lambda", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Add", "Subtract", "Multiply", "Average", "Maximum",
    "Minimum", "Concatenate", "BatchNormalization", "LayerNormalization", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "ActivityRegularization", "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate",
]
