import sys

import numpy as np
import pytest

from shenjing.utils import progbar as P
from shenjing.utils.progbar import Progbar


@pytest.fixture
def tty(monkeypatch):
    """Make the captured stdout look like a terminal, once the test runs (capsys swaps
    sys.stdout between setup and call, so the patch is applied lazily)."""
    def patch():
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    return patch


@pytest.fixture
def no_tty(monkeypatch):
    pass  # the captured stdout is not a terminal


def test_format_value():
    assert P.format_value(0.69174) == "0.6917"
    assert P.format_value(-2.5) == "-2.5000"
    assert P.format_value(1.234e-5) == "1.2340e-05"
    assert P.format_value(0.0) == "0.0000e+00"
    assert P.format_value(np.float32(0.75)) == "0.7500"
    assert P.format_value(float("inf")) == "inf"
    assert P.format_value(float("nan")) == "nan"
    assert P.format_value("text") == "text"


def test_format_time_and_eta():
    assert P.format_time_per_unit(2.4, "step") == "2s/step"
    assert P.format_time_per_unit(0.0021, "step") == "2ms/step"
    assert P.format_time_per_unit(3.4e-5, "sample") == "34us/sample"
    assert P.format_time_per_unit(0, "step") == "0s/step"
    assert P.format_eta(12.7) == "12s"
    assert P.format_eta(125) == "2:05"
    assert P.format_eta(3725) == "1:02:05"


def test_not_a_tty_prints_only_the_final_line(capsys, no_tty):
    bar = Progbar(4, interval=0)
    for step, loss in enumerate([1.0, 0.5, 0.5, 0.2], start=1):
        bar.update(step, [("loss", loss), ("accuracy", 0.75)])
    out = capsys.readouterr().out
    assert "\r" not in out
    assert out.count("\n") == 1
    line = out.rstrip("\n")
    assert line.startswith("4/4 [==============================] - 0s ")
    assert "s/step - " in line
    assert line.endswith(" - loss: 0.5500 - accuracy: 0.7500")  # averaged over the steps


def test_tty_redraws_in_place(capsys, tty):
    tty()
    bar = Progbar(4, interval=0)
    bar.update(1, [("loss", 1.0)])
    bar.update(2, [("loss", 0.0)])
    out = capsys.readouterr().out
    assert out.count("\r") == 2
    assert "\n" not in out
    assert "1/4 [======>.......................] - ETA: " in out
    assert "2/4 [==============>...............] - ETA: " in out
    assert out.endswith(" - loss: 0.5000")
    bar.update(4, [("loss", 0.5)])
    out = capsys.readouterr().out
    assert out.startswith("\r4/4 [==============================] - 0s ")
    assert out.endswith(" - loss: 0.5000\n")


def test_tty_throttled_by_interval(capsys, tty):
    tty()
    bar = Progbar(100, interval=60)
    for step in range(1, 100):
        bar.update(step)
    assert capsys.readouterr().out.count("\r") == 1  # the first draw only
    bar.update(100)
    out = capsys.readouterr().out
    assert out.startswith("\r100/100 [")
    assert out.endswith("\n")


def test_tty_pads_a_shorter_line(capsys, tty):
    tty()
    bar = Progbar(10, interval=0)
    bar.update(1, [("name", "a long status text")])
    bar.update(2, [("name", "x")])
    first, second = capsys.readouterr().out.split("\r")[1:]
    assert len(second) >= len(first)


def test_stateful_metrics_are_shown_as_given(capsys, no_tty):
    bar = Progbar(2, stateful_metrics=["acc"])
    bar.update(1, [("loss", 1.0), ("acc", 0.1)])
    bar.update(2, [("loss", 3.0), ("acc", 0.9)])
    assert capsys.readouterr().out.rstrip().endswith("loss: 2.0000 - acc: 0.9000")


def test_values_weighted_by_the_steps_they_cover(capsys, no_tty):
    bar = Progbar(4)
    bar.update(1, {"loss": 1.0})
    bar.update(4, {"loss": 2.0})  # covers 3 steps
    assert capsys.readouterr().out.rstrip().endswith("loss: 1.7500")


def test_add(capsys, no_tty):
    bar = Progbar(6)
    bar.add(2, [("loss", 1.0)])
    bar.add(4, [("loss", 0.5)])
    out = capsys.readouterr().out
    assert out.startswith("6/6 [")
    assert out.rstrip().endswith("loss: 0.6667")


def test_verbose_2_prints_one_line_without_the_bar(capsys, tty):
    tty()
    bar = Progbar(4, verbose=2)
    for step in range(1, 5):
        bar.update(step, [("loss", 0.6917), ("accuracy", 0.75)])
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "\r" not in out and "[" not in out
    assert out.startswith("4/4 - 0s - loss: 0.6917 - accuracy: 0.7500")


def test_verbose_0_is_silent(capsys, tty):
    tty()
    bar = Progbar(3, verbose=0)
    for step in range(1, 4):
        bar.update(step, [("loss", 1.0)])
    assert capsys.readouterr().out == ""


def test_unknown_target(capsys, tty):
    tty()
    bar = Progbar(None, interval=0)
    bar.update(5, [("loss", 0.25)])
    out = capsys.readouterr().out
    assert out.startswith("\r      5/Unknown - 0s ")
    assert out.endswith("loss: 0.2500")
    bar.update(7, [("loss", 0.25)], finalize=True)
    assert capsys.readouterr().out.endswith("\n")


def test_unknown_target_not_a_tty(capsys, no_tty):
    bar = Progbar(None)
    for step in range(1, 4):
        bar.update(step)
    assert capsys.readouterr().out == ""
    bar.update(3, finalize=True)
    assert capsys.readouterr().out.startswith("      3/Unknown - 0s ")


def test_counter_is_right_aligned_to_the_target_width(capsys, tty):
    tty()
    bar = Progbar(100, interval=0)
    bar.update(7)
    assert capsys.readouterr().out.startswith("\r  7/100 [=>....")


def test_writes_to_the_stdout_of_the_moment(monkeypatch):
    import io

    bar = Progbar(1)
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)  # redirected after the bar was made
    bar.update(1)
    assert stream.getvalue().startswith("1/1 [")


def test_bad_target():
    with pytest.raises(ValueError, match="target"):
        Progbar(-1)


def test_tty_redraws_every_interval_when_steps_come_faster(capsys, tty, monkeypatch):
    tty()
    clock = iter([1000 + i * 0.01 for i in range(1000)])  # each time.time() call: 10 ms later
    monkeypatch.setattr(P.time, "time", lambda: next(clock))
    bar = Progbar(100, interval=0.05)
    for step in range(1, 100):
        bar.update(step)
    assert 15 <= capsys.readouterr().out.count("\r") <= 21
