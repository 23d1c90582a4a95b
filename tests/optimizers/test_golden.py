"""Each rule against a plain reference of Keras's formula (written out below, not in place), with
Keras's own epsilons -- where torch's rule differs -- and explicit numbers for the first steps.

Tolerance 1e-10 in float64 on the shared 20-step problem (``helpers.py``).
"""

import math

import numpy as np
import pytest

from shenjing import optimizers
from shenjing.autodiff import Variable

from .helpers import max_difference, run_reference, run_shenjing

TOL = 1e-10


def sgd_reference(lr, momentum=0.0, nesterov=False):
    def rule(s, w, g, t):
        if momentum == 0:
            return w - lr * g
        m = momentum * s.get("m", 0.0) - lr * g
        s["m"] = m
        return w + (momentum * m - lr * g if nesterov else m)
    return rule


def adagrad_reference(lr, initial, eps):
    def rule(s, w, g, t):
        a = s.get("a", initial) + g * g
        s["a"] = a
        return w - lr * g / np.sqrt(a + eps)
    return rule


def adadelta_reference(lr, rho, eps):
    def rule(s, w, g, t):
        eg = rho * s.get("eg", 0.0) + (1 - rho) * g * g
        ed = s.get("ed", 0.0)
        delta = -np.sqrt(ed + eps) / np.sqrt(eg + eps) * g
        s["eg"], s["ed"] = eg, rho * ed + (1 - rho) * delta * delta
        return w + lr * delta
    return rule


def rmsprop_reference(lr, rho, momentum, eps, centered):
    def rule(s, w, g, t):
        v = rho * s.get("v", 0.0) + (1 - rho) * g * g
        s["v"] = v
        if centered:
            mg = rho * s.get("mg", 0.0) + (1 - rho) * g
            s["mg"] = mg
            inc = lr * g / np.sqrt(v - mg * mg + eps)
        else:
            inc = lr * g / np.sqrt(v + eps)
        if momentum > 0:
            b = momentum * s.get("b", 0.0) + inc
            s["b"] = b
            return w - b
        return w - inc
    return rule


def adam_reference(lr, b1, b2, eps, amsgrad=False, wd=0.0):
    def rule(s, w, g, t):
        w = w - lr * wd * w
        m = b1 * s.get("m", 0.0) + (1 - b1) * g
        v = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        s["m"], s["v"] = m, v
        if amsgrad:
            v = np.maximum(s.get("vhat", 0.0), v)
            s["vhat"] = v
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return w - alpha * m / (np.sqrt(v) + eps)
    return rule


def adamax_reference(lr, b1, b2, eps):
    def rule(s, w, g, t):
        m = b1 * s.get("m", 0.0) + (1 - b1) * g
        u = np.maximum(b2 * s.get("u", 0.0), np.abs(g))
        s["m"], s["u"] = m, u
        return w - lr * m / ((1 - b1 ** t) * (u + eps))
    return rule


def nadam_reference(lr, b1, b2, eps):
    def mu(t):
        return b1 * (1 - 0.5 * 0.96 ** t)

    def rule(s, w, g, t):
        product = np.prod([mu(k) for k in range(1, t + 1)])
        m = b1 * s.get("m", 0.0) + (1 - b1) * g
        v = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        s["m"], s["v"] = m, v
        m_hat = mu(t + 1) * m / (1 - product * mu(t + 1)) + (1 - mu(t)) * g / (1 - product)
        v_hat = v / (1 - b2 ** t)
        return w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return rule


