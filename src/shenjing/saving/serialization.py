"""Configs: layers and models to ``{'class_name', 'config'}`` dicts and JSON, and back.

A config names classes; loading looks those names up in fixed tables and never imports anything:

1. ``custom_objects`` given to the loader (and any :func:`custom_object_scope` around it);
2. the objects registered with :func:`register_keras_serializable` (or
   :func:`shenjing.utils.registry.register_custom_object`);
3. shenjing's own layers (every ``Layer`` class of :mod:`shenjing.layers`) and models
   (``Sequential``, ``Functional`` / ``Model``).

A class name that is not in these tables, one that looks like a module path (``os.system``,
``keras.layers.Dense``), or a Lambda function saved as code is refused with a ``ValueError`` that says
what to register. A ``Lambda`` layer is saved by the name of its function; loading it needs that
function in ``custom_objects``.

Layouts (Keras 2's, which Keras 3's legacy ``.h5`` still reads):

- a layer: ``{'class_name': 'Dense', 'config': layer.get_config()}`` (plus ``'registered_name'`` for a
  registered custom class);
- ``Sequential``: ``{'name', 'trainable', 'layers': [InputLayer config (when the input shape is known),
  layer configs ...]}``;
- a functional model: ``{'name', 'trainable', 'layers': [{'class_name', 'config', 'name', 'inbound_nodes':
  [[[layer_name, node_index, tensor_index, kwargs], ...], ...]}, ...], 'input_layers': [[name, node_index,
  tensor_index], ...], 'output_layers': [...]}``; Keras 3's node layout (``{'args': [...], 'kwargs': {}}``
  with ``keras_history``) is read too.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import warnings

from ..utils import registry as _registry

#: the largest JSON config accepted (characters)
MAX_CONFIG_CHARS = 64 * 1024 * 1024

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REGISTERED_NAME = re.compile(r"^[A-Za-z0-9_.\-]+>[A-Za-z_][A-Za-z0-9_]*$")

_registered_names: dict = {}  # object -> 'Package>Name'


# --------------------------------------------------------------------------- registration
def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """Decorator: make a custom class (layer, model, loss, metric, ...) or function loadable by name.

    ``@register_keras_serializable(package='MyLib')`` on ``class MyLayer(Layer)`` registers it as
    ``'MyLib>MyLayer'`` and as ``'MyLayer'`` (through
    :func:`shenjing.utils.registry.register_custom_object`, so that activations, losses, ... find it
    too). A class must define ``get_config``.
    """
    if not isinstance(package, str) or not package or ">" in package:
        raise ValueError(f"register_keras_serializable: package must be a non-empty string without '>', "
                         f"got {package!r}")

    def decorator(obj):
        short = name if name is not None else getattr(obj, "__name__", None)
        if not isinstance(short, str) or not _IDENTIFIER.match(short):
            raise ValueError(f"register_keras_serializable: the name must be an identifier, got {short!r}")
        if isinstance(obj, type) and not hasattr(obj, "get_config"):
            raise ValueError(f"register_keras_serializable: class {obj.__name__} must define get_config() to be "
                             f"serializable")
        key = f"{package}>{short}"
        _registered_names[obj] = key
        _registry.register_custom_object(key, obj)
        _registry.register_custom_object(short, obj)
        return obj

    return decorator


def get_registered_name(obj) -> str:
    """``'Package>Name'`` for a registered object, else its ``__name__``."""
    try:
        return _registered_names[obj]
    except (KeyError, TypeError):
        return getattr(obj, "__name__", type(obj).__name__)


def get_registered_object(name: str, custom_objects: dict | None = None):
    """The object registered (or passed in ``custom_objects``) as ``name``; None if there is none."""
    for table in (custom_objects or {}, _registry._custom_objects):
        if name in table:
            return table[name]
    return None


@contextlib.contextmanager
def custom_object_scope(custom_objects: dict | None):
    """``with custom_object_scope({'MyLayer': MyLayer}): ...``: the objects resolve by name inside the
    block (layers, activations, losses, initializers, ...), as if registered."""
    custom_objects = dict(custom_objects or {})
    for key in custom_objects:
        if not isinstance(key, str):
            raise TypeError(f"custom_objects: keys must be names (str), got {key!r}")
    table = _registry._custom_objects
    saved = {k: table[k] for k in custom_objects if k in table}
    table.update(custom_objects)
    try:
        yield
    finally:
        for key in custom_objects:
            if key in saved:
                table[key] = saved[key]
            else:
                table.pop(key, None)


# ------------------------------------------------------------------------------ lookup
def _builtin_layer_classes() -> dict:
    """Every public ``Layer`` class of :mod:`shenjing.layers` (and its loaded submodules), and the models."""
    from .. import layers as layers_module
    from ..layers.base import Layer
    from ..models import Model, Sequential

    table = {}
    modules = [layers_module] + [m for n, m in sorted(sys.modules.items())
                                 if n.startswith(layers_module.__name__ + ".") and m is not None]
    for module in modules:
        for key, value in list(vars(module).items()):
            if isinstance(value, type) and issubclass(value, Layer) and not key.startswith("_"):
                table.setdefault(key, value)
                if not value.__name__.startswith("_"):
                    table.setdefault(value.__name__, value)
    table.update({"Sequential": Sequential, "Functional": Model, "Model": Model})
    return table


def layer_class_names() -> list:
    """The class names :func:`deserialize_layer` knows without custom objects."""
    return sorted(_builtin_layer_classes())


def _lookup_layer_class(class_name, registered_name, custom_objects, where: str):
    from ..layers.base import Layer

    if not isinstance(class_name, str):
        raise ValueError(f"{where}: 'class_name' must be a string, got {class_name!r}")
    candidates = []
    if isinstance(registered_name, str) and _REGISTERED_NAME.match(registered_name):
        candidates.append(registered_name)
    candidates.append(class_name)
    for name in candidates:
        obj = get_registered_object(name, custom_objects)
        if obj is not None:
            if not (isinstance(obj, type) and issubclass(obj, Layer)):
                raise ValueError(f"{where}: {name!r} is registered as {obj!r}, which is not a Layer class")
            return obj
    if not _IDENTIFIER.match(class_name):
        raise ValueError(
            f"{where}: refusing class name {class_name!r}: it looks like a module path or code, and shenjing never "
            f"imports anything named in a file. Register the class with "
            f"@shenjing.saving.register_keras_serializable() or pass custom_objects={{'Name': Class}}")
    builtin = _builtin_layer_classes()
    if class_name in builtin:
        return builtin[class_name]
    import difflib

    close = difflib.get_close_matches(class_name, builtin, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"{where}: unknown layer class {class_name!r}.{hint} A custom class must be registered with "
        f"@shenjing.saving.register_keras_serializable() or passed as custom_objects={{{class_name!r}: "
        f"{class_name}}}; shenjing never imports code named in a file")


# -------------------------------------------------------------------------- serialize
def _is_functional(model) -> bool:
    from ..models import Model, Sequential

    return isinstance(model, Model) and not isinstance(model, Sequential) and getattr(model, "_is_graph", False) \
        and type(model).call is Model.call


def _class_entry(obj) -> dict:
    entry = {"class_name": type(obj).__name__}
    registered = _registered_names.get(type(obj))
    if registered is not None:
        entry["registered_name"] = registered
    return entry


def serialize_layer(layer) -> dict:
    """``{'class_name', 'config'}`` for a layer or a model (Sequential, functional, registered subclass)."""
    from ..layers.base import Layer
    from ..models import Model, Sequential

    if not isinstance(layer, Layer):
        raise TypeError(f"serialize_layer: expected a Layer or a Model, got {type(layer).__name__}")
    entry = _class_entry(layer)
    if isinstance(layer, Sequential) and (type(layer) is Sequential or type(layer).get_config is
                                          Sequential.get_config):
        entry["config"] = sequential_config(layer)
    elif _is_functional(layer) and (type(layer) is Model or type(layer).get_config is Model.get_config):
        if type(layer) is Model:
            entry["class_name"] = "Functional"
        entry["config"] = functional_config(layer)
    else:
        entry["config"] = layer.get_config()
        if _is_lambda(layer):
            config = entry["config"]
            if "arguments" not in config and getattr(layer, "arguments", None):
                config["arguments"] = dict(layer.arguments)
            if "output_shape" not in config and getattr(layer, "_fixed_output_shape", None) is not None:
                config["output_shape"] = list(layer._fixed_output_shape)
            _check_json(config, f"Lambda layer {layer.name!r} (its arguments must be plain values)")
            fn = config.get("function")
            if fn in ("<lambda>", "lambda", None):
                warnings.warn(f"Lambda layer {layer.name!r} wraps an anonymous lambda: it is saved as "
                              f"{fn!r} and loading it needs custom_objects={{{fn!r}: the_function}}; give the "
                              f"function a name (def) to make the model loadable", stacklevel=3)
    return entry


def _is_lambda(layer) -> bool:
    from ..layers import Lambda

    return isinstance(layer, Lambda)


def _input_layer_entry(tensor) -> dict:
    layer = tensor.node.layer
    config = {"batch_shape": list(tensor.shape), "dtype": layer.dtype, "name": layer.name}
    return {"class_name": "InputLayer", "config": config}


def sequential_config(model) -> dict:
    """Keras's Sequential layout: an InputLayer entry (when the input shape is known), then the layers."""
    layers = []
    inputs = model.inputs
    if inputs:
        layers.append(_input_layer_entry(inputs[0]))
    layers.extend(serialize_layer(layer) for layer in model.layers)
    return {"name": model.name, "trainable": model.trainable, "layers": layers}


