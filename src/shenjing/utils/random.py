"""Reproducibility: one seed for every random source."""

from __future__ import annotations

from .. import backend as B


def set_random_seed(seed: int) -> None:
    """Seed initial weights, shuffling, dropout masks and Python's ``random`` at once:
    the same seed gives the same run, bit for bit, on the CPU."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"set_random_seed: seed must be an integer, got {seed!r}")
    B.set_random_seed(seed)