CASES = [
    ("sgd", lambda: optimizers.SGD(0.02), sgd_reference(0.02)),
    ("sgd_momentum", lambda: optimizers.SGD(0.02, momentum=0.9), sgd_reference(0.02, 0.9)),
    ("sgd_nesterov", lambda: optimizers.SGD(0.02, momentum=0.9, nesterov=True), sgd_reference(0.02, 0.9, True)),
    ("adagrad", lambda: optimizers.Adagrad(0.1), adagrad_reference(0.1, 0.1, 1e-7)),
    ("adagrad_eps", lambda: optimizers.Adagrad(0.1, initial_accumulator_value=0.0, epsilon=1e-2),
     adagrad_reference(0.1, 0.0, 1e-2)),
    ("adadelta", lambda: optimizers.Adadelta(0.5), adadelta_reference(0.5, 0.95, 1e-7)),
    ("adadelta_eps", lambda: optimizers.Adadelta(1.0, rho=0.8, epsilon=1e-3), adadelta_reference(1.0, 0.8, 1e-3)),
    ("rmsprop", lambda: optimizers.RMSprop(0.01), rmsprop_reference(0.01, 0.9, 0.0, 1e-7, False)),
    ("rmsprop_eps", lambda: optimizers.RMSprop(0.01, epsilon=0.5), rmsprop_reference(0.01, 0.9, 0.0, 0.5, False)),
    ("rmsprop_centered_momentum", lambda: optimizers.RMSprop(0.01, rho=0.8, momentum=0.5, epsilon=1e-2,
                                                             centered=True),
     rmsprop_reference(0.01, 0.8, 0.5, 1e-2, True)),
    ("adam", lambda: optimizers.Adam(0.05), adam_reference(0.05, 0.9, 0.999, 1e-7)),
    ("adam_eps", lambda: optimizers.Adam(0.05, beta_1=0.8, beta_2=0.95, epsilon=0.1),
     adam_reference(0.05, 0.8, 0.95, 0.1)),
    ("adam_amsgrad", lambda: optimizers.Adam(0.05, epsilon=0.1, amsgrad=True),
     adam_reference(0.05, 0.9, 0.999, 0.1, amsgrad=True)),
    ("adamw", lambda: optimizers.AdamW(0.05, weight_decay=0.2, epsilon=0.1),
     adam_reference(0.05, 0.9, 0.999, 0.1, wd=0.2)),
    ("adamax", lambda: optimizers.Adamax(0.05, epsilon=0.1), adamax_reference(0.05, 0.9, 0.999, 0.1)),
    ("nadam", lambda: optimizers.Nadam(0.05), nadam_reference(0.05, 0.9, 0.999, 1e-7)),
    ("nadam_eps", lambda: optimizers.Nadam(0.05, beta_1=0.8, beta_2=0.95, epsilon=0.1),
     nadam_reference(0.05, 0.8, 0.95, 0.1)),
]


