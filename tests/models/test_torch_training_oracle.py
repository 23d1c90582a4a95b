"""The same network, the same initial weights, the same batches: shenjing and PyTorch must train
to the same numbers.

Everything runs in float64 (the ``float64`` fixture of ``tests/conftest.py``). Each test builds a
model in shenjing, copies its initial weights into an equivalent ``torch.nn`` model (a Dense
kernel is ``(in, out)``, a ``torch.nn.Linear`` weight ``(out, in)``: one is the transpose of the
other), trains both on the same fixed mini-batches (``shuffle=False``) and compares the loss of
every step and the final weights to 1e-9 relative. Where Keras and torch write an optimizer
differently (see the table in ``shenjing.optimizers``), the test maps the hyper-parameters so that
the two rules are the same function and says why.
"""

import numpy as np
import pytest

from shenjing import callbacks, losses, optimizers
from shenjing.autodiff import Tensor
from shenjing.layers import Add, Concatenate, Dense, Input
from shenjing.models import Model, Sequential
from shenjing.utils import set_random_seed, to_categorical

torch = pytest.importorskip("torch")

RTOL = 1e-9
ATOL = 1e-12
BATCH = 8
SAMPLES = 40  # 5 batches per epoch
EPOCHS = 2  # 10 steps in all


# -------------------------------------------------------------------------- models


def _tanh_softmax():
    """4-8-3, tanh then softmax, categorical cross-entropy on one-hot targets."""
    model = Sequential([Dense(8, input_dim=4, activation="tanh"), Dense(3, activation="softmax")])
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()

    def torch_loss(logits, y):
        return -(y * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 4))
    y = to_categorical((x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 0.5), 3)
    return model, "categorical_crossentropy", net, torch_loss, x, y


def _relu_sigmoid():
    """3-16-16-1, relu, relu then sigmoid, binary cross-entropy."""
    model = Sequential([Dense(16, input_dim=3, activation="relu"), Dense(16, activation="relu"),
                        Dense(1, activation="sigmoid")])
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                              torch.nn.Linear(16, 1)).double()

    def torch_loss(logits, y):
        return torch.nn.functional.binary_cross_entropy(torch.sigmoid(logits), y)

    rng = np.random.default_rng(1)
    x = rng.normal(size=(SAMPLES, 3))
    y = (x[:, :1] * x[:, 1:2] - x[:, 2:] > 0).astype("float64")
    return model, "binary_crossentropy", net, torch_loss, x, y


NETWORKS = {"4-8-3 tanh/softmax": _tanh_softmax, "3-16-16-1 relu/sigmoid": _relu_sigmoid}


def _copy_into_torch(model, net):
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    assert len(linears) == len(dense)
    with torch.no_grad():
        for layer, linear in zip(dense, linears):
            kernel, bias = layer.get_weights()
            assert kernel.dtype == np.float64
            linear.weight.copy_(torch.from_numpy(kernel.T.copy()))
            linear.bias.copy_(torch.from_numpy(bias))


def _torch_weights(net):
    out = []
    for m in net:
        if isinstance(m, torch.nn.Linear):
            out += [m.weight.detach().numpy().T, m.bias.detach().numpy()]
    return out


# ----------------------------------------------------------------------- optimizers
#
# name: (shenjing optimizer, torch optimizer factory, hook run before each torch step with the 1-based step t)

ADAM_EPS = 1e-7
ADAM_BETA_2 = 0.99


def _adam_eps_for_step(opt, t):
    # Keras: w -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps);
    # torch: w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps').
    # Multiplying torch's fraction by sqrt(1-b2^t)/sqrt(1-b2^t): the two agree iff eps' = eps/sqrt(1-b2^t).
    for group in opt.param_groups:
        group["eps"] = ADAM_EPS / np.sqrt(1.0 - ADAM_BETA_2 ** t)


OPTIMIZERS = {
    # w -= lr*g in both
    "sgd": (lambda: optimizers.SGD(learning_rate=0.1),
            lambda p: torch.optim.SGD(p, lr=0.1), None),
    # Keras m = mu*m - lr*g, w += mu*m - lr*g; torch b = mu*b + g, w -= lr*(g + mu*b): with a constant lr
    # m = -lr*b at every step, so the two are the same rule
    "sgd momentum nesterov": (lambda: optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
                              lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.0, nesterov=True),
                              None),
    # Keras's epsilon (1e-7) with torch's eps moved to where it gives the same step (see _adam_eps_for_step)
    "adam": (lambda: optimizers.Adam(learning_rate=0.02, beta_1=0.9, beta_2=ADAM_BETA_2, epsilon=ADAM_EPS),
             lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.9, ADAM_BETA_2), eps=ADAM_EPS), _adam_eps_for_step),
    # Keras lr*g/sqrt(v + eps), torch lr*g/(sqrt(v) + eps): the same with eps = 0 (the tanh network
    # never has an exactly zero gradient, so v > 0)
    "rmsprop": (lambda: optimizers.RMSprop(learning_rate=0.01, rho=0.9, epsilon=0.0),
                lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0), None),
}

