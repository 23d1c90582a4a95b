"""shenjing train / evaluate / predict / summary on tiny configs in temporary folders."""

import json
import os
import sys

import numpy as np
import pytest

from shenjing.cli import main

SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "datasets"))
IRIS = os.path.join(SHARED, "tabular", "iris.csv")
SHAKESPEARE = os.path.join(SHARED, "tinyshakespeare", "input.txt")
IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def blobs_csv(path, n=90, seed=0):
    """Three well-separated classes with string names, a header, and the target in the middle column."""
    rng = np.random.default_rng(seed)
    names = ["alpha", "beta", "gamma"]
    lines = ["x1,label,x2"]
    for i in range(n):
        k = i % 3
        x1, x2 = rng.normal(loc=(3 * k, -3 * k), scale=0.3)
        lines.append(f"{x1:.4f},{names[k]},{x2:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


DENSE_3 = [{"class_name": "Dense", "config": {"units": 8, "activation": "relu", "input_shape": [2]}},
           {"Dense": {"units": 3, "activation": "softmax"}}]


# ----------------------------------------------------------------------------------------------- CSV
def test_train_evaluate_predict_summary_on_a_csv(capsys, tmp_path):
    data = blobs_csv(tmp_path / "blobs.csv")
    config = write_json(tmp_path / "blobs.json", {
        "model": DENSE_3,
        "compile": {"optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.05}},
                    "loss": "categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 15, "batch_size": 16, "validation_split": 0.2},
        "dataset": {"csv": "blobs.csv", "target": "label"}})  # relative to the config's folder
    model_path = tmp_path / "out" / "blobs.keras"
    code, out, err = run(capsys, "train", config, "--output", tmp_path / "out", "--verbose", 0, "--no-plot")
    assert code == 0, err
    assert model_path.is_file() and "saved the model to" in out and "3 classes" in out

    code, out, err = run(capsys, "evaluate", model_path, data)
    assert code == 0, err
    accuracy = float(out.split("accuracy: ")[1].split()[0])
    assert accuracy > 0.9 and "90 samples" in out

    rows = tmp_path / "rows.csv"
    rows.write_text("x2,x1\n-6.1,6.0\n0.1,0.0\n")  # features by name, in another order, no target column
    code, out, err = run(capsys, "predict", model_path, rows, "--top", 2)
    assert code == 0, err
    lines = [line for line in out.splitlines() if line[:2] in ("0:", "1:")]
    assert lines[0].startswith("0: class gamma (probability ") and lines[1].startswith("1: class alpha")
    assert lines[0].count("class ") == 2  # --top 2

    code, out, err = run(capsys, "summary", model_path)
    assert code == 0, err
    assert "Total params: 51" in out and "classes: alpha, beta, gamma" in out and "loss categorical_crossentropy" in out


def test_the_model_may_be_a_sequential_config(capsys, tmp_path):
    from shenjing import layers
    from shenjing.models import Sequential
    from shenjing.saving import load_model, model_to_json

    source = Sequential([layers.Dense(5, activation="tanh", input_shape=(2,)), layers.Dense(3, activation="softmax")],
                        name="from_keras_json")
    blobs_csv(tmp_path / "blobs.csv", n=30)
    config = write_json(tmp_path / "seq.json", {"model": json.loads(model_to_json(source)),
                                                "dataset": {"csv": "blobs.csv", "target": "label"}})
    code, out, err = run(capsys, "train", config, "--output", tmp_path / "seq.h5", "--verbose", 0, "--no-plot")
    assert code == 0, err
    model = load_model(str(tmp_path / "seq.h5"))
    assert model.name == "from_keras_json" and model.count_params() == 33
    assert os.path.isfile(tmp_path / "seq.h5.meta.json")  # an .h5 model keeps its metadata beside it
    code, out, err = run(capsys, "summary", tmp_path / "seq.h5")
    assert code == 0 and "classes: alpha, beta, gamma" in out and "loss categorical_crossentropy" in out, err


@pytest.mark.skipif(not os.path.isfile(IRIS), reason="../shared/datasets is not present")
def test_train_on_iris_from_yaml(capsys, tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "iris.yaml").write_text(f"""
model:
  - Dense: {{units: 16, activation: relu, input_shape: [4]}}
  - Dense: {{units: 3, activation: softmax}}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
fit: {{epochs: 2, batch_size: 16, validation_split: 0.2}}
dataset:
  csv: {IRIS}
  columns: {IRIS_COLUMNS}
  target: species
  normalize: true
  test_split: 0.2
""")
    code, out, err = run(capsys, "train", tmp_path / "iris.yaml", "--output", tmp_path / "iris.keras", "--verbose", 0,
                         "--no-plot")
    assert code == 0, err
    assert "120 training samples of shape (4,), 3 classes; 30 test samples" in out and "test: loss:" in out
    # the headerless CSV is read with the saved columns, classes and normalisation
    code, out, err = run(capsys, "evaluate", tmp_path / "iris.keras", IRIS)
    assert code == 0 and "150 samples" in out, err
    code, out, err = run(capsys, "predict", tmp_path / "iris.keras", IRIS, "--limit", 2)
    assert code == 0, err
    assert "0: class Iris-" in out and "... 148 more" in out


def test_yaml_without_pyyaml_names_the_package(capsys, tmp_path, monkeypatch):
    (tmp_path / "c.yaml").write_text("dataset: mnist_sample\n")
    monkeypatch.setitem(sys.modules, "yaml", None)
    code, out, err = run(capsys, "train", tmp_path / "c.yaml")
    assert code == 1 and "pip install" in err and "pyyaml" in err


# --------------------------------------------------------------------------------------- MNIST sample
@pytest.fixture(scope="module")
def mnist_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist")
    config = folder / "mlp.json"
    config.write_text(json.dumps({
        "model": [{"class_name": "Dense", "config": {"units": 10, "activation": "softmax", "input_shape": [784]}}],
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 1, "batch_size": 128},
        "dataset": "mnist_sample"}))
    assert main(["train", str(config), "--output", str(folder), "--verbose", "0"]) == 0
    return folder / "mlp.keras"


def test_train_on_the_mnist_sample_saves_model_and_curves(capsys, mnist_model):
    assert mnist_model.is_file()
    plot = mnist_model.parent / "mlp_history.png"
    if "matplotlib" in sys.modules or _has("matplotlib"):
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run(capsys, "evaluate", mnist_model, "mnist_sample")
    assert code == 0, err
    assert "2000 samples" in out and float(out.split("accuracy: ")[1].split()[0]) > 0.8


def _has(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_predict_images_arrays_and_npz(capsys, tmp_path, mnist_model):
    from shenjing.datasets import mnist

    (x, y), _ = mnist.load_sample()
    np.save(tmp_path / "one.npy", x[0] / 255)          # one sample (28, 28)
    np.save(tmp_path / "batch.npy", x[:4] / 255)       # a batch (4, 28, 28)
    code, out, err = run(capsys, "predict", mnist_model, tmp_path / "one.npy")
    assert code == 0, err
    assert out.count("class ") == 1 and "probability" in out
    code, out, err = run(capsys, "predict", mnist_model, tmp_path / "batch.npy")
    assert code == 0 and out.count("class ") == 4, err

    np.savez(tmp_path / "test.npz", x=x[:300] / 255, y=y[:300])
    code, out, err = run(capsys, "evaluate", mnist_model, tmp_path / "test.npz")
    assert code == 0 and "300 samples" in out, err

    pil = pytest.importorskip("PIL.Image")
    digit = 255 - x[int(np.flatnonzero(y == 0)[0])]     # dark digit on a light background, as drawn on paper
    pil.fromarray(digit.astype("uint8")).resize((56, 56)).save(tmp_path / "zero.png")
    code, out, err = run(capsys, "predict", mnist_model, tmp_path / "zero.png", "--top", 3)
    assert code == 0, err
    assert "56x56 image resized to 28x28, inverted" in out and out.count("class ") == 3


def test_predict_image_without_pillow_names_the_extra(capsys, tmp_path, mnist_model, monkeypatch):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "PIL", None)
    code, out, err = run(capsys, "predict", mnist_model, tmp_path / "x.png")
    assert code == 1 and "Pillow" in err and "pip install shenjing[image]" in err


@pytest.mark.skipif(not os.path.isfile(SHAKESPEARE), reason="../shared/datasets is not present")
def test_train_a_character_model_on_tinyshakespeare(capsys, tmp_path):
    config = write_json(tmp_path / "chars.json", {
        "model": [{"Embedding": {"input_dim": 70, "output_dim": 8}}, {"SimpleRNN": {"units": 16}},
                  {"Dense": {"units": 70, "activation": "softmax"}}],
        "fit": {"epochs": 1, "batch_size": 64},
        "dataset": {"name": "tinyshakespeare", "path": SHAKESPEARE, "seq_len": 16, "max_chars": 4000}})
    code, out, err = run(capsys, "train", config, "--output", tmp_path, "--verbose", 0, "--no-plot")
    assert code == 0, err
    assert "samples of shape (16,)" in out and "test: loss" in out
    code, out, err = run(capsys, "summary", tmp_path / "chars.keras")
    assert code == 0 and "vocabulary:" in out and "seq_len 16" in out, err
    text = tmp_path / "part.txt"
    with open(SHAKESPEARE, encoding="utf-8") as f:
        text.write_text(f.read(300), encoding="utf-8")
    code, out, err = run(capsys, "evaluate", tmp_path / "chars.keras", text)
    assert code == 0 and "evaluation: loss" in out, err


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("config, message", [
    ({"dataset": "mnist_sample"}, "the config has no model"),
    ({"model": [{"class_name": "Densse", "config": {"units": 3}}], "dataset": "mnist_sample"}, "Did you mean 'Dense'"),
    ({"model": DENSE_3, "dataset": "cifar"}, "unknown data set 'cifar'"),
    ({"model": DENSE_3, "dataset": "mnist_sample"}, "wrong shape"),
    ({"model": DENSE_3, "dataset": "mnist_sample", "fit": {"epochz": 1}}, "fit: unknown key(s) ['epochz']"),
    ({"model": DENSE_3, "dataset": "mnist_sample", "extra": 1}, "unknown key(s) ['extra']"),
    ({"model": DENSE_3, "dataset": "mnist_sample", "compile": {"optimizer": "adamm"}}, "Unknown optimizer"),
    ({"model": DENSE_3, "dataset": {"csv": "nothing.csv", "target": "y"}}, "does not exist"),
    ({"model": DENSE_3}, "the config has no 'dataset'"),
    ({"model": [1, 2], "dataset": "mnist_sample"}, "layer 0: expected"),
])
def test_malformed_configs(capsys, tmp_path, config, message):
    code, out, err = run(capsys, "train", write_json(tmp_path / "bad.json", config), "--verbose", 0)
    assert code == 1 and err.startswith("shenjing train: error: ") and message in err, err


def test_bad_files(capsys, tmp_path, mnist_model):
    (tmp_path / "broken.json").write_text('{"model": [')
    code, _, err = run(capsys, "train", tmp_path / "broken.json")
    assert code == 1 and "not valid JSON" in err
    (tmp_path / "list.json").write_text("[1, 2]")
    code, _, err = run(capsys, "train", tmp_path / "list.json")
    assert code == 1 and "must hold a mapping" in err
    code, _, err = run(capsys, "summary", tmp_path / "missing.keras")
    assert code == 1 and "does not exist" in err
    code, _, err = run(capsys, "summary", tmp_path / "list.json")
    assert code == 1 and "cannot load the model" in err
    code, _, err = run(capsys, "evaluate", mnist_model, "imagenet")
    assert code == 1 and "unknown data set 'imagenet'" in err
    code, _, err = run(capsys, "predict", mnist_model, tmp_path / "list.json")
    assert code == 1 and "cannot tell what" in err
    np.save(tmp_path / "wrong.npy", np.zeros((2, 5)))
    code, _, err = run(capsys, "predict", mnist_model, tmp_path / "wrong.npy")
    assert code == 1 and "wrong shape" in err and "(784,)" in err
    np.savez(tmp_path / "nolabels.npz", images=np.zeros((2, 784)))
    code, _, err = run(capsys, "evaluate", mnist_model, tmp_path / "nolabels.npz")
    assert code == 1 and "must hold arrays 'x' and 'y'" in err
