import pytest

from clr import demo


@pytest.mark.slow
def test_the_library_demo_trains_digits_and_writes_both_figures(tmp_path, capsys):
    accuracy = demo.main(tmp_path)
    assert accuracy > 0.9
    for name in ("range_test.png", "training.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    printed = capsys.readouterr().out
    assert "Suggested bounds: base_lr=" in printed and "test accuracy" in printed
