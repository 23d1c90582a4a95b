"""The update rules: SGD, Adagrad, Adadelta, RMSprop, Adam, AdamW, Adamax, Nadam (Keras 3's formulas).

In each ``_update_step`` ``w`` is the variable's array (updated in place), ``g``
the processed gradient (never written to), ``lr`` this step's learning rate and
``t = iterations + 1`` the 1-based step number. Scalars are Python floats, so
that float32 arrays stay float32 (NumPy 2's weak scalars).

Every rule runs in place, through :meth:`Optimizer._blockwise`: the slots and the
weights are updated with ``out=`` ufuncs and two scratch buffers owned by the
optimizer, block by block (so that a large variable is updated while its block
is in the cache); no array is allocated per step. The arithmetic is exactly the
formula's, operation by operation, as each docstring writes it.

With the compiled path on (``shenjing.backend.jit``), every rule but plain SGD,
Adagrad and AMSGrad runs as one kernel of ``backend.kernels.optim``: the same operations in
the same order, in one pass over the variable, its gradient and slots, with the
moving averages flushed to zero below :data:`MOMENT_FLOOR`.
"""

from __future__ import annotations

import math

from .. import backend as B
from ..backend import jit
from .base import _BLOCK, OPTIMIZERS, Optimizer, _float, flat_views

MOMENT_FLOOR = 2.0 ** 24
"""The compiled rules flush moving averages (moments, velocities, accumulated squares) below this many
times the dtype's smallest normal number to zero (about 2e-31 in float32). A weight whose gradient stays 0
(a dead unit, an always-blank pixel) has them decay geometrically, and once they reach the subnormal range
every operation on them takes a slow microcode path: measured on a 784×512 variable with half its state
subnormal, an update took 7× as long with Nadam, 6× with Adamax, 4× with SGD momentum and 2.7× with
RMSprop, for as long as the decay lasts (β2 = 0.999: thousands of steps). Values that small are far too
small to move a weight: next to ε they round away (for a small ε the floor is lowered until they do, and
ε = 0 turns the flush off: see ``_fused``). The NumPy rules, the reference, do not flush; above the floor
the compiled rules give their bits exactly."""


def _fused(w, g, *slots, epsilon=None):
    """``(kernels, flat arrays, floor)`` for a compiled update of ``w`` with its gradient and slots (flat
    views in one element order), or ``(None, None, None)``: the NumPy rule runs.

    ``floor`` is :data:`MOMENT_FLOOR` times the dtype's smallest normal number, lowered for a rule whose
    denominator adds an ``epsilon`` so that the square root of any flushed value stays below half an ulp of
    epsilon: it would have rounded away there, and the update's bits are the NumPy rule's. An epsilon too
    small for any normal floor (ε = 0 among them: it would divide by a flushed 0) gets 0, no flush."""
    flat = flat_views(w, g, *slots)
    compiled = None if flat is None else jit.kernels("optim", *flat)
    if compiled is None:
        return None, None, None
    info = B.xp.finfo(w.dtype)
    floor = float(info.tiny) * MOMENT_FLOOR
    if epsilon is not None:
        floor = min(floor, (epsilon * 2.0 ** -(info.nmant + 2)) ** 2)
        if floor < info.tiny:
            floor = 0.0
    return compiled, flat, w.dtype.type(floor)


def _update_moments(g, m, v, b1, b2, scratch) -> None:
    """Adam's moving averages in place: m += (1 − β1)(g − m), v += (1 − β2)(g² − v) (``scratch`` is
    overwritten)."""
    xp = B.xp
    xp.subtract(g, m, out=scratch)
    scratch *= 1.0 - b1
    m += scratch
    xp.square(g, out=scratch)
    scratch -= v
    scratch *= 1.0 - b2
    v += scratch


@OPTIMIZERS.register("SGD")
class SGD(Optimizer):
    """Gradient descent, with optional (Nesterov) momentum.

    Without momentum: ``w -= lr * g``. With momentum (Keras's velocity form):
    ``m = momentum * m - lr * g``; then ``w += m``, or with ``nesterov``
    ``w += momentum * m - lr * g`` (``m`` already updated).
    """

    slot_names = ("momentum",)

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = _float(momentum, "momentum", "SGD", low=0.0, high=1.0)
        self.nesterov = bool(nesterov)

    def _slot_specs(self):
        return [("momentum", 0.0)] if self.momentum > 0 else []

    def _update_step(self, index, w, g, lr):
        xp = B.xp
        if self.momentum == 0:
            if w.size <= _BLOCK:  # one small temporary costs less than the scratch bookkeeping
                w -= lr * g
                return

            def plain(w, g, s1):
                xp.multiply(g, lr, out=s1)
                w -= s1

            self._blockwise(plain, 1, w, g)
            return
        mu = self.momentum
        nesterov = self.nesterov
        compiled, flat, floor = _fused(w, g, self._slot("momentum", index))
        if compiled is not None:
            scalar = w.dtype.type
            compiled.sgd_momentum(*flat, scalar(mu), scalar(lr), nesterov, floor)
            return

        def momentum(w, g, m, s1, s2):
            m *= mu
            xp.multiply(g, lr, out=s1)
            m -= s1
            if nesterov:
                xp.multiply(m, mu, out=s2)
                s2 -= s1
                w += s2
            else:
                w += m

        self._blockwise(momentum, 2, w, g, self._slot("momentum", index))

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config


