"""Data preprocessing (Keras's ``keras.preprocessing``): ``image.ImageDataGenerator`` for real-time image
augmentation and normalisation."""

from . import image
from .image import ImageDataGenerator

__all__ = ["image", "ImageDataGenerator"]
