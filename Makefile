# Two entry points for a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# openapi-python-client pins typer below this project's: a venv of its own, for the generated-client test
OPENAPI_VENV := .venv-openapi

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

.PHONY: demo test bench wrk
wrk:
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk \
		>/dev/null) || echo "WARNING: wrk could not be installed: the API overhead benchmark will not run"

demo: $(STAMP)
	$(BIN)/clr-service demo

# The browser tests drive Debian's chromium (Playwright's own browser download is not used); the API overhead
# benchmark loads the API with Debian's wrk.
test: $(STAMP) $(OPENAPI_VENV)/.installed wrk
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		chromium >/dev/null) || echo "WARNING: chromium could not be installed: the browser tests will be skipped"
	OPENAPI_PYTHON_CLIENT=$(CURDIR)/$(OPENAPI_VENV)/bin/openapi-python-client $(BIN)/python -m pytest

$(OPENAPI_VENV)/.installed:
	$(PYTHON) -m venv $(OPENAPI_VENV)
	($(OPENAPI_VENV)/bin/pip install --quiet openapi-python-client==0.29.1 && touch $@) \
		|| echo "WARNING: openapi-python-client could not be installed: the generated-client test will be skipped"

MLFLOW_VENV := .venv-mlflow
$(MLFLOW_VENV)/.installed:
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install --quiet mlflow numpy
	touch $@

bench: $(STAMP) $(MLFLOW_VENV)/.installed wrk
	$(BIN)/python -m bench.overhead
	$(BIN)/python -m bench.store --mlflow-python $(MLFLOW_VENV)/bin/python
	$(BIN)/python -m bench.table1
	$(BIN)/python -m bench.bounds_panel
	$(BIN)/python -m bench.durability
	$(BIN)/python -m bench.api_limits
	$(BIN)/python -m bench.start_latency
	$(BIN)/python -m bench.api_load
	$(BIN)/python -m bench.api_overhead
	$(BIN)/python -m bench.curves_scale
	$(BIN)/python -m bench.chaos
