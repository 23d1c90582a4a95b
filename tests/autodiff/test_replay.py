"""Recording op calls and replaying them (``autodiff.replay``)."""

import numpy as np
import pytest

from shenjing.autodiff import Tensor, Variable, nn, no_grad, ops
from shenjing.autodiff.replay import Plan, Unreplayable, recording


def _weights():
    rng = np.random.default_rng(0)
    return Variable(rng.standard_normal((3, 4))), Variable(rng.standard_normal(4))


def _f(x, w, b):
    h = nn.tanh(ops.linear(Tensor(x), w, b))
    parts = ops.concatenate([h, h * 2.0], axis=-1)
    return ops.sum(ops.square(parts), axis=None) / 3.0


def test_replay_equals_running_again_values_and_gradients():
    w, b = _weights()
    x0, x1 = np.ones((2, 3)), np.random.default_rng(1).standard_normal((5, 3))
    with recording() as rec:
        out = _f(x0, w, b)
    plan = Plan(rec, [x0], [out])
    plan.set_backward_root(out)
    plan.release()

    (replayed,) = plan.run([x1])
    plan.backward(replayed)
    grads = w.grad.copy(), b.grad.copy()
    w.grad = b.grad = None
    expected = _f(x1, w, b)
    expected.backward()
    assert replayed.data == expected.data
    assert np.array_equal(grads[0], w.grad) and np.array_equal(grads[1], b.grad)


def test_replay_reads_the_variables_current_values():
    w, b = _weights()
    x = np.ones((2, 3))
    with recording() as rec:
        out = _f(x, w, b)
    plan = Plan(rec, [x], [out])
    w.assign(w.data * 2)
    assert plan.run([x])[0].data == _f(x, w, b).data


def test_plan_refuses_what_it_cannot_replay():
    w, b = _weights()
    x = np.ones((2, 3))
    with recording() as rec:  # a constant that is not an input: it may hold data
        out = ops.add(ops.linear(Tensor(x), w, b), Tensor(np.ones(4)))
    with pytest.raises(Unreplayable, match="constant tensor"):
        Plan(rec, [x], [out])
    with recording() as rec:  # an array argument that is not an input
        out = ops.where(x[:, :1] > 0, ops.linear(Tensor(x), w, b), 0.0)
    with pytest.raises(Unreplayable, match="not an input"):
        Plan(rec, [x], [out])
    with recording() as rec:  # a tensor made outside the ops
        out = ops.mul(ops.linear(Tensor(x), w, b).detach(), 2.0)
    with pytest.raises(Unreplayable):
        Plan(rec, [x], [out])
    with recording() as rec:
        with no_grad():
            out = ops.linear(Tensor(x), w, b)
    with pytest.raises(Unreplayable, match="no_grad"):
        Plan(rec, [x], [out])


def test_ops_inside_ops_are_not_recorded_twice():
    w, b = _weights()
    x = np.ones((2, 3))
    with recording() as rec:
        nn.dense(Tensor(x), w, b, "relu")  # calls ops.linear itself
    assert [call[0].__name__ for call in rec.calls] == ["dense"]


def test_recordings_do_not_nest():
    with recording():
        with pytest.raises(RuntimeError, match="already"):
            with recording():
                pass


def test_a_cross_entropy_reusing_the_softmax_of_an_input_array_replays():
    """nn.softmax wraps an input array in a Tensor of its own; the loss that reuses its output (``probs``)
    meets a new wrapper of the new array on replay, and still takes the softmax's maximum and sum."""
    from shenjing import losses

    x0, y = np.random.default_rng(2).standard_normal((4, 5)), np.array([0, 3, 3, 1])
    x1 = np.random.default_rng(3).standard_normal((4, 5))
    with recording() as rec:
        out = ops.mean(losses.sparse_categorical_crossentropy(y, nn.softmax(x0)))
    plan = Plan(rec, [x0, y], [out])
    (replayed,) = plan.run([x1, y])
    shifted = x1 - x1.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    np.testing.assert_allclose(replayed.data, -log_p[np.arange(4), y].mean(), rtol=1e-12)

