"""The progress bar that ``fit``, ``evaluate`` and ``predict`` print.

Output follows Keras::

    4/4 [==============================] - 0s 2ms/step - loss: 0.6917 - accuracy: 0.7500

On a terminal (or in a notebook) the bar is redrawn in place with ``'\\r'``,
at most once per ``interval`` seconds. When standard output is not a terminal
(a log file, a pipe, CI, pytest's capture) no carriage return is ever written:
only the final line of the run is printed, so logs stay readable.
"""

from __future__ import annotations

import math
import sys
import time


def _is_interactive() -> bool:
    """Whether sys.stdout redraws lines in place (a terminal or a Jupyter kernel)."""
    stream = sys.stdout
    isatty = getattr(stream, "isatty", None)
    try:
        if isatty is not None and isatty():
            return True
    except (ValueError, OSError):  # a closed stream
        return False
    return "ipykernel" in sys.modules


def format_value(value) -> str:
    """A metric value as Keras prints it: 4 decimals, scientific notation when tiny."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if abs(number) > 1e-3 or math.isinf(number):
        return f"{number:.4f}"
    return f"{number:.4e}"


def format_time_per_unit(seconds: float, unit_name: str) -> str:
    """``'2ms/step'``: seconds per unit in s, ms or us."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit_name}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit_name}"
    return f"{seconds * 1e6:.0f}us/{unit_name}"


def format_eta(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds > 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds > 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds)}s"


class Progbar:
    """A text progress bar.

    Args:
        target: the total number of steps, or ``None`` when unknown.
        width: the width of the bar in characters.
        verbose: 0 silent, 1 the bar, 2 only the final line (without the bar).
        interval: the minimum number of seconds between two redraws on a terminal.
        stateful_metrics: names whose values are shown as given instead of being
            averaged over the steps (e.g. running means already).
        unit_name: the unit in the time-per-unit display (``'step'``, ``'sample'``).
    """

    def __init__(self, target, width=30, verbose=1, interval=0.05, stateful_metrics=None, unit_name="step"):
        if target is not None:
            target = int(target)
            if target < 0:
                raise ValueError(f"Progbar: target must be >= 0 or None, got {target}")
        self.target = target
        self.width = int(width)
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stateful_metrics = set(stateful_metrics) if stateful_metrics else set()

        self._values: dict = {}  # name -> [weighted sum, count] or the stateful value
        self._values_order: list = []
        self._seen_so_far = 0
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step = None
        self._width_drawn = 0  # length of the line drawn last on a terminal

    # ------------------------------------------------------------------ update
    def update(self, current, values=None, finalize=None):
        """Move the bar to step ``current``.

        ``values`` is a list of ``(name, value)`` pairs (or a dict); non-stateful
        values are averaged over the steps they cover. ``finalize`` (default:
        ``current >= target``) prints the final line.
        """
        current = int(current)
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        if values is None:
            values = ()
        elif isinstance(values, dict):
            values = values.items()

        steps = max(current - self._seen_so_far, 1)
        for name, value in values:
            if name not in self._values_order:
                self._values_order.append(name)
            if name in self.stateful_metrics or not _is_number(value):
                self._values[name] = value
            else:
                value = float(value)
                entry = self._values.get(name)
                if isinstance(entry, list):
                    entry[0] += value * steps
                    entry[1] += steps
                else:
                    self._values[name] = [value * steps, steps]
        self._seen_so_far = current

        now = time.time()
        if current >= 1 and self._time_after_first_step is None:
            self._time_after_first_step = now
        if self.verbose == 1:
            self._print_bar(current, now, finalize)
        elif self.verbose == 2 and finalize:
            self._write(self._counter(current) + f" - {now - self._start:.0f}s" + self._metrics_text() + "\n")

    def add(self, n, values=None):
        """Advance the bar by ``n`` steps."""
        self.update(self._seen_so_far + n, values)

    # ---------------------------------------------------------------- printing
    def _print_bar(self, current, now, finalize):
        interactive = _is_interactive()
        if not interactive and not finalize:
            return  # logs get only the final line: no '\r' redraws
        if not finalize and now - self._last_update < self.interval:
            return
        self._last_update = now  # the time of the last line drawn: skipped updates must not push it on

        line = self._counter(current)
        if self.target is not None:
            line += " " + self._bar(current)
        if finalize or self.target is None:
            per_step = format_time_per_unit(self._time_per_step(current, now), self.unit_name)
            line += f" - {now - self._start:.0f}s {per_step}"
        else:
            eta = self._time_per_step(current, now) * (self.target - current)
            line += f" - ETA: {format_eta(eta)}"
        line += self._metrics_text()

        if interactive:
            padding = " " * max(0, self._width_drawn - len(line))
            self._width_drawn = len(line)
            self._write("\r" + line + padding + ("\n" if finalize else ""))
            if finalize:
                self._width_drawn = 0
        else:
            self._write(line + "\n")

    def _counter(self, current) -> str:
        if self.target is None:
            return f"{current:7d}/Unknown"
        digits = len(str(self.target))
        return f"{current:{digits}d}/{self.target}"

    def _bar(self, current) -> str:
        fraction = min(1.0, current / self.target) if self.target else 1.0
        filled = int(self.width * fraction)
        bar = "=" * max(0, filled - 1)
        if filled > 0:
            bar += ">" if current < self.target else "="
        bar += "." * (self.width - filled)
        return f"[{bar}]"

    def _metrics_text(self) -> str:
        text = ""
        for name in self._values_order:
            entry = self._values[name]
            if isinstance(entry, list):
                value = format_value(entry[0] / max(1, entry[1]))
            else:
                value = format_value(entry) if _is_number(entry) else str(entry)
            text += f" - {name}: {value}"
        return text

    def _time_per_step(self, current, now) -> float:
        """Seconds per step, leaving out the first step (it includes warm-up) when possible."""
        if current <= 0:
            return 0.0
        if current > 1 and self._time_after_first_step is not None and now > self._time_after_first_step:
            return (now - self._time_after_first_step) / (current - 1)
        return (now - self._start) / current

    @staticmethod
    def _write(text: str) -> None:
        stream = sys.stdout  # looked up at call time, so redirection and capture work
        stream.write(text)
        stream.flush()


def _is_number(value) -> bool:
    if isinstance(value, (str, bytes)):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
