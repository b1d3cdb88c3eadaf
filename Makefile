# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-node lint unit bench crds clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[operator,dev,demo]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pilotfish demo

lint: $(STAMP)
	$(BIN)/ruff check sidecar operator tests e2e benchmarks
	$(BIN)/ruff format --check sidecar operator tests e2e benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pilotfish crds --check
	$(BIN)/hadolint Dockerfile.operator Dockerfile.sidecar

# The node tier (tests/node: images built here, the chart on a real one-node cluster) runs as a second
# pytest session after the others; it needs root. PILOTFISH_SKIP_NODE=1 leaves it out,
# PILOTFISH_SKIP_K8S=1 leaves out everything that needs Kubernetes binaries.
NODE := $(if $(filter 1,$(PILOTFISH_SKIP_NODE) $(PILOTFISH_SKIP_K8S)),,--node)

test: lint
	@if [ "$$PILOTFISH_SKIP_K8S" != 1 ]; then $(BIN)/python -m e2e.testenv packages $(NODE); fi
	@if [ "$$PILOTFISH_SKIP_K8S" != 1 ]; then $(BIN)/python -m e2e.testenv build $(NODE); fi
	$(BIN)/python -m pytest
	@if [ -n "$(NODE)" ]; then PILOTFISH_NODE_TESTS=1 $(BIN)/python -m pytest tests/node; fi

# The end-to-end tests on a real node (tests/node) alone: images built here, the chart installed, pods run.
test-node: $(STAMP)
	$(BIN)/python -m e2e.testenv packages --node
	$(BIN)/python -m e2e.testenv build --node
	PILOTFISH_NODE_TESTS=1 $(BIN)/python -m pytest tests/node

unit: $(STAMP)
	$(BIN)/python -m pytest -m 'not k8s'

# The sidecar tax (a few minutes): raw results to benchmarks/results/sidecar_overhead.json, and the table in
# docs/benchmarks.md rewritten from them (`python -m benchmarks.report --docs docs/benchmarks.md` redoes only that).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.sidecar_overhead
	$(BIN)/python -m benchmarks.report benchmarks/results/sidecar_overhead.json --docs docs/benchmarks.md

crds: $(STAMP)
	$(BIN)/pilotfish crds

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
