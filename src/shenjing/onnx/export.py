"""``export(model, path, opset=17)``: a shenjing model as an ONNX inference graph (see the package doc)."""

from __future__ import annotations

import math
import os

import numpy as np

from .. import activations
from .. import backend as B

MIN_OPSET = 13


def _require_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as err:
        raise ImportError("shenjing.onnx.export needs the onnx package: pip install onnx") from err
    return onnx, helper, numpy_helper


class _Graph:
    """Nodes, initializers and unique names of the graph being built."""

    def __init__(self, opset: int):
        self.onnx, self.helper, self.numpy_helper = _require_onnx()
        self.opset = opset
        self.nodes, self.initializers, self._count = [], [], {}

    def name(self, base: str) -> str:
        base = "".join(c if c.isalnum() or c in "_./" else "_" for c in base) or "t"
        n = self._count.get(base, 0)
        self._count[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def const(self, value, base="const", dtype="float32") -> str:
        name = self.name(base)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list, base: str, outputs: int = 1, **attrs):
        names = [self.name(f"{base}/{op_type}" if i == 0 else f"{base}/{op_type}_out{i}") for i in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), names, name=self.name(f"{base}/{op_type}_node"),
                                                **attrs))
        return names[0] if outputs == 1 else names

    def reduce(self, op_type: str, x: str, axes, keepdims: bool, base: str) -> str:
        axes = [int(a) for a in axes]
        if self.opset >= 18:
            return self.op(op_type, [x, self.const(axes, f"{base}/axes", "int64")], base, keepdims=int(keepdims))
        return self.op(op_type, [x], base, axes=axes, keepdims=int(keepdims))


def _host(variable) -> np.ndarray:
    return np.asarray(B.to_host(variable.data), dtype="float32")


# --------------------------------------------------------------------------------- activations
def _activation(g: _Graph, fn, x: str, base: str) -> str:
    if fn is None or fn is activations.linear:
        return x
    spec = activations.serialize(fn)
    name, kwargs = (spec, {}) if isinstance(spec, str) else (spec.get("class_name"), dict(spec.get("config") or {}))
    if name == "linear":
        return x
    if name == "relu":
        return _relu(g, x, base, max_value=kwargs.get("max_value"), negative_slope=kwargs.get(
            "negative_slope", kwargs.get("alpha", 0.0)) or 0.0, threshold=kwargs.get("threshold", 0.0) or 0.0)
    if name == "relu6":
        return _relu(g, x, base, max_value=6.0)
    if kwargs and name not in ("elu", "softmax", "log_softmax", "leaky_relu", "gelu"):
        raise NotImplementedError(f"ONNX export: activation {name!r} with arguments {kwargs} is not supported")
    simple = {"sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus", "softsign": "Softsign",
              "exponential": "Exp", "selu": "Selu"}
    if name in simple:
        return g.op(simple[name], [x], base)
    if name == "elu":
        return g.op("Elu", [x], base, alpha=float(kwargs.get("alpha", 1.0)))
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], base, alpha=float(kwargs.get("negative_slope", kwargs.get("alpha", 0.2))))
    if name in ("softmax", "log_softmax"):
        return g.op("Softmax" if name == "softmax" else "LogSoftmax", [x], base, axis=int(kwargs.get("axis", -1)))
    if name == "hard_sigmoid":
        return g.op("HardSigmoid", [x], base, alpha=1.0 / 6.0, beta=0.5)
    if name in ("silu", "swish"):
        return g.op("Mul", [x, g.op("Sigmoid", [x], base)], base)
    if name == "gelu":
        if kwargs.get("approximate"):
            inner = g.op("Mul", [g.op("Add", [x, g.op("Mul", [g.op("Pow", [x, g.const(3.0)], base),
                                                               g.const(0.044715)], base)], base),
                                 g.const(math.sqrt(2.0 / math.pi))], base)
            half = g.op("Add", [g.op("Tanh", [inner], base), g.const(1.0)], base)
        else:
            half = g.op("Add", [g.op("Erf", [g.op("Div", [x, g.const(math.sqrt(2.0))], base)], base),
                                g.const(1.0)], base)
        return g.op("Mul", [g.op("Mul", [x, half], base), g.const(0.5)], base)
    raise NotImplementedError(f"ONNX export: activation {name!r} is not supported")


