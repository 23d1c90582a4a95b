"""Replaying a recorded training step (see :mod:`shenjing.autodiff.replay`).

``fit`` and ``train_on_batch`` run a model on batches of one shape, step after step. The second step with
a given input shape is recorded (its forward pass and loss, as op calls); later steps with that shape
replay the record: the same ops on the new batch, without the layers', the losses' and the tape's Python
around them. On a small model that is most of a step's time (the XOR net: about a third of it); on a
large one it changes nothing measurable. Results are bit for bit those of the code run again.

A step is recorded only when everything that decides its ops is known to decide them from shapes and
configuration alone: every layer's ``call`` and the loss functions are on the audited list
(:func:`~shenjing.autodiff.replay.replay_safe`), activations are shenjing's own, the model has no
regularization penalties, no masks and no sample weights. A record is dropped as soon as anything about
the model changes (``variable.graph_generation``: any layer attribute, a weight added, a variable's
``trainable``) and when the batch's shapes or dtypes, the float type or the backend differ. Anything
else (gradients off among it) runs the ordinary way.
"""

from __future__ import annotations

from .. import backend as B
from .. import losses
from ..autodiff import replay, tensor
from ..autodiff.variable import graph_generation

ENABLED = True
"""Set False to run every step the ordinary way (the reference the tests compare replay with)."""

MAX_FAILED_RECORDINGS = 3
"""After this many recordings that could not be replayed, a model stops trying (it runs eagerly)."""

MAX_KEYS = 8
"""Records kept per model (batch shapes: a last, smaller batch of an epoch has its own)."""

_AUDITED_LOSS_FUNCTIONS = frozenset({
    losses.binary_crossentropy, losses.categorical_crossentropy, losses.mean_squared_error,
    losses.mean_absolute_error,
})
"""Loss functions whose ops depend on shapes and configuration alone (sparse_categorical_crossentropy checks
its labels' values itself: it is not here)."""


def _own_activation(fn) -> bool:
    return getattr(fn, "__module__", None) in ("shenjing.activations", "shenjing.autodiff.nn")


def _audited(model) -> bool:
    """Whether every piece of Python that decides the ops of ``model``'s training step is audited."""
    for layer in [model] + model._all_layers():
        if not replay.is_replay_safe(type(layer).call):
            return False
        activation = getattr(layer, "activation", None)
        if activation is not None and not _own_activation(activation):
            return False
    for loss in model._compiled_losses:
        if loss is None:
            continue
        if not (isinstance(loss, losses.LossFunctionWrapper) and type(loss).call is losses.LossFunctionWrapper.call
                and type(loss).__call__ is losses.Loss.__call__ and loss.fn in _AUDITED_LOSS_FUNCTIONS):
            return False
    return True


def _key(xs, ys) -> tuple:
    """What a recorded step is valid for (beyond the model's generation; steps are recorded with gradients
    on only): the backend, float type and fuzz factor, and each input's and target's shape and dtype."""
    key = [B.xp.__name__, B.floatx(), B.epsilon()]
    for a in xs:
        key += (a.shape, a.dtype)
    for a in ys:
        key += (None, None) if a is None else (a.shape, a.dtype)
    return tuple(key)


def _loss_settings(model) -> list:
    """What decides the ops of the model's compiled losses besides their functions (a Loss is not a layer:
    setting these is not seen by ``graph_generation``)."""
    return [None if loss is None else (loss.fn, loss.reduction, dict(loss.fn_kwargs))
            for loss in model._compiled_losses]


class StepReplay:
    """A model's recorded steps, one per key (see :func:`_key`): when to record, when to replay (one per
    model, made on first use; a copy or a pickle of the model gets a fresh one)."""

    def __init__(self):
        self.generation = None  # the model generation the records below belong to
        self.plans = {}         # key -> (plan, how many of its results are the model's outputs)
        self.seen = set()       # keys met once, run the ordinary way
        self.losses = None      # ``_loss_settings`` when the records were made
        self.failures = 0       # recordings that could not be replayed, in this generation
        self.replays = 0        # steps replayed (for tests and curious users)

    def __reduce__(self):
        return StepReplay, ()

    def forward(self, model, xs, ys, sample_weight):
        """``(plan, outputs, total, per_output)`` for a step: ``plan`` None when the step ran the ordinary
        way (``total.backward()`` then applies), else the plan whose ``backward(total)`` to use."""
        if not ENABLED or not tensor._grad_enabled or \
                sample_weight is not None and any(w is not None for w in sample_weight):
            return (None, *_ordinary(model, xs, ys, sample_weight))
        settings = _loss_settings(model)
        if self.generation != graph_generation[0] or self.losses != settings:
            self.generation = graph_generation[0]
            self.losses = settings
            self.plans.clear()
            self.seen.clear()
            self.failures = 0
        if self.failures >= MAX_FAILED_RECORDINGS:
            return (None, *_ordinary(model, xs, ys, sample_weight))
        key = _key(xs, ys)
        recorded = self.plans.get(key)
        if recorded is not None:
            plan, n = recorded
            if plan.valid():
                results = plan.run(xs + ys)
                self.replays += 1
                total = results[n]
                if not total.requires_grad:
                    plan.forget_run()
                return plan, results[:n], total, results[n + 1:]
            del self.plans[key]
        if key not in self.seen:  # the first step of this shape may build the model and the optimizer
            if len(self.seen) >= MAX_KEYS:
                self.seen.clear()
            self.seen.add(key)
            return (None, *_ordinary(model, xs, ys, sample_weight))
        if not _audited(model):
            self.failures = MAX_FAILED_RECORDINGS
            return (None, *_ordinary(model, xs, ys, sample_weight))
        rec = replay.start_recording()
        if rec is None:  # another thread is recording
            return (None, *_ordinary(model, xs, ys, sample_weight))
        try:
            outputs, total, per_output = _ordinary(model, xs, ys, None)
        finally:
            replay.stop_recording(rec)
        try:
            if model.losses or any(o._keras_mask is not None for o in outputs):
                raise replay.Unreplayable("regularization penalties or masks")
            if total.data.size != 1:
                raise replay.Unreplayable("a loss that is not a scalar")
            needed = [bool(per) for per in model._metrics_per_output] + [True] * (1 + len(per_output))
            plan = replay.Plan(rec, xs + ys, outputs + [total] + per_output, needed)
            if total.requires_grad:
                plan.set_backward_root(total)
            plan.release()
        except replay.Unreplayable:
            self.failures += 1
        else:
            if self.generation == graph_generation[0]:  # the step itself changed nothing that decides the ops
                if len(self.plans) >= MAX_KEYS:
                    self.plans.clear()
                self.plans[key] = (plan, len(outputs))
        return None, outputs, total, per_output


def _ordinary(model, xs, ys, sample_weight):
    """The step's forward pass and loss, run the ordinary way: ``(outputs, total, per_output)``."""
    outputs = model._forward(xs, training=True)
    total, per_output = model._total_loss(ys, outputs, sample_weight)
    return outputs, total, per_output
