"""A generic layer test: output shape, weight count, config round trip, gradients, training behaviour."""

from __future__ import annotations

import numpy as np

from shenjing import backend
from shenjing.autodiff import Tensor, numerical_gradient, relative_error


def layer_test(layer_cls, kwargs, input_shape, expected_output_shape=None, expected_weights=None,
               training_only=False, check_grad=True, tol=1e-6, input_data=None):
    """Build ``layer_cls(**kwargs)`` on float64 random input of ``input_shape`` and check:

    - the output shape (the concrete call and ``compute_output_shape`` agree, and match
      ``expected_output_shape`` with None for the batch axis);
    - the number of weight arrays (``expected_weights``);
    - ``get_config`` -> ``from_config`` gives a layer that computes the same output with the same weights;
    - the gradients w.r.t. the input and every weight equal central differences (float64);
    - ``training_only`` layers differ between training=True and inference, others do not.
    Returns the layer.
    """
    previous = backend.floatx()
    backend.set_floatx("float64")
    try:
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, input_shape) if input_data is None else np.asarray(input_data, dtype="float64")
        layer = layer_cls(**kwargs)
        out = layer(x)
        symbolic = layer.compute_output_shape((None,) + tuple(input_shape[1:]))
        assert tuple(out.shape[1:]) == tuple(symbolic[1:]), (out.shape, symbolic)
        if expected_output_shape is not None:
            assert (None,) + tuple(out.shape[1:]) == tuple(expected_output_shape)
        if expected_weights is not None:
            assert len(layer.weights) == expected_weights, [w.name for w in layer.weights]

        config = layer.get_config()
        config.pop("name", None)
        clone = type(layer).from_config(config)
        clone(x)
        clone.set_weights(layer.get_weights())
        np.testing.assert_allclose(clone(x).numpy(), out.numpy(), rtol=1e-12, atol=1e-12)

        if check_grad:
            error = layer_gradient_error(layer, x)
            assert error < tol, f"{layer_cls.__name__}: gradient relative error {error:.2e}"

        trained = layer(Tensor(x), training=True).numpy()
        inferred = layer(Tensor(x), training=False).numpy()
        if training_only:
            assert not np.allclose(trained, inferred)
        else:
            np.testing.assert_allclose(trained, inferred)
        return layer
    finally:
        backend.set_floatx(previous)


def layer_gradient_error(layer, x, training=False) -> float:
    """Max relative error between backward and central differences, w.r.t. the input and every
    trainable weight, for the scalar Σ R ⊙ layer(x) with a fixed random R (float64)."""
    x = np.array(x, dtype="float64")
    weights = layer.trainable_weights
    xt = Tensor(x, requires_grad=True)
    for w in weights:
        w.grad = None
    out = layer(xt, training=training)
    R = np.random.default_rng(1).standard_normal(out.shape)
    (out * Tensor(R)).sum().backward()
    analytic = [xt.grad] + [w.grad if w.grad is not None else np.zeros_like(w.data) for w in weights]
    for w in weights:
        w.grad = None

    def value(*_):
        return float((layer(Tensor(x), training=training).data * R).sum())

    numeric = numerical_gradient(value, [x] + [w.data for w in weights])
    return max(relative_error(a, n) for a, n in zip(analytic, numeric))


def regularizer_test(layer_cls, kwargs, input_shape, argument: str, weight: str, factor: float = 0.25):
    """``layer_cls(**kwargs, <argument>=L2(factor))`` puts exactly ``factor · Σ weight²`` into
    ``layer.losses``, and the penalty's gradient reaches that weight."""
    from shenjing import regularizers

    layer = layer_cls(**kwargs, **{argument: regularizers.L2(factor)})
    layer(np.random.default_rng(0).uniform(-1, 1, input_shape).astype("float32"))
    penalties = layer.losses
    assert len(penalties) == 1, f"{layer_cls.__name__}: expected one penalty from {argument}, got {len(penalties)}"
    variable = getattr(layer, weight)
    expected = factor * float((variable.numpy().astype("float64") ** 2).sum())
    np.testing.assert_allclose(float(penalties[0].data), expected, rtol=1e-5)
    variable.grad = None
    penalties[0].backward()
    np.testing.assert_allclose(variable.grad, 2 * factor * variable.numpy(), rtol=1e-5, atol=1e-7)
    variable.grad = None
    return layer