def functional_config(model) -> dict:
    """Keras 2's functional layout: layers with their inbound nodes, input and output layers."""
    nodes = list(model._nodes)
    node_ids = {id(n) for n in nodes}
    node_index = {}  # id(node) -> index among its layer's nodes that belong to this graph
    for layer in model.layers:
        own = [n for n in layer._inbound_nodes if id(n) in node_ids]
        for i, n in enumerate(own):
            node_index[id(n)] = i

    def ref(tensor) -> list:
        node = tensor.node
        if id(node) not in node_index:
            raise ValueError(f"Model {model.name!r}: tensor {tensor.name!r} comes from outside the model's graph")
        return [node.layer.name, node_index[id(node)], tensor.index]

    layers = []
    names = set()
    for layer in model.layers:
        if layer.name in names:
            raise ValueError(f"Model {model.name!r}: two layers are named {layer.name!r}; layer names must be "
                             f"unique to save a model")
        names.add(layer.name)
        from ..layers.core import InputLayer

        if isinstance(layer, InputLayer):
            entry = _input_layer_entry(layer._inbound_nodes[0].outputs[0])
        else:
            entry = serialize_layer(layer)
        inbound = []
        for node in [n for n in layer._inbound_nodes if id(n) in node_ids]:
            if isinstance(layer, InputLayer):
                continue
            kwargs = {k: v for k, v in node.kwargs.items() if v is not None}
            _check_json(kwargs, f"the call arguments of layer {layer.name!r}")
            inbound.append([ref(t) + [kwargs] for t in node.inputs])
        entry["name"] = layer.name
        entry["inbound_nodes"] = inbound
        layers.append(entry)

    def refs(tensors, nested):
        out = [ref(t) for t in tensors]
        return out if nested or len(out) != 1 else out[0]

    nested_inputs = isinstance(getattr(model, "_nested_inputs", None), (list, tuple, dict))
    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": refs(model.inputs, nested_inputs),
            "output_layers": refs(model.outputs, getattr(model, "_multi_output", True))}


