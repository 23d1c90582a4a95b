"""Pictures of training and of models, drawn with matplotlib (the optional extra ``plot``:
``pip install shenjing[plot]``).

    from shenjing.plotting import plot_history, plot_model
    history = model.fit(x, y, validation_split=0.1, epochs=10)
    plot_history(history, "history.png")     # loss and every metric, training vs validation
    plot_model(model, "model.png")           # the layer graph with its shapes (no graphviz needed)

Every function returns a ``matplotlib.figure.Figure`` and, given ``path``, also saves it as a PNG. The
figures are made without ``pyplot``, so no global figure state is kept and no window opens: in a
notebook the returned figure is displayed as the cell's value (see :mod:`shenjing.utils.notebook`); in a
script pass ``path``.

Functions: :func:`plot_history`, :func:`plot_activations`, :func:`plot_confusion_matrix`,
:func:`plot_filters`, :func:`plot_feature_maps`, :func:`plot_model`.
"""

from __future__ import annotations

import math
import os

import numpy

__all__ = ["plot_history", "plot_activations", "plot_confusion_matrix", "plot_filters", "plot_feature_maps",
           "plot_model", "require_matplotlib", "MATPLOTLIB_HINT"]

MATPLOTLIB_HINT = "pip install shenjing[plot]  (or: pip install matplotlib)"


def require_matplotlib():
    """The ``matplotlib`` module, or an ImportError that names the extra to install."""
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as err:
        raise ImportError(f"shenjing.plotting needs matplotlib, which is not installed: {MATPLOTLIB_HINT}") from err
    return matplotlib


def _figure(width: float, height: float):
    require_matplotlib()
    from matplotlib.figure import Figure

    from .utils.notebook import enable_figure_display

    enable_figure_display()  # in Jupyter, a returned Figure shows as the cell's image
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _finish(fig, path):
    if path is not None:
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fig.savefig(path, format="png")
    return fig


def _host(array):
    """A NumPy array from a NumPy/CuPy array, a Tensor/Variable or a list."""
    from . import backend as B
    from .autodiff import Tensor

    if isinstance(array, Tensor):
        array = array.data
    if not isinstance(array, (numpy.ndarray, list, tuple, int, float)):
        array = B.to_host(array)  # a CuPy array
    return numpy.asarray(array)


# ------------------------------------------------------------------------------------------ history
def _history_dict(history) -> tuple:
    """(dict of name -> values, epoch numbers) from a History, a model (its ``.history``) or a dict."""
    epochs = None
    if hasattr(history, "history") and not isinstance(history, dict):
        epochs = getattr(history, "epoch", None)
        history = history.history
        if hasattr(history, "history") and not isinstance(history, dict):  # a model: model.history.history
            epochs = getattr(history, "epoch", None)
            history = history.history
    if not isinstance(history, dict):
        raise TypeError(f"plot_history: expected a History (what fit() returns), a model or a dict of lists, got "
                        f"{type(history).__name__}")
    values = {}
    for name, series in history.items():
        try:
            values[str(name)] = [float(_host(v)) for v in series]
        except (TypeError, ValueError):
            continue  # e.g. a non-numeric entry
    if not values:
        raise ValueError("plot_history: the history holds no values (was fit() run for at least one epoch?)")
    return values, epochs