@pytest.mark.parametrize("make, reference", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_matches_reference(make, reference):
    ours = run_shenjing(make())
    theirs = run_reference(reference)
    assert max_difference(ours, theirs) < TOL


def scalar_steps(optimizer, grads, w0=1.0):
    """Values of a float64 scalar variable after each step with the given gradients."""
    v = Variable(np.array([w0]), dtype="float64")
    out = []
    for g in grads:
        optimizer.apply([np.array([g])], [v])
        out.append(float(v.data[0]))
    return out


def test_sgd_momentum_numbers():
    # m1 = -0.1*1 = -0.1, w1 = 0.9; m2 = 0.5*(-0.1) - 0.1*2 = -0.25, w2 = 0.65;
    # m3 = 0.5*(-0.25) - 0.1*(-1) = -0.025, w3 = 0.625
    assert scalar_steps(optimizers.SGD(0.1, momentum=0.5), [1.0, 2.0, -1.0]) == pytest.approx(
        [0.9, 0.65, 0.625], abs=1e-12)
    # Nesterov: w1 = 1 + 0.5*(-0.1) - 0.1 = 0.85; w2 = 0.85 + 0.5*(-0.25) - 0.2 = 0.525
    assert scalar_steps(optimizers.SGD(0.1, momentum=0.5, nesterov=True), [1.0, 2.0]) == pytest.approx(
        [0.85, 0.525], abs=1e-12)


def test_adam_numbers():
    # g = 1, 1: m1 = 0.1, v1 = 0.001, alpha1 = 0.1*sqrt(0.001)/0.1 = sqrt(0.001);
    # w1 = 1 - sqrt(0.001)*0.1/(sqrt(0.001) + 0.01)
    s = math.sqrt(0.001)
    w1 = 1 - s * 0.1 / (s + 0.01)
    # m2 = 0.19, v2 = 0.001999, alpha2 = 0.1*sqrt(1 - 0.999**2)/(1 - 0.81)
    alpha2 = 0.1 * math.sqrt(1 - 0.999 ** 2) / 0.19
    w2 = w1 - alpha2 * 0.19 / (math.sqrt(0.001999) + 0.01)
    assert scalar_steps(optimizers.Adam(0.1, epsilon=0.01), [1.0, 1.0]) == pytest.approx([w1, w2], abs=1e-12)
    assert w1 == pytest.approx(0.9240253073352042, abs=1e-12)


def test_rmsprop_numbers():
    # v1 = 0.1*4 = 0.4, w1 = 1 - 0.1*2/sqrt(0.4 + 0.1); v2 = 0.9*0.4 + 0.1*1 = 0.46, w2 = w1 - 0.1*1/sqrt(0.56)
    w1 = 1 - 0.2 / math.sqrt(0.5)
    w2 = w1 - 0.1 / math.sqrt(0.56)
    assert scalar_steps(optimizers.RMSprop(0.1, epsilon=0.1), [2.0, 1.0]) == pytest.approx([w1, w2], abs=1e-12)


def test_adadelta_numbers():
    # Eg1 = 0.05*4 = 0.2, d1 = -sqrt(0 + 0.01)/sqrt(0.21)*2, Ed1 = 0.05*d1**2, w1 = 1 + 1.0*d1
    d1 = -0.1 / math.sqrt(0.21) * 2
    ed1 = 0.05 * d1 * d1
    eg2 = 0.95 * 0.2 + 0.05 * 1.0
    d2 = -math.sqrt(ed1 + 0.01) / math.sqrt(eg2 + 0.01) * 1.0
    assert scalar_steps(optimizers.Adadelta(1.0, epsilon=0.01), [2.0, 1.0]) == pytest.approx(
        [1 + d1, 1 + d1 + d2], abs=1e-12)


def test_adagrad_numbers():
    # a1 = 0.1 + 4, w1 = 1 - 0.5*2/sqrt(4.1 + 1e-7); a2 = 4.1 + 1, w2 = w1 - 0.5/sqrt(5.1 + 1e-7)
    w1 = 1 - 1.0 / math.sqrt(4.1 + 1e-7)
    w2 = w1 - 0.5 / math.sqrt(5.1 + 1e-7)
    assert scalar_steps(optimizers.Adagrad(0.5), [2.0, 1.0]) == pytest.approx([w1, w2], abs=1e-12)


def test_nadam_numbers():
    # u1 = 0.9*(1 - 0.5*0.96), u2 = 0.9*(1 - 0.5*0.96**2); g = 1: m1 = 0.1, v1 = 0.001
    u1, u2 = 0.9 * (1 - 0.5 * 0.96), 0.9 * (1 - 0.5 * 0.96 ** 2)
    m_hat = u2 * 0.1 / (1 - u1 * u2) + (1 - u1) * 1.0 / (1 - u1)
    w1 = 1 - 0.1 * m_hat / (math.sqrt(0.001 / 0.001) + 1e-7)
    assert scalar_steps(optimizers.Nadam(0.1), [1.0]) == pytest.approx([w1], abs=1e-12)


def test_adamax_numbers():
    # m1 = 0.1*2 = 0.2, u1 = 2, w1 = 1 - 0.1*0.2/(0.1*(2 + 0.5)); m2 = 0.18 - 0.1 = 0.08, u2 = max(1.998, 1)
    w1 = 1 - 0.1 * 0.2 / (0.1 * 2.5)
    w2 = w1 - 0.1 * 0.08 / ((1 - 0.81) * (1.998 + 0.5))
    assert scalar_steps(optimizers.Adamax(0.1, epsilon=0.5), [2.0, -1.0]) == pytest.approx([w1, w2], abs=1e-12)