# ------------------------------------------------------------------------ deserialize
def _check_entry(config, where: str) -> tuple:
    if not isinstance(config, dict):
        raise ValueError(f"{where}: expected a {{'class_name', 'config'}} dict, got {type(config).__name__}")
    if "class_name" not in config:
        raise ValueError(f"{where}: the layer config has no 'class_name' (keys: {sorted(config)[:10]})")
    inner = config.get("config", {})
    if inner is None:
        inner = {}
    if not isinstance(inner, dict):
        raise ValueError(f"{where}: 'config' of {config['class_name']!r} must be a dict, got {type(inner).__name__}")
    return config["class_name"], dict(inner)


def _clean_layer_config(inner: dict) -> dict:
    """Keras 3 details shenjing's constructors do not take: a DTypePolicy dict becomes its name."""
    dtype = inner.get("dtype")
    if isinstance(dtype, dict):
        policy = dtype.get("config") if isinstance(dtype.get("config"), dict) else {}
        inner["dtype"] = policy.get("name") if isinstance(policy.get("name"), str) else None
        if inner["dtype"] in ("float32", None) and "batch_shape" not in inner:
            inner.pop("dtype")
    return inner


def deserialize_layer(config, custom_objects: dict | None = None):
    """Rebuild a layer or a model from :func:`serialize_layer`'s ``{'class_name', 'config'}``."""
    with custom_object_scope(custom_objects):
        return _deserialize(config, custom_objects, "deserialize_layer")