@OPTIMIZERS.register("Adagrad")
class Adagrad(Optimizer):
    """Adagrad: ``a += g**2``; ``w -= lr * g / sqrt(a + epsilon)``, ``a`` starting at
    ``initial_accumulator_value``."""

    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value = _float(initial_accumulator_value, "initial_accumulator_value",
                                                "Adagrad", low=0.0)
        self.epsilon = _float(epsilon, "epsilon", "Adagrad", low=0.0)

    def _slot_specs(self):
        return [("accumulator", self.initial_accumulator_value)]

    def _update_step(self, index, w, g, lr):
        xp = B.xp
        eps = self.epsilon

        def adagrad(w, g, a, s1, s2):
            xp.square(g, out=s1)
            a += s1
            xp.add(a, eps, out=s1)
            xp.sqrt(s1, out=s1)
            xp.multiply(g, lr, out=s2)
            s2 /= s1
            w -= s2

        self._blockwise(adagrad, 2, w, g, self._slot("accumulator", index, self.initial_accumulator_value))

    def get_config(self):
        config = super().get_config()
        config.update({"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon})
        return config


@OPTIMIZERS.register("Adadelta")
class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012) with a learning rate:
    ``Eg = rho * Eg + (1 - rho) * g**2``; ``d = -sqrt(Ed + eps) / sqrt(Eg + eps) * g``;
    ``Ed = rho * Ed + (1 - rho) * d**2``; ``w += lr * d``.
    (Zeiler's rule is ``lr = 1``; Keras's default is 0.001.)"""

    slot_names = ("accumulated_grad", "accumulated_delta")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = _float(rho, "rho", "Adadelta", low=0.0, high=1.0)
        self.epsilon = _float(epsilon, "epsilon", "Adadelta", low=0.0)

    def _slot_specs(self):
        return [("accumulated_grad", 0.0), ("accumulated_delta", 0.0)]

    def _update_step(self, index, w, g, lr):
        xp = B.xp
        rho, eps = self.rho, self.epsilon
        compiled, flat, floor = _fused(w, g, self._slot("accumulated_grad", index),
                                       self._slot("accumulated_delta", index), epsilon=eps)
        if compiled is not None:
            scalar = w.dtype.type
            compiled.adadelta(*flat, scalar(rho), scalar(1.0 - rho), scalar(eps), scalar(lr), scalar(-1.0), floor)
            return

        def adadelta(w, g, eg, ed, s1, delta):
            eg *= rho
            xp.square(g, out=s1)
            s1 *= 1.0 - rho
            eg += s1
            xp.add(ed, eps, out=delta)
            xp.sqrt(delta, out=delta)
            delta *= g
            xp.add(eg, eps, out=s1)
            xp.sqrt(s1, out=s1)
            delta /= s1
            delta *= -1.0
            ed *= rho
            xp.square(delta, out=s1)
            s1 *= 1.0 - rho
            ed += s1
            delta *= lr
            w += delta

        self._blockwise(adadelta, 2, w, g, self._slot("accumulated_grad", index),
                        self._slot("accumulated_delta", index))

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config


@OPTIMIZERS.register("RMSprop")
class RMSprop(Optimizer):
    """RMSprop: ``v = rho * v + (1 - rho) * g**2``; ``inc = lr * g / sqrt(v + epsilon)`` (``centered``:
    ``sqrt(v - mg**2 + epsilon)`` with ``mg = rho * mg + (1 - rho) * g``); with momentum
    ``b = momentum * b + inc; w -= b``, else ``w -= inc``."""

    slot_names = ("velocity", "momentum", "average_gradient")

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = _float(rho, "rho", "RMSprop", low=0.0, high=1.0)
        self.momentum = _float(momentum, "momentum", "RMSprop", low=0.0, high=1.0)
        self.epsilon = _float(epsilon, "epsilon", "RMSprop", low=0.0)
        self.centered = bool(centered)

    def _slot_specs(self):
        specs = [("velocity", 0.0)]
        if self.momentum > 0:
            specs.append(("momentum", 0.0))
        if self.centered:
            specs.append(("average_gradient", 0.0))
        return specs

    def _update_step(self, index, w, g, lr):
        xp = B.xp
        rho, eps, mu, centered = self.rho, self.epsilon, self.momentum, self.centered
        slots = [self._slot("velocity", index)]
        if centered:
            slots.append(self._slot("average_gradient", index))
        if mu > 0:
            slots.append(self._slot("momentum", index))
        compiled, flat, floor = _fused(w, g, *slots, epsilon=eps)
        if compiled is not None:
            scalar = w.dtype.type
            v = flat[2]
            mg = flat[3] if centered else v  # unused when its flag is off
            b = flat[-1] if mu > 0 else v
            compiled.rmsprop(flat[0], flat[1], v, mg, b, scalar(rho), scalar(1.0 - rho), scalar(eps), scalar(lr),
                             scalar(mu), centered, mu > 0, floor)
            return

        def rmsprop(w, g, v, *rest):
            *slots, denom, inc = rest
            v *= rho
            xp.square(g, out=denom)
            denom *= 1.0 - rho
            v += denom
            if centered:
                mg = slots[0]
                mg *= rho
                xp.multiply(g, 1.0 - rho, out=inc)
                mg += inc
                xp.square(mg, out=denom)
                xp.subtract(v, denom, out=denom)
                denom += eps
            else:
                xp.add(v, eps, out=denom)
            xp.sqrt(denom, out=denom)
            xp.multiply(g, lr, out=inc)
            inc /= denom
            if mu > 0:
                b = slots[-1]
                b *= mu
                b += inc
                w -= b
            else:
                w -= inc

        self._blockwise(rmsprop, 2, w, g, *slots)

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                       "centered": self.centered})
        return config


@OPTIMIZERS.register("Adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba), Keras's form: the bias correction is folded into the step size,
    ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``, and ``epsilon`` is added to ``sqrt(v)``:
    ``m += (1 - beta_1) * (g - m)``; ``v += (1 - beta_2) * (g**2 - v)``;
    ``w -= alpha * m / (sqrt(v) + epsilon)`` (``amsgrad``: ``v`` replaced by its running maximum)."""

    slot_names = ("m", "v", "vhat")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = _float(beta_1, "beta_1", owner, low=0.0, high=1.0, high_open=True)
        self.beta_2 = _float(beta_2, "beta_2", owner, low=0.0, high=1.0, high_open=True)
        self.epsilon = _float(epsilon, "epsilon", owner, low=0.0)
        self.amsgrad = bool(amsgrad)

    def _slot_specs(self):
        return [("m", 0.0), ("v", 0.0)] + ([("vhat", 0.0)] if self.amsgrad else [])

    def _update_step(self, index, w, g, lr):
        xp = B.xp
        b1, b2, eps = self.beta_1, self.beta_2, self.epsilon
        t = self.iterations + 1
        alpha = lr * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        slots = [self._slot("m", index), self._slot("v", index)]
        compiled, flat, floor = (None, None, None) if self.amsgrad else _fused(w, g, *slots, epsilon=eps)
        if compiled is not None:  # the same operations fused into one pass
            scalar = w.dtype.type
            compiled.adam(*flat, scalar(1.0 - b1), scalar(1.0 - b2), scalar(alpha), scalar(eps), floor)
            return
        if self.amsgrad:
            slots.append(self._slot("vhat", index))

        def adam(w, g, m, v, *rest):
            *vhat, s1, s2 = rest
            _update_moments(g, m, v, b1, b2, s1)
            if vhat:
                xp.maximum(vhat[0], v, out=vhat[0])
                v = vhat[0]
            xp.sqrt(v, out=s1)
            s1 += eps
            xp.multiply(m, alpha, out=s2)
            s2 /= s1
            w -= s2

        self._blockwise(adam, 2, w, g, *slots)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                       "amsgrad": self.amsgrad})
        return config