def plot_history(history, path=None, metrics=None):
    """Loss and every metric per epoch, training against validation (one panel per quantity).

    Args:
        history: what ``fit`` returns (a ``History``), a model that was fitted, or a dict ``{'loss': [...],
            'val_loss': [...], ...}``.
        path: save the figure there as a PNG.
        metrics: the names to draw (default: every one in the history, validation entries paired with theirs).
    Returns:
        the ``matplotlib.figure.Figure``.
    """
    require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    values, epochs = _history_dict(history)
    names = [n for n in values if not n.startswith("val_")]
    names += [n[4:] for n in values if n.startswith("val_") and n[4:] not in values]
    if metrics is not None:
        unknown = [m for m in metrics if m not in names]
        if unknown:
            raise ValueError(f"plot_history: {unknown} are not in the history; it holds {sorted(values)}")
        names = list(metrics)
    names = sorted(names, key=lambda n: (n != "loss", n in ("lr", "learning_rate")))
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    fig = _figure(4.2 * columns, 3.2 * rows)
    axes = fig.subplots(rows, columns, squeeze=False)
    for index, name in enumerate(names):
        ax = axes[index // columns][index % columns]
        for key, label, style in ((name, "training", "-o"), ("val_" + name, "validation", "-s")):
            series = values.get(key)
            if not series:
                continue
            xs = [e + 1 for e in epochs] if epochs is not None and len(epochs) == len(series) else \
                list(range(1, len(series) + 1))
            ax.plot(xs, series, style, markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if name in ("lr", "learning_rate"):
            ax.set_yscale("log")
        ax.legend(fontsize="small")
    for index in range(len(names), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    fig.suptitle("training history")
    return _finish(fig, path)


# -------------------------------------------------------------------------------------- activations
DEFAULT_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "softplus", "softsign",
                       "hard_sigmoid", "silu", "gelu", "relu6")


def activation_curve(name, x):
    """``(f(x), f'(x))`` for the activation ``name`` (a name or a callable), the derivative computed by
    shenjing's reverse-mode autodiff (the backward pass of the activation's ops)."""
    from . import activations
    from .autodiff import Tensor

    fn = activations.get(name)
    x = Tensor(numpy.asarray(x, dtype="float64"), requires_grad=True)
    y = fn(x)
    y.sum().backward()  # elementwise: d(sum f(x_i))/dx_i = f'(x_i)
    grad = x.grad if x.grad is not None else numpy.zeros(x.shape)
    return _host(y.data).astype("float64"), _host(grad).astype("float64")


def plot_activations(path=None, names=DEFAULT_ACTIVATIONS, x_range=(-7.0, 7.0), points=401):
    """The activation functions (solid) and their derivatives (dashed), one panel each; the derivatives
    come from shenjing's autodiff, not from formulas.

    Returns the Figure (saved as a PNG at ``path`` if given)."""
    from . import backend as B

    names = list(names)
    if not names:
        raise ValueError("plot_activations: give at least one activation name")
    x = numpy.linspace(float(x_range[0]), float(x_range[1]), int(points))
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    fig = _figure(3.2 * columns, 2.6 * rows)
    axes = fig.subplots(rows, columns, squeeze=False)
    previous = B.floatx()
    B.set_floatx("float64")
    try:
        curves = [activation_curve(name, x) for name in names]
    finally:
        B.set_floatx(previous)
    for index, (name, (y, dy)) in enumerate(zip(names, curves)):
        ax = axes[index // columns][index % columns]
        ax.axhline(0, color="0.7", linewidth=0.6)
        ax.axvline(0, color="0.7", linewidth=0.6)
        ax.plot(x, y, label="f(x)", color="tab:blue")
        ax.plot(x, dy, "--", label="f'(x)", color="tab:orange")
        ax.set_title(name if isinstance(name, str) else getattr(name, "__name__", "activation"))
        ax.grid(True, alpha=0.25)
        if index == 0:
            ax.legend(fontsize="small", loc="upper left")
    for index in range(len(names), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    fig.suptitle("activation functions and their derivatives (autodiff)")
    return _finish(fig, path)


# --------------------------------------------------------------------------------- confusion matrix
def _labels(y, what: str) -> numpy.ndarray:
    y = _host(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)  # one-hot or probabilities
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
        if y.dtype.kind == "f" and ((y > 0) & (y < 1)).any():
            return (y >= 0.5).astype("int64")  # sigmoid outputs
    if y.ndim != 1:
        raise ValueError(f"plot_confusion_matrix: {what} must be labels (N,), one-hot or probabilities (N, C); "
                         f"got shape {y.shape}")
    if y.dtype.kind == "f" and not numpy.all(numpy.equal(numpy.mod(y, 1), 0)):
        raise ValueError(f"plot_confusion_matrix: {what} holds non-integer values; give class labels")
    return y.astype("int64")


def confusion_matrix(y_true, y_pred, num_classes=None) -> numpy.ndarray:
    """Counts ``matrix[true, predicted]`` (labels, one-hot rows or probability rows)."""
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"plot_confusion_matrix: y_true has {len(t)} entries but y_pred has {len(p)}")
    if len(t) and (t.min() < 0 or p.min() < 0):
        raise ValueError("plot_confusion_matrix: class labels must be >= 0")
    seen = max(int(t.max(initial=0)), int(p.max(initial=0))) + 1
    if num_classes is not None and seen > num_classes:
        raise ValueError(f"plot_confusion_matrix: {num_classes} class names for {seen} classes (the labels go up to "
                         f"{seen - 1})")
    n = int(num_classes or seen)
    matrix = numpy.zeros((n, n), dtype="int64")
    numpy.add.at(matrix, (t, p), 1)
    return matrix


def plot_confusion_matrix(y_true, y_pred, class_names=None, normalize=False, path=None, title=None):
    """The confusion matrix (rows: true class, columns: predicted class), each cell annotated.

    ``y_true`` / ``y_pred``: class labels, one-hot rows or probability rows (``model.predict`` output).
    ``normalize=True`` divides each row by its total (the fraction of each true class)."""
    num_classes = len(class_names) if class_names is not None else None
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    n = matrix.shape[0]
    if class_names is None:
        class_names = [str(i) for i in range(n)]
    elif matrix.shape[0] != len(class_names):
        raise ValueError(f"plot_confusion_matrix: {len(class_names)} class names for {n} classes")
    shown = matrix.astype("float64")
    if normalize:
        totals = shown.sum(axis=1, keepdims=True)
        shown = numpy.divide(shown, totals, out=numpy.zeros_like(shown), where=totals > 0)
    size = max(4.0, 0.55 * n + 2.5)
    fig = _figure(size + 1.0, size)
    ax = fig.subplots()
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(1.0, shown.max()))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels([str(c) for c in class_names], rotation=45 if n > 5 else 0, ha="right" if n > 5 else "center")
    ax.set_yticklabels([str(c) for c in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = (1 if normalize else max(1.0, shown.max())) / 2
    if n <= 30:
        for i in range(n):
            for j in range(n):
                text = f"{shown[i, j]:.2f}" if normalize else str(matrix[i, j])
                ax.text(j, i, text, ha="center", va="center", fontsize=8 if n > 12 else 10,
                        color="white" if shown[i, j] > threshold else "black")
    accuracy = numpy.trace(matrix) / max(1, matrix.sum())
    ax.set_title(title or f"confusion matrix (accuracy {accuracy:.3f})")
    return _finish(fig, path)


# -------------------------------------------------------------------------------------------- filters
def _is_conv(layer) -> bool:
    kernel = getattr(layer, "kernel", None)
    return kernel is not None and len(getattr(kernel, "shape", ())) == 4


def _model_layers(model) -> list:
    """A model's layers with nested models flattened."""
    out = []
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers") and hasattr(layer, "_is_graph"):
            out.extend(_model_layers(layer))
        else:
            out.append(layer)
    return out


def _image_grid(count: int, cell_inches: float):
    """A figure with ``count`` tick-less image cells, up to 8 a row; returns (figure, the used axes)."""
    columns = min(8, count)
    rows = math.ceil(count / columns)
    fig = _figure(cell_inches * columns + 0.4, cell_inches * rows + 0.6)
    axes = [ax for row in fig.subplots(rows, columns, squeeze=False) for ax in row]
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def plot_filters(model_or_layer, path=None, max_filters=64, channel=None):
    """The first convolutional layer's filters as small images (one per output filter).

    ``model_or_layer``: a model (its first 2-D convolution is used) or a convolution layer. Filters with
    three input channels are drawn in colour; otherwise input channel ``channel`` (default: the mean over
    the input channels when there are several). Each filter is scaled to its own range."""
    layer = model_or_layer
    if not _is_conv(layer):
        layer = next((candidate for candidate in _model_layers(model_or_layer) if _is_conv(candidate)), None)
        if layer is None:
            raise ValueError(f"plot_filters: {getattr(model_or_layer, 'name', model_or_layer)!r} has no built 2-D "
                             f"convolution layer (a layer with a 4-D kernel)")
    kernel = _host(layer.kernel)  # (kh, kw, in_channels, filters) for every data format
    kh, kw, channels, filters = kernel.shape
    count = min(int(max_filters), filters)
    colour = channels == 3 and channel is None
    fig, cells = _image_grid(count, 1.3)
    for index, ax in enumerate(cells):
        w = kernel[:, :, :, index]
        if colour:
            image = (w - w.min()) / (w.max() - w.min() + 1e-12)
            ax.imshow(image, interpolation="nearest")
        else:
            image = w[:, :, int(channel)] if channel is not None else w.mean(axis=2)
            ax.imshow(image, cmap="gray", interpolation="nearest")
        ax.set_title(str(index), fontsize=7)
    fig.suptitle(f"{layer.name}: {count} of {filters} filters {kh}x{kw}"
                 + ("" if colour or channels == 1 else
                    f" (input channel {channel})" if channel is not None else f" (mean of {channels} channels)"))
    return _finish(fig, path)


# --------------------------------------------------------------------------------------- feature maps
def _intermediate(model, x, layer):
    """The output of ``layer`` (inside ``model``) for the batch ``x``, as a host array."""
    from .autodiff import no_grad

    with no_grad():
        if getattr(model, "_is_graph", False):
            from .models import Model

            probe = Model(model.inputs, layer.output)
            return _host(probe(x, training=False))
        out = x
        for candidate in model.layers:
            out = candidate(out, training=False)
            if candidate is layer:
                return _host(out)
    raise ValueError(f"plot_feature_maps: layer {layer.name!r} is not one of the model's layers")


def plot_feature_maps(model, x, layer_name=None, path=None, max_maps=32):
    """The feature maps (channels) that one layer computes for one input image.

    Args:
        model: a built model (Sequential or functional).
        x: one sample of the model's input shape (a batch axis is added) or a batch (its first sample is used).
        layer_name: the layer to look at; default: the first layer whose output has two spatial axes.
        max_maps: draw at most this many channels.
    """
    from . import backend as B

    input_shapes = model._input_shapes() if hasattr(model, "_input_shapes") else None
    x = _host(x)
    if input_shapes and len(input_shapes) == 1 and x.ndim == len(input_shapes[0]) - 1:
        x = x[None]
    x = x[:1].astype(B.floatx()) if x.dtype.kind in "fiu" else x[:1]
    layers = list(model.layers)
    if layer_name is None:
        layer = None
        for candidate in layers:
            shape = _safe_shape(candidate, "output_shape")
            if isinstance(shape, tuple) and len(shape) == 4:
                layer = candidate
                break
        if layer is None:
            raise ValueError(f"plot_feature_maps: model {model.name!r} has no layer with a 2-D (image) output; "
                             f"give layer_name=")
    else:
        layer = next((candidate for candidate in layers if candidate.name == layer_name), None)
        if layer is None:
            raise ValueError(f"plot_feature_maps: no layer named {layer_name!r}; the layers are "
                             f"{[candidate.name for candidate in layers]}")
    maps = _intermediate(model, x, layer)[0]
    if maps.ndim != 3:
        raise ValueError(f"plot_feature_maps: layer {layer.name!r} outputs shape {maps.shape} per sample, not "
                         f"an image with channels (H, W, C)")
    if getattr(layer, "data_format", None) == "channels_first":
        maps = maps.transpose(1, 2, 0)
    channels = maps.shape[-1]
    count = min(int(max_maps), channels)
    fig, cells = _image_grid(count, 1.5)
    for index, ax in enumerate(cells):
        ax.imshow(maps[:, :, index], cmap="viridis", interpolation="nearest")
        ax.set_title(str(index), fontsize=7)
    fig.suptitle(f"{layer.name} ({type(layer).__name__}): {count} of {channels} feature maps "
                 f"{maps.shape[0]}x{maps.shape[1]}")
    return _finish(fig, path)


# ----------------------------------------------------------------------------------------- the graph
def _safe_shape(layer, attribute):
    try:
        return getattr(layer, attribute)
    except (AttributeError, ValueError, IndexError):
        return None


def _shape_text(shape) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, str):
        return shape
    if isinstance(shape, list):
        return ", ".join(_shape_text(s) for s in shape)
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def model_graph(model) -> tuple:
    """``(layers, edges)``: the layers to draw (input layers included) and ``(from, to)`` index pairs."""
    from .layers.core import InputLayer

    if getattr(model, "_is_graph", False) and getattr(model, "_nodes", None):
        layers, index = [], {}
        for node in model._nodes:
            if id(node.layer) not in index:
                index[id(node.layer)] = len(layers)
                layers.append(node.layer)
        edges = []
        for node in model._nodes:
            for tensor in node.inputs:
                pair = (index[id(tensor.node.layer)], index[id(node.layer)])
                if pair not in edges:
                    edges.append(pair)
        return layers, edges
    layers = list(model.layers)
    inputs = getattr(model, "inputs", None) or []
    first = inputs[0].node.layer if inputs and getattr(inputs[0], "node", None) is not None else None
    if isinstance(first, InputLayer) and (not layers or layers[0] is not first):
        layers = [first] + layers
    return layers, [(i, i + 1) for i in range(len(layers) - 1)]


def _levels(count: int, edges: list) -> list:
    """Each node's row: the longest path from a source (edges go from earlier to later nodes)."""
    level = [0] * count
    for source, target in sorted(edges, key=lambda e: e[1]):
        level[target] = max(level[target], level[source] + 1)
    changed = True
    while changed:  # edges are in topological order already, but stay safe for any order
        changed = False
        for source, target in edges:
            if level[target] < level[source] + 1:
                level[target] = level[source] + 1
                changed = True
    return level


def plot_model(model, path=None, show_shapes=True, show_layer_names=True, show_params=False, dpi=100):
    """The model's layer graph as boxes and arrows (drawn with matplotlib; graphviz is not needed).

    Each box shows the layer's name and class and, with ``show_shapes``, its input and output shapes;
    ``show_params`` adds the parameter count. Returns the Figure (saved as a PNG at ``path`` if given)."""
    require_matplotlib()
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    layers, edges = model_graph(model)
    if not layers:
        raise ValueError(f"plot_model: model {getattr(model, 'name', '?')!r} has no layers")
    level = _levels(len(layers), edges)
    rows = max(level) + 1
    by_row = [[i for i in range(len(layers)) if level[i] == r] for r in range(rows)]
    columns = max(len(r) for r in by_row)

    texts = []
    for layer in layers:
        title = f"{layer.name} ({type(layer).__name__})" if show_layer_names else type(layer).__name__
        lines = [title]
        if show_shapes:
            from .layers.core import InputLayer

            out_shape = _safe_shape(layer, "output_shape")
            if isinstance(layer, InputLayer):
                lines.append(f"shape: {_shape_text(out_shape)}")
            else:
                lines.append(f"in: {_shape_text(_safe_shape(layer, 'input_shape'))}")
                lines.append(f"out: {_shape_text(out_shape)}")
        if show_params:
            lines.append(f"params: {sum(int(w.size) for w in layer.weights):,}")
        texts.append("\n".join(lines))

    box_w = max(2.6, 0.075 * max(len(line) for t in texts for line in t.split("\n")) + 0.4)
    line_h = 0.22
    box_h = line_h * max(t.count("\n") + 1 for t in texts) + 0.25
    gap_x, gap_y = 0.5, 0.45
    width = columns * box_w + (columns - 1) * gap_x + 0.4
    height = rows * box_h + (rows - 1) * gap_y + 0.4
    fig = _figure(width, height)
    fig.set_dpi(dpi)
    fig.set_layout_engine(None)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")

    centres = {}
    for r, members in enumerate(by_row):
        row_width = len(members) * box_w + (len(members) - 1) * gap_x
        x0 = (width - row_width) / 2
        y_top = height - 0.2 - r * (box_h + gap_y)
        for k, i in enumerate(members):
            x = x0 + k * (box_w + gap_x)
            centres[i] = (x + box_w / 2, y_top - box_h / 2)
            colour = "#e8f0fe" if type(layers[i]).__name__ != "InputLayer" else "#fdf2d0"
            ax.add_patch(FancyBboxPatch((x, y_top - box_h), box_w, box_h, boxstyle="round,pad=0,rounding_size=0.08",
                                        facecolor=colour, edgecolor="#35528c", linewidth=1.2))
            ax.text(x + box_w / 2, y_top - box_h / 2, texts[i], ha="center", va="center", fontsize=9,
                    family="monospace")
    for source, target in edges:
        (x1, y1), (x2, y2) = centres[source], centres[target]
        ax.add_patch(FancyArrowPatch((x1, y1 - box_h / 2), (x2, y2 + box_h / 2), arrowstyle="-|>",
                                     mutation_scale=14, color="#35528c", linewidth=1.2, shrinkA=1, shrinkB=1))
    return _finish(fig, path)
