"""Activation functions, by name or by function (the ``keras.activations`` module).

Each activation takes a :class:`~shenjing.autodiff.Tensor` (or anything array-like,
which becomes a constant tensor) and returns a Tensor. They are thin wrappers
over :mod:`shenjing.autodiff.nn`, where each function's value and derivative are
written out. An input that is not floating point (an int array, a list of ints)
is cast to ``floatx()`` first; a float input keeps its dtype (float32 in, float32 out).

Names resolve through :func:`get`::

    get('relu')      # -> relu
    get(None)        # -> linear
    get(my_function) # -> my_function
    get('rleu')      # ValueError: Unknown activation 'rleu'. Did you mean 'relu'? ...
"""

from __future__ import annotations

import functools

from . import backend as B
from .autodiff import nn, ops
from .autodiff.tensor import Tensor
from .utils.registry import Registry

ACTIVATIONS = Registry("activation")


def _float_tensor(x) -> Tensor:
    """``x`` as a Tensor of a floating dtype (non-float input is cast to ``floatx()``)."""
    if not isinstance(x, Tensor):
        x = Tensor(x)
    if not B.is_float_dtype(x.dtype):
        x = ops.cast(x, B.floatx())
    return x


# ----------------------------------------------------------------------- the functions


@ACTIVATIONS.register()
def linear(x) -> Tensor:
    """The identity, f(x) = x (the activation of a layer given ``activation=None``)."""
    return _float_tensor(x)


@ACTIVATIONS.register()
def sigmoid(x) -> Tensor:
    """The logistic function 1 / (1 + e^−x), computed without overflow."""
    return nn.sigmoid(_float_tensor(x))


@ACTIVATIONS.register()
def tanh(x) -> Tensor:
    """The hyperbolic tangent."""
    return nn.tanh(_float_tensor(x))


@ACTIVATIONS.register()
def relu(x, alpha=0.0, max_value=None, threshold=0.0, negative_slope=None) -> Tensor:
    """Rectified linear unit with Keras's options.

    ``f(x) = max_value`` for ``x >= max_value``, ``x`` for ``threshold <= x < max_value``
    and ``alpha · (x − threshold)`` below the threshold. With the defaults it is max(x, 0).
    ``negative_slope`` is the Keras 3 name of ``alpha``; give one or the other.
    """
    if negative_slope is not None:
        if alpha not in (0, 0.0, None) and alpha != negative_slope:
            raise ValueError(
                f"relu: got both alpha={alpha!r} and negative_slope={negative_slope!r}; they are the same "
                "argument (negative_slope is its Keras 3 name), give only one")
        alpha = negative_slope
    alpha = 0.0 if alpha is None else alpha
    return nn.relu(_float_tensor(x), alpha=alpha, max_value=max_value, threshold=threshold)


@ACTIVATIONS.register()
def relu6(x) -> Tensor:
    """min(max(x, 0), 6)."""
    return nn.relu(_float_tensor(x), max_value=6.0)


@ACTIVATIONS.register()
def leaky_relu(x, negative_slope=0.2) -> Tensor:
    """x for x > 0, ``negative_slope · x`` otherwise."""
    return nn.leaky_relu(_float_tensor(x), negative_slope=negative_slope)


@ACTIVATIONS.register()
def elu(x, alpha=1.0) -> Tensor:
    """Exponential linear unit: x for x > 0, ``alpha · (eˣ − 1)`` otherwise."""
    return nn.elu(_float_tensor(x), alpha=alpha)


@ACTIVATIONS.register()
def selu(x) -> Tensor:
    """Scaled ELU with the self-normalizing constants (scale ≈ 1.0507, alpha ≈ 1.6733)."""
    return nn.selu(_float_tensor(x))


@ACTIVATIONS.register()
def softplus(x) -> Tensor:
    """log(1 + eˣ), computed stably."""
    return nn.softplus(_float_tensor(x))


@ACTIVATIONS.register()
def softsign(x) -> Tensor:
    """x / (1 + |x|)."""
    return nn.softsign(_float_tensor(x))


@ACTIVATIONS.register()
def hard_sigmoid(x) -> Tensor:
    """The piecewise-linear sigmoid clip(x/6 + 1/2, 0, 1) (Keras 3's definition; Keras 2 used 0.2·x + 0.5)."""
    return nn.hard_sigmoid(_float_tensor(x))


@ACTIVATIONS.register("silu", "swish")
def silu(x) -> Tensor:
    """x · σ(x), also called swish; ``swish`` is this same function."""
    return nn.swish(_float_tensor(x))


swish = silu


