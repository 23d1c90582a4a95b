"""Keras layers on shenjing's autodiff."""

from .activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .base import KerasTensor, Layer
from .convolutional import (Conv1D, Conv2D, Conv2DTranspose, Convolution1D, Convolution2D, Cropping1D, Cropping2D,
                            DepthwiseConv2D, SeparableConv2D, UpSampling1D, UpSampling2D, ZeroPadding1D, ZeroPadding2D)
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Lambda, Permute, Reshape
from .pooling import (AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D, GlobalAveragePooling1D,
                      GlobalAveragePooling2D, GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D,
                      GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D)
from .noise import (ActivityRegularization, AlphaDropout, GaussianDropout, GaussianNoise, SpatialDropout1D,
                    SpatialDropout2D, SpatialDropout3D)
from .normalization import BatchNormalization, LayerNormalization
from .merge import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, average, concatenate,
                    maximum, minimum, multiply, subtract)

__all__ = [
    "Layer", "KerasTensor", "Input", "InputLayer", "Dense", "Activation", "Dropout", "Flatten", "Reshape", "Permute",
    "Lambda", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Add", "Subtract", "Multiply", "Average", "Maximum",
    "Minimum", "Concatenate", "BatchNormalization", "LayerNormalization", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "Conv1D", "Conv2D", "Conv2DTranspose", "Convolution1D", "Convolution2D", "Cropping1D",
    "Cropping2D", "DepthwiseConv2D", "SeparableConv2D", "UpSampling1D", "UpSampling2D", "ZeroPadding1D",
    "ZeroPadding2D", "AveragePooling1D", "AveragePooling2D", "AvgPool1D", "AvgPool2D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "MaxPool1D", "MaxPool2D", "MaxPooling1D", "MaxPooling2D", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "ActivityRegularization", "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate",
]
