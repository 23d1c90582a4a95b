"""Optimizers: the Keras 3 update rules on NumPy, and learning-rate schedules.

``Optimizer`` (in :mod:`.base`) does clipping, decoupled weight decay, schedules,
constraints, the moving average of the weights, configs and state; the rules
(:mod:`.rules`) only update ``variable.data`` in place::

    opt = shenjing.optimizers.get("adam")          # or Adam(learning_rate=1e-3, clipnorm=1.0, ...)
    opt.apply_gradients(zip(grads, model.trainable_weights))

Where Keras and torch differ, and which one shenjing follows
=============================================================

shenjing follows **Keras (3)** everywhere; ``t`` is the 1-based step, ``g`` the gradient.

==================  ===============================================  ===============================================
topic               Keras -- what shenjing does                      torch.optim
==================  ===============================================  ===============================================
SGD momentum        velocity form: ``m = mu*m - lr*g; w += m``;      ``b = mu*b + (1-dampening)*g; w -= lr*b``:
                    Nesterov ``w += mu*m - lr*g``. The velocity      the buffer holds gradients, so changing
                    holds lr-scaled steps, so a change of lr only    lr rescales the whole buffer at once. Same
                    acts on new gradients.                           trajectory while lr is constant and
                                                                     dampening = 0.
Adam epsilon        ``alpha = lr*sqrt(1-b2^t)/(1-b1^t)``;            ``w -= lr/(1-b1^t) * m /
                    ``w -= alpha * m / (sqrt(v) + eps)``: eps is     (sqrt(v)/sqrt(1-b2^t) + eps)``: eps is added
                    added to the *uncorrected* sqrt(v), eps=1e-7.    to the *corrected* sqrt(v), eps=1e-8. Equal
                                                                     iff eps_torch = eps_keras/sqrt(1-b2^t).
AMSGrad             maximum of the raw ``v``, same formula.          maximum of the raw ``v``, same formula.
Adamax epsilon      ``w -= lr*m / ((1-b1^t) * (u + eps))``,          ``u = max(b2*u, |g| + eps)``: eps enters
                    ``u = max(b2*u, |g|)``; eps=1e-7.                the running max; eps=1e-8.
RMSprop epsilon     inside the root: ``lr*g / sqrt(v + eps)``,       outside: ``lr*g / (sqrt(v) + eps)``,
                    eps=1e-7, rho=0.9; momentum buffer holds         eps=1e-8, alpha=0.99; momentum buffer holds
                    lr-scaled increments.                            unscaled ones (lr applied after).
Adagrad             accumulator starts at 0.1, eps=1e-7 inside the   accumulator starts at 0, eps=1e-10 outside
                    root: ``lr*g / sqrt(a + eps)``; lr=0.001.        the root: ``lr*g / (sqrt(a) + eps)``; lr=0.01;
                                                                     optional lr_decay.
Adadelta            same rule (eps inside both roots), but lr=0.001, same rule, lr=1.0 (Zeiler's), eps=1e-6.
                    eps=1e-7.
Nadam               momentum cache ``u_t = b1*(1 - 0.5*0.96^t)``.    ``mu_t = b1*(1 - 0.5*0.96^(t*psi))`` with
                                                                     ``momentum_decay`` psi=0.004; psi=1 gives
                                                                     Keras's rule exactly (same eps placement).
weight decay        ``weight_decay`` on every optimizer is           ``weight_decay`` on SGD/Adam/RMSprop/... is
                    *decoupled*: ``w -= lr*wd*w`` before the rule    *coupled* L2 (``g += wd*w``); only AdamW
                    (AdamW's default wd=0.004).                      decouples it, ``w *= 1 - lr*wd`` (wd=0.01).
                                                                     (L2 in shenjing: a kernel_regularizer.)
gradient clipping   optimizer arguments ``clipvalue``, ``clipnorm``  separate utilities called by the user
                    (per variable), ``global_clipnorm``.             (``clip_grad_norm_`` is global).
EMA of weights      optimizer arguments ``use_ema``/``ema_momentum`` ``torch.optim.swa_utils.AveragedModel``.
                    (+ ``ema_warmup``: TensorFlow's warm-up).
lr schedules        a schedule is evaluated at ``iterations`` each   an ``LRScheduler`` mutates the lr when its
                    step (``learning_rate=ExponentialDecay(...)``).  ``step()`` is called (often per epoch).
==================  ===============================================  ===============================================

Two deliberate choices beyond Keras 3: every clipping argument that is set is
applied (Keras 3 applies only the first of clipnorm, global_clipnorm, clipvalue;
tf.keras 2 applied all, in the order used here), and constraints are applied
before the EMA update (so the averages are of constrained weights).
"""

from __future__ import annotations

from . import schedules
from .base import OPTIMIZERS, Optimizer
from .rules import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Nadam, RMSprop
from .schedules import LearningRateSchedule


def _lookup(name: str, custom_objects: dict | None = None):
    """The optimizer class called ``name`` (exact match first, then case-insensitively)."""
    try:
        return OPTIMIZERS.lookup(name, "optimizer", custom_objects)
    except ValueError:
        folded = {n.lower(): n for n in OPTIMIZERS.names()}
        if isinstance(name, str) and name.lower() in folded:
            return OPTIMIZERS.lookup(folded[name.lower()], "optimizer", custom_objects)
        raise


def serialize(optimizer: Optimizer) -> dict:
    """``{'class_name': ..., 'config': ...}`` for an optimizer."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizers.serialize: expected an Optimizer, got {type(optimizer).__name__}")
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config: dict, custom_objects: dict | None = None) -> Optimizer:
    """Rebuild an optimizer from :func:`serialize`'s output (class names are case-insensitive)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"optimizers.deserialize: expected a dict with 'class_name' and 'config', got {config!r}")
    cls = _lookup(config["class_name"], custom_objects)
    return cls.from_config(dict(config.get("config") or {}), custom_objects=custom_objects) \
        if _takes_custom_objects(cls) else cls.from_config(dict(config.get("config") or {}))


def _takes_custom_objects(cls) -> bool:
    import inspect

    try:
        return "custom_objects" in inspect.signature(cls.from_config).parameters
    except (TypeError, ValueError):
        return False


def get(identifier, custom_objects: dict | None = None) -> Optimizer:
    """An optimizer from a name (``'adam'``, ``'Adam'``, ``'sgd'``, ...: a new instance with the defaults),
    a config dict (``{'class_name': 'Adam', 'config': {...}}``) or an instance (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier, custom_objects)
    if isinstance(identifier, str):
        return _lookup(identifier, custom_objects)()
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}; expected a name such as "
                     f"'adam', a config dict or an Optimizer instance")


__all__ = [
    "Optimizer", "SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "Adamax", "Nadam",
    "LearningRateSchedule", "schedules", "get", "serialize", "deserialize", "OPTIMIZERS",
]
