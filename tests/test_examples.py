"""The seed examples run end to end and reach their published / required numbers."""

import importlib.util
import os

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_xor_example(capsys):
    xor = load("xor")
    model, history, X, y = xor.build_and_train()
    model.summary()
    table = capsys.readouterr().out
    assert model.count_params() == 41
    rows = {line.split()[0]: line.split()[-1] for line in table.splitlines()
            if line.startswith(" dense") or line.startswith(" activation")}
    assert rows == {"dense": "30", "activation": "0", "dense_1": "11", "activation_1": "0"}
    assert "Total params: 41" in table and "Trainable params: 41" in table and "Non-trainable params: 0" in table
    assert history.history["accuracy"][-1] == 1.0
    assert model.predict_classes(X).tolist() == [[0], [1], [1], [0]]
    np.testing.assert_array_equal(model.predict_classes(X), y.astype("int32"))


def test_worked_backprop_example_matches_published_numbers():
    error, new_hidden, new_output = load("backprop_worked_example").worked_example()
    assert abs(error - 0.298371109) < 1e-8
    assert abs(new_output[0, 0] - 0.35891648) < 1e-8  # w5
    assert abs(new_hidden[0, 0] - 0.149780716) < 1e-8  # w1
    # the rest of the published step: w2..w4 and w6..w8
    np.testing.assert_allclose(new_hidden.T.ravel(), [0.149780716, 0.19956143, 0.24975114, 0.29950229], atol=1e-8)
    np.testing.assert_allclose(new_output.T.ravel(), [0.35891648, 0.408666186, 0.511301270, 0.561370121], atol=1e-8)


def test_two_layer_gradient_descent_loss_falls_monotonically():
    losses, prediction = load("two_layer_gradient_descent").train()
    assert len(losses) == 1500
    assert all(b <= a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.1 * losses[0]


def test_perceptron_reaches_zero_errors():
    perceptron = load("perceptron")
    X, y = perceptron.make_data()
    w, b, errors = perceptron.train_perceptron(X, y)
    assert errors[-1] == 0 and len(errors) < 100
    predictions = (X @ w + b >= 0).astype(float)
    assert (predictions == y).all()


@pytest.mark.parametrize("name", ["xor", "backprop_worked_example", "two_layer_gradient_descent", "perceptron"])
def test_examples_run_as_programs(name, capsys):
    import runpy

    runpy.run_path(os.path.join(EXAMPLES, f"{name}.py"), run_name="__main__")
    assert capsys.readouterr().out
