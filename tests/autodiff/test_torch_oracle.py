"""PyTorch as an independent oracle: forward values and gradients on the same float64
inputs agree to 1e-10 (relative; a 1e-12 absolute floor for values near zero)."""

import numpy as np
import pytest

from shenjing.autodiff import Tensor, nn, ops

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL, ATOL = 1e-10, 1e-12


def compare(sj_fn, torch_fn, arrays, rtol=RTOL, atol=ATOL):
    """Run both, compare the outputs, then back-propagate the same random weighting and compare
    every input's gradient."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = sj_fn(*ours)
    ref = torch_fn(*theirs)
    assert out.shape == tuple(ref.shape)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")
    weights = np.random.default_rng(11).standard_normal(out.shape)
    ops.sum(out * weights).backward()
    (ref * torch.tensor(weights)).sum().backward()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")


R = np.random.default_rng(2024)


def n(*shape):
    return R.standard_normal(shape)


def pos(*shape):
    return R.uniform(0.3, 2.0, shape)


def nz(*shape):
    return R.choice([-1.0, 1.0], size=shape) * R.uniform(0.2, 2.0, shape)


CASES = [
    # elementwise, with broadcasting
    ("add", ops.add, torch.add, [n(3, 4), n(4)]),
    ("sub", ops.sub, torch.sub, [n(3, 1), n(1, 4)]),
    ("mul", ops.mul, torch.mul, [n(2, 3, 4), n(3, 1)]),
    ("div", ops.div, torch.div, [n(3, 4), nz(3, 1)]),
    ("pow", ops.pow, torch.pow, [pos(3, 4), n(4)]),
    ("pow-scalar", lambda a: a**3.0, lambda a: a**3.0, [n(3, 4)]),
    ("rpow", lambda b: 2.0**b, lambda b: 2.0**b, [n(5)]),
    ("maximum", ops.maximum, torch.maximum, [n(3, 4), n(3, 4) + 0.01]),
    ("minimum", ops.minimum, torch.minimum, [n(3, 4), n(4) + 0.01]),
    ("where", lambda a, b: ops.where(np.arange(12).reshape(3, 4) % 3 == 0, a, b),
     lambda a, b: torch.where(torch.tensor(np.arange(12).reshape(3, 4) % 3 == 0), a, b), [n(3, 4), n(4)]),
    ("exp", ops.exp, torch.exp, [n(3, 4)]),
    ("log", ops.log, torch.log, [pos(3, 4)]),
    ("log1p", ops.log1p, torch.log1p, [pos(3, 4)]),
    ("sqrt", ops.sqrt, torch.sqrt, [pos(3, 4)]),
    ("square", ops.square, torch.square, [n(3, 4)]),
    ("abs", ops.abs, torch.abs, [nz(3, 4)]),
    ("neg", ops.neg, torch.neg, [n(3, 4)]),
    ("clip", lambda a: ops.clip(a, -0.5, 0.5), lambda a: torch.clamp(a, -0.5, 0.5), [nz(3, 4) * 0.6]),
    # matmul
    ("matmul-2d", ops.matmul, torch.matmul, [n(3, 4), n(4, 5)]),
    ("matmul-batched-broadcast", ops.matmul, torch.matmul, [n(2, 1, 3, 4), n(5, 4, 2)]),
    ("matmul-vector-matrix", ops.matmul, torch.matmul, [n(4), n(2, 4, 5)]),
    ("matmul-matrix-vector", ops.matmul, torch.matmul, [n(2, 3, 4), n(4)]),
    ("matmul-dot", ops.matmul, torch.matmul, [n(4), n(4)]),
    ("linear", ops.linear, lambda x, w, b: x @ w + b, [n(2, 3, 4), n(4, 5), n(5)]),
    # reductions
    ("sum-all", ops.sum, torch.sum, [n(2, 3, 4)]),
    ("sum-axes-keepdims", lambda a: ops.sum(a, (0, 2), True), lambda a: torch.sum(a, (0, 2), keepdim=True),
     [n(2, 3, 4)]),
    ("mean-axis", lambda a: ops.mean(a, 1), lambda a: torch.mean(a, 1), [n(2, 3, 4)]),
    ("mean-all", ops.mean, torch.mean, [n(2, 3, 4)]),
    ("max-axis", lambda a: ops.max(a, -1), lambda a: torch.amax(a, -1), [n(2, 3, 4)]),
    ("max-all", ops.max, torch.amax, [n(2, 3, 4)]),
    ("min-axes-keepdims", lambda a: ops.min(a, (0, 1), True), lambda a: torch.amin(a, (0, 1), keepdim=True),
     [n(2, 3, 4)]),
    ("var-axis", lambda a: ops.var(a, 0), lambda a: torch.var(a, 0, correction=0), [n(5, 3)]),
    ("var-all", ops.var, lambda a: torch.var(a, correction=0), [n(5, 3)]),
    ("var-axes-keepdims", lambda a: ops.var(a, (0, 2), True),
     lambda a: torch.var(a, (0, 2), correction=0, keepdim=True), [n(2, 3, 4)]),
    ("logsumexp", lambda a: ops.logsumexp(a, 1), lambda a: torch.logsumexp(a, 1), [n(2, 3, 4)]),
    # softmax family
    ("softmax-last", nn.softmax, lambda a: torch.softmax(a, -1), [n(3, 5)]),
    ("softmax-axis0", lambda a: nn.softmax(a, axis=0), lambda a: torch.softmax(a, 0), [n(3, 5)]),
    ("log_softmax-last", nn.log_softmax, lambda a: torch.log_softmax(a, -1), [n(2, 3, 5)]),
    ("log_softmax-axis0", lambda a: nn.log_softmax(a, axis=0), lambda a: torch.log_softmax(a, 0), [n(3, 5)]),
    ("cross_entropy-soft-labels", nn.softmax_cross_entropy,
     lambda z, y: F.cross_entropy(z, y, reduction="none"), [n(4, 5), R.dirichlet(np.ones(5), 4)]),
    ("cross_entropy-sparse", lambda z: nn.softmax_cross_entropy(z, np.array([3, 0, 4, 4])),
     lambda z: F.cross_entropy(z, torch.tensor([3, 0, 4, 4]), reduction="none"), [n(4, 5)]),
    ("cross_entropy-sparse-axis1", lambda z: nn.softmax_cross_entropy(z, np.array([[0, 2, 1], [1, 1, 0]]), axis=1),
     lambda z: F.cross_entropy(z, torch.tensor([[0, 2, 1], [1, 1, 0]]), reduction="none"), [n(2, 3, 3)]),
    ("cross_entropy-soft-axis1", lambda z, y: nn.softmax_cross_entropy(z, y, axis=1),
     lambda z, y: F.cross_entropy(z, y, reduction="none"),
     [n(2, 4, 3), np.moveaxis(R.dirichlet(np.ones(4), (2, 3)), -1, 1)]),
    ("bce-with-logits", nn.sigmoid_binary_cross_entropy,
     lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="none"), [3 * n(4, 3), R.uniform(0, 1, (4, 3))]),
    # activations
    ("sigmoid", nn.sigmoid, torch.sigmoid, [3 * n(4, 5)]),
    ("tanh", nn.tanh, torch.tanh, [n(4, 5)]),
    ("relu", nn.relu, torch.relu, [nz(4, 5)]),
    ("relu6", lambda a: nn.relu(a, max_value=6.0), F.relu6, [4 * nz(4, 5) + 0.5]),
    ("leaky_relu", lambda a: nn.leaky_relu(a, 0.2), lambda a: F.leaky_relu(a, 0.2), [nz(4, 5)]),
    ("elu", nn.elu, F.elu, [nz(4, 5)]),
    ("elu-alpha", lambda a: nn.elu(a, alpha=0.7), lambda a: F.elu(a, alpha=0.7), [nz(4, 5)]),
    ("selu", nn.selu, F.selu, [nz(4, 5)]),
    ("softplus", nn.softplus, F.softplus, [3 * n(4, 5)]),
    ("softsign", nn.softsign, F.softsign, [nz(4, 5)]),
    # (F.hardsigmoid's float64 backward multiplies by the float32 constant 1.0f/6: compared with its formula)
    ("hard_sigmoid", nn.hard_sigmoid, lambda a: torch.clamp(a / 6 + 0.5, 0, 1), [3 * nz(4, 5)]),
    ("swish", nn.swish, F.silu, [2 * n(4, 5)]),
    ("gelu", nn.gelu, F.gelu, [2 * n(4, 5)]),
    ("gelu-tanh", lambda a: nn.gelu(a, approximate=True), lambda a: F.gelu(a, approximate="tanh"), [2 * n(4, 5)]),
    # indexing and shapes
    ("getitem-slices", lambda a: a[1:, ::-1], lambda a: a[1:].flip(1), [n(3, 4)]),
    ("getitem-int-array-repeats", lambda a: a[np.array([0, 2, 0, 0])], lambda a: a[torch.tensor([0, 2, 0, 0])],
     [n(3, 4)]),
    ("getitem-bool", lambda a: a[np.array([[True, False], [True, True]])],
     lambda a: a[torch.tensor([[True, False], [True, True]])], [n(2, 2)]),
    ("getitem-ellipsis-none", lambda a: a[..., None, 1], lambda a: a[..., None, 1], [n(2, 3, 4)]),
    ("take", lambda a: ops.take(a, np.array([[1, 1], [0, 2]])),
     lambda a: F.embedding(torch.tensor([[1, 1], [0, 2]]), a), [n(3, 4)]),
    ("concatenate", lambda a, b: ops.concatenate([a, b, a], axis=1), lambda a, b: torch.cat([a, b, a], 1),
     [n(2, 3), n(2, 2)]),
    ("stack", lambda a, b: ops.stack([a, b], axis=-1), lambda a, b: torch.stack([a, b], -1), [n(2, 3), n(2, 3)]),
    ("split", lambda a: ops.split(a, 2, axis=0)[1] * 3, lambda a: torch.split(a, 2, 0)[1] * 3, [n(4, 3)]),
    ("pad", lambda a: ops.pad(a, ((1, 0), (2, 3))), lambda a: F.pad(a, (2, 3, 1, 0)), [n(2, 3)]),
    ("transpose", lambda a: ops.transpose(a, (2, 0, 1)), lambda a: a.permute(2, 0, 1), [n(2, 3, 4)]),
    ("reshape", lambda a: ops.reshape(a, (4, -1)), lambda a: a.reshape(4, -1), [n(2, 3, 4)]),
    ("broadcast_to", lambda a: ops.broadcast_to(a, (2, 3, 4)), lambda a: a.expand(2, 3, 4), [n(3, 1)]),
    # a composite network
    ("mlp", lambda x, w1, b1, w2: ops.mean(nn.softmax_cross_entropy(ops.linear(nn.gelu(ops.linear(x, w1, b1)), w2),
                                                                   np.array([0, 2, 1, 1]))),
     lambda x, w1, b1, w2: F.cross_entropy(F.gelu(x @ w1 + b1) @ w2, torch.tensor([0, 2, 1, 1])),
     [n(4, 3), n(3, 6), n(6), n(6, 3)]),
]


@pytest.mark.parametrize("sj_fn, torch_fn, arrays", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_matches_torch(sj_fn, torch_fn, arrays):
    compare(sj_fn, torch_fn, arrays)


def test_gelu_tails_match_torch():
    # deep in the negative tail both implementations lose relative accuracy in 1 + erf(x/√2);
    # the absolute agreement stays at rounding level
    x = np.linspace(-8, 8, 161)
    np.testing.assert_allclose(nn.gelu(Tensor(x)).data, F.gelu(torch.tensor(x)).numpy(), rtol=RTOL, atol=1e-14)


def test_hard_sigmoid_forward_matches_torch():
    x = np.linspace(-4, 4, 81)
    np.testing.assert_allclose(nn.hard_sigmoid(Tensor(x)).data, F.hardsigmoid(torch.tensor(x)).numpy(), rtol=RTOL)
