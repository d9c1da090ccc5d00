# The two entry points: `make demo` and `make test`. Each bootstraps what it needs on a
# fresh Debian machine: a .venv with the package and its test extras, and (as root) the
# Debian packages of the peer tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit peers bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

peers:
	@scripts/install-peers.sh

lint: $(STAMP)
	$(BIN)/ruff check oci_image oci_storage oci_runtime tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) peers
	$(BIN)/python -m pytest

test: lint typecheck unit

demo: $(STAMP) peers
	$(BIN)/python examples/demo.py demo-out

bench: $(STAMP) peers
	$(BIN)/python benchmarks/copy_bench.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
