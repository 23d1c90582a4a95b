"""Where the examples find MNIST: ``../shared/datasets/mnist`` beside the repository when present
(the project's development copy), else the shenjing cache / download (``mnist.load_data()``)."""

import os

_SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "datasets", "mnist")
MNIST_DIR = os.environ.get("MNIST_DIR") or (_SHARED if os.path.isdir(_SHARED) else None)
