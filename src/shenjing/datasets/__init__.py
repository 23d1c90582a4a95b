"""Data sets with Keras's ``load_data()`` API: ``mnist`` (plus the embedded ``mnist.load_sample()``) and
``fashion_mnist``. Arrays are NumPy ``uint8``, as Keras returns them."""

from . import fashion_mnist, mnist

__all__ = ["mnist", "fashion_mnist"]