def _deserialize(config, custom_objects, where: str):
    from ..models import Model, Sequential

    class_name, inner = _check_entry(config, where)
    cls = _lookup_layer_class(class_name, config.get("registered_name"), custom_objects, where)
    inner = _clean_layer_config(inner)
    label = f"{where}: layer {inner.get('name', '?')!r} ({class_name})"
    if issubclass(cls, Sequential) and (cls is Sequential or getattr(cls.from_config, "__func__", None) is
                                        _default_from_config(Sequential)):
        return _sequential_from_config(cls, inner, custom_objects, label)
    if issubclass(cls, Model) and not issubclass(cls, Sequential) and "layers" in inner and \
            ("input_layers" in inner or "output_layers" in inner):
        return _functional_from_config(cls, inner, custom_objects, label)
    if _is_lambda_class(cls):
        inner = _resolve_lambda(inner, custom_objects, label)
    try:
        return cls.from_config(inner)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{label}: cannot rebuild it from its config: {err}") from None


def _default_from_config(cls):
    return getattr(cls.from_config, "__func__", None)


def _is_lambda_class(cls) -> bool:
    from ..layers import Lambda

    return issubclass(cls, Lambda)


def _resolve_lambda(inner: dict, custom_objects, label: str) -> dict:
    fn = inner.get("function")
    if isinstance(fn, dict) or isinstance(fn, (list, tuple)):
        raise ValueError(f"{label}: the Lambda's function is stored as code ({type(fn).__name__}); shenjing never "
                         f"runs code from a file. Pass the function by name: custom_objects={{'name': function}}")
    if not isinstance(fn, str):
        raise ValueError(f"{label}: the Lambda's 'function' must be a function name, got {fn!r}")
    obj = get_registered_object(fn, custom_objects)
    if obj is None:
        from .. import activations

        if fn in activations.ACTIVATIONS:
            obj = activations.ACTIVATIONS.lookup(fn)
    if obj is None or not callable(obj):
        raise ValueError(f"{label}: its function {fn!r} is unknown. A Lambda layer is saved by the name of its "
                         f"function only (shenjing never loads code from a file): pass "
                         f"custom_objects={{{fn!r}: the_function}} to the loader")
    inner = dict(inner)
    inner["function"] = obj
    return inner


def _sequential_from_config(cls, inner: dict, custom_objects, label: str):
    from ..layers.core import InputLayer

    layers = inner.get("layers")
    if not isinstance(layers, list):
        raise ValueError(f"{label}: a Sequential config needs a 'layers' list")
    model = cls(name=inner.get("name"))
    for i, entry in enumerate(layers):
        layer = _deserialize(entry, custom_objects, f"{label}, layer {i}")
        if isinstance(layer, InputLayer):
            if i != 0:
                raise ValueError(f"{label}: an InputLayer can only be the first layer of a Sequential, found at {i}")
        try:
            model.add(layer)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{label}: cannot add layer {i} ({getattr(layer, 'name', '?')!r}): {err}") from None
    shape = inner.get("build_input_shape")
    if shape is not None and model.inputs is None:
        model.build(tuple(shape))
    if inner.get("trainable") is False:
        model.trainable = False
    return model


def _parse_ref(ref, label: str) -> tuple:
    if isinstance(ref, dict) and ref.get("class_name") == "__keras_tensor__":  # Keras 3
        ref = (ref.get("config") or {}).get("keras_history")
    if not isinstance(ref, (list, tuple)) or len(ref) < 3 or not isinstance(ref[0], str) \
            or not _is_index(ref[1]) or not _is_index(ref[2]):
        raise ValueError(f"{label}: a tensor reference must be [layer_name, node_index, tensor_index], got {ref!r}")
    kwargs = ref[3] if len(ref) > 3 and isinstance(ref[3], dict) else {}
    return ref[0], int(ref[1]), int(ref[2]), kwargs


