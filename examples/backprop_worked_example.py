"""The worked back-propagation example (2 inputs, 2 hidden, 2 outputs, logistic units), in float64.

    python examples/backprop_worked_example.py

Inputs (0.05, 0.10), targets (0.01, 0.99); hidden weights w1..w4 = 0.15, 0.20, 0.25, 0.30,
output weights w5..w8 = 0.40, 0.45, 0.50, 0.55, biases b1 = 0.35, b2 = 0.60; squared error
E = Σ ½(target − out)²; one gradient-descent step with learning rate 0.5.
Published: E = 0.298371109 before the step; after it w5 = 0.35891648, w1 = 0.149780716.
The biases are held fixed, as in the published walk-through.
"""

import numpy as np

from shenjing.autodiff import Tensor, nn


def worked_example():
    x = Tensor(np.array([[0.05, 0.10]]))
    target = Tensor(np.array([[0.01, 0.99]]))
    # column j of a weight matrix holds the weights into unit j: w1, w2 feed h1; w3, w4 feed h2
    w_hidden = Tensor(np.array([[0.15, 0.25], [0.20, 0.30]]), requires_grad=True)
    w_output = Tensor(np.array([[0.40, 0.50], [0.45, 0.55]]), requires_grad=True)
    b1, b2 = 0.35, 0.60

    hidden = nn.sigmoid(x @ w_hidden + b1)
    out = nn.sigmoid(hidden @ w_output + b2)
    error = (0.5 * (target - out) ** 2).sum()
    error.backward()

    learning_rate = 0.5
    new_hidden = w_hidden.data - learning_rate * w_hidden.grad
    new_output = w_output.data - learning_rate * w_output.grad
    return float(error.data), new_hidden, new_output


if __name__ == "__main__":
    error, new_hidden, new_output = worked_example()
    print(f"total error before the step: {error:.9f}   (published 0.298371109)")
    print(f"w5 after one step:           {new_output[0, 0]:.8f}    (published 0.35891648)")
    print(f"w1 after one step:           {new_hidden[0, 0]:.9f}   (published 0.149780716)")
    print("new hidden weights w1..w4:", new_hidden.T.ravel())
    print("new output weights w5..w8:", new_output.T.ravel())
