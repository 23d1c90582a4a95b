"""Every layer with a regularizer argument puts its penalty into ``layer.losses`` (the generic harness)."""

import pytest

from shenjing import layers

from .harness import regularizer_test

CASES = [
    (layers.Dense, {"units": 3}, (2, 4), "kernel_regularizer", "kernel"),
    (layers.Dense, {"units": 3}, (2, 4), "bias_regularizer", "bias"),
    (layers.Conv1D, {"filters": 2, "kernel_size": 3}, (2, 6, 3), "kernel_regularizer", "kernel"),
    (layers.Conv2D, {"filters": 2, "kernel_size": 3}, (2, 5, 5, 3), "kernel_regularizer", "kernel"),
    (layers.Conv2D, {"filters": 2, "kernel_size": 3}, (2, 5, 5, 3), "bias_regularizer", "bias"),
    (layers.Conv2DTranspose, {"filters": 2, "kernel_size": 3}, (2, 4, 4, 3), "kernel_regularizer", "kernel"),
    (layers.DepthwiseConv2D, {"kernel_size": 3}, (2, 5, 5, 3), "depthwise_regularizer", "depthwise_kernel"),
    (layers.BatchNormalization, {}, (4, 3), "gamma_regularizer", "gamma"),
    (layers.LayerNormalization, {}, (4, 3), "beta_regularizer", "beta"),
    (layers.PReLU, {"alpha_initializer": "ones"}, (2, 3), "alpha_regularizer", "alpha"),
]


@pytest.mark.parametrize("cls,kwargs,shape,argument,weight", CASES,
                         ids=[f"{c[0].__name__}-{c[3]}" for c in CASES])
def test_layer_regularizer(cls, kwargs, shape, argument, weight):
    regularizer_test(cls, kwargs, shape, argument, weight)