def _is_index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 31


def _node_inputs(node, label: str) -> tuple:
    """(list of references, whether the layer takes a list, kwargs) for one inbound node."""
    if isinstance(node, dict):  # Keras 3: {'args': [...], 'kwargs': {...}}
        args = node.get("args") or []
        kwargs = node.get("kwargs") or {}
        if not isinstance(args, list) or not args or not isinstance(kwargs, dict):
            raise ValueError(f"{label}: malformed inbound node {str(node)[:200]}")
        first = args[0]
        if isinstance(first, list):
            return [_parse_ref(r, label)[:3] for r in first], True, kwargs
        return [_parse_ref(first, label)[:3]], False, kwargs
    if not isinstance(node, list) or not node:
        raise ValueError(f"{label}: an inbound node must be a non-empty list of tensor references, got {node!r}")
    parsed = [_parse_ref(r, label) for r in node]
    return [p[:3] for p in parsed], len(parsed) > 1, dict(parsed[0][3])


def _functional_from_config(cls, inner: dict, custom_objects, label: str):
    from ..layers.core import InputLayer

    layer_entries = inner.get("layers")
    if not isinstance(layer_entries, list):
        raise ValueError(f"{label}: a functional config needs a 'layers' list")
    layers, order = {}, []
    for i, entry in enumerate(layer_entries):
        if not isinstance(entry, dict):
            raise ValueError(f"{label}: layer entry {i} must be a dict")
        layer = _deserialize(entry, custom_objects, f"{label}, layer {i}")
        name = entry.get("name", layer.name)
        if not isinstance(name, str):
            raise ValueError(f"{label}: layer entry {i} has a non-string name {name!r}")
        if name in layers:
            raise ValueError(f"{label}: two layers are named {name!r}")
        layers[name] = layer
        nodes = entry.get("inbound_nodes") or []
        if not isinstance(nodes, list):
            raise ValueError(f"{label}: 'inbound_nodes' of layer {name!r} must be a list")
        order.append((name, layer, nodes))
    produced = {}  # (layer name, node index) -> output tensors
    pending = []
    for name, layer, nodes in order:
        if isinstance(layer, InputLayer):
            produced[(name, 0)] = [layer.tensor]
            continue
        for index, node in enumerate(nodes):
            refs, as_list, kwargs = _node_inputs(node, f"{label}, layer {name!r}")
            for ref in refs:
                if ref[0] not in layers:
                    raise ValueError(f"{label}: layer {name!r} takes its input from {ref[0]!r}, which is not a layer "
                                     f"of the model")
            pending.append((name, layer, index, refs, as_list, kwargs))
    done = {name: 0 for name in layers}
    while pending:
        remaining = []
        for item in pending:
            name, layer, index, refs, as_list, kwargs = item
            ready = done[name] == index and all((r[0], r[1]) in produced for r in refs)
            if not ready:
                remaining.append(item)
                continue
            tensors = []
            for ref_name, node_index, tensor_index in refs:
                outs = produced[(ref_name, node_index)]
                if tensor_index >= len(outs):
                    raise ValueError(f"{label}: layer {name!r} takes output {tensor_index} of {ref_name!r}, which "
                                     f"has {len(outs)} output(s)")
                tensors.append(outs[tensor_index])
            call_kwargs = {k: v for k, v in kwargs.items() if k not in ("mask",) and v is not None}
            try:
                out = layer(tensors if as_list else tensors[0], **call_kwargs)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{label}: calling layer {name!r} on its inputs failed: {err}") from None
            produced[(name, index)] = list(out) if isinstance(out, (list, tuple)) else [out]
            done[name] += 1
        if len(remaining) == len(pending):
            stuck = ", ".join(f"{p[0]!r} (node {p[2]})" for p in remaining[:5])
            raise ValueError(f"{label}: the graph cannot be rebuilt: {stuck} wait(s) for inputs that no layer "
                             f"produces")
        pending = remaining

    def tensors_of(refs, what):
        if refs is None:
            raise ValueError(f"{label}: a functional config needs '{what}'")
        single = isinstance(refs, (list, tuple)) and refs and isinstance(refs[0], str)
        items = [refs] if single else refs
        if not isinstance(items, list) or not items:
            raise ValueError(f"{label}: '{what}' must list [layer_name, node_index, tensor_index] references")
        out = []
        for ref in items:
            ref_name, node_index, tensor_index, _ = _parse_ref(ref, label)
            outs = produced.get((ref_name, node_index))
            if outs is None or tensor_index >= len(outs):
                raise ValueError(f"{label}: '{what}' names {ref!r}, which the graph does not produce")
            out.append(outs[tensor_index])
        return out[0] if single else out

    inputs = tensors_of(inner.get("input_layers"), "input_layers")
    outputs = tensors_of(inner.get("output_layers"), "output_layers")
    try:
        model = cls(inputs=inputs, outputs=outputs, name=inner.get("name"))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{label}: cannot build the model: {err}") from None
    if inner.get("trainable") is False:
        model.trainable = False
    return model


