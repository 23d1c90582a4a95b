"""shenjing.plotting: every picture renders to a PNG of a plausible size; the numbers behind them are right."""

import struct

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from shenjing import layers  # noqa: E402
from shenjing import plotting as P  # noqa: E402
from shenjing.models import Model, Sequential  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) from the PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG, "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24]), len(data)


def check_png(path, min_side=150, min_bytes=3000):
    (width, height), size = png_size(path)
    assert width >= min_side and height >= min_side and size >= min_bytes, (width, height, size)
    return width, height


@pytest.fixture(scope="module")
def conv_model():
    model = Sequential([layers.Conv2D(6, 3, activation="relu", input_shape=(12, 12, 1), name="conv"),
                        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    return model


def test_plot_history(tmp_path, conv_model):
    rng = np.random.default_rng(0)
    x = rng.random((40, 12, 12, 1)).astype("float32")
    y = np.eye(3)[rng.integers(0, 3, 40)]
    history = conv_model.fit(x, y, epochs=3, batch_size=20, validation_split=0.25, verbose=0)
    fig = P.plot_history(history, tmp_path / "history.png")
    width, height = check_png(tmp_path / "history.png")
    assert width > height  # two panels side by side
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["loss", "accuracy"]
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["training", "validation"]
    np.testing.assert_allclose(lines[0].get_ydata(), history.history["loss"])
    np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3])
    # a plain dict, training values only, and no path: nothing saved, a Figure returned
    fig = P.plot_history({"loss": [3.0, 2.0], "mae": [1.0, 0.5]})
    assert [ax.get_title() for ax in fig.axes] == ["loss", "mae"]
    with pytest.raises(ValueError, match="no values"):
        P.plot_history({})
    with pytest.raises(TypeError, match="History"):
        P.plot_history([1, 2])


def test_activation_derivatives_come_from_autodiff(tmp_path):
    x = np.linspace(-4, 4, 9)
    y, dy = P.activation_curve("sigmoid", x)
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(y, s, rtol=1e-6)
    np.testing.assert_allclose(dy, s * (1 - s), rtol=1e-6)
    _, dy = P.activation_curve("tanh", x)
    np.testing.assert_allclose(dy, 1 - np.tanh(x) ** 2, rtol=1e-6)
    _, dy = P.activation_curve("relu", np.array([-1.0, 2.0]))
    np.testing.assert_array_equal(dy, [0.0, 1.0])
    fig = P.plot_activations(tmp_path / "activations.png")
    check_png(tmp_path / "activations.png", min_side=400, min_bytes=20000)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == list(P.DEFAULT_ACTIVATIONS)


def test_confusion_matrix(tmp_path):
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.eye(3)[[0, 1, 1, 1, 2, 0, 2]] * 0.8 + 0.05  # probability rows
    matrix = P.confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    fig = P.plot_confusion_matrix(y_true, y_pred, class_names=["cat", "dog", "eel"], normalize=True,
                                  path=tmp_path / "cm.png")
    check_png(tmp_path / "cm.png")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "0.50" in texts and "0.67" in texts and "1.00" in texts
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "eel"]
    assert "accuracy 0.714" in ax.get_title()
    fig = P.plot_confusion_matrix(y_true, y_true)
    assert [t.get_text() for t in fig.axes[0].texts] == ["2", "0", "0", "0", "2", "0", "0", "0", "3"]
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        P.plot_confusion_matrix(y_true, y_true, class_names=["a", "b"])
    with pytest.raises(ValueError, match="entries"):
        P.plot_confusion_matrix([0, 1], [0])


def test_filters_and_feature_maps(tmp_path, conv_model):
    fig = P.plot_filters(conv_model, tmp_path / "filters.png")
    check_png(tmp_path / "filters.png", min_side=100, min_bytes=2000)
    assert "conv: 6 of 6 filters 3x3" in fig._suptitle.get_text()
    fig = P.plot_filters(conv_model.layers[0])  # the layer itself
    assert sum(ax.get_visible() for ax in fig.axes) == 6

    x = np.random.default_rng(1).random((12, 12, 1)).astype("float32")
    fig = P.plot_feature_maps(conv_model, x, path=tmp_path / "maps.png")
    check_png(tmp_path / "maps.png", min_side=100, min_bytes=2000)
    assert "conv (Conv2D): 6 of 6 feature maps 10x10" in fig._suptitle.get_text()
    images = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_visible()]
    expected = np.maximum(0, conv_model.layers[0](x[None]).data[0])
    np.testing.assert_allclose(images[2], expected[:, :, 2], rtol=1e-5, atol=1e-6)
    fig = P.plot_feature_maps(conv_model, x[None], layer_name=conv_model.layers[1].name)
    assert "5x5" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="no layer named"):
        P.plot_feature_maps(conv_model, x, layer_name="nope")
    dense = Sequential([layers.Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match="no built 2-D convolution"):
        P.plot_filters(dense)


def test_plot_model_sequential_and_functional(tmp_path, conv_model):
    fig = P.plot_model(conv_model, tmp_path / "model.png")
    width, height = check_png(tmp_path / "model.png")
    assert height > 2 * width  # five boxes in one column
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 5 and texts[0].startswith("input_layer")
    assert "conv (Conv2D)\nin: (None, 12, 12, 1)\nout: (None, 10, 10, 6)" in texts

    inputs = layers.Input(shape=(8,))
    left = layers.Dense(16, activation="relu", name="left")(inputs)
    right = layers.Dense(16, activation="tanh", name="right")(inputs)
    merged = layers.Concatenate(name="merge")([left, right])
    model = Model(inputs, layers.Dense(2, name="out")(merged))
    graph_layers, edges = P.model_graph(model)
    names = [layer.name for layer in graph_layers]
    assert len(edges) == 5 and (names.index("left"), names.index("merge")) in edges
    assert P._levels(len(graph_layers), edges)[names.index("out")] == 3
    fig = P.plot_model(model, tmp_path / "functional.png", show_shapes=False)
    check_png(tmp_path / "functional.png")
    assert "merge (Concatenate)" in [t.get_text() for t in fig.axes[0].texts]
    assert len(fig.axes[0].patches) == 5 + 5  # boxes and arrows


def test_require_matplotlib_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install shenjing\[plot\]"):
        P.require_matplotlib()


def test_figures_display_in_a_jupyter_kernel(monkeypatch):
    IPython = pytest.importorskip("IPython")
    from IPython.core.formatters import PNGFormatter
    from matplotlib.figure import Figure

    from shenjing.utils import notebook

    class Shell:  # what get_ipython() returns inside a kernel: a shell with a kernel and display formatters
        kernel = object()

        def __init__(self):
            self.display_formatter = type("Formatters", (), {"formatters": {"image/png": PNGFormatter()}})()

    assert not notebook.in_notebook() and not notebook.enable_figure_display()  # pytest is no notebook
    shell = Shell()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    assert notebook.in_notebook()
    fig = P.plot_confusion_matrix([0, 1, 1], [0, 1, 0])  # registers the formatter
    png = shell.display_formatter.formatters["image/png"](fig)
    assert isinstance(png, bytes) and png[:8] == PNG
    assert notebook.enable_figure_display()  # registering twice is harmless
    assert shell.display_formatter.formatters["image/png"].lookup_by_type(Figure) is not None
