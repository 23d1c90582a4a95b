"""One-step-ahead forecasting with an LSTM on real series, against the naive last-value forecast.

    python examples/timeseries_forecast.py

Airline passengers (monthly, 1949-1960) and monthly sunspots (1749-1983), from ../shared/datasets/timeseries
(or --data DIR). Each series is split in time: the held-out tail (the last 24 months of passengers, the last
20% of sunspots) is never trained on. The LSTM sees a window of past values and predicts the next one; the
passengers are modelled as monthly changes of the log (the trend then no longer leaves the training range).
Both forecasts are scored by RMSE in the series' own units on the tail.
"""

import argparse
import csv
import os

import numpy as np

from shenjing import layers
from shenjing.models import Sequential
from shenjing.optimizers import Adam
from shenjing.utils import set_random_seed

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "datasets", "timeseries")


def read_series(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    return np.array([float(r[1]) for r in rows if r])


def windows(values, length):
    """(n, length, 1) inputs and (n, 1) next values from a 1-D array."""
    idx = np.arange(length)[None, :] + np.arange(len(values) - length)[:, None]
    return values[idx][..., None].astype("float32"), values[length:, None].astype("float32")


def forecast(series, test_size, window, transform, inverse, units=32, epochs=200, batch_size=16, seed=0):
    """Train on the head, forecast each tail point from the true past (one step ahead); returns
    (lstm_rmse, naive_rmse, predictions)."""
    z = transform(series)  # z[t] describes series[t] given series[t-1]
    split = len(series) - test_size
    mean, std = z[1:split].mean(), z[1:split].std()
    scaled = (z - mean) / std
    x, y = windows(scaled[1:], window)  # target index k -> series index k + window + 1
    target_index = np.arange(window + 1, len(series))
    train = target_index < split
    set_random_seed(seed)
    model = Sequential([layers.LSTM(units, input_shape=(window, 1)), layers.Dense(1)])
    model.compile(optimizer=Adam(0.005), loss="mse")
    model.fit(x[train], y[train], epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)
    predicted_z = model.predict(x[~train])[:, 0] * std + mean
    previous = series[target_index[~train] - 1]
    predictions = inverse(predicted_z, previous)
    actual = series[target_index[~train]]
    rmse = float(np.sqrt(np.mean((predictions - actual) ** 2)))
    naive = float(np.sqrt(np.mean((previous - actual) ** 2)))
    return rmse, naive, predictions


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    args = parser.parse_args()

    passengers = read_series(os.path.join(args.data, "airline-passengers.csv"))
    rmse, naive, _ = forecast(passengers, test_size=24, window=13,
                              transform=lambda s: np.concatenate([[0.0], np.diff(np.log(s))]),
                              inverse=lambda dz, previous: previous * np.exp(dz), epochs=300)
    print(f"airline passengers, last 24 months: LSTM RMSE {rmse:.1f}, naive last-value RMSE {naive:.1f} "
          f"(passengers; {100 * (1 - rmse / naive):.0f}% lower)")

    sunspots = read_series(os.path.join(args.data, "monthly-sunspots.csv"))
    test_size = len(sunspots) // 5
    rmse, naive, _ = forecast(sunspots, test_size=test_size, window=24, transform=lambda s: s.copy(),
                              inverse=lambda z, previous: z, epochs=15, batch_size=64)
    print(f"monthly sunspots, last {test_size} months: LSTM RMSE {rmse:.2f}, naive last-value RMSE {naive:.2f} "
          f"({100 * (1 - rmse / naive):.0f}% lower)")


if __name__ == "__main__":
    main()
