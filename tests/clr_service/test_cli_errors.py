"""The CLI's failures are one readable line and an exit code, never a traceback: no service there, a key that is
empty or no key, a spec file missing or not YAML, a spec the service refuses."""

import pytest
from typer.testing import CliRunner

from clr_service.cli import app
from clr_service.stack import free_port


def failed(*arguments: str, code: int = 1) -> str:
    """What a command that must fail prints, checked to be short and traceback-free."""
    result = CliRunner().invoke(app, list(arguments))
    output = result.output.strip()
    assert result.exit_code == code and isinstance(result.exception, SystemExit), (result.exception, output)
    assert "Traceback" not in output and len(output.splitlines()) <= 8, output  # typer's usage box takes 7
    return output


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "training.yaml"
    path.write_text("model: {architecture: mlp}\ndataset: {name: digits}\nbatch_size: 16\nepochs: 1\n"
                    "clr: {base_lr: 0.01, max_lr: 0.1, stepsize: 2000}\n")
    return path


def test_no_service_at_the_url_is_one_line_naming_it(spec):
    url = f"http://127.0.0.1:{free_port()}"
    output = failed("submit", "training", str(spec), "--url", url, "--key", "k")
    assert url in output and "running" in output


@pytest.mark.parametrize(("content", "said"), [("\n", "empty"), ("two words\n", "not a key")])
def test_a_key_file_that_holds_no_key_is_named(spec, tmp_path, content, said):
    (tmp_path / "api-key").write_text(content)
    output = failed("submit", "training", str(spec), "--data-dir", str(tmp_path), code=2)
    assert said in output and "api-key" in output


def test_a_spec_file_that_is_missing_or_not_yaml_is_named(spec, tmp_path):
    missing = failed("submit", "training", str(tmp_path / "nowhere.yaml"), "--key", "k", code=2)
    assert "does not exist" in " ".join(missing.split())
    spec.write_text("model: {architecture: mlp\nepochs: [1\n")
    output = failed("submit", "training", str(spec), "--key", "k")
    assert str(spec) in output and "not valid YAML" in output and "line" in output


def test_a_refused_spec_names_the_field_and_the_value(spec, service):
    spec.write_text(spec.read_text().replace("batch_size: 16", "batch_size: sixteen"))
    output = failed("submit", "training", str(spec), "--url", service.url, "--key", service.api_key)
    assert output.startswith("422: ") and "optimizer: Field required;" in output, output
    assert "batch_size: Input should be a valid integer" in output and "(got 'sixteen')" in output
    assert "clr.stepsize: Extra inputs are not permitted (got 2000)" in output
