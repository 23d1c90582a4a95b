"""Checking a whole model's back-propagation against finite differences."""

from __future__ import annotations

import numpy as np

from .. import backend as B
from ..autodiff import no_grad
from ..autodiff.gradcheck import relative_error


def gradient_check(model, x, y, eps: float = 1e-6, sample_weight=None, max_checks_per_weight: int | None = None):
    """Compare the analytic gradient of the compiled loss with central differences, weight by weight.

    ``model`` must be compiled (its loss, loss weights and regularizers are
    used) and should be float64 (``backend.set_floatx('float64')`` before
    building it) for a meaningful check. Dropout and other training-only noise
    must be absent or seeded identically, since the loss is re-evaluated in
    training mode. Returns ``{weight name: max relative error}``.
    ``max_checks_per_weight`` limits the perturbed entries of large weights.
    """
    xs, ys, sw, _ = model._prepare("gradient_check", x, y, sample_weight)
    model._ensure_ready("gradient_check", xs, ys)
    variables = model.trainable_weights
    for v in variables:
        v.grad = None
    total, _ = model._total_loss(ys, model._forward(xs, training=True), sw)
    total.backward()
    analytic = [v.grad if v.grad is not None else B.xp.zeros_like(v.data) for v in variables]
    for v in variables:
        v.grad = None

    def loss_value() -> float:
        with no_grad():
            value, _ = model._total_loss(ys, model._forward(xs, training=True), sw)
        return float(value.data)

    report = {}
    for var, grad in zip(variables, analytic):
        data, size = var.data, var.data.size
        count = size if max_checks_per_weight is None else min(size, max_checks_per_weight)
        picks = range(size) if count == size else B.rng().choice(size, count, replace=False)
        numeric = B.xp.zeros(count, dtype=var.dtype)
        for k, i in enumerate(picks):
            at = tuple(int(j) for j in np.unravel_index(int(i), data.shape))  # any memory layout, in place
            original = data[at].copy()
            data[at] = original + eps
            plus = loss_value()
            data[at] = original - eps
            minus = loss_value()
            data[at] = original
            numeric[k] = (plus - minus) / (2 * eps)
        chosen = grad.reshape(-1)[B.xp.asarray(list(picks))]
        report[var.name] = relative_error(chosen, numeric)
    return report