@ACTIVATIONS.register()
def gelu(x, approximate=False) -> Tensor:
    """Gaussian error linear unit x·Φ(x); ``approximate=True`` uses the tanh approximation."""
    return nn.gelu(_float_tensor(x), approximate=bool(approximate))


@ACTIVATIONS.register()
def exponential(x) -> Tensor:
    """eˣ."""
    return nn.exponential(_float_tensor(x))


@ACTIVATIONS.register()
def softmax(x, axis=-1) -> Tensor:
    """e^(x_i) / Σ_j e^(x_j) along ``axis`` (the last by default); each slice sums to 1."""
    return nn.softmax(_float_tensor(x), axis=axis)


@ACTIVATIONS.register()
def log_softmax(x, axis=-1) -> Tensor:
    """log(softmax(x)) along ``axis``, computed stably as x − logsumexp(x)."""
    return nn.log_softmax(_float_tensor(x), axis=axis)


@ACTIVATIONS.register()
def step(x) -> Tensor:
    """The perceptron's Heaviside step: 1 for x >= 0, 0 otherwise (derivative zero)."""
    return nn.step(_float_tensor(x))


# ---------------------------------------------------------------- names and configs


def _registered_name(fn):
    """The name ``fn`` is registered under (its own ``__name__`` preferred), or None."""
    name = getattr(fn, "__name__", None)
    if name in ACTIVATIONS and ACTIVATIONS.lookup(name) is fn:
        return name
    for candidate in ACTIVATIONS.names():
        if ACTIVATIONS.lookup(candidate) is fn:
            return candidate
    return None


def serialize(activation):
    """A JSON-able identifier of ``activation``.

    A registered function gives its name (``serialize(relu) == 'relu'``; ``swish`` gives
    ``'silu'``, its canonical name); a ``functools.partial`` of one, e.g.
    ``partial(relu, max_value=6.0)``, gives ``{'class_name': 'relu', 'config': {'max_value': 6.0}}``;
    an object with ``get_config`` gives ``{'class_name': <its class>, 'config': ...}``;
    any other named function gives its ``__name__`` (resolvable later through ``custom_objects``).
    """
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        return activation
    if isinstance(activation, functools.partial) and not activation.args:
        name = _registered_name(activation.func) or getattr(activation.func, "__name__", None)
        if name is not None:
            return {"class_name": name, "config": dict(activation.keywords)}
    if hasattr(activation, "get_config") and not isinstance(activation, type):
        return {"class_name": type(activation).__name__, "config": activation.get_config()}
    name = _registered_name(activation)
    if name is not None:
        return name
    name = getattr(activation, "__name__", None)
    if name is None or name == "<lambda>":
        raise ValueError(
            f"activations.serialize: cannot serialize {activation!r}: it is neither a registered activation "
            "nor a named function (a lambda has no name to save; define a function and register it)")
    return name


def deserialize(config, custom_objects: dict | None = None):
    """The activation described by ``config``: a name, or ``{'class_name': ..., 'config': {...}}``."""
    if isinstance(config, str):
        return ACTIVATIONS.lookup(config, custom_objects=custom_objects)
    if isinstance(config, dict):
        if "class_name" not in config:
            raise ValueError(f"activations.deserialize: a config dict needs a 'class_name' key, got {config!r}")
        name, inner = config["class_name"], config.get("config")
        if name == "function" and isinstance(inner, str):  # Keras 3's form for plain functions
            return ACTIVATIONS.lookup(inner, custom_objects=custom_objects)
        obj = ACTIVATIONS.lookup(name, custom_objects=custom_objects)
        inner = inner or {}
        if not isinstance(inner, dict):
            raise ValueError(f"activations.deserialize: 'config' must be a dict, got {inner!r}")
        if isinstance(obj, type):
            return obj.from_config(inner) if hasattr(obj, "from_config") else obj(**inner)
        return functools.partial(obj, **inner) if inner else obj
    raise ValueError(
        f"activations.deserialize: expected a name or a {{'class_name', 'config'}} dict, got {config!r}")


def get(identifier, custom_objects: dict | None = None):
    """Resolve an activation: a name, a config dict, a callable (returned as is), or None (``linear``)."""
    if identifier is None:
        return linear
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier, custom_objects=custom_objects)
    if callable(identifier):
        return identifier
    raise ValueError(
        f"Could not interpret activation identifier {identifier!r} (type {type(identifier).__name__}): "
        "expected a name such as 'relu', a callable, a config dict or None")


__all__ = [
    "linear", "sigmoid", "tanh", "relu", "relu6", "leaky_relu", "elu", "selu", "softplus", "softsign",
    "hard_sigmoid", "silu", "swish", "gelu", "exponential", "softmax", "log_softmax", "step",
    "get", "serialize", "deserialize", "ACTIVATIONS",
]
