"""The workloads: the same seeded model, data, batch size and optimizer in shenjing and in PyTorch.

Each ``run_<workload>(framework, cfg)`` builds the model (torch copies shenjing's initial weights),
checks that both compute the same function (the loss on a fixed batch in inference mode, before any
training), times the workload and returns ``{"metrics": {...}, "details": {...}}``.

Timing: warm-up calls are not timed; one timed call picks how many steps (batches, calls) make a
repeat of about ``cfg.target_s``; the value reported is the median over ``cfg.repeats`` repeats.
Training goes through shenjing's real path (``fit``; ``train_on_batch`` for the 4-sample XOR step)
and through torch's usual loop (shuffle, zero_grad, forward, loss, backward, step, ``loss.item()``).
shenjing is compiled without metrics (loss only) so that both do the same work.
"""

from __future__ import annotations

import numpy as np
from common import batches_for, measure, time_runs

SEED = 1234

# (workload, metric key, description, unit, better)
METRICS = [
    ("W1", "train_step_us", "XOR 2-10-1 training step, batch 4 (train_on_batch)", "µs/step", "lower"),
    ("W2", "train_sps", "MLP 784-512-512-10 training, batch 128 (fit, Adam)", "samples/s", "higher"),
    ("W2", "infer_sps", "MLP inference, batch 1000 (predict)", "samples/s", "higher"),
    ("W3", "train_sps", "seed CNN training, batch 100 (fit, SGD nesterov)", "samples/s", "higher"),
    ("W4", "train_sps", "Keras mnist_cnn training, batch 128 (fit, Adam)", "samples/s", "higher"),
    ("W4", "infer_sps", "mnist_cnn inference, batch 1000 (predict)", "samples/s", "higher"),
    ("W4", "latency_us", "mnist_cnn predict of 1 sample", "µs", "lower"),
    ("W5", "train_tps", "char LSTM 256 training, batch 64 × 64 steps (fit, Adam)", "tokens/s", "higher"),
    ("P0", "gflops", "float32 matmul 2048³ (numpy BLAS vs torch)", "GFLOP/s", "higher"),
]

WORKLOADS = ["W1", "W2", "W3", "W4", "W5", "P0"]


class Config:
    def __init__(self, repeats=5, target_s=1.0, warmup=3, quick=False):
        self.repeats, self.target_s, self.warmup, self.quick = repeats, target_s, warmup, quick


# ------------------------------------------------------------------------------------ data

