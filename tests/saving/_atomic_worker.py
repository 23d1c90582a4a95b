"""Writes a large checkpoint over and over (run as a subprocess, killed by the test).

    python _atomic_worker.py PATH

Before each write it prints ``start K`` and after it ``done K``; write K sets every weight to K, so a
reader can tell which complete write it sees.
"""

import sys

import shenjing.layers as L
from shenjing.models import Sequential
from shenjing.saving import save_model, save_weights


def main(path):
    model = Sequential([L.Dense(1500, input_dim=1500)])  # 2.25 M weights: 9 MB a write
    model.compile("sgd", "mse")
    k = 0
    while True:
        k += 1
        for w in model.weights:
            w.data[...] = k
        print(f"start {k}", flush=True)
        if path.endswith(".keras"):
            save_model(model, path)
        else:
            save_weights(model, path)
        print(f"done {k}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