def _relu(g: _Graph, x: str, base: str, max_value=None, negative_slope=0.0, threshold=0.0) -> str:
    if threshold:
        raise NotImplementedError("ONNX export: ReLU with a threshold is not supported")
    out = g.op("LeakyRelu", [x], base, alpha=float(negative_slope)) if negative_slope else g.op("Relu", [x], base)
    if max_value is not None:
        out = g.op("Min", [out, g.const(float(max_value))], base)
    return out


# ------------------------------------------------------------------------------- layout helpers
def _channels_last(layer) -> bool:
    return getattr(layer, "_format", getattr(layer, "data_format", None) or B.image_data_format()) == "channels_last"


def _to_first(g, x, rank, layer, base):
    if not _channels_last(layer):
        return x
    return g.op("Transpose", [x], base, perm=[0, rank + 1] + list(range(1, rank + 1)))


def _to_last(g, x, rank, layer, base):
    if not _channels_last(layer):
        return x
    return g.op("Transpose", [x], base, perm=[0] + list(range(2, rank + 2)) + [1])


def _same_pads(spatial, kernel, strides, dilation) -> list | None:
    """TensorFlow's 'same' padding as ONNX ``pads`` (begins then ends); None when a size is unknown."""
    begins, ends = [], []
    for n, k, s, d in zip(spatial, kernel, strides, dilation):
        if n is None:
            return None
        k_eff = (k - 1) * d + 1
        total = max((-(-n // s) - 1) * s + k_eff - n, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends


def _spatial_of(layer, shape) -> tuple:
    return tuple(shape[1:-1]) if _channels_last(layer) else tuple(shape[2:])


def _conv_attrs(layer, shape, rank, kernel_size, strides, dilation, padding):
    attrs = {"kernel_shape": list(kernel_size), "strides": list(strides), "dilations": list(dilation)}
    if padding == "same":
        pads = _same_pads(_spatial_of(layer, shape), kernel_size, strides, dilation)
        if pads is None:
            attrs["auto_pad"] = "SAME_UPPER"
        else:
            attrs["pads"] = pads
    elif padding == "causal":
        attrs["pads"] = [(kernel_size[0] - 1) * dilation[0], 0]
    else:
        attrs["pads"] = [0] * (2 * rank)
    return attrs


# ----------------------------------------------------------------------------- layer emitters
def _dense(g, layer, xs, shapes, base):
    x = g.op("MatMul", [xs[0], g.const(_host(layer.kernel), f"{base}/kernel")], base)
    if layer.bias is not None:
        x = g.op("Add", [x, g.const(_host(layer.bias), f"{base}/bias")], base)
    return _activation(g, layer.activation, x, base)


def _conv(g, layer, xs, shapes, base):
    rank = layer.rank
    kind = type(layer).__name__
    x = _to_first(g, xs[0], rank, layer, base)
    perm = [rank + 1, rank] + list(range(rank))
    attrs = _conv_attrs(layer, shapes[0], rank, layer.kernel_size, layer.strides, layer.dilation_rate, layer.padding)
    if kind == "Conv2DTranspose":
        raise NotImplementedError("ONNX export: Conv2DTranspose is not supported yet")
    if kind == "DepthwiseConv2D":
        kernel = _host(layer.depthwise_kernel)  # (k..., channels, depth_multiplier)
        channels = kernel.shape[rank]
        weight = kernel.reshape(kernel.shape[:rank] + (1, -1)).transpose(perm)  # (in*mult, 1, kh, kw)
        out = g.op("Conv", [x, g.const(weight, f"{base}/kernel")], base, group=int(channels), **attrs)
    elif kind == "SeparableConv2D":
        depth = _host(layer.depthwise_kernel)
        channels = depth.shape[rank]
        weight = depth.reshape(depth.shape[:rank] + (1, -1)).transpose(perm)
        out = g.op("Conv", [x, g.const(weight, f"{base}/depthwise_kernel")], base, group=int(channels), **attrs)
        point = _host(layer.pointwise_kernel).transpose(perm)
        out = g.op("Conv", [out, g.const(point, f"{base}/pointwise_kernel")], base, kernel_shape=[1] * rank)
    else:
        kernel = _host(layer.kernel)  # (k..., in/groups, filters)
        out = g.op("Conv", [x, g.const(kernel.transpose(perm), f"{base}/kernel")], base,
                   group=int(getattr(layer, "groups", 1)), **attrs)
    if layer.bias is not None:
        bias = _host(layer.bias).reshape((1, -1) + (1,) * rank)
        out = g.op("Add", [out, g.const(bias, f"{base}/bias")], base)
    out = _to_last(g, out, rank, layer, base)
    return _activation(g, layer.activation, out, base)


def _pool(g, layer, xs, shapes, base):
    rank = layer.rank
    x = _to_first(g, xs[0], rank, layer, base)
    attrs = _conv_attrs(layer, shapes[0], rank, layer.pool_size, layer.strides, (1,) * rank, layer.padding)
    attrs.pop("dilations")
    if layer.kind == "max":
        out = g.op("MaxPool", [x], base, **attrs)
    else:
        out = g.op("AveragePool", [x], base, count_include_pad=0, **attrs)
    return _to_last(g, out, rank, layer, base)


def _global_pool(g, layer, xs, shapes, base):
    return g.reduce("ReduceMax" if layer.kind == "max" else "ReduceMean", xs[0], layer._axes(), layer.keepdims, base)


def _batch_norm(g, layer, xs, shapes, base):
    mean, var = _host(layer.moving_mean).astype("float64"), _host(layer.moving_variance).astype("float64")
    gamma = _host(layer.gamma).astype("float64") if layer.gamma is not None else 1.0
    beta = _host(layer.beta).astype("float64") if layer.beta is not None else 0.0
    scale = gamma / np.sqrt(var + layer.epsilon)
    shift = beta - mean * scale
    shape = [1] * layer._rank
    for axis in layer._channel_axes:
        shape[axis] = layer._sizes[axis]
    x = g.op("Mul", [xs[0], g.const(np.reshape(scale, shape), f"{base}/scale")], base)
    return g.op("Add", [x, g.const(np.reshape(shift, shape), f"{base}/shift")], base)


def _layer_norm(g, layer, xs, shapes, base):
    axes = [a % len(shapes[0]) for a in (layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis])]
    mean = g.reduce("ReduceMean", xs[0], axes, True, base)
    centred = g.op("Sub", [xs[0], mean], base)
    var = g.reduce("ReduceMean", g.op("Mul", [centred, centred], base), axes, True, base)
    out = g.op("Div", [centred, g.op("Sqrt", [g.op("Add", [var, g.const(layer.epsilon)], base)], base)], base)
    shape = [1] * len(shapes[0])
    for a in axes:
        shape[a] = shapes[0][a]
    if layer.gamma is not None:
        out = g.op("Mul", [out, g.const(_host(layer.gamma).reshape(shape), f"{base}/gamma")], base)
    if layer.beta is not None:
        out = g.op("Add", [out, g.const(_host(layer.beta).reshape(shape), f"{base}/beta")], base)
    return out


def _identity(g, layer, xs, shapes, base):
    return g.op("Identity", [xs[0]], base)


def _activation_layer(g, layer, xs, shapes, base):
    kind = type(layer).__name__
    x = xs[0]
    if kind == "Activation":
        out = _activation(g, layer.activation, x, base)
        return out if out != x else g.op("Identity", [x], base)
    if kind == "ReLU":
        return _relu(g, x, base, layer.max_value, layer.negative_slope, layer.threshold)
    if kind == "LeakyReLU":
        return g.op("LeakyRelu", [x], base, alpha=float(layer.negative_slope))
    if kind == "ELU":
        return g.op("Elu", [x], base, alpha=float(layer.alpha))
    if kind == "Softmax":
        return g.op("Softmax", [x], base, axis=int(layer.axis))
    if kind == "PReLU":
        return g.op("PRelu", [x, g.const(_host(layer.alpha), f"{base}/alpha")], base)
    raise NotImplementedError(kind)


def _flatten(g, layer, xs, shapes, base):
    x = xs[0]
    rank = len(shapes[0])
    if getattr(layer, "data_format", None) == "channels_first" and rank > 2:
        x = g.op("Transpose", [x], base, perm=[0] + list(range(2, rank)) + [1])
    return g.op("Flatten", [x], base, axis=1)


def _reshape(g, layer, xs, shapes, base):
    return g.op("Reshape", [xs[0], g.const([0] + list(layer.target_shape), f"{base}/shape", "int64")], base)


def _permute(g, layer, xs, shapes, base):
    return g.op("Transpose", [xs[0]], base, perm=[0] + list(layer.dims))


def _spatial_axes(layer, rank_total):
    return list(range(1, rank_total - 1)) if _channels_last(layer) else list(range(2, rank_total))


def _pairs(value, rank):
    value = value if isinstance(value, (list, tuple)) else (value,)
    out = []
    for v in value:
        out.append(tuple(v) if isinstance(v, (list, tuple)) else (v, v))
    return out * rank if len(out) == 1 and rank > 1 else out


def _zero_padding(g, layer, xs, shapes, base):
    total = len(shapes[0])
    pads = _pairs(layer.padding, total - 2)
    begins, ends = [0] * total, [0] * total
    for axis, (b, e) in zip(_spatial_axes(layer, total), pads):
        begins[axis], ends[axis] = int(b), int(e)
    return g.op("Pad", [xs[0], g.const(begins + ends, f"{base}/pads", "int64")], base)


def _cropping(g, layer, xs, shapes, base):
    total = len(shapes[0])
    crops = _pairs(layer.cropping, total - 2)
    axes = _spatial_axes(layer, total)
    starts = [int(b) for b, _ in crops]
    ends = [-int(e) if e else np.iinfo("int64").max for _, e in crops]
    return g.op("Slice", [xs[0], g.const(starts, f"{base}/starts", "int64"), g.const(ends, f"{base}/ends", "int64"),
                          g.const(axes, f"{base}/axes", "int64")], base)


def _upsampling(g, layer, xs, shapes, base):
    total = len(shapes[0])
    size = layer.size if isinstance(layer.size, (list, tuple)) else (layer.size,)
    if getattr(layer, "interpolation", "nearest") != "nearest":
        raise NotImplementedError(f"ONNX export: UpSampling with interpolation {layer.interpolation!r}")
    scales = [1.0] * total
    for axis, s in zip(_spatial_axes(layer, total), size):
        scales[axis] = float(s)
    return g.op("Resize", [xs[0], "", g.const(scales, f"{base}/scales")], base, mode="nearest",
                nearest_mode="floor", coordinate_transformation_mode="asymmetric")


def _merge(g, layer, xs, shapes, base):
    kind = type(layer).__name__
    if kind == "Concatenate":
        return g.op("Concat", xs, base, axis=int(layer.axis))
    if kind == "Subtract":
        return g.op("Sub", xs, base)
    if kind in ("Add", "Average"):
        out = g.op("Sum", xs, base)
        return g.op("Div", [out, g.const(float(len(xs)))], base) if kind == "Average" else out
    if kind == "Maximum":
        return g.op("Max", xs, base)
    if kind == "Minimum":
        return g.op("Min", xs, base)
    if kind == "Multiply":
        out = xs[0]
        for other in xs[1:]:
            out = g.op("Mul", [out, other], base)
        return out
    raise NotImplementedError(kind)


_RNN_ACTIVATIONS = {"sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}), "relu": ("Relu", {}),
                    "hard_sigmoid": ("HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5})}


def _rnn_activation(fn, layer):
    name = activations.serialize(fn)
    if name not in _RNN_ACTIVATIONS:
        raise NotImplementedError(f"ONNX export: {type(layer).__name__} {layer.name!r} with activation {name!r}; "
                                  f"supported: {', '.join(_RNN_ACTIVATIONS)}")
    return _RNN_ACTIVATIONS[name]


def _recurrent(g, layer, xs, shapes, base):
    """SimpleRNN / LSTM / GRU as ONNX's RNN / LSTM / GRU ops (time-major, one direction).

    Gate blocks: Keras LSTM i, f, c, o -> ONNX i, o, f, c; Keras GRU z, r, h = ONNX z, r, h, with
    ``reset_after=True`` as ``linear_before_reset=1``. ``go_backwards`` reverses the input and keeps Keras's
    output order (the processing order).
    """
    kind = type(layer).__name__
    if layer.return_state or getattr(layer, "stateful", False):
        raise NotImplementedError(f"ONNX export: {kind} {layer.name!r} with return_state / stateful")
    cell = layer.cell
    units = layer.units
    kernel, recurrent = _host(cell.kernel), _host(cell.recurrent_kernel)
    gates = kernel.shape[1] // units
    width = gates * units
    if cell.use_bias:
        bias = _host(cell.bias)
        input_bias, recurrent_bias = (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros(width, "float32"))
    else:
        input_bias = recurrent_bias = np.zeros(width, "float32")
    if kind == "LSTM":
        order = [0, 3, 1, 2]  # i, f, c, o -> i, o, f, c

        def reorder(a):
            return np.concatenate([a[..., k * units:(k + 1) * units] for k in order], axis=-1)

        kernel, recurrent = reorder(kernel), reorder(recurrent)
        input_bias, recurrent_bias = reorder(input_bias), reorder(recurrent_bias)
    x = g.op("Transpose", [xs[0]], base, perm=[1, 0, 2])  # (time, batch, features)
    if layer.go_backwards:
        x = g.op("Slice", [x, g.const([-1], f"{base}/start", "int64"), g.const([-(2**62)], f"{base}/end", "int64"),
                           g.const([0], f"{base}/axis", "int64"), g.const([-1], f"{base}/step", "int64")], base)
    names = [_rnn_activation(cell.recurrent_activation, layer), _rnn_activation(cell.activation, layer)] \
        if kind != "SimpleRNN" else [_rnn_activation(cell.activation, layer)]
    if kind == "LSTM":
        names.append(names[1])
    attrs = {"hidden_size": units, "activations": [n for n, _ in names]}
    alphas = [a.get("alpha") for _, a in names]
    if any(a is not None for a in alphas):
        attrs["activation_alpha"] = [1.0 if a is None else a for a in alphas]
        attrs["activation_beta"] = [0.0 if a.get("beta") is None else a["beta"] for _, a in names]
    if kind == "GRU":
        attrs["linear_before_reset"] = int(cell.reset_after)
    op_type = {"SimpleRNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}[kind]
    inputs = [x, g.const(kernel.T[None], f"{base}/W"), g.const(recurrent.T[None], f"{base}/R"),
              g.const(np.concatenate([input_bias, recurrent_bias])[None], f"{base}/B")]
    y, y_h = g.op(op_type, inputs, base, outputs=2, **attrs)[:2]
    if layer.return_sequences:
        y = g.op("Squeeze", [y, g.const([1], f"{base}/squeeze_axis", "int64")], base)  # (time, batch, units)
        return g.op("Transpose", [y], base, perm=[1, 0, 2])
    return g.op("Squeeze", [y_h, g.const([0], f"{base}/squeeze_axis", "int64")], base)


_EMITTERS = {
    "SimpleRNN": _recurrent, "LSTM": _recurrent, "GRU": _recurrent,
    "Dense": _dense,
    "Conv1D": _conv, "Conv2D": _conv, "Convolution1D": _conv, "Convolution2D": _conv, "DepthwiseConv2D": _conv,
    "SeparableConv2D": _conv,
    "MaxPooling1D": _pool, "MaxPooling2D": _pool, "AveragePooling1D": _pool, "AveragePooling2D": _pool,
    "GlobalMaxPooling1D": _global_pool, "GlobalMaxPooling2D": _global_pool, "GlobalAveragePooling1D": _global_pool,
    "GlobalAveragePooling2D": _global_pool,
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm,
    "Dropout": _identity, "GaussianNoise": _identity, "GaussianDropout": _identity, "AlphaDropout": _identity,
    "SpatialDropout1D": _identity, "SpatialDropout2D": _identity, "SpatialDropout3D": _identity,
    "ActivityRegularization": _identity,
    "Activation": _activation_layer, "ReLU": _activation_layer, "LeakyReLU": _activation_layer,
    "ELU": _activation_layer, "Softmax": _activation_layer, "PReLU": _activation_layer,
    "Flatten": _flatten, "Reshape": _reshape, "Permute": _permute,
    "ZeroPadding1D": _zero_padding, "ZeroPadding2D": _zero_padding, "Cropping1D": _cropping, "Cropping2D": _cropping,
    "UpSampling1D": _upsampling, "UpSampling2D": _upsampling,
    "Add": _merge, "Subtract": _merge, "Multiply": _merge, "Average": _merge, "Maximum": _merge, "Minimum": _merge,
    "Concatenate": _merge,
}

SUPPORTED_LAYERS = tuple(sorted(_EMITTERS))


def _emitter(layer):
    for cls in type(layer).__mro__:
        if cls.__name__ in _EMITTERS:
            return _EMITTERS[cls.__name__]
    raise NotImplementedError(f"ONNX export: layer {layer.name!r} ({type(layer).__name__}) is not supported; "
                              f"supported: {', '.join(SUPPORTED_LAYERS)}")


# ------------------------------------------------------------------------------------ graph walk
def _model_nodes(model) -> list:
    """``[(layer, input tensors, output tensors)]`` in execution order (InputLayers left out)."""
    from ..layers.core import InputLayer
    from ..models import Sequential

    if isinstance(model, Sequential):
        if not model.inputs:
            raise ValueError(f"ONNX export: model {model.name!r} has no known input shape; build it first")
        t, out = model.inputs[0], []
        for layer in model.layers:
            node = next((n for n in layer._inbound_nodes if n.inputs and n.inputs[0] is t), None)
            if node is None:
                raise ValueError(f"ONNX export: cannot follow Sequential {model.name!r} at layer {layer.name!r}")
            out.append((layer, node.inputs, node.outputs, node))
            t = node.outputs[0]
        return out
    if not getattr(model, "_is_graph", False):
        raise NotImplementedError(f"ONNX export: {type(model).__name__} {model.name!r} is a subclassed model; only "
                                  f"Sequential and functional models can be exported")
    return [(n.layer, n.inputs, n.outputs, n) for n in model._nodes if not isinstance(n.layer, InputLayer)]


def _emit_model(g, model, input_names: list) -> list:
    from ..models import Model

    names = {id(t): name for t, name in zip(model.inputs, input_names)}
    for layer, inputs, outputs, node in _model_nodes(model):
        xs = [names[id(t)] for t in inputs]
        if node.kwargs and any(v is not None and k != "training" for k, v in node.kwargs.items()):
            raise NotImplementedError(f"ONNX export: layer {layer.name!r} is called with arguments {node.kwargs}")
        if isinstance(layer, Model):
            outs = _emit_model(g, layer, xs)
        else:
            out = _emitter(layer)(g, layer, xs, [tuple(t.shape) for t in inputs], layer.name)
            outs = out if isinstance(out, list) else [out]
        for t, name in zip(outputs, outs):
            names[id(t)] = name
    return [names[id(t)] for t in model.outputs]


def export(model, path, opset: int = 17, input_names=None, output_names=None):
    """Write ``model`` as an ONNX graph to ``path`` (atomically); returns the ``onnx.ModelProto``."""
    from .. import __version__
    from ..saving.atomic import atomic_write_bytes

    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f"ONNX export: opset must be an integer >= {MIN_OPSET}, got {opset!r}")
    g = _Graph(opset)
    helper, onnx = g.helper, g.onnx
    inputs = model.inputs
    if not inputs:
        raise ValueError(f"ONNX export: model {model.name!r} has no known input shape; build it first")
    in_names = list(input_names or [t.node.layer.name for t in inputs])
    graph_inputs = []
    for name, t in zip(in_names, inputs):
        shape = ["batch" if i == 0 else (d if d is not None else f"{name}_dim{i}") for i, d in enumerate(t.shape)]
        elem = onnx.TensorProto.INT64 if str(t.dtype).startswith("int") else onnx.TensorProto.FLOAT
        graph_inputs.append(helper.make_tensor_value_info(name, elem, shape))
    cast_inputs = []
    for name, t in zip(in_names, inputs):
        cast_inputs.append(g.op("Cast", [name], name, to=onnx.TensorProto.FLOAT)
                           if str(t.dtype).startswith("int") else name)
    outs = _emit_model(g, model, cast_inputs)
    out_names = list(output_names or [f"output_{i}" if len(outs) > 1 else "output" for i in range(len(outs))])
    graph_outputs = []
    for name, out, t in zip(out_names, outs, model.outputs):
        g.nodes.append(helper.make_node("Identity", [out], [name], name=g.name(f"{name}/identity")))
        shape = ["batch" if i == 0 else d for i, d in enumerate(t.shape)]
        graph_outputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape))
    graph = helper.make_graph(g.nodes, model.name, graph_inputs, graph_outputs, g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="shenjing", producer_version=__version__)
    proto.ir_version = min(proto.ir_version, 8 if opset <= 17 else proto.ir_version)
    onnx.checker.check_model(proto)
    atomic_write_bytes(os.fspath(path), proto.SerializeToString())
    return proto


__all__ = ["export", "SUPPORTED_LAYERS"]