def sequential_from_config(config: dict, custom_objects: dict | None = None, cls=None):
    """A Sequential (or ``cls``, a subclass) from :func:`sequential_config`'s dict (for ``Sequential.from_config``)."""
    from ..models import Sequential

    with custom_object_scope(custom_objects):
        return _sequential_from_config(cls or Sequential, dict(config), custom_objects, "Sequential.from_config")


def functional_from_config(config: dict, custom_objects: dict | None = None, cls=None):
    """A functional model (or ``cls``, a subclass) from :func:`functional_config`'s dict (for ``Model.from_config``)."""
    from ..models import Model

    with custom_object_scope(custom_objects):
        return _functional_from_config(cls or Model, dict(config), custom_objects, "Model.from_config")


# -------------------------------------------------------------------------------- JSON
def _json_default(obj):
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # NumPy scalars and small arrays
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"a config holds {obj!r} (type {type(obj).__name__}), which cannot be written as JSON; "
                    f"get_config() must return plain values (numbers, strings, lists, dicts)")


def to_json(obj, **kwargs) -> str:
    """JSON text for a config (tuples become lists; NumPy numbers become Python numbers)."""
    return json.dumps(obj, default=_json_default, **kwargs)


def _check_json(obj, what: str) -> None:
    try:
        to_json(obj)
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot save {what}: {err}") from None


def parse_json(text, what: str = "config"):
    """Parse JSON text from a file with size and nesting limits (a clear ValueError otherwise)."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_CONFIG_CHARS * 4:
            raise ValueError(f"{what}: {len(text)} bytes of JSON is more than the limit ({MAX_CONFIG_CHARS})")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{what}: not UTF-8 text ({err})") from None
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected JSON text, got {type(text).__name__}")
    if len(text) > MAX_CONFIG_CHARS:
        raise ValueError(f"{what}: {len(text)} characters of JSON is more than the limit ({MAX_CONFIG_CHARS})")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{what}: the JSON is nested too deeply") from None
    except ValueError as err:
        raise ValueError(f"{what}: not valid JSON ({err})") from None


def model_config(model) -> dict:
    """``{'class_name', 'config'}`` of a model (what ``model_to_json`` writes, without the versions)."""
    return serialize_layer(model)


def model_to_json(model, **kwargs) -> str:
    """The model's architecture as JSON (Keras's ``model.to_json()``): class name, config, versions."""
    from .. import __version__
    from .. import backend as B

    entry = serialize_layer(model)
    entry["shenjing_version"] = __version__
    entry["backend"] = B.backend()
    return to_json(entry, **kwargs)


def model_from_config(config, custom_objects: dict | None = None):
    """Rebuild a model (or a layer) from a ``{'class_name', 'config'}`` dict."""
    return deserialize_layer(config, custom_objects=custom_objects)


def model_from_json(json_string, custom_objects: dict | None = None):
    """Rebuild a model from :func:`model_to_json`'s text (weights freshly initialised)."""
    from ..models import Model

    config = parse_json(json_string, "model_from_json")
    model = deserialize_layer(config, custom_objects=custom_objects)
    if not isinstance(model, Model):
        raise ValueError(f"model_from_json: the JSON describes a {type(model).__name__} layer, not a model")
    return model


