"""A character-level language model on Tiny Shakespeare, and text sampled from it with a temperature.

    python examples/char_lstm_shakespeare.py [--epochs 6] [--layers 2] [--units 256] [--budget-minutes 30]

Embedding(vocab, 64) -> LSTM(256, return_sequences) x 2 -> Dense(vocab, softmax) on every step, trained on
sequences of 100 characters (next-character targets) from the first 90% of the text; the last 10% is held out.
Prints the validation loss in nats per character after each epoch, the training speed in tokens/s, and a
sample.
"""

import argparse
import os
import time

import numpy as np

from shenjing import layers
from shenjing.models import Sequential
from shenjing.optimizers import Adam
from shenjing.utils import set_random_seed

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TEXT = os.path.join(HERE, "..", "..", "shared", "datasets", "tinyshakespeare", "input.txt")


def sequences(ids, length):
    """Non-overlapping (inputs, next-character targets) windows of ``length``."""
    n = (len(ids) - 1) // length
    x = ids[: n * length].reshape(n, length)
    y = ids[1: n * length + 1].reshape(n, length)
    return x, y


def sample(model, chars, seed_text, length=400, temperature=0.8, rng=None):
    """Generate ``length`` characters after ``seed_text``, drawing each from softmax(logits / temperature)."""
    rng = rng or np.random.default_rng(0)
    index = {c: i for i, c in enumerate(chars)}
    ids = [index[c] for c in seed_text]
    for _ in range(length):
        window = np.array(ids[-100:])[None, :]
        probs = model.predict(window, verbose=0)[0, -1].astype("float64")
        logits = np.log(np.maximum(probs, 1e-12)) / temperature
        p = np.exp(logits - logits.max())
        ids.append(int(rng.choice(len(chars), p=p / p.sum())))
    return "".join(chars[i] for i in ids)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", default=DEFAULT_TEXT)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--budget-minutes", type=float, default=None, help="stop after the epoch that passes it")
    parser.add_argument("--temperature", type=float, default=0.8)
    args = parser.parse_args()

    text = open(args.text, encoding="utf-8").read()
    chars = sorted(set(text))
    ids = np.searchsorted(np.array(chars), np.array(list(text)))
    split = int(len(ids) * 0.9)
    x_train, y_train = sequences(ids[:split], args.seq_len)
    x_val, y_val = sequences(ids[split:], args.seq_len)
    print(f"{len(text):,} characters, vocabulary {len(chars)}; {len(x_train)} training and {len(x_val)} "
          f"validation sequences of {args.seq_len}")

    set_random_seed(0)
    model = Sequential([layers.Embedding(len(chars), 64, input_shape=(None,))])
    for _ in range(args.layers):
        model.add(layers.LSTM(args.units, return_sequences=True))
    model.add(layers.Dense(len(chars), activation="softmax"))
    model.compile(optimizer=Adam(0.003, clipnorm=5.0), loss="sparse_categorical_crossentropy")
    model.summary()

    start = time.perf_counter()
    tokens = 0
    for epoch in range(args.epochs):
        history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=1, verbose=2)
        tokens += x_train.size
        elapsed = time.perf_counter() - start
        val_loss = model.evaluate(x_val, y_val, batch_size=256, verbose=0)
        print(f"epoch {epoch + 1}: training loss {history.history['loss'][-1]:.4f}, validation loss "
              f"{val_loss:.4f} nats/char; {tokens / elapsed:,.0f} training tokens/s", flush=True)
        if args.budget_minutes is not None and elapsed > 60 * args.budget_minutes:
            break
    print("sample (temperature %.1f):" % args.temperature)
    print(sample(model, chars, "ROMEO:\n", temperature=args.temperature))


if __name__ == "__main__":
    main()
