# Single task runner. Every target does its own set-up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# llama-cpp-python builds from source; native CPU flags, no tests/examples.
export CMAKE_ARGS ?= -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test bench lint fmt typecheck clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.stamp-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[local]"
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[local,dev,postgres,otel]"
	touch $@ $(VENV)/.stamp-run

$(VENV)/.stamp-bench: pyproject.toml $(VENV)/.stamp-dev
	$(BIN)/pip install -q -e ".[local,dev,postgres,otel,bench]"
	touch $@

demo: $(VENV)/.stamp-run
	$(BIN)/ai-orchestration demo

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.stamp-dev
	$(BIN)/mypy --strict src

test: lint typecheck
	$(BIN)/pytest

bench: $(VENV)/.stamp-bench
	$(BIN)/python -m benchmarks

fmt: $(VENV)/.stamp-dev
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) .ai_orchestration .mypy_cache .ruff_cache .pytest_cache
