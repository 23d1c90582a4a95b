"""Unique default names for layers and models (``dense``, ``dense_1``, …), as Keras gives them."""

from __future__ import annotations

import re

_counts: dict = {}


def to_snake_case(name: str) -> str:
    """``Conv2DTranspose`` -> ``conv2d_transpose``; ``Dense`` -> ``dense``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    """``base`` the first time, then ``base_1``, ``base_2``, …"""
    count = _counts.get(base, 0)
    _counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def reset_names() -> None:
    """Start the numbering afresh (``backend.clear_session()``)."""
    _counts.clear()