def mnist_like(n: int, seed: int = SEED):
    """n MNIST-shaped samples: images (n, 28, 28, 1) in [0, 1), float32, and labels 0..9.
    Drawn in sample order, so a smaller n gives a prefix of a larger one."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    labels = np.random.default_rng(seed + 1).integers(0, 10, n)
    return x, labels


def one_hot(labels, classes=10):
    out = np.zeros((len(labels), classes), np.float32)
    out[np.arange(len(labels)), labels] = 1
    return out


def char_data(n: int, seq: int = 64, vocab: int = 65, seed: int = SEED):
    x = np.random.default_rng(seed).integers(0, vocab, (n, seq))
    y = np.random.default_rng(seed + 1).integers(0, vocab, (n, seq))
    return x, y


# ------------------------------------------------------------------------------------ models

def sj_model(workload: str):
    """The seeded, compiled shenjing model of a workload."""
    from shenjing.layers import LSTM, Activation, Conv2D, Dense, Dropout, Embedding, Flatten, MaxPooling2D
    from shenjing.models import Sequential
    from shenjing.optimizers import SGD, Adam
    from shenjing.utils import set_random_seed

    set_random_seed(SEED)
    if workload == "W1":
        model = Sequential([Dense(10, input_dim=2), Activation("tanh"), Dense(1), Activation("sigmoid")])
        model.compile(loss="binary_crossentropy", optimizer=SGD(learning_rate=0.1))
    elif workload == "W2":
        model = Sequential([Dense(512, activation="relu", input_shape=(784,)), Dropout(0.2),
                            Dense(512, activation="relu"), Dropout(0.2), Dense(10, activation="softmax")])
        model.compile(loss="categorical_crossentropy", optimizer=Adam())
    elif workload == "W3":
        model = Sequential([Conv2D(4, (5, 5), activation="tanh", input_shape=(28, 28, 1)),
                            Conv2D(8, (3, 3), activation="tanh"), MaxPooling2D((2, 2)),
                            Conv2D(16, (3, 3), activation="relu"), MaxPooling2D((2, 2)), Flatten(),
                            Dense(128, activation="tanh"), Dense(10, activation="softmax")])
        model.compile(loss="categorical_crossentropy",
                      optimizer=SGD(learning_rate=0.05, momentum=0.9, nesterov=True))
    elif workload == "W4":
        model = Sequential([Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
                            Conv2D(64, (3, 3), activation="relu"), MaxPooling2D((2, 2)), Dropout(0.25),
                            Flatten(), Dense(128, activation="relu"), Dropout(0.5), Dense(10, activation="softmax")])
        model.compile(loss="categorical_crossentropy", optimizer=Adam())
    elif workload == "W5":
        model = Sequential([Embedding(65, 64, input_shape=(64,)), LSTM(256, return_sequences=True),
                            Dense(65, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer=Adam())
    else:
        raise ValueError(workload)
    return model


def torch_model(workload: str, sj=None):
    """The torch model of a workload (logits out: the loss applies the softmax / sigmoid, torch's usual
    form), its optimizer (Keras's hyper-parameters: Adam epsilon 1e-7) and loss; with ``sj`` (a shenjing
    model), its initial weights are copied in."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    if workload == "W1":
        model = nn.Sequential(nn.Linear(2, 10), nn.Tanh(), nn.Linear(10, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = nn.BCEWithLogitsLoss()
    elif workload == "W2":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 512), nn.ReLU(),
                              nn.Dropout(0.2), nn.Linear(512, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        loss = nn.CrossEntropyLoss()
    elif workload == "W3":
        model = nn.Sequential(nn.Conv2d(1, 4, 5), nn.Tanh(), nn.Conv2d(4, 8, 3), nn.Tanh(), nn.MaxPool2d(2),
                              nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 128),
                              nn.Tanh(), nn.Linear(128, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
        loss = nn.CrossEntropyLoss()
    elif workload == "W4":
        model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
                              nn.Linear(128, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        loss = nn.CrossEntropyLoss()
    elif workload == "W5":
        model = CharLSTM()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        ce = nn.CrossEntropyLoss()
        loss = lambda logits, y: ce(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))  # noqa: E731
    else:
        raise ValueError(workload)
    if sj is not None:
        copy_weights(workload, sj, model)  # in place: the optimizer holds the same parameters
    return model, opt, loss


def _char_lstm_class():
    from torch import nn

    class _CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(65, 64)
            self.lstm = nn.LSTM(64, 256, batch_first=True)
            self.dense = nn.Linear(256, 65)

        def forward(self, x):
            h, _ = self.lstm(self.embedding(x))
            return self.dense(h)

    return _CharLSTM


def CharLSTM():
    return _char_lstm_class()()


def copy_weights(workload: str, sj, model) -> None:
    """shenjing's initial weights into the torch model (layouts: Dense (in, out) = Linear.weightᵀ;
    Conv2D (kh, kw, in, out) -> (out, in, kh, kw); LSTM gates i, f, c, o = torch's i, f, g, o,
    weight_ih = kernelᵀ, weight_hh = recurrent_kernelᵀ, bias_ih = bias, bias_hh = 0; the first Dense
    after a channels-last Flatten has its rows reordered from (h, w, c) to torch's (c, h, w))."""
    import torch

    weights = [np.asarray(w) for w in sj.get_weights()]
    params = {}
    if workload == "W5":
        emb, kernel, recurrent, bias, dk, db = weights
        params = {"embedding.weight": emb, "lstm.weight_ih_l0": kernel.T, "lstm.weight_hh_l0": recurrent.T,
                  "lstm.bias_ih_l0": bias, "lstm.bias_hh_l0": np.zeros_like(bias),
                  "dense.weight": dk.T, "dense.bias": db}
    else:
        layers = [m for m in model if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        pairs = list(zip(weights[0::2], weights[1::2]))
        assert len(layers) == len(pairs), (workload, len(layers), len(pairs))
        flatten_rows = {"W3": (4, 4, 16), "W4": (12, 12, 64)}.get(workload)
        first_dense = True
        for layer, (k, b) in zip(layers, pairs):
            name = str(list(model).index(layer))
            if isinstance(layer, torch.nn.Conv2d):
                k = k.transpose(3, 2, 0, 1)
            else:
                if flatten_rows is not None and first_dense:
                    h, w, c = flatten_rows
                    k = k.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
                first_dense = False
                k = k.T
            params[name + ".weight"], params[name + ".bias"] = k, b
    state = model.state_dict()
    assert set(params) == set(state), (sorted(params), sorted(state))
    with torch.no_grad():
        for name, value in params.items():
            assert tuple(state[name].shape) == value.shape, (name, state[name].shape, value.shape)
            state[name].copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))


# ------------------------------------------------------------------------------------ data per workload

def workload_data(workload: str, n: int, framework: str):
    """(x, y) for n samples in the framework's form: shenjing takes NHWC images and one-hot targets,
    torch NCHW tensors and class indices."""
    if workload == "W1":
        x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
        y = np.array([[0], [1], [1], [0]], np.float32)
    elif workload == "W5":
        x, y = char_data(n)
    else:
        x, labels = mnist_like(n)
        if workload == "W2":
            x = x.reshape(n, 784)
        y = one_hot(labels) if framework == "shenjing" else labels
        if framework == "torch" and workload in ("W3", "W4"):
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if framework == "torch":
        import torch
        x, y = torch.from_numpy(x), torch.from_numpy(y)
    return x, y


BATCH = {"W1": 4, "W2": 128, "W3": 100, "W4": 128, "W5": 64}
UNITS = {"W5": 64}  # tokens per sample


def step_result(measured, details) -> dict:
    """W1's result from ``measure``'s (seconds per call, per-repeat seconds, calls per repeat)."""
    sec, per, n = measured
    details["train_step_us"] = {"calls per repeat": n, "repeat µs": [p * 1e6 for p in per]}
    return {"metrics": {"train_step_us": sec * 1e6}, "details": details}


# ------------------------------------------------------------------------------------ shenjing

def sj_loss(model, x, y) -> float:
    out = model.evaluate(x, y, batch_size=len(x), verbose=0)
    return float(out[0] if isinstance(out, (list, tuple)) else out)


def sj_train(workload, model, cfg):
    """Training throughput through ``fit`` (one epoch over n batches, shuffled, verbose=0)."""
    b = BATCH[workload]
    x, y = workload_data(workload, 4 * b, "shenjing")
    for _ in range(cfg.warmup):
        model.train_on_batch(x[:b], y[:b])
    once, _ = time_runs(lambda: model.fit(x, y, batch_size=b, epochs=1, verbose=0, shuffle=True), 1)
    n = batches_for(once / 4, cfg.target_s)
    x, y = workload_data(workload, n * b, "shenjing")
    med, times = time_runs(lambda: model.fit(x, y, batch_size=b, epochs=1, verbose=0, shuffle=True), cfg.repeats)
    return n * b * UNITS.get(workload, 1) / med, {"batches per repeat": n, "repeat seconds": times}


def sj_infer(workload, model, cfg, batch=1000):
    x, _ = workload_data(workload, batch, "shenjing")
    for _ in range(max(1, cfg.warmup - 1)):
        model.predict(x, batch_size=batch)
    once, _ = time_runs(lambda: model.predict(x, batch_size=batch), 1)
    n = batches_for(once, cfg.target_s, lo=1, hi=50)
    x, _ = workload_data(workload, n * batch, "shenjing")
    med, times = time_runs(lambda: model.predict(x, batch_size=batch), cfg.repeats)
    return n * batch / med, {"batches per repeat": n, "repeat seconds": times}


def run_shenjing(workload: str, cfg: Config) -> dict:
    if workload == "P0":
        return matmul("shenjing", cfg)
    from shenjing.autodiff import no_grad

    model = sj_model(workload)
    b = BATCH[workload]
    xc, yc = workload_data(workload, b, "shenjing")
    details = {"initial loss": sj_loss(model, xc, yc)}
    metrics = {}
    if workload == "W1":
        model.train_on_batch(xc, yc)
        return step_result(measure(lambda: model.train_on_batch(xc, yc), cfg.repeats, cfg.target_s, cfg.warmup),
                           details)
    if workload in ("W2", "W4"):
        metrics["infer_sps"], details["infer_sps"] = sj_infer(workload, model, cfg)
    if workload == "W4":
        x1 = xc[:1]

        def call():
            with no_grad():
                return model(x1).data

        a, per_a, n_a = measure(lambda: model.predict_on_batch(x1), cfg.repeats, cfg.target_s / 2, cfg.warmup)
        c, per_c, n_c = measure(call, cfg.repeats, cfg.target_s / 2, cfg.warmup)
        metrics["latency_us"] = min(a, c) * 1e6
        details["latency_us"] = {"predict_on_batch µs": a * 1e6, "model(x) under no_grad µs": c * 1e6,
                                 "reported": "predict_on_batch" if a <= c else "model(x) under no_grad",
                                 "calls per repeat": [n_a, n_c],
                                 "repeat µs": [p * 1e6 for p in (per_a if a <= c else per_c)]}
    key = "train_tps" if workload == "W5" else "train_sps"
    metrics[key], details[key] = sj_train(workload, model, cfg)
    return {"metrics": metrics, "details": details}


# ------------------------------------------------------------------------------------ torch

def torch_loss(model, loss, x, y) -> float:
    import torch
    model.eval()
    with torch.no_grad():
        return float(loss(model(x), y))


def torch_epoch(model, opt, loss, x, y, b):
    import torch
    model.train()
    perm = torch.randperm(len(x))
    total = 0.0
    for i in range(0, len(x), b):
        idx = perm[i:i + b]
        xb, yb = x[idx], y[idx]
        opt.zero_grad()
        value = loss(model(xb), yb)
        value.backward()
        opt.step()
        total += value.item()
    return total


def torch_train(workload, model, opt, loss, cfg):
    b = BATCH[workload]
    x, y = workload_data(workload, 4 * b, "torch")
    for _ in range(cfg.warmup):
        torch_epoch(model, opt, loss, x[:b], y[:b], b)
    once, _ = time_runs(lambda: torch_epoch(model, opt, loss, x, y, b), 1)
    n = batches_for(once / 4, cfg.target_s)
    x, y = workload_data(workload, n * b, "torch")
    med, times = time_runs(lambda: torch_epoch(model, opt, loss, x, y, b), cfg.repeats)
    return n * b * UNITS.get(workload, 1) / med, {"batches per repeat": n, "repeat seconds": times}


def torch_predict(model, x, batch):
    """Keras's predict: eval mode, no graph, batches through the model, probabilities concatenated."""
    import torch
    model.eval()
    with torch.no_grad():
        outs = [torch.softmax(model(x[i:i + batch]), dim=-1) for i in range(0, len(x), batch)]
        return torch.cat(outs).numpy()


def torch_infer(workload, model, cfg, batch=1000):
    x, _ = workload_data(workload, batch, "torch")
    for _ in range(max(1, cfg.warmup - 1)):
        torch_predict(model, x, batch)
    once, _ = time_runs(lambda: torch_predict(model, x, batch), 1)
    n = batches_for(once, cfg.target_s, lo=1, hi=50)
    x, _ = workload_data(workload, n * batch, "torch")
    med, times = time_runs(lambda: torch_predict(model, x, batch), cfg.repeats)
    return n * batch / med, {"batches per repeat": n, "repeat seconds": times}


def run_torch(workload: str, cfg: Config) -> dict:
    if workload == "P0":
        return matmul("torch", cfg)
    import torch

    model, opt, loss = torch_model(workload, sj_model(workload))
    b = BATCH[workload]
    xc, yc = workload_data(workload, b, "torch")
    details = {"initial loss": torch_loss(model, loss, xc, yc)}
    metrics = {}
    if workload == "W1":
        model.train()

        def step():
            opt.zero_grad()
            value = loss(model(xc), yc)
            value.backward()
            opt.step()
            return value.item()

        return step_result(measure(step, cfg.repeats, cfg.target_s, cfg.warmup), details)
    if workload in ("W2", "W4"):
        metrics["infer_sps"], details["infer_sps"] = torch_infer(workload, model, cfg)
    if workload == "W4":
        x1 = xc[:1]
        model.eval()

        def call():
            with torch.no_grad():
                return torch.softmax(model(x1), dim=-1)

        sec, per, n = measure(call, cfg.repeats, cfg.target_s / 2, cfg.warmup)
        metrics["latency_us"] = sec * 1e6
        details["latency_us"] = {"eval + no_grad µs": sec * 1e6, "calls per repeat": n,
                                 "repeat µs": [p * 1e6 for p in per]}
    key = "train_tps" if workload == "W5" else "train_sps"
    metrics[key], details[key] = torch_train(workload, model, opt, loss, cfg)
    return {"metrics": metrics, "details": details}


# ------------------------------------------------------------------------------------ P0

def matmul(framework: str, cfg: Config, n: int = 2048) -> dict:
    """float32 n×n @ n×n GFLOP/s: numpy's BLAS (what shenjing uses) or torch's."""
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    if framework == "torch":
        import torch
        a, b, out = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
        call = lambda: torch.matmul(a, b, out=out)  # noqa: E731
    else:
        call = lambda: np.matmul(a, b, out=out)  # noqa: E731
    sec, per, k = measure(call, cfg.repeats, cfg.target_s, max(1, cfg.warmup - 1))
    flops = 2.0 * n ** 3
    return {"metrics": {"gflops": flops / sec / 1e9},
            "details": {"gflops": {"n": n, "calls per repeat": k, "repeat GFLOP/s": [flops / p / 1e9 for p in per]}}}
