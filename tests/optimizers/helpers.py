"""A small seeded float64 problem shared by the optimizer tests.

Two variables (shapes (3,) and (2, 2)); the gradient of each is a fixed
nonlinear function of the current values, computed in NumPy, so that a
trajectory depends on every detail of the rule and gradients never vanish.
"""

import numpy as np

from shenjing.autodiff import Variable

SHAPES = [(3,), (2, 2)]
STEPS = 20


def initial_values(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s) for s in SHAPES]


def _targets():
    rng = np.random.default_rng(99)
    return [rng.normal(size=s) for s in SHAPES]


TARGETS = _targets()


def gradient(values):
    """d/dw of sum(2 * (w - target)**2 + 0.25 * w**4 + 0.5 * sin(3 * w)) per variable."""
    return [4.0 * (w - t) + w ** 3 + 1.5 * np.cos(3.0 * w) for w, t in zip(values, TARGETS)]


def make_variables(dtype="float64", seed=0):
    return [Variable(v.astype(dtype), name=f"w{i}", dtype=dtype) for i, v in enumerate(initial_values(seed))]


def run_shenjing(optimizer, steps=STEPS, dtype="float64", seed=0):
    """The trajectory (list, per step, of the list of variable values) of ``optimizer``."""
    variables = make_variables(dtype, seed)
    history = []
    for _ in range(steps):
        grads = gradient([v.data for v in variables])
        optimizer.apply_gradients(zip(grads, variables))
        history.append([v.data.copy() for v in variables])
    return history


def run_torch(make_optimizer, steps=STEPS, seed=0):
    """The same trajectory with a torch optimizer (``make_optimizer(params)``), in float64."""
    import torch

    # float64 default: torch then keeps its scalar state (step counts, NAdam's mu_product) in float64 too
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in initial_values(seed)]
        opt = make_optimizer(params)
        history = []
        for _ in range(steps):
            grads = gradient([p.detach().numpy() for p in params])
            for p, g in zip(params, grads):
                p.grad = torch.from_numpy(np.array(g))
            opt.step()
            history.append([p.detach().numpy().copy() for p in params])
    finally:
        torch.set_default_dtype(previous)
    return history


def run_reference(rule, steps=STEPS, seed=0):
    """The trajectory of a plain reference ``rule(state, w, g, t) -> new w`` (``state`` a dict per
    variable, ``t`` the 1-based step)."""
    values = [v.copy() for v in initial_values(seed)]
    states = [{} for _ in values]
    history = []
    for t in range(1, steps + 1):
        grads = gradient(values)
        values = [rule(s, w, g, t) for s, w, g in zip(states, values, grads)]
        history.append([w.copy() for w in values])
    return history


def max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for step_a, step_b in zip(a, b) for x, y in zip(step_a, step_b))