# ---------------------------------------------------------------------- compile config
def _serialize_spec(value, serialize, what: str):
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_serialize_spec(v, serialize, what) for v in value]
    if isinstance(value, dict):
        return {str(k): _serialize_spec(v, serialize, what) for k, v in value.items()}
    try:
        return serialize(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot save the compiled {what}: {err}") from None


_METRICS_BY_LOSS = {"accuracy", "acc", "crossentropy", "ce"}


def _deserialize_spec(value, deserialize, custom_objects, what: str):
    """Rebuild a loss / metrics spec. Names stay names (``compile`` resolves them, e.g. 'accuracy' by the
    loss) once checked to resolve; registered or custom objects are put in their place."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        obj = get_registered_object(value, custom_objects)
        if obj is not None:
            return obj
        if value.lower() not in _METRICS_BY_LOSS:
            try:
                deserialize(value, custom_objects=custom_objects)
            except (TypeError, ValueError) as err:
                raise ValueError(f"compile config: cannot rebuild the {what} {value!r}: {err}. A custom function "
                                 f"is saved by name: pass custom_objects={{{value!r}: the_function}}") from None
        return value
    if isinstance(value, list):
        return [_deserialize_spec(v, deserialize, custom_objects, what) for v in value]
    if isinstance(value, dict):
        if "class_name" in value:
            try:
                return deserialize(value, custom_objects=custom_objects)
            except (TypeError, ValueError) as err:
                raise ValueError(f"compile config: cannot rebuild the {what} {value.get('class_name')!r}: "
                                 f"{err}") from None
        return {k: _deserialize_spec(v, deserialize, custom_objects, what) for k, v in value.items()}
    raise ValueError(f"compile config: unexpected {what} {value!r}")


def compile_config(model) -> dict | None:
    """What ``compile`` was given, as JSON-able values (None for a model that is not compiled)."""
    from .. import losses, metrics, optimizers

    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        return None
    return {
        "optimizer": optimizers.serialize(model.optimizer),
        "loss": _serialize_spec(getattr(model, "_loss_spec", None), losses.serialize, "loss"),
        "metrics": _serialize_spec(getattr(model, "_metrics_spec", None), metrics.serialize, "metrics"),
        "loss_weights": _serialize_spec(getattr(model, "_loss_weights_spec", None), float, "loss_weights"),
        "weighted_metrics": _serialize_spec(getattr(model, "_weighted_metrics_spec", None), metrics.serialize,
                                            "weighted_metrics"),
    }


def compile_from_config(model, config: dict, custom_objects: dict | None = None) -> None:
    """``model.compile(...)`` with what :func:`compile_config` saved."""
    from .. import losses, metrics, optimizers

    if not isinstance(config, dict) or not isinstance(config.get("optimizer"), (dict, str)):
        raise ValueError(f"compile config: expected a dict with an 'optimizer', got {str(config)[:200]}")
    with custom_object_scope(custom_objects):
        try:
            optimizer = optimizers.get(config["optimizer"], custom_objects=custom_objects)
        except (TypeError, ValueError) as err:
            raise ValueError(f"compile config: cannot rebuild the optimizer: {err}") from None
        loss = _deserialize_spec(config.get("loss"), losses.deserialize, custom_objects, "loss")
        metric_spec = _deserialize_spec(config.get("metrics"), metrics.deserialize, custom_objects, "metric")
        weighted = _deserialize_spec(config.get("weighted_metrics"), metrics.deserialize, custom_objects,
                                     "metric")
        loss_weights = config.get("loss_weights")
        model.compile(optimizer=optimizer, loss=loss, metrics=metric_spec, loss_weights=loss_weights,
                      weighted_metrics=weighted)


__all__ = [
    "register_keras_serializable", "get_registered_name", "get_registered_object", "custom_object_scope",
    "serialize_layer", "deserialize_layer", "model_config", "model_from_config", "model_to_json", "model_from_json",
    "compile_config", "compile_from_config", "layer_class_names", "parse_json", "to_json", "sequential_config",
    "functional_config", "sequential_from_config", "functional_from_config",
]
