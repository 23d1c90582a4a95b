"""Learning-rate schedules: the learning rate as a function of the optimizer step.

A schedule is a callable ``schedule(step) -> float`` evaluated by the optimizer
at its ``iterations`` count (0 at the first update). Pass one as
``learning_rate``: ``SGD(learning_rate=ExponentialDecay(0.1, 1000, 0.96))``.

The formulas are Keras's (``step`` is the number of updates already applied):

================================  ==========================================================================
schedule                          ``lr(step)``
================================  ==========================================================================
``ExponentialDecay``              ``initial * decay_rate ** (step / decay_steps)`` (``floor`` of the
                                  exponent when ``staircase``)
``InverseTimeDecay``              ``initial / (1 + decay_rate * step / decay_steps)`` (``floor`` of
                                  ``step / decay_steps`` when ``staircase``)
``PiecewiseConstantDecay``        ``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
                                  ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after
``CosineDecay``                   optional linear warm-up from ``initial`` to ``warmup_target`` over
                                  ``warmup_steps``, then ``peak * ((1 - alpha) * c + alpha)`` with
                                  ``c = (1 + cos(pi * min(s, decay_steps) / decay_steps)) / 2``, ``s`` the
                                  steps since the warm-up ended and ``peak`` the warm-up target (or
                                  ``initial`` without warm-up)
================================  ==========================================================================

Schedules serialise as ``{'class_name': ..., 'config': ...}`` (:func:`serialize` /
:func:`deserialize`); a custom subclass is found by name once registered with
``shenjing.utils.registry.register_custom_object`` (or passed in ``custom_objects``).
"""

from __future__ import annotations

import math

from ..utils.registry import Registry

SCHEDULES = Registry("learning rate schedule")


def _number(value, what: str, schedule: str, positive: bool = False, non_negative: bool = False) -> float:
    if isinstance(value, bool):
        raise TypeError(f"{schedule}: {what} must be a number, got a bool ({value!r})")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{schedule}: {what} must be a number, got {type(value).__name__} ({value!r})") from None
    if not math.isfinite(out):
        raise ValueError(f"{schedule}: {what} must be finite, got {value!r}")
    if positive and out <= 0:
        raise ValueError(f"{schedule}: {what} must be > 0, got {value!r}")
    if non_negative and out < 0:
        raise ValueError(f"{schedule}: {what} must be >= 0, got {value!r}")
    return out


class LearningRateSchedule:
    """Base class of the schedules: a callable ``step -> learning rate`` with a config.

    A subclass implements ``__call__(self, step)`` (returning a float) and
    ``get_config()`` (the constructor arguments, JSON-friendly);
    ``from_config`` rebuilds it with ``cls(**config)``.
    """

    def __call__(self, step) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step)")

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement get_config()")

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _StepDecay(LearningRateSchedule):
    """Shared by the decays driven by ``step / decay_steps`` (floored when ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase: bool = False, name=None):
        cls = type(self).__name__
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", cls)
        self.decay_steps = _number(decay_steps, "decay_steps", cls, positive=True)
        self.decay_rate = _number(decay_rate, "decay_rate", cls)
        self.staircase = bool(staircase)
        self.name = name

    def _progress(self, step) -> float:
        p = float(step) / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


@SCHEDULES.register("ExponentialDecay")
class ExponentialDecay(_StepDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; the exponent is floored when
    ``staircase`` (the rate then drops in steps every ``decay_steps`` updates)."""

    def __call__(self, step) -> float:
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)


@SCHEDULES.register("InverseTimeDecay")
class InverseTimeDecay(_StepDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``; ``step / decay_steps`` is
    floored when ``staircase``."""

    def __call__(self, step) -> float:
        return self.initial_learning_rate / (1.0 + self.decay_rate * self._progress(step))


@SCHEDULES.register("PiecewiseConstantDecay")
class PiecewiseConstantDecay(LearningRateSchedule):
    """A step function: ``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` once ``step > boundaries[-1]``.
    ``len(values)`` must be ``len(boundaries) + 1``."""

    def __init__(self, boundaries, values, name=None):
        cls = type(self).__name__
        boundaries = list(boundaries)
        values = list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"{cls}: values must have one more element than boundaries; got {len(boundaries)} "
                f"boundaries and {len(values)} values")
        self.boundaries = [_number(b, "boundaries", cls) for b in boundaries]
        if any(b > a for b, a in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"{cls}: boundaries must be non-decreasing, got {boundaries!r}")
        self.values = [_number(v, "values", cls) for v in values]
        self.name = name

    def __call__(self, step) -> float:
        step = float(step)
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self) -> dict:
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


@SCHEDULES.register("CosineDecay")
class CosineDecay(LearningRateSchedule):
    """Cosine annealing (Loshchilov & Hutter), with an optional linear warm-up.

    Without ``warmup_target``: ``initial * ((1 - alpha) * c(step) + alpha)``, where
    ``c(s) = (1 + cos(pi * min(s, decay_steps) / decay_steps)) / 2``, so the rate goes from
    ``initial`` to ``alpha * initial`` in ``decay_steps`` steps and stays there.
    With ``warmup_target``: for ``step < warmup_steps`` the rate rises linearly from ``initial`` to
    ``warmup_target``; afterwards it decays from ``warmup_target`` as above with ``s = step - warmup_steps``.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0,
                 name=None):
        cls = type(self).__name__
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", cls)
        self.decay_steps = _number(decay_steps, "decay_steps", cls, positive=True)
        self.alpha = _number(alpha, "alpha", cls)
        self.warmup_target = None if warmup_target is None else _number(warmup_target, "warmup_target", cls)
        self.warmup_steps = _number(warmup_steps, "warmup_steps", cls, non_negative=True)
        self.name = name

    def _decay(self, step: float, peak: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step) -> float:
        step = float(step)
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            fraction = step / self.warmup_steps
            return self.initial_learning_rate + (self.warmup_target - self.initial_learning_rate) * fraction
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps,
                "name": self.name}


def serialize(schedule: LearningRateSchedule) -> dict:
    """``{'class_name': ..., 'config': ...}`` for a schedule."""
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(f"schedules.serialize: expected a LearningRateSchedule, got {type(schedule).__name__}")
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict, custom_objects: dict | None = None) -> LearningRateSchedule:
    """Rebuild a schedule from :func:`serialize`'s output."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"schedules.deserialize: expected a dict with 'class_name' and 'config', got {config!r}")
    cls = SCHEDULES.lookup(config["class_name"], "learning_rate", custom_objects)
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier, custom_objects: dict | None = None) -> LearningRateSchedule:
    """A schedule from a schedule instance or a serialised dict."""
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier, custom_objects)
    raise ValueError(f"Could not interpret learning rate schedule identifier: {identifier!r}")


__all__ = [
    "LearningRateSchedule", "ExponentialDecay", "InverseTimeDecay", "PiecewiseConstantDecay", "CosineDecay",
    "serialize", "deserialize", "get", "SCHEDULES",
]
