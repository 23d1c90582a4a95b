"""The update rules: SGD, Adagrad, Adadelta, RMSprop, Adam, AdamW, Adamax, Nadam (Keras 3's formulas).

In each ``_update_step`` ``w`` is the variable's array (updated in place), ``g``
the processed gradient (never written to), ``lr`` this step's learning rate and
``t = iterations + 1`` the 1-based step number. Scalars are Python floats, so
that float32 arrays stay float32 (NumPy 2's weak scalars).
"""

from __future__ import annotations

import math

from .. import backend as B
from .base import OPTIMIZERS, Optimizer, _float


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
        if self.momentum == 0:
            w -= lr * g
            return
        mu = self.momentum
        m = self._slot("momentum", index)
        m *= mu
        m -= lr * g
        if self.nesterov:
            step = mu * m
            step -= lr * g
            w += step
        else:
            w += m

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
        a = self._slot("accumulator", index, self.initial_accumulator_value)
        a += xp.square(g)
        denom = a + self.epsilon
        xp.sqrt(denom, out=denom)
        step = lr * g
        step /= denom
        w -= step

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
        eg = self._slot("accumulated_grad", index)
        ed = self._slot("accumulated_delta", index)
        eg *= rho
        eg += (1.0 - rho) * xp.square(g)
        delta = xp.sqrt(ed + eps)
        delta *= g
        delta /= xp.sqrt(eg + eps)
        delta *= -1.0
        ed *= rho
        ed += (1.0 - rho) * xp.square(delta)
        delta *= lr
        w += delta

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
        rho = self.rho
        v = self._slot("velocity", index)
        v *= rho
        v += (1.0 - rho) * xp.square(g)
        if self.centered:
            mg = self._slot("average_gradient", index)
            mg *= rho
            mg += (1.0 - rho) * g
            denom = v - xp.square(mg)
            denom += self.epsilon
        else:
            denom = v + self.epsilon
        xp.sqrt(denom, out=denom)
        inc = lr * g
        inc /= denom
        if self.momentum > 0:
            b = self._slot("momentum", index)
            b *= self.momentum
            b += inc
            w -= b
        else:
            w -= inc

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
        b1, b2 = self.beta_1, self.beta_2
        t = self.iterations + 1
        alpha = lr * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        m = self._slot("m", index)
        v = self._slot("v", index)
        m += (1.0 - b1) * (g - m)
        v += (1.0 - b2) * (xp.square(g) - v)
        if self.amsgrad:
            vhat = self._slot("vhat", index)
            xp.maximum(vhat, v, out=vhat)
            v = vhat
        denom = xp.sqrt(v)
        denom += self.epsilon
        step = alpha * m
        step /= denom
        w -= step

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
        b1 = self.beta_1
        t = self.iterations + 1
        m = self._slot("m", index)
        u = self._slot("u", index)
        m += (1.0 - b1) * (g - m)
        u *= self.beta_2
        xp.maximum(u, xp.abs(g), out=u)
        denom = u + self.epsilon
        denom *= 1.0 - b1 ** t
        step = lr * m
        step /= denom
        w -= step

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
        m = self._slot("m", index)
        v = self._slot("v", index)
        m += (1.0 - b1) * (g - m)
        v += (1.0 - b2) * (xp.square(g) - v)
        m_hat = (u_next / (1.0 - p_t * u_next)) * m
        m_hat += ((1.0 - u_t) / (1.0 - p_t)) * g
        denom = xp.sqrt(v / (1.0 - b2 ** t))
        denom += self.epsilon
        m_hat *= lr
        m_hat /= denom
        w -= m_hat

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
