"""``model.summary()``: Keras's table of layers, output shapes and parameter counts."""

from __future__ import annotations


def _shape_text(shape) -> str:
    if shape == "multiple" or shape is None:
        return "multiple" if shape == "multiple" else "?"
    if isinstance(shape, list):
        return ", ".join(_shape_text(s) for s in shape) if len(shape) > 1 else _shape_text(shape[0])
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _row(fields, positions, line_length) -> str:
    line = ""
    for i, field in enumerate(fields):
        if i > 0:
            line = line[:-1] + " "
        line += str(field)
        line = line[:positions[i]]
        line += " " * (positions[i] - len(line))
    return line[:line_length]


def _output_shape(layer):
    try:
        return layer.output_shape
    except AttributeError:
        return None


def _param_count(layer) -> int:
    return int(sum(w.size for w in layer.weights))


def _connections(layer, model) -> list:
    """'name[node][tensor]' for each input of each of the layer's nodes inside ``model``."""
    names = []
    nodes = getattr(model, "_nodes", [])
    for node in nodes:
        if node.layer is not layer:
            continue
        for t in node.inputs:
            producer = t.node.layer
            index = producer._inbound_nodes.index(t.node) if t.node in producer._inbound_nodes else 0
            names.append(f"{producer.name}[{index}][{t.index}]")
    return names


def print_summary(model, line_length=None, positions=None, print_fn=None) -> None:
    print_fn = print_fn or print
    layers = model.layers
    sequential_like = not getattr(model, "_is_graph", False) or all(
        len(node.inputs) <= 1 and len(node.outputs) == 1 for node in model._nodes)
    if sequential_like:
        line_length = line_length or 65
        positions = positions or [0.45, 0.85, 1.0]
        headers = [" Layer (type)", "Output Shape", "Param #"]
    else:
        line_length = line_length or 98
        positions = positions or [0.33, 0.55, 0.67, 1.0]
        headers = [" Layer (type)", "Output Shape", "Param #", "Connected to"]
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]
    print_fn(f'Model: "{model.name}"')
    print_fn("_" * line_length)
    print_fn(_row(headers, positions, line_length))
    print_fn("=" * line_length)
    for layer in layers:
        fields = [f" {layer.name} ({type(layer).__name__})", _shape_text(_output_shape(layer)), _param_count(layer)]
        if not sequential_like:
            links = _connections(layer, model)
            fields.append(links[0] if links else "[]")
            print_fn(_row(fields, positions, line_length))
            for link in links[1:]:
                print_fn(_row(["", "", "", link], positions, line_length))
        else:
            print_fn(_row(fields, positions, line_length))
        print_fn(_row([""] * len(headers), positions, line_length))
    trainable = sum(int(w.size) for w in model.trainable_weights)
    total = sum(int(w.size) for w in model.weights)
    print_fn("=" * line_length)
    print_fn(f"Total params: {total:,}")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {total - trainable:,}")
    print_fn("_" * line_length)
