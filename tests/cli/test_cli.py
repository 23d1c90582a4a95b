import os
import re
import subprocess
import sys

import pytest

from shenjing.cli import main


def test_demo_trains_on_the_embedded_sample_and_saves_the_model(capsys, tmp_path):
    assert main(["demo", "--epochs", "1", "--verbose", "0", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "10000 training and 2000 test images" in out
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", out).group(1))
    assert accuracy > 0.85
    model_path = tmp_path / "shenjing_demo.keras"
    assert model_path.is_file() and f"saved the trained model to {model_path}" in out
    from shenjing.saving import load_model

    model = load_model(str(model_path))
    assert model.name == "seed_cnn" and model.count_params() > 0
    plot_path = tmp_path / "shenjing_demo_history.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "pip install shenjing[plot]" in out and not plot_path.exists()
    else:
        assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_without_matplotlib_says_how_to_get_the_plot(capsys, tmp_path, monkeypatch):
    from shenjing.cli.demo import save_outputs
    from shenjing.layers import Dense
    from shenjing.models import Sequential

    model = Sequential([Dense(2, input_shape=(3,))])
    model.compile("sgd", "mse")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    save_outputs(model, {"loss": [1.0]}, str(tmp_path))
    out = capsys.readouterr().out
    assert "matplotlib is not installed" in out and "pip install shenjing[plot]" in out
    assert (tmp_path / "shenjing_demo.keras").is_file() and not (tmp_path / "shenjing_demo_history.png").exists()


def test_help_and_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0 and "MNIST sample shipped" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--epochs", "0"])
    assert exit_info.value.code == 2 and "--epochs must be a positive integer" in capsys.readouterr().err
    assert main([]) == 2


@pytest.mark.parametrize("command, words", [
    ("demo", "--output"), ("train", "CONFIG"), ("evaluate", "DATA"), ("predict", "INPUT"), ("summary", "MODEL")])
def test_every_command_has_help(capsys, command, words):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and words in out and f"shenjing {command}" in out


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "shenjing", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("demo", "train", "evaluate", "predict", "summary"):
        assert command in result.stdout


def test_a_bad_input_exits_non_zero_with_a_message_on_stderr(tmp_path):
    missing = os.path.join(str(tmp_path), "missing.json")
    result = subprocess.run([sys.executable, "-m", "shenjing", "train", missing], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("shenjing train: error: config file") and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