CASES = [(net, opt) for net in NETWORKS for opt in OPTIMIZERS
         if not (opt == "rmsprop" and "relu" in net)]  # relu units may have a zero gradient: 0/0 with eps = 0


def _per_step(running_means):
    """Per-batch losses from the running means the training loop logs (equal batches, reset each epoch)."""
    out = []
    per_epoch = SAMPLES // BATCH
    for epoch in range(len(running_means) // per_epoch):
        means = running_means[epoch * per_epoch:(epoch + 1) * per_epoch]
        previous = 0.0
        for k, mean in enumerate(means):
            out.append((k + 1) * mean - k * previous)
            previous = mean
    return out


@pytest.mark.parametrize("network, optimizer", CASES)
def test_fit_matches_torch_step_by_step(float64, network, optimizer):
    set_random_seed(5)
    model, loss, net, torch_loss, x, y = NETWORKS[network]()
    make_ours, make_theirs, before_step = OPTIMIZERS[optimizer]
    model.compile(optimizer=make_ours(), loss=loss)
    _copy_into_torch(model, net)
    initial = model.get_weights()

    running = []
    record = callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: running.append(logs["loss"]))
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[record])
    ours = _per_step(running)

    opt = make_theirs(net.parameters())
    theirs = []
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(EPOCHS):
        for start in range(0, SAMPLES, BATCH):
            opt.zero_grad()
            value = torch_loss(net(xt[start:start + BATCH]), yt[start:start + BATCH])
            value.backward()
            if before_step is not None:
                before_step(opt, len(theirs) + 1)
            opt.step()
            theirs.append(value.item())

    assert model.optimizer.iterations == len(theirs) == EPOCHS * SAMPLES // BATCH
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
    epoch_means = [np.mean(theirs[i:i + SAMPLES // BATCH]) for i in range(0, len(theirs), SAMPLES // BATCH)]
    np.testing.assert_allclose(history.history["loss"], epoch_means, rtol=RTOL)
    final = model.get_weights()
    for a, b in zip(final, _torch_weights(net)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    # the weights moved far beyond the tolerance, so the comparison means something
    assert max(np.abs(a - b).max() for a, b in zip(final, initial)) > 1e-2
    # and the trained models agree on new data
    probe = np.random.default_rng(9).normal(size=(6, x.shape[1]))
    with torch.no_grad():
        logits = net(torch.from_numpy(probe))
        expected = torch.softmax(logits, 1) if "softmax" in network else torch.sigmoid(logits)
    np.testing.assert_allclose(model.predict(probe), expected.numpy(), rtol=RTOL, atol=ATOL)


def test_train_on_batch_returns_the_loss_before_the_update_like_torch(float64):
    set_random_seed(6)
    model, loss, net, torch_loss, x, y = _tanh_softmax()
    model.compile(optimizer=optimizers.SGD(learning_rate=0.3, momentum=0.5), loss=loss)
    _copy_into_torch(model, net)
    opt = torch.optim.SGD(net.parameters(), lr=0.3, momentum=0.5)
    for start in (0, 8, 16, 8, 0):
        ours = model.train_on_batch(x[start:start + 8], y[start:start + 8])
        opt.zero_grad()
        value = torch_loss(net(torch.from_numpy(x[start:start + 8])), torch.from_numpy(y[start:start + 8]))
        value.backward()
        opt.step()
        assert ours == pytest.approx(value.item(), rel=RTOL)
    for a, b in zip(model.get_weights(), _torch_weights(net)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


# ------------------------------------------------- a functional graph: Add and Concatenate


def test_residual_add_and_concatenate_forward_and_gradients_match_torch(float64):
    set_random_seed(8)
    a = Input(shape=(4,), name="a")
    b = Input(shape=(3,), name="b")
    h = Dense(6, activation="tanh", name="h")(a)
    residual = Add(name="residual")([h, Dense(6, activation="tanh", name="inner")(h)])
    joined = Concatenate(name="joined")([residual, b])
    out = Dense(2, activation="softmax", name="out")(joined)
    model = Model([a, b], out)

    weights = {name: [torch.tensor(w, requires_grad=True) for w in model.get_layer(name).get_weights()]
               for name in ("h", "inner", "out")}

    def torch_forward(ta, tb):
        th = torch.tanh(ta @ weights["h"][0] + weights["h"][1])
        tr = th + torch.tanh(th @ weights["inner"][0] + weights["inner"][1])
        return torch.cat([tr, tb], dim=1) @ weights["out"][0] + weights["out"][1]

    rng = np.random.default_rng(3)
    xa, xb = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    y = to_categorical(rng.integers(0, 2, 5), 2)

    # forward
    ta = torch.tensor(xa, requires_grad=True)
    tb = torch.tensor(xb, requires_grad=True)
    logits = torch_forward(ta, tb)
    np.testing.assert_allclose(model.predict([xa, xb]), torch.softmax(logits, 1).detach().numpy(), rtol=RTOL)

    # backward through the categorical cross-entropy, to the weights and to both inputs
    sa, sb = Tensor(xa, requires_grad=True), Tensor(xb, requires_grad=True)
    value = losses.CategoricalCrossentropy()(y, model([sa, sb]))
    value.backward()
    expected = -(torch.from_numpy(y) * torch.log_softmax(logits, 1)).sum(1).mean()
    expected.backward()
    assert float(value.data) == pytest.approx(expected.item(), rel=RTOL)
    for name, tensors in weights.items():
        layer = model.get_layer(name)
        np.testing.assert_allclose(layer.kernel.grad, tensors[0].grad.numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(layer.bias.grad, tensors[1].grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(sa.grad, ta.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(sb.grad, tb.grad.numpy(), rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------ loss values on the same predictions


def _probabilities(rng, n=6, k=4):
    logits = rng.normal(size=(n, k)) * 2
    return logits, np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def test_categorical_crossentropy_values_match_torch(float64):
    rng = np.random.default_rng(0)
    logits, p = _probabilities(rng)
    labels = rng.integers(0, 4, 6)
    y = to_categorical(labels, 4)
    tl, tp, ty = torch.from_numpy(logits), torch.from_numpy(p), torch.from_numpy(y)
    F = torch.nn.functional
    per_sample = -(ty * torch.log(tp)).sum(1).numpy()
    # probabilities (the Keras path: renormalise, clip to [eps, 1 - eps], -sum y log p)
    np.testing.assert_allclose(losses.categorical_crossentropy(y, p).data, per_sample, rtol=RTOL)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels, p).data, per_sample, rtol=RTOL)
    # logits
    np.testing.assert_allclose(losses.categorical_crossentropy(y, logits, from_logits=True).data,
                               F.cross_entropy(tl, ty, reduction="none").numpy(), rtol=RTOL)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels, logits, from_logits=True).data,
                               F.cross_entropy(tl, torch.from_numpy(labels), reduction="none").numpy(), rtol=RTOL)
    # label smoothing is the same formula in both: y(1 - s) + s/k
    ours = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)(y, logits)
    assert float(ours.data) == pytest.approx(F.cross_entropy(tl, torch.from_numpy(labels),
                                                             label_smoothing=0.2).item(), rel=RTOL)
    # the loss objects reduce by the mean over the batch, as torch's default
    assert float(losses.CategoricalCrossentropy()(y, p).data) == pytest.approx(per_sample.mean(), rel=RTOL)
    assert float(losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits).data) == pytest.approx(
        F.cross_entropy(tl, torch.from_numpy(labels)).item(), rel=RTOL)


def test_binary_crossentropy_values_match_torch(float64):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(7, 3)) * 2
    p = 1.0 / (1.0 + np.exp(-logits))
    y = (rng.random(size=(7, 3)) > 0.5).astype("float64")
    F = torch.nn.functional
    tl, tp, ty = torch.from_numpy(logits), torch.from_numpy(p), torch.from_numpy(y)
    # Keras's binary_crossentropy averages over the last axis: one value per sample
    np.testing.assert_allclose(losses.binary_crossentropy(y, p).data,
                               F.binary_cross_entropy(tp, ty, reduction="none").mean(1).numpy(), rtol=RTOL)
    np.testing.assert_allclose(losses.binary_crossentropy(y, logits, from_logits=True).data,
                               F.binary_cross_entropy_with_logits(tl, ty, reduction="none").mean(1).numpy(),
                               rtol=RTOL)
    assert float(losses.BinaryCrossentropy()(y, p).data) == pytest.approx(F.binary_cross_entropy(tp, ty).item(),
                                                                          rel=RTOL)
    # where they differ by design: a probability of exactly 0 or 1 is clipped to [1e-7, 1 - 1e-7] (Keras),
    # where torch clamps the log at -100
    edge = np.array([[0.0, 1.0]])
    wrong = np.array([[1.0, 0.0]])
    clipped = float(losses.binary_crossentropy(wrong, edge).data[0])
    assert clipped == pytest.approx(-np.log(1e-7), rel=1e-6)
    assert F.binary_cross_entropy(torch.from_numpy(edge), torch.from_numpy(wrong)).item() == pytest.approx(100.0)
