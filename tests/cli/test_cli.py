import re
import subprocess
import sys

import pytest

from shenjing.cli import main


def test_demo_trains_on_the_embedded_sample(capsys):
    assert main(["demo", "--epochs", "1", "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "10000 training and 2000 test images" in out
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", out).group(1))
    assert accuracy > 0.85


def test_help_and_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0 and "MNIST sample shipped" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--epochs", "0"])
    assert exit_info.value.code == 2 and "--epochs must be a positive integer" in capsys.readouterr().err
    assert main([]) == 2


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "shenjing", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "demo" in result.stdout