@OPTIMIZERS.register("AdamW")
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``w -= lr * weight_decay * w`` before
    the Adam step (the base class's ``weight_decay``, on by default here)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: argument 'weight_decay' must be a float, got None (use Adam for no decay)")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=weight_decay, **kwargs)


@OPTIMIZERS.register("Adamax")
class Adamax(Optimizer):
    """Adamax (the infinity-norm Adam): ``m += (1 - beta_1) * (g - m)``; ``u = max(beta_2 * u, |g|)``;
    ``w -= lr * m / ((1 - beta_1**t) * (u + epsilon))``."""

    slot_names = ("m", "u")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = _float(beta_1, "beta_1", "Adamax", low=0.0, high=1.0, high_open=True)
        self.beta_2 = _float(beta_2, "beta_2", "Adamax", low=0.0, high=1.0)
        self.epsilon = _float(epsilon, "epsilon", "Adamax", low=0.0)

    def _slot_specs(self):
        return [("m", 0.0), ("u", 0.0)]

    def _update_step(self, index, w, g, lr):
        xp = B.xp
        b1, b2, eps = self.beta_1, self.beta_2, self.epsilon
        correction = 1.0 - b1 ** (self.iterations + 1)
        compiled, flat, floor = _fused(w, g, self._slot("m", index), self._slot("u", index), epsilon=eps)
        if compiled is not None:
            scalar = w.dtype.type
            compiled.adamax(*flat, scalar(1.0 - b1), scalar(b2), scalar(eps), scalar(correction), scalar(lr), floor)
            return

        def adamax(w, g, m, u, s1, s2):
            xp.subtract(g, m, out=s1)
            s1 *= 1.0 - b1
            m += s1
            u *= b2
            xp.abs(g, out=s1)
            xp.maximum(u, s1, out=u)
            xp.add(u, eps, out=s1)
            s1 *= correction
            xp.multiply(m, lr, out=s2)
            s2 /= s1
            w -= s2

        self._blockwise(adamax, 2, w, g, self._slot("m", index), self._slot("u", index))

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config


@OPTIMIZERS.register("Nadam")
class Nadam(Optimizer):
    """Nadam (Dozat 2016): Adam with Nesterov momentum and the momentum-cache schedule
    ``u_t = beta_1 * (1 - 0.5 * 0.96**t)``, ``P_t = u_1 * ... * u_t``:
    ``m += (1 - beta_1) * (g - m)``; ``v += (1 - beta_2) * (g**2 - v)``;
    ``m_hat = u_{t+1} * m / (1 - P_t * u_{t+1}) + (1 - u_t) * g / (1 - P_t)``;
    ``v_hat = v / (1 - beta_2**t)``; ``w -= lr * m_hat / (sqrt(v_hat) + epsilon)``."""

    slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = _float(beta_1, "beta_1", "Nadam", low=0.0, high=1.0, high_open=True)
        self.beta_2 = _float(beta_2, "beta_2", "Nadam", low=0.0, high=1.0, high_open=True)
        self.epsilon = _float(epsilon, "epsilon", "Nadam", low=0.0)
        self._u_product = 1.0  # P_k for k = self._u_product_steps
        self._u_product_steps = 0

    def _u(self, t: int) -> float:
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** t)

    def _slot_specs(self):
        return [("m", 0.0), ("v", 0.0)]

    def _before_step(self, lr):
        t = self.iterations + 1
        if self._u_product_steps == t - 1:
            self._u_product *= self._u(t)
        elif self._u_product_steps != t:  # iterations was set by hand: recompute the product
            product = 1.0
            for k in range(1, t + 1):
                product *= self._u(k)
            self._u_product = product
        self._u_product_steps = t

    def _update_step(self, index, w, g, lr):
        xp = B.xp
        b1, b2 = self.beta_1, self.beta_2
        t = self.iterations + 1
        u_t, u_next = self._u(t), self._u(t + 1)
        p_t = self._u_product
        c_m = u_next / (1.0 - p_t * u_next)
        c_g = (1.0 - u_t) / (1.0 - p_t)
        c_v = 1.0 - b2 ** t
        eps = self.epsilon
        compiled, flat, floor = _fused(w, g, self._slot("m", index), self._slot("v", index), epsilon=eps)
        if compiled is not None:
            scalar = w.dtype.type
            compiled.nadam(*flat, scalar(1.0 - b1), scalar(1.0 - b2), scalar(c_m), scalar(c_g), scalar(c_v),
                           scalar(eps), scalar(lr), floor)
            return

        def nadam(w, g, m, v, s1, m_hat):
            _update_moments(g, m, v, b1, b2, s1)
            xp.multiply(m, c_m, out=m_hat)
            xp.multiply(g, c_g, out=s1)
            m_hat += s1
            xp.divide(v, c_v, out=s1)
            xp.sqrt(s1, out=s1)
            s1 += eps
            m_hat *= lr
            m_hat /= s1
            w -= m_hat

        self._blockwise(nadam, 2, w, g, self._slot("m", index), self._slot("v", index))

    def _extra_state(self):
        return {"u_product": B.xp.asarray(self._u_product, dtype="float64"),
                "u_product_steps": B.xp.asarray(self._u_product_steps, dtype="int64")}

    def _set_extra_state(self, state):
        if "u_product" in state:
            self._u_product = float(B.to_host(state["u_product"]))
        if "u_product_steps" in state:
            self._u_product_steps = int(B.to_host(state["u_product_steps"]))
        elif "u_product" in state:
            self._u_product_steps = self.iterations

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
